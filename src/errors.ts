/**
 * Errors a user can cause and fix (missing file, bad YAML, wrong shape, …).
 * The CLI prints `message` as one line and exits with code 2; the stack trace is
 * shown only with --verbose. Anything else is a bug and keeps its stack.
 */
export class UserError extends Error {
  readonly exitCode = 2
  constructor(message: string) {
    super(message)
    this.name = 'UserError'
  }
}

export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError
}

/** Throws a UserError unless `condition` holds; the message should name the thing and the fix. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new UserError(typeof message === 'function' ? message() : message)
}
