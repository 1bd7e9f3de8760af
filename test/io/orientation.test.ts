import {test} from 'node:test'
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {SHARED} from '../helpers/cli.js'
import {needsShared} from '../helpers/needs.js'
import {readNifti, scaledFloat32} from '../../src/io/nifti.js'
import {axcodes, inverseOrientation, invertAffine, matMul, reorient, reorientToRAS, type Mat4} from '../../src/io/orientation.js'
import type {Vec3} from '../../src/util/vec3.js'

const DATA = join(SHARED, 'data')
const skip = needsShared('the orientation tests on real volumes', 'data/labelled/sct/t2', 'data/nifti/niivue')
const spatial = (shape: number[]) => shape.slice(0, 3) as Vec3

test('axcodes of hand-made affines (nibabel aff2axcodes conventions)', () => {
  const diag = (x: number, y: number, z: number): Mat4 => [
    [x, 0, 0, 0],
    [0, y, 0, 0],
    [0, 0, z, 0],
    [0, 0, 0, 1],
  ]
  assert.equal(axcodes(diag(1, 1, 1)), 'RAS')
  assert.equal(axcodes(diag(-1, -1, 1)), 'LPS')
  assert.equal(axcodes(diag(-0.7, 0.7, 3)), 'LAS')
  // columns permuted: voxel i runs along -y (P), j along +z (S), k along +x (R)
  const psr: Mat4 = [
    [0, 0, 1, 0],
    [-1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 0, 1],
  ]
  assert.equal(axcodes(psr), 'PSR')
  // a 20° oblique rotation about x still reads as the closest axes
  const c = Math.cos(0.35)
  const s = Math.sin(0.35)
  assert.equal(
    axcodes([
      [2, 0, 0, 0],
      [0, 2 * c, -2 * s, 0],
      [0, 2 * s, 2 * c, 0],
      [0, 0, 0, 1],
    ]),
    'RAS',
  )
})

test('sct t2 (PSR): reorient to RAS and back is voxel-exact, and every voxel keeps its world position', {skip}, () => {
  const image = readNifti(join(DATA, 'labelled/sct/t2/t2.nii.gz'))
  const label = readNifti(join(DATA, 'labelled/sct/t2/t2_seg-manual.nii.gz'))
  assert.equal(axcodes(image.header.affine), 'PSR')
  const shape = spatial(image.header.shape)
  const data = scaledFloat32(image)
  const ras = reorientToRAS(data, shape, image.header.affine)
  assert.equal(axcodes(ras.affine), 'RAS')
  assert.deepEqual(ras.shape, [52, 60, 55])
  const back = reorient(ras.data, ras.shape, inverseOrientation(ras.orientation))
  assert.deepEqual(back.shape, shape)
  assert.ok(
    back.data.every((v, i) => v === data[i]),
    'image differs after the round trip',
  )
  const labelRas = reorientToRAS(label.data as Uint8Array, shape, label.header.affine)
  const labelBack = reorient(labelRas.data, labelRas.shape, inverseOrientation(labelRas.orientation))
  assert.ok(labelBack.data.every((v, i) => v === label.data[i]))
  assert.equal(
    labelRas.data.reduce((s, v) => s + v, 0),
    4275,
  )
  // world position of a voxel (i, j, k) is the same before and after
  const toRasIndex = matMul(invertAffine(ras.affine), image.header.affine)
  for (const [i, j, k] of [
    [0, 0, 0],
    [59, 54, 51],
    [17, 40, 3],
  ]) {
    const [x, y, z] = [0, 1, 2].map((r) =>
      Math.round(toRasIndex[r][0] * i + toRasIndex[r][1] * j + toRasIndex[r][2] * k + toRasIndex[r][3]),
    )
    assert.equal(ras.data[x + ras.shape[0] * (y + ras.shape[1] * z)], data[i + shape[0] * (j + shape[1] * k)])
  }
})

test('niivue nifti_space: six stored orientations of one volume become the same RAS array and affine', {skip}, () => {
  const names = ['RAS', 'LPS', 'LAS', 'AIL', 'PSR', 'SRA']
  const results = names.map((n) => {
    const image = readNifti(join(DATA, `nifti/niivue/nifti_space/${n}.nii.gz`))
    assert.equal(axcodes(image.header.affine), n)
    return reorientToRAS(image.data as Uint8Array, spatial(image.header.shape), image.header.affine)
  })
  for (const [i, r] of results.entries()) {
    assert.deepEqual(r.shape, [64, 79, 67], names[i])
    assert.ok(
      r.data.every((v, j) => v === results[0].data[j]),
      `${names[i]} voxels differ from RAS`,
    )
    for (let a = 0; a < 3; a++) for (let b = 0; b < 4; b++) assert.ok(Math.abs(r.affine[a][b] - results[0].affine[a][b]) < 1e-3)
  }
  // MANIFEST A4: origin (-75.763, -110.763, -71.763)
  assert.ok(Math.abs(results[0].affine[0][3] + 75.763) < 1e-3 && Math.abs(results[0].affine[1][3] + 110.763) < 1e-3)
})

test('niivue hippo (LAS): RAS voxel [31, 54, 27] is 9, as in niivue getValue.test.ts', {skip}, () => {
  const image = readNifti(join(DATA, 'nifti/niivue/hippo.nii.gz'))
  const shape = spatial(image.header.shape)
  const ras = reorientToRAS(image.data as Float32Array, shape, image.header.affine)
  assert.equal(ras.data[31 + ras.shape[0] * (54 + ras.shape[1] * 27)], 9)
  assert.equal(image.data[59 + shape[0] * (54 + shape[1] * 27)], 9, 'the stored voxel is mirrored in x')
})
