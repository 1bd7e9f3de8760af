/**
 * NIfTI-1 / NIfTI-2 reading: `.nii`, `.nii.gz`, `.hdr/.img` pairs (each half optionally gzipped),
 * both byte orders, every numeric datatype. Header fields come from `nifti-reader-js`; the srow
 * rows, the affine choice and the scaling follow nibabel, because that is what the users compare
 * against (https://nipy.org/nibabel/nifti_images.html):
 *   - affine = sform if sform_code > 0, else qform if qform_code > 0, else nibabel's Analyze-style
 *     fallback diag(-dx, dy, dz) centred on the volume;
 *   - scaled value = stored · scl_slope + scl_inter, except slope 0 / NaN / ±inf = no scaling;
 *   - shape = dim[1 .. dim[0]], zooms = pixdim[1 .. dim[0]].
 */
import {closeSync, existsSync, fstatSync, openSync, readSync} from 'node:fs'
import {constants as bufferConstants} from 'node:buffer'
import {constants as zlibConstants, gunzipSync} from 'node:zlib'
import * as nifti from 'nifti-reader-js'
import {UserError} from '../errors.js'
import {affineSpacing, det3, identity4, quaternionToRotation, type Mat4} from './orientation.js'

export type NiftiDatatype =
  | 'uint8'
  | 'int8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'float32'
  | 'float64'
  | 'complex64'
  | 'complex128'
  | 'rgb24'
  | 'rgba32'

interface DatatypeInfo {
  name: NiftiDatatype
  bytes: number // bytes per scalar component
  components: number // 2 for complex (re, im), 3 for RGB, 4 for RGBA
}

export const DATATYPES: Record<number, DatatypeInfo> = {
  2: {name: 'uint8', bytes: 1, components: 1},
  4: {name: 'int16', bytes: 2, components: 1},
  8: {name: 'int32', bytes: 4, components: 1},
  16: {name: 'float32', bytes: 4, components: 1},
  32: {name: 'complex64', bytes: 4, components: 2},
  64: {name: 'float64', bytes: 8, components: 1},
  128: {name: 'rgb24', bytes: 1, components: 3},
  256: {name: 'int8', bytes: 1, components: 1},
  512: {name: 'uint16', bytes: 2, components: 1},
  768: {name: 'uint32', bytes: 4, components: 1},
  1024: {name: 'int64', bytes: 8, components: 1},
  1280: {name: 'uint64', bytes: 8, components: 1},
  1792: {name: 'complex128', bytes: 8, components: 2},
  2304: {name: 'rgba32', bytes: 1, components: 4},
}

const UNSUPPORTED_DATATYPES: Record<number, string> = {
  1: 'binary (1 bit per voxel)',
  1536: 'float128',
  2048: 'complex256',
}

export const DATATYPE_CODES: Record<NiftiDatatype, number> = Object.fromEntries(
  Object.entries(DATATYPES).map(([code, info]) => [info.name, Number(code)]),
) as Record<NiftiDatatype, number>

export interface NiftiHeader {
  version: 1 | 2
  /** .hdr/.img pair (magic ni1/ni2) rather than a single file (n+1/n+2) */
  pair: boolean
  littleEndian: boolean
  /** dim[1 .. dim[0]] */
  shape: number[]
  /** the raw dim[0..7] as stored */
  rawDim: number[]
  datatypeCode: number
  datatype: NiftiDatatype
  bitpix: number
  /** pixdim[0..7] as stored; pixdim[0] is qfac */
  pixdim: number[]
  /** pixdim[1 .. dim[0]] */
  zooms: number[]
  voxOffset: number
  sclSlope: number
  sclInter: number
  /** what is applied: [1, 0] when scl_slope is 0 or not finite */
  effectiveSlopeInter: [number, number]
  xyztUnits: number
  intentCode: number
  calMin: number
  calMax: number
  description: string
  qformCode: number
  sformCode: number
  /** 4×4 from the quaternion fields, whatever qform_code says */
  qform: Mat4
  /** 4×4 from srow_x/y/z, whatever sform_code says */
  sform: Mat4
  /** the one nibabel uses */
  affine: Mat4
  affineSource: 'sform' | 'qform' | 'fallback'
  extensions: number
}

export type VoxelArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array

export interface NiftiImage {
  /** the file that was asked for (the .hdr of a pair) */
  path: string
  /** the file the voxels came from (the .img of a pair) */
  dataPath: string
  header: NiftiHeader
  /**
   * stored values in native byte order, unscaled, component-interleaved as on disk (complex: re, im;
   * RGB: r, g, b). int64/uint64 are converted to Float64Array (exact up to 2^53).
   */
  data: VoxelArray
  /** the voxel bytes exactly as stored (file byte order), for checksums */
  storedBytes: Uint8Array
}

const isGzip = (bytes: Uint8Array) => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b

/** the fixed header and the 4-byte extension flag of NIfTI-2 (NIfTI-1 needs 348 + 4) */
const HEADER_PREFIX = 544
/** a .hdr of a pair holds the header and its extensions only */
const HEADER_FILE_LIMIT = 16 * 1024 * 1024
/** gzip's own header (file name, comment, extra field) before the deflate data */
const GZIP_HEADER_LIMIT = 64 * 1024
/** deflate expands at most 1032-fold, so inflating this prefix costs at most ~66 MiB even for a hostile file */
const DEFLATE_PREFIX_LIMIT = 64 * 1024

/**
 * Reads a file front to back and never seeks, so pipes and devices (/dev/zero, process
 * substitution) work as well as files; nothing beyond what is asked for is ever read.
 */
class FrontReader {
  private readonly fd: number
  private readonly size: number | undefined
  private buffer = Buffer.alloc(0)
  private filled = 0
  private ended = false

  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'r')
    } catch (error) {
      throw cannotRead(path, error)
    }
    const stat = fstatSync(this.fd)
    if (stat.isDirectory()) {
      closeSync(this.fd)
      throw new UserError(`${path}: is a folder, not a NIfTI file; give a .nii, .nii.gz or .hdr/.img file`)
    }
    // a regular file's size bounds every read; pipes and devices are read until they end or the limit
    this.size = stat.isFile() ? stat.size : undefined
  }

  /** The first `n` bytes, or all of them when the file is shorter. */
  first(n: number): Uint8Array {
    const want = this.size === undefined ? n : Math.min(n, this.size)
    while (this.filled < want && !this.ended) {
      if (this.buffer.length < want) {
        const grown = Buffer.alloc(this.size === undefined ? Math.min(want, Math.max(2 * this.buffer.length, 65536)) : want)
        this.buffer.copy(grown, 0, 0, this.filled)
        this.buffer = grown
      }
      let read: number
      try {
        read = readSync(this.fd, this.buffer, this.filled, this.buffer.length - this.filled, null)
      } catch (error) {
        throw cannotRead(this.path, error)
      }
      if (read === 0) this.ended = true
      this.filled += read
    }
    return this.buffer.subarray(0, Math.min(this.filled, n))
  }

  close(): void {
    closeSync(this.fd)
  }
}

function cannotRead(path: string, error: unknown): UserError {
  const code = (error as NodeJS.ErrnoException).code
  return new UserError(`${path}: cannot read (${code === 'ENOENT' ? 'file not found' : (code ?? String(error))}); check the path`)
}

/** Length of a gzip member's header (RFC 1952 §2.3): 10 bytes plus the optional extra field, name, comment and CRC. */
function gzipHeaderLength(path: string, reader: FrontReader): number {
  const bytes = reader.first(GZIP_HEADER_LIMIT)
  const tooLong = () =>
    new UserError(
      `${path}: the gzip header (file name, comment or extra field) is longer than ${GZIP_HEADER_LIMIT} bytes; re-compress the file`,
    )
  if (bytes.length < 10) throw corruptGzip(path, 'shorter than a gzip header')
  const flags = bytes[3]
  let at = 10
  if (flags & 4) {
    if (at + 2 > bytes.length) throw tooLong()
    at += 2 + (bytes[at] | (bytes[at + 1] << 8))
  }
  for (const flag of [8, 16]) {
    if (!(flags & flag)) continue
    while (at < bytes.length && bytes[at] !== 0) at++
    if (at >= bytes.length) throw tooLong()
    at++
  }
  if (flags & 2) at += 2
  if (at > bytes.length) throw tooLong()
  return at
}

const corruptGzip = (path: string, why: string) =>
  new UserError(`${path}: gzip data is truncated or corrupt (${why}); re-download or re-export the file`)

/**
 * The bytes of a plain or gzipped file, at most `limitOf(head)` of them, where `head` is the
 * first HEADER_PREFIX bytes (fewer for a shorter file). A gzip stream is inflated in two steps:
 * a short prefix for the header, then the whole stream with its output capped at the limit, so
 * no input (a gzip bomb, an endless device) makes sipl read or hold more than the header promises.
 * Beyond the limit a gzip stream is refused; a plain file's further bytes are never read.
 */
function readBounded(path: string, limitOf: (head: Uint8Array) => number): Uint8Array {
  const reader = new FrontReader(path)
  try {
    if (!isGzip(reader.first(2))) return reader.first(limitOf(reader.first(HEADER_PREFIX)))
    const headerLength = gzipHeaderLength(path, reader)
    let head = new Uint8Array(0)
    for (let prefix = 4096; ; prefix *= 4) {
      const compressed = reader.first(headerLength + prefix)
      try {
        head = gunzipSync(compressed, {finishFlush: zlibConstants.Z_SYNC_FLUSH})
      } catch (error) {
        throw corruptGzip(path, (error as Error).message)
      }
      if (head.length >= HEADER_PREFIX || compressed.length < headerLength + prefix || prefix >= DEFLATE_PREFIX_LIMIT) break
    }
    const limit = limitOf(head.subarray(0, HEADER_PREFIX))
    // stored deflate blocks add 5 bytes per 64 KiB and each gzip member 18 or more: real files stay far below this
    const compressedLimit = Math.ceil(limit * 1.01) + 1024 * 1024
    const compressed = reader.first(compressedLimit + 1)
    if (compressed.length > compressedLimit)
      throw new UserError(
        `${path}: more than ${compressedLimit} compressed bytes, more than any gzip encoding of the ${limit} bytes its header promises; the file is damaged or holds other data`,
      )
    try {
      return gunzipSync(compressed, {maxOutputLength: limit})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        throw new UserError(
          `${path}: the gzip stream inflates to more than the ${limit} bytes its header promises (vox_offset + shape × datatype); refusing a damaged or hostile file`,
        )
      throw corruptGzip(path, (error as Error).message)
    }
  } finally {
    reader.close()
  }
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer)
}

function magicOf(bytes: Uint8Array): {version: 1 | 2; pair: boolean} | undefined {
  const text = (offset: number, n: number) => String.fromCharCode(...bytes.subarray(offset, offset + n))
  if (bytes.length >= 348) {
    const m = text(344, 4)
    if (m === 'n+1\0') return {version: 1, pair: false}
    if (m === 'ni1\0') return {version: 1, pair: true}
  }
  if (bytes.length >= 540) {
    const m = text(4, 4)
    if (m === 'n+2\0') return {version: 2, pair: false}
    if (m === 'ni2\0') return {version: 2, pair: true}
  }
  return undefined
}

function notNifti(path: string, bytes: Uint8Array): UserError {
  if (bytes.length >= 348) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (view.getInt32(0, true) === 348 || view.getInt32(0, false) === 348)
      return new UserError(
        `${path}: an Analyze 7.5 header without the NIfTI magic; sipl reads NIfTI only (convert it, e.g. nibabel: nib.save(nib.Nifti1Image(img.dataobj, img.affine), 'x.nii.gz'))`,
      )
  }
  if (bytes.length < 348) return new UserError(`${path}: not a NIfTI file (only ${bytes.length} bytes; a NIfTI header alone is 348)`)
  return new UserError(`${path}: not a NIfTI file (no n+1/ni1/n+2/ni2 magic in the header); give a .nii, .nii.gz or .hdr/.img file`)
}

function stripGz(path: string): string {
  return path.toLowerCase().endsWith('.gz') ? path.slice(0, -3) : path
}

/** The data file of a pair: foo.hdr → foo.img or foo.img.gz (and the same in upper case). */
function pairedImagePath(headerPath: string): string {
  const base = stripGz(headerPath)
  const stem = base.slice(0, -4)
  const ext = base.slice(-4)
  const img = ext === '.HDR' ? '.IMG' : '.img'
  const candidates = headerPath.toLowerCase().endsWith('.gz')
    ? [`${stem}${img}.gz`, `${stem}${img}`]
    : [`${stem}${img}`, `${stem}${img}.gz`]
  const found = candidates.find((p) => existsSync(p))
  if (!found) throw new UserError(`${headerPath}: a NIfTI header of a .hdr/.img pair, but its voxel file ${candidates[0]} is missing`)
  return found
}

/** foo.img(.gz) given: read the header from foo.hdr(.gz). */
function pairedHeaderPath(imagePath: string): string | undefined {
  const base = stripGz(imagePath)
  if (!base.toLowerCase().endsWith('.img')) return undefined
  const stem = base.slice(0, -4)
  return [`${stem}.hdr`, `${stem}.hdr.gz`, `${stem}.HDR`, `${stem}.HDR.gz`].find((p) => existsSync(p))
}

function srowAffine(view: DataView, version: 1 | 2, littleEndian: boolean): Mat4 {
  const a = identity4()
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++)
      a[r][c] = version === 1 ? view.getFloat32(280 + 16 * r + 4 * c, littleEndian) : view.getFloat64(400 + 32 * r + 8 * c, littleEndian)
  return a
}

function qformAffine(h: nifti.NIFTI1 | nifti.NIFTI2, pixdim: number[]): Mat4 {
  const r = quaternionToRotation(h.quatern_b, h.quatern_c, h.quatern_d)
  // nibabel treats a qfac (pixdim[0]) other than -1 as 1
  const qfac = pixdim[0] === -1 ? -1 : 1
  const vox = [pixdim[1], pixdim[2], pixdim[3] * qfac]
  const a = identity4()
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) a[i][j] = r[i][j] * vox[j]
  a[0][3] = h.qoffset_x
  a[1][3] = h.qoffset_y
  a[2][3] = h.qoffset_z
  return a
}

/** nibabel `shape_zoom_affine(shape, zooms, x_flip=True)`: the affine when both codes are 0. */
export function fallbackAffine(shape: number[], zooms: number[]): Mat4 {
  const s = [0, 1, 2].map((i) => shape[i] ?? 1)
  const z = [0, 1, 2].map((i) => zooms[i] ?? 1)
  z[0] = -z[0]
  const a = identity4()
  for (let i = 0; i < 3; i++) {
    a[i][i] = z[i]
    a[i][3] = -((s[i] - 1) / 2) * z[i]
  }
  return a
}

/** Parses a NIfTI header from the (decompressed) header bytes. */
export function parseNiftiHeader(path: string, bytes: Uint8Array): NiftiHeader {
  const magic = magicOf(bytes)
  if (!magic) throw notNifti(path, bytes)
  let h: nifti.NIFTI1 | nifti.NIFTI2
  try {
    h = nifti.readHeader(toArrayBuffer(bytes), true)
  } catch (error) {
    throw new UserError(`${path}: unreadable NIfTI header (${(error as Error).message})`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const rawDim = h.dims.map(Number)
  const ndim = rawDim[0]
  if (!(ndim >= 1 && ndim <= 7)) throw new UserError(`${path}: invalid NIfTI header (dim[0] = ${ndim}, must be 1..7)`)
  const shape = rawDim.slice(1, ndim + 1)
  if (shape.some((d) => !(d >= 1)))
    throw new UserError(`${path}: invalid NIfTI header (dim = [${rawDim.join(', ')}] has a size below 1 within dim[0] axes)`)
  const pixdim = h.pixDims.map(Number)
  const zooms = pixdim.slice(1, ndim + 1)
  const info = DATATYPES[h.datatypeCode]
  if (!info) {
    const what = UNSUPPORTED_DATATYPES[h.datatypeCode]
    throw new UserError(
      `${path}: NIfTI datatype ${h.datatypeCode}${what ? ` (${what})` : ''} is not supported; save it as int16, float32 or another numeric type`,
    )
  }
  const slope = Number(h.scl_slope)
  const inter = Number(h.scl_inter)
  const effective: [number, number] = slope === 0 || !Number.isFinite(slope) ? [1, 0] : [slope, Number.isFinite(inter) ? inter : 0]
  const qform = qformAffine(h, pixdim)
  const sform = srowAffine(view, magic.version, h.littleEndian)
  const affineSource = h.sform_code > 0 ? 'sform' : h.qform_code > 0 ? 'qform' : 'fallback'
  const affine = affineSource === 'sform' ? sform : affineSource === 'qform' ? qform : fallbackAffine(shape, zooms)
  return {
    version: magic.version,
    pair: magic.pair,
    littleEndian: h.littleEndian,
    shape,
    rawDim,
    datatypeCode: h.datatypeCode,
    datatype: info.name,
    bitpix: h.numBitsPerVoxel,
    pixdim,
    zooms,
    voxOffset: Number(h.vox_offset),
    sclSlope: slope,
    sclInter: inter,
    effectiveSlopeInter: effective,
    xyztUnits: h.xyzt_units,
    intentCode: h.intent_code,
    calMin: h.cal_min,
    calMax: h.cal_max,
    description: h.description.replace(/\0+$/, ''),
    qformCode: h.qform_code,
    sformCode: h.sform_code,
    qform,
    sform,
    affine,
    affineSource,
    extensions: h.extensions?.length ?? 0,
  }
}

/** Where the voxels start in the data file (the .img of a pair, else the file itself). */
function dataOffset(header: NiftiHeader): number {
  if (header.pair) return header.voxOffset
  // some writers leave vox_offset 0 in single files; the data then follow the header and the extender
  const afterHeader = header.version === 1 ? 352 : 544
  return header.voxOffset < afterHeader ? afterHeader : header.voxOffset
}

/** Where the voxels end in the data file: the most sipl reads or inflates from it. */
function dataEnd(path: string, header: NiftiHeader): number {
  if (!(Number.isFinite(header.voxOffset) && header.voxOffset >= 0))
    throw new UserError(`${path}: invalid NIfTI header (vox_offset ${header.voxOffset}); re-export the file`)
  const info = DATATYPES[header.datatypeCode]
  const end = dataOffset(header) + voxelCount(header) * info.components * info.bytes
  if (end > bufferConstants.MAX_LENGTH)
    throw new UserError(
      `${path}: the header promises ${(end / 1024 ** 3).toFixed(1)} GiB of voxels (shape [${header.shape.join(', ')}], ${header.datatype}); sipl reads volumes up to ${bufferConstants.MAX_LENGTH / 1024 ** 3} GiB, so crop or split it`,
    )
  return end
}

/** The header and the bytes of its file: a single file up to the end of its voxels, the whole .hdr of a pair. */
function readHeaderFile(path: string): {header: NiftiHeader; bytes: Uint8Array} {
  const bytes = readBounded(path, (head) => {
    const magic = magicOf(head)
    if (!magic) throw notNifti(path, head)
    const fixed = parseNiftiHeader(path, head.subarray(0, magic.version === 1 ? 348 : 540))
    return fixed.pair ? HEADER_FILE_LIMIT : dataEnd(path, fixed)
  })
  return {header: parseNiftiHeader(path, bytes), bytes}
}

/** Header only (for a .hdr whose .img is absent, or to look before loading). */
export function readNiftiHeader(path: string): NiftiHeader {
  return readHeaderFile(pairedHeaderPath(path) ?? path).header
}

export function voxelCount(header: NiftiHeader): number {
  return header.shape.reduce((a, b) => a * b, 1)
}

export function readNifti(path: string): NiftiImage {
  const headerPath = pairedHeaderPath(path) ?? path
  const {header, bytes} = readHeaderFile(headerPath)
  const offset = dataOffset(header)
  const end = dataEnd(headerPath, header)
  let dataPath = headerPath
  let source = bytes
  if (header.pair) {
    dataPath = pairedImagePath(headerPath)
    // vox_offset is the offset into the .img file (usually 0)
    source = readBounded(dataPath, () => end)
  }
  const info = DATATYPES[header.datatypeCode]
  const byteLength = end - offset
  if (source.length < end)
    throw new UserError(
      `${dataPath}: truncated NIfTI file: ${byteLength} bytes of voxel data expected at offset ${offset} (shape [${header.shape.join(', ')}], ${header.datatype}), only ${Math.max(0, source.length - offset)} present`,
    )
  const storedBytes = source.subarray(offset, end)
  return {path, dataPath, header, data: decodeVoxels(storedBytes, info, header.littleEndian), storedBytes}
}

function decodeVoxels(stored: Uint8Array, info: DatatypeInfo, littleEndian: boolean): VoxelArray {
  const n = stored.length / info.bytes
  const copy = new Uint8Array(stored) // own, aligned buffer
  const nativeLittle = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
  if (info.bytes > 1 && littleEndian !== nativeLittle) {
    const b = info.bytes
    for (let i = 0; i < copy.length; i += b) {
      for (let lo = i, hi = i + b - 1; lo < hi; lo++, hi--) {
        const t = copy[lo]
        copy[lo] = copy[hi]
        copy[hi] = t
      }
    }
  }
  const buffer = copy.buffer
  switch (info.name) {
    case 'uint8':
    case 'rgb24':
    case 'rgba32':
      return copy
    case 'int8':
      return new Int8Array(buffer, 0, n)
    case 'int16':
      return new Int16Array(buffer, 0, n)
    case 'uint16':
      return new Uint16Array(buffer, 0, n)
    case 'int32':
      return new Int32Array(buffer, 0, n)
    case 'uint32':
      return new Uint32Array(buffer, 0, n)
    case 'float32':
    case 'complex64':
      return new Float32Array(buffer, 0, n)
    case 'float64':
    case 'complex128':
      return new Float64Array(buffer, 0, n)
    case 'int64':
      return Float64Array.from(new BigInt64Array(buffer, 0, n), (v) => Number(v))
    case 'uint64':
      return Float64Array.from(new BigUint64Array(buffer, 0, n), (v) => Number(v))
  }
}

/**
 * Voxel sizes sipl computes with, in mm: outside [min, max) a header holds garbage, another unit
 * (µm or m written as mm) or a broken writer's output, and resampling or distances would fail
 * later ("singular matrix", a grid too large to allocate) or be silently wrong.
 */
export const VOXEL_SIZE_MM = {min: 1e-3, max: 1000}

/**
 * Refuses a volume whose geometry cannot be computed with: a spatial voxel size (pixdim, or the
 * length of an affine column) that is 0, NaN, ±Inf or outside VOXEL_SIZE_MM, or an affine whose
 * axes are (nearly) parallel. `sipl inspect` shows such files; preprocessing and eval refuse them.
 */
export function assertUsableGeometry(image: NiftiImage): void {
  const h = image.header
  const {min, max} = VOXEL_SIZE_MM
  const usable = (v: number) => Number.isFinite(v) && v >= min && v < max
  const fix = `sipl accepts ${min} mm to under ${max} mm; fix the header's pixdim and sform/qform (e.g. nibabel's img.set_sform / header.set_zooms)`
  const axes = Math.min(3, h.shape.length)
  for (let a = 0; a < axes; a++) {
    const zoom = Math.abs(h.zooms[a])
    if (!usable(zoom))
      throw new UserError(`${image.path}: voxel size ${+h.zooms[a].toPrecision(6)} mm on axis ${a} (pixdim[${a + 1}]); ${fix}`)
  }
  const spacing = affineSpacing(h.affine)
  for (let a = 0; a < 3; a++)
    if (!usable(spacing[a]))
      throw new UserError(`${image.path}: voxel size ${+spacing[a].toPrecision(6)} mm on axis ${a} of the ${h.affineSource} affine; ${fix}`)
  // |det| = volume of a voxel; far below the product of the sizes means the axes are (nearly) parallel
  const volume = Math.abs(det3(h.affine.slice(0, 3).map((row) => row.slice(0, 3))))
  if (!(volume > 1e-6 * spacing[0] * spacing[1] * spacing[2]))
    throw new UserError(
      `${image.path}: the ${h.affineSource} affine's voxel axes are (nearly) parallel, so it maps no volume; fix the header's sform/qform`,
    )
}

export function componentsOf(header: NiftiHeader): number {
  return DATATYPES[header.datatypeCode].components
}

/** Refuses RGB and complex volumes where a scalar image is needed (preprocessing, label maps). */
export function assertScalar(image: NiftiImage, role: string): void {
  const {datatype} = image.header
  if (componentsOf(image.header) !== 1)
    throw new UserError(
      `${image.path}: ${datatype} voxels cannot be used as ${role}; sipl segments scalar images (convert to a single-channel int16/float32 NIfTI)`,
    )
}

/**
 * Scaled float32 values of a scalar image, NIfTI order (x fastest, then y, z, then dims 4..7).
 * slope/inter are applied in float64 and rounded once to float32.
 */
export function scaledFloat32(image: NiftiImage): Float32Array {
  assertScalar(image, 'an intensity image')
  const [slope, inter] = image.header.effectiveSlopeInter
  const src = image.data
  const out = new Float32Array(src.length)
  if (slope === 1 && inter === 0) out.set(src)
  else for (let i = 0; i < src.length; i++) out[i] = src[i] * slope + inter
  return out
}

export interface VoxelStats {
  min: number
  max: number
  mean: number
  nanCount: number
  /** complex images: the statistics are of the real part; these are of the imaginary part */
  imaginary?: {min: number; max: number; mean: number}
}

/** min / max / mean of the scaled values in float64, NaN skipped and counted (nibabel get_fdata semantics). */
export function voxelStats(image: NiftiImage): VoxelStats {
  const {datatype, effectiveSlopeInter} = image.header
  const complex = datatype === 'complex64' || datatype === 'complex128'
  // RGB is never scaled (nibabel does not apply slope to structured dtypes)
  const [slope, inter] = datatype === 'rgb24' || datatype === 'rgba32' ? [1, 0] : effectiveSlopeInter
  const stride = complex ? 2 : 1
  const part = (start: number) => {
    let min = Infinity
    let max = -Infinity
    let sum = 0
    let count = 0
    let nan = 0
    const data = image.data
    for (let i = start; i < data.length; i += stride) {
      const v = data[i] * slope + inter
      if (Number.isNaN(v)) {
        nan++
        continue
      }
      if (v < min) min = v
      if (v > max) max = v
      sum += v
      count++
    }
    return {min: count ? min : NaN, max: count ? max : NaN, mean: count ? sum / count : NaN, nanCount: nan}
  }
  const real = part(0)
  if (!complex) return real
  const imag = part(1)
  return {...real, imaginary: {min: imag.min, max: imag.max, mean: imag.mean}}
}

/** True when the path names something sipl should try to read as NIfTI. */
export function isNiftiPath(path: string): boolean {
  return /\.(nii|hdr|img)(\.gz)?$/i.test(path)
}

/** The file name without .nii/.nii.gz/.hdr/.img(.gz). */
export function niftiStem(name: string): string {
  return name.replace(/\.(nii|hdr|img)(\.gz)?$/i, '')
}
