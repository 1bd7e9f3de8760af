import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readdirSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {SHARED} from '../helpers/cli.js'
import {needsShared} from '../helpers/needs.js'
import {readNifti, scaledFloat32, voxelStats} from '../../src/io/nifti.js'
import {encodeNifti, geometryFromAffine, geometryOf, writeNifti} from '../../src/io/nifti-writer.js'

const NIFTI = join(SHARED, 'data/nifti')
const skip = needsShared('the NIfTI writer round trips', 'data/nifti')
const dir = mkdtempSync(join(tmpdir(), 'sipl-writer-'))

function assertMatrixClose(a: number[][], b: number[][], tol: number, what: string): void {
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) assert.ok(Math.abs(a[r][c] - b[r][c]) <= tol, `${what}[${r}][${c}]: ${a[r][c]} vs ${b[r][c]}`)
}

// big-endian int16 LAS; scaled int16; slope 0 (= no scaling); sform with shear and a different qform;
// qform only; 4-D; float64 labels; NIfTI-2 source (written back as NIfTI-1)
const CASES = [
  'nibabel/anatomical.nii',
  'nibabel/functional.nii',
  'nifti-reader-js/avg152T1_LR_nifti.nii.gz',
  'niivue/shear.nii.gz',
  'monai/anatomical_label.nii.gz',
  'nibabel/example4d.nii.gz',
  'nifti-reader-js/avg152T1_LR_nifti2.nii.gz',
]

for (const name of CASES) {
  test(`round trip keeps voxels, scaling, sform/qform and codes: ${name}`, {skip}, () => {
    const source = readNifti(join(NIFTI, name))
    const out = join(dir, name.replace(/\//g, '_').replace(/\.nii(\.gz)?$/, '') + '.nii.gz')
    writeNifti(out, {
      shape: source.header.shape,
      data: source.data,
      geometry: geometryOf(source.header),
      extraZooms: source.header.zooms.slice(3),
      sclSlope: source.header.sclSlope,
      sclInter: source.header.sclInter,
    })
    const back = readNifti(out)
    const h = back.header
    assert.equal(h.version, 1)
    assert.deepEqual(h.shape, source.header.shape)
    assert.equal(h.datatype, source.header.datatype)
    assert.deepEqual(Array.from(back.data), Array.from(source.data), 'stored voxels')
    assert.deepEqual(Array.from(scaledFloat32(back)), Array.from(scaledFloat32(source)), 'scaled voxels')
    assert.deepEqual(h.effectiveSlopeInter, source.header.effectiveSlopeInter)
    assert.equal(h.sformCode, source.header.sformCode)
    assert.equal(h.qformCode, source.header.qformCode)
    assert.equal(h.affineSource, source.header.affineSource)
    assert.equal(h.xyztUnits, source.header.xyztUnits)
    if (source.header.sformCode > 0) assertMatrixClose(h.sform, source.header.sform, 0, 'sform (float32 exact)')
    if (source.header.qformCode > 0) assertMatrixClose(h.qform, source.header.qform, 2e-5, 'qform')
    assertMatrixClose(h.affine, source.header.affine, 2e-5, 'affine')
    h.zooms.forEach((z, i) => assert.ok(Math.abs(z - source.header.zooms[i]) < 1e-5, `zoom ${i}`))
  })
}

test('slope 0 follows nibabel: no scaling, values are the stored ones', {skip}, () => {
  const source = readNifti(join(NIFTI, 'nifti-reader-js/avg152T1_LR_nifti.nii.gz'))
  assert.equal(source.header.sclSlope, 0)
  const stats = voxelStats(source)
  assert.ok(stats.max > 0, 'a slope-0 image must not be zeroed')
  const shape = [2, 2, 1]
  const data = new Int16Array([1, 2, 3, 4])
  const geometry = geometryFromAffine([
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ])
  const path = join(dir, 'slope0.nii')
  writeNifti(path, {shape, data, geometry, sclSlope: 0, sclInter: 100})
  assert.deepEqual(Array.from(scaledFloat32(readNifti(path))), [1, 2, 3, 4], 'inter is ignored when slope is 0')
  writeNifti(path, {shape, data, geometry, sclSlope: 2, sclInter: 100})
  assert.deepEqual(Array.from(scaledFloat32(readNifti(path))), [102, 104, 106, 108])
})

test('label maps are written as uint8 / int16 and the file appears atomically', () => {
  const geometry = geometryFromAffine([
    [-1.5, 0, 0, 10],
    [0, -1.5, 0, 20],
    [0, 0, 2, -30],
    [0, 0, 0, 1],
  ])
  const labels = new Uint8Array([0, 1, 2, 13, 0, 0, 5, 255])
  const p8 = writeNifti(join(dir, 'labels8.nii.gz'), {shape: [2, 2, 2], data: labels, geometry})
  const p16 = writeNifti(join(dir, 'labels16.nii.gz'), {shape: [2, 2, 2], data: Int16Array.from(labels), geometry})
  const r8 = readNifti(p8)
  const r16 = readNifti(p16)
  assert.equal(r8.header.datatype, 'uint8')
  assert.equal(r16.header.datatype, 'int16')
  assert.deepEqual(Array.from(r8.data), Array.from(labels))
  assert.deepEqual(Array.from(r16.data), Array.from(labels))
  assert.deepEqual(r8.header.zooms, [1.5, 1.5, 2])
  assert.equal(r8.header.xyztUnits, 2)
  assert.equal(r8.header.sformCode, 2)
  assert.equal(r8.header.qformCode, 2)
  assertMatrixClose(r8.header.qform, r8.header.sform, 1e-6, 'qform from the same affine')
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp-')),
    [],
  )
  assert.throws(() => encodeNifti({shape: [2, 2, 3], data: labels, geometry}), /needs 12/)
})
