/**
 * `sipl predict` against `sipl eval --run`: a tiny run (with TTA, the largest component and a low
 * threshold in its eval settings, so the label maps are not empty) predicts the raw phantom
 * images, with the preprocessed cache deleted first, and for the test case writes exactly the file
 * eval wrote: same header, same voxels, same bytes.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {readNifti} from '../../src/io/nifti.js'
import {sipl} from '../helpers/cli.js'
import {tinyTrainArgs} from './tiny.js'

interface PredictJson {
  run: string
  checkpoint: string
  plan: string
  classes: string[]
  eval: {tta: boolean; largestComponent: boolean}
  cases: {id: string; output: string; shape: number[]; volumes: Record<string, {voxels: number; ml: number}>}[]
}

test('predict on the raw scans writes what eval --run wrote for the same case, bit for bit', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-e2e-predict-'))
  const env = {SIPL_DATA_DIR: join(root, 'data')}
  const run = join(root, 'run')
  try {
    const settings = ['train.epochs=1', 'train.itersPerEpoch=2', 'eval.tta=true', 'eval.largestComponent=true', 'eval.threshold=0.3']
    const t = sipl(tinyTrainArgs(run, settings), {env})
    assert.equal(t.code, 0, t.stderr)
    const e = sipl(['eval', '--run', run, '--json'], {env})
    assert.equal(e.code, 0, e.stderr)
    const ids = Object.keys((JSON.parse(e.stdout) as {methods: {main: {perCase: Record<string, number>}}}).methods.main.perCase)
    assert.equal(ids.length, 1)
    const id = ids[0]

    // the scans alone, in a folder of their own; the cache goes, so predict must rely on the run
    const scans = join(root, 'scans')
    mkdirSync(scans)
    const images = join(root, 'data', 'demo', 'imagesTr')
    for (const c of ['case_000', 'case_001', 'case_002', 'case_003']) copyFileSync(join(images, `${c}.nii.gz`), join(scans, `${c}.nii.gz`))
    rmSync(join(root, 'data', 'demo', 'preprocessed'), {recursive: true})
    const out = join(root, 'predictions')
    const p = sipl(['predict', '--run', run, '-i', scans, '-o', out, '--json'], {env})
    assert.equal(p.code, 0, p.stderr)
    const summary = JSON.parse(p.stdout) as PredictJson
    assert.equal(summary.plan, join(run, 'plan.json'))
    // the demo trains with flips on x, y, z, so its mirroring TTA may use all three
    assert.deepEqual(summary.eval, {tta: true, mirrorAxes: ['x', 'y', 'z'], largestComponent: true, overlap: 0.5, threshold: 0.3})
    assert.deepEqual(
      summary.cases.map((c) => c.id),
      ['case_000', 'case_001', 'case_002', 'case_003'],
    )
    assert.ok(!existsSync(join(root, 'data', 'demo', 'preprocessed')), 'predict did not rebuild the cache')

    const fromEval = join(run, 'eval', 'predictions', `${id}.nii.gz`)
    const fromPredict = join(out, `${id}.nii.gz`)
    const a = readNifti(fromEval)
    const b = readNifti(fromPredict)
    const {path: _a, ...headerA} = {path: 0, ...a.header}
    const {path: _b, ...headerB} = {path: 0, ...b.header}
    assert.deepEqual(headerB, headerA)
    assert.deepEqual(b.header.shape, [32, 32, 24])
    assert.equal(b.header.datatype, 'uint8')
    assert.deepEqual(b.data, a.data)
    assert.ok(new Set(b.data).size > 1, 'the prediction is not all background')
    assert.ok(readFileSync(fromPredict).equals(readFileSync(fromEval)), 'the two files are the same bytes')

    // the summary's volumes are the written voxels
    const c = summary.cases.find((x) => x.id === id)!
    summary.classes.forEach((name, k) => {
      const count = (b.data as Uint8Array).filter((v) => v === k + 1).length
      assert.equal(c.volumes[name].voxels, count, name)
    })
    assert.ok(existsSync(join(out, 'predict.json')))

    // one file in, one case out; a --set outside eval.* is refused
    const single = sipl(['predict', '--run', run, '-i', join(scans, `${id}.nii.gz`), '-o', join(root, 'one'), '--json'], {env})
    assert.equal(single.code, 0, single.stderr)
    assert.ok(readFileSync(join(root, 'one', `${id}.nii.gz`)).equals(readFileSync(fromEval)))
    const bad = sipl(['predict', '--run', run, '-i', scans, '-o', join(root, 'x'), '--set', 'model.queries=4'], {env})
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--set model\.queries=4: .*only eval\./)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
