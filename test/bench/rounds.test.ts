/** mergeRounds (src/bench/rounds.ts): how `sipl bench --rounds` pools the rounds into one row per backend. */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import '../helpers/tf.js'
import type {BenchRow} from '../../src/bench/bench.js'
import {mergeRounds} from '../../src/bench/rounds.js'

const row = (backend: string, stepMs: number[], inferMs: number | null, extra: Partial<BenchRow> = {}): BenchRow => ({
  net: 'sipl',
  size: 32,
  backend,
  // as one round measured them (mergeRounds recomputes both from the pooled times)
  stepMsMedian: stepMs.length > 0 ? stepMs[0] : null,
  stepMsMin: stepMs.length > 0 ? Math.min(...stepMs) : null,
  inferMs,
  maxRelErr: null,
  inferSize: 96,
  steps: stepMs.length,
  stepMs,
  ...extra,
})

test('mergeRounds pools the step times of every round, takes the median inference, keeps the first round’s checks', () => {
  const merged = mergeRounds([
    [row('cpu', [10, 30], 100, {maxRelErr: 2e-5, kernelCalls: 1500}), row('pytorch', [20, 21], 90)],
    [row('cpu', [12, 11], 130), row('pytorch', [40, 50], 95)],
    [row('cpu', [13], 110), row('pytorch', [19, 18], 300)],
  ])
  assert.deepEqual(
    merged.map((r) => r.backend),
    ['cpu', 'pytorch'],
  )
  const [cpu, torch] = merged
  assert.deepEqual(cpu.stepMs, [10, 30, 12, 11, 13])
  assert.equal(cpu.stepMsMedian, 12)
  assert.equal(cpu.stepMsMin, 10)
  assert.equal(cpu.steps, 5)
  assert.equal(cpu.rounds, 3)
  assert.equal(cpu.inferMs, 110)
  assert.deepEqual(cpu.inferMsRounds, [100, 130, 110])
  assert.equal(cpu.maxRelErr, 2e-5)
  assert.equal(cpu.kernelCalls, 1500)
  // an even count: the mean of the two middle times
  assert.equal(torch.stepMsMedian, 20.5)
  assert.equal(torch.inferMs, 95)
})

test('mergeRounds of one round returns its rows unchanged; a row the first round did not time (failed its check) keeps null timings', () => {
  const only = [row('cpu', [5, 6], 7)]
  assert.equal(mergeRounds([only]), only)
  const failed = row('wasm', [], null, {maxRelErr: 0.9})
  delete failed.stepMs
  // were a later, unchecked round to time it, its times must not be pooled into the failed row
  const merged = mergeRounds([[failed], [row('wasm', [5, 6], 70)]])
  assert.equal(merged[0], failed)
  assert.equal(merged[0].stepMsMedian, null)
  assert.equal(merged[0].rounds, undefined)
})
