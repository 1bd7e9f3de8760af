/**
 * No stale comparisons: a compared run's recorded eval is reused only when it was scored the way
 * the evaluated method is (protocol, grid, checkpoint, test-time mirroring, largest component,
 * filtering, threshold, window) and its checkpoint has not been saved again since; otherwise
 * `sipl eval` exits 2 naming the setting and the command that re-scores it.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {writeNifti} from '../../src/io/nifti-writer.js'
import {rescoreCommand, settingDifferences, type ScoringSettings} from '../../src/evaluate/settings.js'
import {sipl} from '../helpers/cli.js'
import {sets, TINY} from '../e2e/tiny.js'
import {IDENTITY_GEOMETRY} from '../helpers/geometry.js'

const SHAPE: [number, number, number] = [6, 4, 2]
const geometry = IDENTITY_GEOMETRY

function mask(shift: number): Uint8Array {
  const out = new Uint8Array(6 * 4 * 2)
  for (let i = 0; i < out.length; i++) if (i % 6 >= 1 + shift && i % 6 < 4 + shift) out[i] = 1
  return out
}

const prediction = {
  checkpoint: 'best',
  checkpointEpoch: 3,
  checkpointSavedAt: '2026-12-01T00:00:00.000Z',
  ttaAxes: [],
  largestComponent: false,
  filterAtInference: false,
  threshold: 0.5,
  overlap: 0.5,
  sigmaScale: 0.125,
}

/** A run folder as `sipl eval --run` leaves it: config.yaml, checkpoints/best/state.json, eval/{summary.json, predictions}. */
function fakeRun(dir: string, ids: string[], settings: object | undefined, shift: number) {
  mkdirSync(join(dir, 'checkpoints', 'best'), {recursive: true})
  writeFileSync(join(dir, 'config.yaml'), 'name: fake\n')
  writeFileSync(join(dir, 'checkpoints', 'best', 'state.json'), JSON.stringify({epoch: 3, savedAt: prediction.checkpointSavedAt}))
  for (const id of ids) writeNifti(join(dir, 'eval', 'predictions', `${id}.nii.gz`), {shape: SHAPE, data: mask(shift), geometry})
  writeFileSync(
    join(dir, 'eval', 'summary.json'),
    JSON.stringify({meanDice: 0.5, perCase: {}, perClass: {}, ...(settings ? {settings} : {})}),
  )
}

test('settingDifferences names what differs; rescoreCommand reproduces the settings', () => {
  const ours: ScoringSettings = {protocol: 'sipl', grid: 'preprocessed', surfaceTolerance: 1, prediction: {...prediction, ttaAxes: ['z']}}
  assert.deepEqual(settingDifferences(ours, ours), [])
  const theirs: ScoringSettings = {...ours, protocol: 'strict', prediction: {...prediction, threshold: 0.4, checkpointEpoch: 9}}
  assert.deepEqual(
    settingDifferences(ours, theirs).map((d) => [d.name, d.ours, d.theirs]),
    [
      ['--protocol', 'sipl', 'strict'],
      ['test-time mirror axes (eval.tta, eval.ttaAxes)', '[z]', '[]'],
      ['eval.threshold', '0.5', '0.4'],
    ],
  )
  // a different surface tolerance or another run's epoch does not change what the paired tests compare
  assert.deepEqual(settingDifferences(ours, {...ours, surfaceTolerance: 2, prediction: {...ours.prediction!, checkpointEpoch: 50}}), [])
  assert.equal(
    rescoreCommand('runs/b', ours),
    "sipl eval --run runs/b --protocol sipl --checkpoint best --set eval.tta=true --set 'eval.ttaAxes=[z]' --set eval.largestComponent=false --set smg.filterAtInference=false --set eval.threshold=0.5 --set eval.overlap=0.5 --set eval.sigmaScale=0.125",
  )
})

test('--compare runs with --labels: refused when predicted differently, stale or unrecorded; accepted when alike', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-compare-'))
  try {
    const ids = ['c1', 'c2', 'c3']
    for (const id of ids) {
      writeNifti(join(root, 'labels', `${id}.nii.gz`), {shape: SHAPE, data: mask(0), geometry})
      writeNifti(join(root, 'ours', `${id}.nii.gz`), {shape: SHAPE, data: mask(1), geometry})
    }
    const a = join(root, 'a')
    const b = join(root, 'b')
    fakeRun(a, ids, {protocol: 'strict', grid: 'preprocessed', surfaceTolerance: 1, prediction}, 0)
    fakeRun(b, ids, {protocol: 'strict', grid: 'preprocessed', surfaceTolerance: 1, prediction}, 2)
    const evalWith = (...extra: string[]) =>
      sipl(['eval', '--pred', join(root, 'ours'), '--labels', join(root, 'labels'), '--compare', `a=${a}`, '--compare', `b=${b}`, ...extra])
    const ok = evalWith('--json')
    assert.equal(ok.code, 0, ok.stderr + ok.stdout)
    const json = JSON.parse(ok.stdout) as {methods: Record<string, {meanDice: number}>}
    assert.equal(json.methods.a.meanDice, 1)

    // b was predicted with mirroring along x, y, z: refused, naming the setting and the command
    fakeRun(
      b,
      ids,
      {protocol: 'strict', grid: 'preprocessed', surfaceTolerance: 1, prediction: {...prediction, ttaAxes: ['x', 'y', 'z']}},
      2,
    )
    let r = evalWith()
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /--compare b=.* was scored with test-time mirror axes \(eval\.tta, eval\.ttaAxes\) = \[x, y, z\], a with \[\]/)
    assert.match(r.stderr, /re-score it like a: sipl eval --run .*b --protocol strict --checkpoint best --set eval\.tta=false/)
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line')

    // b's checkpoint was saved again after its eval (trained further): stale
    fakeRun(b, ids, {protocol: 'strict', grid: 'preprocessed', surfaceTolerance: 1, prediction}, 2)
    writeFileSync(join(b, 'checkpoints', 'best', 'state.json'), JSON.stringify({epoch: 9, savedAt: '2026-12-05T00:00:00.000Z'}))
    r = evalWith()
    assert.equal(r.code, 2)
    assert.match(r.stderr, /checkpoints\/best has changed since .*summary\.json was written.*re-score it: sipl eval --run/)

    // an eval made before sipl recorded its settings
    fakeRun(b, ids, undefined, 2)
    r = evalWith()
    assert.equal(r.code, 2)
    assert.match(r.stderr, /does not record how it was scored/)

    // no eval at all
    rmSync(join(b, 'eval'), {recursive: true})
    r = evalWith()
    assert.equal(r.code, 2)
    assert.match(r.stderr, /--compare b=.*: no eval\/predictions; run 'sipl eval --run .*' first/)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})

test('--run --compare RUN: a recorded eval is reused only when made alike; mirroring follows the training flips', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-compare-run-'))
  const env = {SIPL_DATA_DIR: join(root, 'data')}
  try {
    const run = join(root, 'run')
    const training = sets('train.epochs=1', 'train.itersPerEpoch=2', 'train.augment.flip=0', 'eval.overlap=0')
    const t = sipl(['train', '-c', 'experiments/demo.yaml', ...TINY, ...training, '--out', run], {env})
    assert.equal(t.code, 0, t.stderr)
    // trained without flips, evaluated with eval.tta: no mirroring, logged
    const e = sipl(['eval', '--run', run, '--set', 'eval.tta=true', '--figures', '0'], {env})
    assert.equal(e.code, 0, e.stderr)
    const summary = JSON.parse(readFileSync(join(run, 'eval', 'summary.json'), 'utf8')) as {
      protocol: string
      settings: ScoringSettings
    }
    assert.equal(summary.protocol, 'strict')
    assert.deepEqual(summary.settings.prediction!.ttaAxes, [])
    assert.deepEqual([summary.settings.grid, summary.settings.prediction!.checkpoint], ['preprocessed', 'best'])
    assert.match(readFileSync(join(run, 'eval', 'eval.log'), 'utf8'), /no mirroring, because the training never mirrored/)
    // asking to mirror an axis the training never mirrored: one line, exit 2
    const axes = sipl(['eval', '--run', run, '--set', 'eval.tta=true', '--set', 'eval.ttaAxes=[x]'], {env})
    assert.equal(axes.code, 2)
    assert.match(axes.stderr, /eval\.ttaAxes asks to mirror along x, which the model was never trained to mirror/)

    // an identical copy compares; a never-evaluated copy is evaluated the same way first
    const twin = join(root, 'twin')
    cpSync(run, twin, {recursive: true})
    const fresh = join(root, 'fresh')
    cpSync(run, fresh, {recursive: true})
    rmSync(join(fresh, 'eval'), {recursive: true})
    const same = sipl(
      ['eval', '--run', run, '--set', 'eval.tta=true', '--compare', `twin=${twin}`, '--compare', `fresh=${fresh}`, '--figures', '0'],
      {env},
    )
    assert.equal(same.code, 0, same.stderr)
    const freshSummary = JSON.parse(readFileSync(join(fresh, 'eval', 'summary.json'), 'utf8')) as {settings: ScoringSettings}
    assert.deepEqual(freshSummary.settings, summary.settings)

    // another threshold or protocol for the evaluated run: the recorded twin is refused
    const threshold = sipl(['eval', '--run', run, '--set', 'eval.threshold=0.4', '--compare', `twin=${twin}`, '--figures', '0'], {env})
    assert.equal(threshold.code, 2)
    assert.match(threshold.stderr, /--compare twin=.* was scored with eval\.threshold = 0\.5, main with 0\.4.*--set eval\.threshold=0\.4/)
    const protocol = sipl(['eval', '--run', run, '--protocol', 'sipl', '--compare', `twin=${twin}`, '--figures', '0'], {env})
    assert.equal(protocol.code, 2)
    assert.match(protocol.stderr, /was scored with --protocol = strict, main with sipl; paired methods must be scored alike/)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
