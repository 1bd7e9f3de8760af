import assert from 'node:assert/strict'
import {UserError} from '../../src/errors.js'

/** The message of the UserError that `fn` throws; fails the test when it throws anything else or nothing. */
export function userErrorMessage(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`)
    return error.message
  }
  assert.fail('expected an error')
}
