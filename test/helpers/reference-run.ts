import assert from 'node:assert/strict'
import type {TestContext} from 'node:test'
import {join} from 'node:path'
import {sipl} from './cli.js'
import {tempDir} from './temp-dir.js'

/**
 * A temporary folder (`root`, removed when the test ends) holding `whole`, an uninterrupted run of
 * `train(whole)` on 2 threads: the reference that an interrupted and resumed run must match bit for
 * bit. Later runs should pass `env`, which shares the preprocessed data.
 */
export function referenceRun(
  t: TestContext,
  prefix: string,
  train: (out: string) => string[],
): {root: string; env: Record<string, string>; whole: string} {
  const root = tempDir(t, prefix)
  const env = {SIPL_DATA_DIR: join(root, 'data'), SIPL_THREADS: '2'}
  const whole = join(root, 'whole')
  const run = sipl(train(whole), {env})
  assert.equal(run.code, 0, run.stderr)
  return {root, env, whole}
}
