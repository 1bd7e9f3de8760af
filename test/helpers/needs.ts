/**
 * What a test needs from outside the clone: the real data in ../shared (beside a development
 * checkout, not in a clone on its own), or a WebGPU adapter. Where it is missing the tests skip
 * with one line naming it, so the README's `npm test` passes on a fresh clone; under CI=true,
 * where .ci/run provides everything, a missing thing is one failing test that names it.
 */
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {join, relative} from 'node:path'
import {test} from 'node:test'
import {PROJECT_ROOT, SHARED} from './cli.js'

/**
 * The `skip` option for tests that need `what`: false when nothing is `missing`; otherwise the
 * reason, printed once, and under CI=true also a test that fails with it.
 */
export function skipUnless(what: string, missing: string | undefined): false | string {
  if (missing === undefined) return false
  if (process.env.CI === 'true') {
    test(`${what}: available under CI=true`, () => assert.fail(`CI=true but ${missing}`))
  } else {
    console.log(`# skipping ${what}: ${missing}`)
  }
  return missing
}

/**
 * `skip` option for tests that read `paths` (relative to ../shared): false when all exist, else
 * the reason naming the first missing one.
 */
export function needsShared(what: string, ...paths: string[]): false | string {
  const absent = paths.map((path) => join(SHARED, path)).find((path) => !existsSync(path))
  return skipUnless(
    what,
    absent === undefined
      ? undefined
      : `${relative(PROJECT_ROOT, absent)} is missing (../shared holds the project's real data beside a development checkout)`,
  )
}
