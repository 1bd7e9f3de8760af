/**
 * `eval --pred --labels` refuses inputs that would score wrongly (issue 14 items 5 and 8):
 * a prediction on another grid (shifted, other spacing) with both affines in the message, a float
 * prediction, label values above K, and unusable voxel sizes. Each is exit 2 with one line.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {diagonal, setGeometry, writeVolume, type Affine} from '../helpers/nifti-header.js'
import {evaluateFolders} from '../../src/evaluate/evaluate.js'

const SHAPE = [8, 8, 8]

/** a 4³ cube of `value` at voxels 2..5 */
function cube(value = 1): Uint8Array {
  const out = new Uint8Array(512)
  for (let z = 2; z < 6; z++) for (let y = 2; y < 6; y++) for (let x = 2; x < 6; x++) out[x + 8 * (y + 8 * z)] = value
  return out
}

function folders(pred: {data: Uint8Array | Float32Array; affine: Affine}): {pred: string; labels: string; root: string} {
  const root = mkdtempSync(join(tmpdir(), 'sipl-eval-inputs-'))
  for (const d of ['pred', 'labels']) mkdirSync(join(root, d))
  writeVolume(join(root, 'labels', 'case1.nii'), SHAPE, cube(), diagonal(2, 2, 2))
  writeVolume(join(root, 'pred', 'case1.nii'), SHAPE, pred.data, pred.affine)
  return {pred: join(root, 'pred'), labels: join(root, 'labels'), root}
}

function evalRefused(dirs: {pred: string; labels: string; root: string}, extra: string[] = []): string {
  const r = sipl(['eval', '--pred', dirs.pred, '--labels', dirs.labels, '--out', join(dirs.root, 'eval'), ...extra])
  assert.equal(r.code, 2, r.stderr + r.stdout)
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
  return r.stderr
}

const shifted = diagonal(2, 2, 2)
shifted[0][3] = 5

test('a prediction shifted 5 mm is refused with both affines in the message (it scored Dice 1.0)', () => {
  const stderr = evalRefused(folders({data: cube(), affine: shifted}))
  assert.match(
    stderr,
    /pred\/case1\.nii: affine \[2, 0, 0, 5\] \[0, 2, 0, 0\] \[0, 0, 2, 0\] differs from the reference .*labels\/case1\.nii \[2, 0, 0, 0\] \[0, 2, 0, 0\] \[0, 0, 2, 0\] \(max difference 5, tolerance 0\.001\)/,
  )
})

test('a prediction with 1 mm instead of 2 mm spacing on the same shape is refused', () => {
  const stderr = evalRefused(folders({data: cube(), affine: diagonal(1, 1, 1)}))
  assert.match(stderr, /affine \[1, 0, 0, 0\] \[0, 1, 0, 0\] \[0, 0, 1, 0\] differs from the reference/)
})

test('within the documented tolerance (1e-3) the grids count as one and the case is scored', () => {
  const nearly = diagonal(2, 2, 2)
  nearly[1][3] = 4e-4
  const dirs = folders({data: cube(), affine: nearly})
  const {results} = evaluateFolders(dirs.pred, dirs.labels, {overlappingRegions: false, tolerance: 1, protocol: 'strict' as const})
  assert.equal(results[0].meanDice, 1)
})

test('a float prediction is refused, not rounded (0.6 became class 1)', () => {
  const soft = new Float32Array(512)
  cube().forEach((v, i) => (soft[i] = v * 0.6))
  const stderr = evalRefused(folders({data: soft, affine: diagonal(2, 2, 2)}))
  assert.match(stderr, /pred\/case1\.nii: voxel \d+ holds 0\.6000000238418579, not a whole class value/)
})

test('prediction values above K are refused, with K from the references or from --config', () => {
  const stderr = evalRefused(folders({data: cube(3), affine: diagonal(2, 2, 2)}))
  assert.match(stderr, /pred\/case1\.nii: holds label 3, but there are 1 classes \(the largest label in --labels is 1/)
  const root = mkdtempSync(join(tmpdir(), 'sipl-eval-inputs-'))
  const config = join(root, 'two.yaml')
  writeFileSync(config, 'data:\n  classes: [liver, spleen]\n')
  const withConfig = evalRefused(folders({data: cube(3), affine: diagonal(2, 2, 2)}), ['--config', config])
  assert.match(withConfig, /holds label 3, but there are 2 classes \(data\.classes has 2\)/)
})

for (const [what, size] of [
  ['0', 0],
  ['NaN', NaN],
  ['1000', 1000],
] as const) {
  test(`a voxel size of ${what} mm in a prediction is refused at reading`, () => {
    const dirs = folders({data: cube(), affine: diagonal(2, 2, 2)})
    setGeometry(join(dirs.pred, 'case1.nii'), [size, 2, 2], diagonal(size, 2, 2))
    const stderr = evalRefused(dirs)
    assert.match(
      stderr,
      new RegExp(`pred/case1\\.nii: voxel size ${what} mm on axis 0 \\(pixdim\\[1\\]\\); sipl accepts 0\\.001 mm to under 1000 mm`),
    )
  })
}
