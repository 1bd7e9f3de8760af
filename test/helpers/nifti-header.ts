/**
 * Writes small uncompressed NIfTI-1 files and edits their header fields in place, for tests of
 * headers that no writer would produce (zero or NaN voxel sizes, shifted or degenerate sforms).
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import type {VoxelArray} from '../../src/io/nifti.js'

export type Affine = number[][]

export const diagonal = (x: number, y: number, z: number): Affine => [
  [x, 0, 0, 0],
  [0, y, 0, 0],
  [0, 0, z, 0],
  [0, 0, 0, 1],
]

/** `file` must end in .nii (uncompressed, so the header can be edited in place). */
export function writeVolume(file: string, shape: number[], data: VoxelArray, affine: Affine): void {
  writeNifti(file, {shape, data, geometry: geometryFromAffine(affine)})
}

/** Sets pixdim[1..3] and the sform rows (sform_code stays 2, so the sform is the affine). */
export function setGeometry(file: string, pixdim: number[], sform: Affine): void {
  const bytes = readFileSync(file)
  pixdim.forEach((v, i) => bytes.writeFloatLE(v, 80 + 4 * i))
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) bytes.writeFloatLE(sform[r][c], 280 + 16 * r + 4 * c)
  writeFileSync(file, bytes)
}
