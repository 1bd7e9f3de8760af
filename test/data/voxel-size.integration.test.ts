/**
 * Geometry that cannot be computed with is refused when a case is read (issue 14 item 5): voxel
 * sizes of 0, NaN or ≥ 1000 mm, an affine whose axes are parallel, and a resampled grid too large
 * to allocate. They passed preprocessing and failed later with exit 1 ("singular matrix",
 * "Invalid typed array length").
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {diagonal, setGeometry, writeVolume, type Affine} from '../helpers/nifti-header.js'

/** A folder dataset with one 8³ case whose image and label get `pixdim` and `sform`. */
function dataset(pixdim: number[], sform: Affine): string {
  const root = mkdtempSync(join(tmpdir(), 'sipl-voxel-size-'))
  for (const d of ['imagesTr', 'labelsTr']) mkdirSync(join(root, d))
  const label = new Uint8Array(512)
  label[100] = 1
  const files = [join(root, 'imagesTr', 'a.nii'), join(root, 'labelsTr', 'a.nii')]
  writeVolume(files[0], [8, 8, 8], new Int16Array(512).fill(40), diagonal(2, 2, 2))
  writeVolume(files[1], [8, 8, 8], label, diagonal(2, 2, 2))
  for (const f of files) setGeometry(f, pixdim, sform)
  return root
}

function preprocessRefused(root: string, extra: string[] = []): string {
  const sets = ['data.preset=folder', `data.root=${root}`, 'data.classes=[x]', 'preprocess.patch=[4, 4, 4]', ...extra]
  const r = sipl(['preprocess', ...sets.flatMap((s) => ['--set', s])])
  assert.equal(r.code, 2, r.stderr)
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
  return r.stderr
}

for (const [what, size] of [
  ['0', 0],
  ['NaN', NaN],
  ['1000', 1000],
  ['1e-9', 1e-9],
] as const) {
  test(`a voxel size of ${what} mm (pixdim and sform) is refused when the case is read`, () => {
    const stderr = preprocessRefused(dataset([2, 2, size], diagonal(2, 2, size)))
    assert.match(stderr, new RegExp(`imagesTr/a\\.nii: voxel size ${what.replace('-', '\\-')} mm on axis 2 \\(pixdim\\[3\\]\\); sipl accepts 0\\.001 mm to under 1000 mm`))
  })
}

test('a zero sform column with a valid pixdim is refused too (the sform is the affine used)', () => {
  const stderr = preprocessRefused(dataset([2, 2, 2], diagonal(0, 2, 2)))
  assert.match(stderr, /imagesTr\/a\.nii: voxel size 0 mm on axis 0 of the sform affine/)
})

test('an sform whose voxel axes are parallel (no volume) is refused', () => {
  const parallel = diagonal(2, 2, 2)
  parallel[0][1] = 2
  parallel[1][1] = 0
  const stderr = preprocessRefused(dataset([2, 2, 2], parallel))
  assert.match(stderr, /imagesTr\/a\.nii: the sform affine's voxel axes are \(nearly\) parallel/)
})

test('a resampled grid beyond 2³¹ voxels is refused before it is allocated', () => {
  const stderr = preprocessRefused(dataset([900, 900, 900], diagonal(900, 900, 900)), ['preprocess.spacing=[0.5, 0.5, 0.5]'])
  assert.match(stderr, /case a: resampling \[8, 8, 8\] voxels of 900×900×900 mm to 0\.5×0\.5×0\.5 mm gives a 14400×14400×14400 grid/)
})
