/**
 * SIPL_THREADS above the core count is capped at it, with a log line saying so (issue 14 item 8):
 * SIPL_THREADS=100000 started a worker per thread and ran out of memory.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync} from 'node:fs'
import {availableParallelism, tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {environment, threadsCapped} from '../../src/paths.js'

test('environment(): SIPL_THREADS=100000 becomes the core count; 0 and counts up to the cores stay as asked', () => {
  const before = process.env.SIPL_THREADS
  try {
    const cores = availableParallelism()
    process.env.SIPL_THREADS = '100000'
    assert.equal(environment().threads, cores)
    assert.deepEqual(threadsCapped(), {requested: 100000, cores})
    for (const asked of [0, 1, cores]) {
      process.env.SIPL_THREADS = String(asked)
      assert.equal(environment().threads, asked)
      assert.equal(threadsCapped(), undefined)
    }
  } finally {
    if (before === undefined) delete process.env.SIPL_THREADS
    else process.env.SIPL_THREADS = before
  }
})

test('sipl train with SIPL_THREADS=100000 logs the cap when it picks the backend', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-threads-'))
  // the run stops at the missing dataset, right after the backend is chosen
  const r = sipl(
    ['train', '--set', 'data.preset=folder', '--set', `data.root=${join(dir, 'none')}`, '--backend', 'cpu', '--out', join(dir, 'run')],
    // uncapped, the backend's self-check starts 100000 workers and grows past 10 GB: stop it early
    {env: {SIPL_THREADS: '100000'}, timeoutMs: 60_000},
  )
  assert.equal(r.code, 2, r.stderr)
  assert.match(
    r.stderr,
    new RegExp(
      `SIPL_THREADS=100000 is more than the ${availableParallelism()} cores; the cpu kernels use ${availableParallelism()} threads`,
    ),
  )
})

test('sipl doctor with SIPL_THREADS=100000 says the threads were capped', () => {
  const cores = availableParallelism()
  const text = sipl(['doctor', '--skip-check'], {env: {SIPL_THREADS: '100000', SIPL_BACKEND: 'cpu'}, timeoutMs: 120_000})
  assert.equal(text.code, 0, text.stderr)
  assert.match(text.stdout, new RegExp(`^settings: .* threads=${cores} \\(SIPL_THREADS=100000 capped at the ${cores} cores\\)`, 'm'))
  const json = sipl(['doctor', '--skip-check', '--json'], {env: {SIPL_THREADS: '100000'}, timeoutMs: 120_000})
  assert.deepEqual((JSON.parse(json.stdout) as {threadsCapped: unknown}).threadsCapped, {requested: 100000, cores})
  // within the cores: no note
  const within = sipl(['doctor', '--skip-check'], {env: {SIPL_THREADS: '1'}, timeoutMs: 120_000})
  assert.match(within.stdout, /^settings: .* threads=1 python=/m)
})
