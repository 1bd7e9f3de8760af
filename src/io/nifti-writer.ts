/**
 * NIfTI-1 single-file writing (`.nii` or `.nii.gz`, little-endian, no extensions). Geometry is kept
 * the way the source had it: the sform rows, the qform quaternion, both codes, pixdims and units,
 * so that a prediction written with the geometry of its input opens in ITK-SNAP / 3D Slicer (which
 * read the qform) and nibabel / MONAI (which prefer the sform) on exactly the same grid.
 * Files are written under a temporary name and renamed (src/util/atomic.ts).
 */
import {gzipSync} from 'node:zlib'
import {writeFileAtomic} from '../util/atomic.js'
import {DATATYPE_CODES, DATATYPES, type NiftiDatatype, type NiftiHeader, type VoxelArray} from './nifti.js'
import {affineToQuaternion, type Mat4} from './orientation.js'

/** Where the voxels sit in the world, as stored in a NIfTI header. */
export interface NiftiGeometry {
  /** written to srow_x/y/z */
  sform: Mat4
  sformCode: number
  /** written as quaternion + qoffset + pixdim[1..3] + qfac; shear cannot be represented (see affineToQuaternion) */
  qform: Mat4
  qformCode: number
  /** xyzt_units: 2 = mm (+ 8 = s for time) */
  xyztUnits: number
}

/** The geometry a freshly made image gets from one affine: sform and qform both from it, code 2 (aligned). */
export function geometryFromAffine(affine: Mat4, code = 2): NiftiGeometry {
  return {sform: affine, sformCode: code, qform: affine, qformCode: code, xyztUnits: 2}
}

/** The geometry of a header, unchanged (both codes, both matrices, units). */
export function geometryOf(header: NiftiHeader): NiftiGeometry {
  // with both codes 0 readers fall back to pixdims; writing that fallback as a 0-coded sform keeps it so
  const sform = header.sformCode > 0 ? header.sform : header.affine
  const qform = header.qformCode > 0 ? header.qform : header.affine
  return {sform, sformCode: header.sformCode, qform, qformCode: header.qformCode, xyztUnits: header.xyztUnits}
}

export interface NiftiWriteInput {
  /** spatial dims, then any further dims (channels / time), x fastest */
  shape: number[]
  data: VoxelArray
  geometry: NiftiGeometry
  /** default: from the array type (Uint8Array → uint8, Int16Array → int16, Float32Array → float32, …) */
  datatype?: NiftiDatatype
  /** pixdim[4..7] for dims beyond 3 (e.g. TR); default 1 */
  extraZooms?: number[]
  /** stored · slope + inter = value; default 1 / 0 (no scaling) */
  sclSlope?: number
  sclInter?: number
  description?: string
  intentCode?: number
}

function datatypeOfArray(data: VoxelArray): NiftiDatatype {
  if (data instanceof Uint8Array) return 'uint8'
  if (data instanceof Int8Array) return 'int8'
  if (data instanceof Int16Array) return 'int16'
  if (data instanceof Uint16Array) return 'uint16'
  if (data instanceof Int32Array) return 'int32'
  if (data instanceof Uint32Array) return 'uint32'
  if (data instanceof Float32Array) return 'float32'
  return 'float64'
}

/** The bytes of a `.nii` file (header, 4-byte empty extender, voxels). */
export function encodeNifti(input: NiftiWriteInput): Uint8Array {
  const datatype = input.datatype ?? datatypeOfArray(input.data)
  const code = DATATYPE_CODES[datatype]
  const info = DATATYPES[code]
  const shape = input.shape
  if (shape.length < 1 || shape.length > 7) throw new Error(`NIfTI-1 holds 1..7 dims, got ${shape.length}`)
  const count = shape.reduce((a, b) => a * b, 1)
  if (input.data.length !== count * info.components)
    throw new Error(`data has ${input.data.length} values, shape [${shape.join(', ')}] needs ${count * info.components}`)
  const voxOffset = 352
  const bytes = new Uint8Array(voxOffset + count * info.components * info.bytes)
  const view = new DataView(bytes.buffer)
  const le = true
  view.setInt32(0, 348, le)
  bytes[38] = 'r'.charCodeAt(0)
  view.setInt16(40, shape.length, le)
  for (let i = 0; i < 7; i++) view.setInt16(42 + 2 * i, shape[i] ?? 1, le)
  view.setInt16(68, input.intentCode ?? 0, le)
  view.setInt16(70, code, le)
  view.setInt16(72, info.bytes * info.components * 8, le)
  const q = affineToQuaternion(input.geometry.qform)
  const pixdim = [q.qfac, q.pixdim[0], q.pixdim[1], q.pixdim[2], ...[0, 1, 2, 3].map((i) => input.extraZooms?.[i] ?? 1)]
  for (let i = 0; i < 8; i++) view.setFloat32(76 + 4 * i, pixdim[i], le)
  view.setFloat32(108, voxOffset, le)
  view.setFloat32(112, input.sclSlope ?? 1, le)
  view.setFloat32(116, input.sclInter ?? 0, le)
  bytes[123] = input.geometry.xyztUnits & 0xff
  const description = (input.description ?? 'sipl').slice(0, 79)
  for (let i = 0; i < description.length; i++) bytes[148 + i] = description.charCodeAt(i) & 0x7f
  view.setInt16(252, input.geometry.qformCode, le)
  view.setInt16(254, input.geometry.sformCode, le)
  view.setFloat32(256, q.b, le)
  view.setFloat32(260, q.c, le)
  view.setFloat32(264, q.d, le)
  view.setFloat32(268, q.offset[0], le)
  view.setFloat32(272, q.offset[1], le)
  view.setFloat32(276, q.offset[2], le)
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) view.setFloat32(280 + 16 * r + 4 * c, input.geometry.sform[r][c], le)
  bytes.set([0x6e, 0x2b, 0x31, 0x00], 344) // "n+1\0"
  // voxels: typed arrays are little-endian on every platform Node runs on
  const source = new Uint8Array(input.data.buffer, input.data.byteOffset, input.data.byteLength)
  bytes.set(source, voxOffset)
  return bytes
}

/** Writes `.nii` or (by extension) `.nii.gz` atomically; returns the path. */
export function writeNifti(path: string, input: NiftiWriteInput): string {
  const raw = encodeNifti(input)
  // level 6 (zlib default): labels compress 50–100×, CT images about 2–3×
  writeFileAtomic(path, path.toLowerCase().endsWith('.gz') ? gzipSync(raw) : raw)
  return path
}
