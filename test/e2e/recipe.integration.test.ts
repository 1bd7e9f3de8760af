/**
 * The training recipe as it reaches metrics.jsonl (issue 13): τ follows Eq. 11 epoch by epoch and
 * is constant with `smg.tau.rampEpochs=0` (Fig. 5b's constant thresholds); a permutation epoch is
 * one pass over the training volumes; a permutation config that also sets itersPerEpoch is refused.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {TINY} from './tiny.js'

const root = mkdtempSync(join(tmpdir(), 'sipl-recipe-'))
const env = {SIPL_DATA_DIR: join(root, 'data')}

function train(name: string, sets: string[]): {steps: number; taus: number[]; rows: {epoch: number; step: number; tau: number}[]} {
  const out = join(root, name)
  const args = ['train', '-c', 'experiments/demo.yaml', ...TINY, '--set', 'train.valEvery=0', ...sets.flatMap((s) => ['--set', s])]
  const t = sipl([...args, '--out', out, '--json'], {env})
  assert.equal(t.code, 0, t.stderr)
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as {epoch: number; step: number; tau: number})
  return {steps: (JSON.parse(t.stdout) as {steps: number}).steps, taus: rows.map((r) => r.tau), rows}
}

test('τ rises by Eq. 11 each epoch, and stays at smg.tau.end throughout with rampEpochs=0 (Fig. 5b)', () => {
  const ramp = train('ramp', ['train.epochs=3', 'train.itersPerEpoch=1', 'smg.tau.rampEpochs=4'])
  // τ(epoch) = min(epoch / 4, 1) · 0.4 + 0.1 for the 0-based epoch that was trained
  ramp.taus.forEach((tau, e) => assert.ok(Math.abs(tau - (0.1 + 0.4 * (e / 4))) < 1e-12, `epoch ${e + 1}: τ ${tau}`))
  const constant = train('constant', ['train.epochs=3', 'train.itersPerEpoch=1', 'smg.tau.rampEpochs=0', 'smg.tau.end=0.3'])
  assert.deepEqual(constant.taus, [0.3, 0.3, 0.3])
})

test('volumeOrder permutation: each epoch is ⌈volumes · samplesPerVolume / batchSize⌉ steps', () => {
  // TINY: 4 phantoms split 2 train / 1 val / 1 test → 2 volumes × 3 crops in batches of 2 = 3 steps per epoch
  const run = train('permutation', [
    'train.epochs=2',
    'train.itersPerEpoch=null',
    'train.volumeOrder=permutation',
    'train.samplesPerVolume=3',
    'train.batchSize=2',
  ])
  assert.equal(run.steps, 6)
  assert.deepEqual(
    run.rows.map((r) => r.step),
    [3, 6],
  )
  const refused = sipl(['train', '-c', 'experiments/demo.yaml', '--set', 'train.volumeOrder=permutation', '--out', join(root, 'x')], {env})
  assert.equal(refused.code, 2)
  assert.match(refused.stderr, /itersPerEpoch.*permutation epoch is one pass over the training volumes/)
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
})

test.after(() => rmSync(root, {recursive: true, force: true}))
