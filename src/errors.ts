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

/**
 * File-system failures the user fixes (a full disk, a quota, permissions, a file where a folder
 * belongs) as one line naming the path and the fix; other errors (a bug) give undefined.
 */
export function fileSystemUserError(error: unknown): UserError | undefined {
  if (!(error instanceof Error)) return undefined
  const {code, path, dest, syscall} = error as NodeJS.ErrnoException & {dest?: string}
  if (code === undefined || !(code in FILE_SYSTEM_PROBLEMS)) return undefined
  const where = path === undefined ? 'a file sipl was writing' : dest === undefined ? path : `${path} → ${dest}`
  const user = new UserError(`${FILE_SYSTEM_PROBLEMS[code](where)} (${code}${syscall ? ` in ${syscall}` : ''})`)
  user.cause = error
  return user
}

const FILE_SYSTEM_PROBLEMS: Record<string, (where: string) => string> = {
  ENOSPC: (p) =>
    `no space left on the device that holds ${p}; free space there (df -h) or write elsewhere (--out, SIPL_RUNS_DIR, SIPL_DATA_DIR)`,
  EDQUOT: (p) => `disk quota exceeded writing ${p}; free space in your quota (quota -s) or write elsewhere (--out, SIPL_RUNS_DIR)`,
  EACCES: (p) => `permission denied: ${p}; write somewhere you may write (--out, SIPL_RUNS_DIR, SIPL_DATA_DIR) or fix the permissions`,
  EPERM: (p) => `operation not permitted on ${p}; write somewhere you may write (--out, SIPL_RUNS_DIR) or fix the permissions`,
  EROFS: (p) => `${p} is on a read-only file system; write elsewhere (--out, SIPL_RUNS_DIR, SIPL_DATA_DIR)`,
  EEXIST: (p) => `${p} is in the way: it is a file where sipl needs a folder; give a folder path (e.g. --out) or move the file`,
  ENOTDIR: (p) => `${p}: part of this path is a file, not a folder; give a folder path (e.g. --out) or move the file`,
  EISDIR: (p) => `${p} is a folder where sipl writes a file; move it or give another path`,
}
