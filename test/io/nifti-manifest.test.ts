/**
 * Every file in ../shared/data/manifest.json is read and compared with what nibabel 5.0 measured
 * (MANIFEST.md beside it explains each field). The expected numbers come from the manifest, never
 * from this file; the only hand-written exceptions are the two documented nibabel-only behaviours.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {crc32} from 'node:zlib'
import {SHARED} from '../helpers/cli.js'
import {needsShared} from '../helpers/needs.js'
import {readNifti, readNiftiHeader, voxelStats, type NiftiHeader} from '../../src/io/nifti.js'
import {axcodes} from '../../src/io/orientation.js'
import {UserError} from '../../src/errors.js'

interface Props {
  nibabel_class?: string
  endianness: string
  raw_dim: number[]
  nibabel_shape: number[]
  dtype: string
  datatype: number
  zooms: number[]
  qform_code?: number
  sform_code?: number
  scl_slope: number
  scl_inter: number
  effective_slope_inter: [number, number]
  affine: number[][]
  axcodes: string
  min?: number
  max?: number
  mean?: number
  n_nan?: number
  crc32_stored_voxels?: number
  imag_min?: number
  imag_max?: number
  imag_mean?: number
  data_error?: string
  load_error?: string
}
interface Entry {
  local: string
  props?: Props
}

const DATA = join(SHARED, 'data')
const skip = needsShared('the NIfTI conformance tests', 'data/manifest.json', 'data/nifti')
const manifest = skip ? {entries: []} : (JSON.parse(readFileSync(join(DATA, 'manifest.json'), 'utf8')) as {entries: Entry[]})
const fileOf = (e: Entry) => join(DATA, e.local.replace(/^conformance\//, 'nifti/'))

const NUMPY_KIND: Record<string, string> = {
  uint8: 'u1',
  int8: 'i1',
  int16: 'i2',
  uint16: 'u2',
  int32: 'i4',
  uint32: 'u4',
  int64: 'i8',
  uint64: 'u8',
  float32: 'f4',
  float64: 'f8',
  complex64: 'c8',
  complex128: 'c16',
}
function numpyDtype(h: NiftiHeader): string {
  if (h.datatype === 'rgb24') return 'RGB24 (R,G,B u1)'
  const kind = NUMPY_KIND[h.datatype]
  if (kind.endsWith('1')) return `|${kind}`
  return `${h.littleEndian ? '<' : '>'}${kind}`
}

function close(actual: number, expected: number, rel: number, abs: number, what: string): void {
  if (Number.isNaN(expected)) return assert.ok(Number.isNaN(actual), `${what}: expected NaN, got ${actual}`)
  const tol = Math.max(abs, rel * Math.abs(expected))
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, nibabel ${expected} (tolerance ${tol})`)
}

function checkHeader(file: string, h: NiftiHeader, p: Props): void {
  // pval.LH.nii.gz: raw dim [4, 27307, 1, 6, 1]; nibabel alone reshapes it to 163842 FreeSurfer vertices
  // (MANIFEST A5). A spec reader reports dim[1..dim[0]], so compare with raw_dim there.
  const expectedShape = file.endsWith('pval.LH.nii.gz') ? p.raw_dim.slice(1, p.raw_dim[0] + 1) : p.nibabel_shape
  assert.deepEqual(h.shape, expectedShape, `${file}: shape`)
  assert.equal(h.datatypeCode, p.datatype, `${file}: datatype code`)
  assert.equal(numpyDtype(h), p.dtype, `${file}: dtype`)
  assert.equal(h.littleEndian, p.endianness === 'little', `${file}: byte order`)
  assert.equal(h.zooms.length, p.zooms.length, `${file}: number of zooms`)
  h.zooms.forEach((z, i) => close(z, p.zooms[i], 1e-6, 1e-6, `${file}: zoom ${i}`))
  if (p.qform_code !== undefined) assert.equal(h.qformCode, p.qform_code, `${file}: qform_code`)
  if (p.sform_code !== undefined) assert.equal(h.sformCode, p.sform_code, `${file}: sform_code`)
  close(h.sclSlope, p.scl_slope, 1e-6, 0, `${file}: scl_slope`)
  close(h.sclInter, p.scl_inter, 1e-6, 1e-6, `${file}: scl_inter`)
  close(h.effectiveSlopeInter[0], p.effective_slope_inter[0], 1e-7, 0, `${file}: effective slope`)
  close(h.effectiveSlopeInter[1], p.effective_slope_inter[1], 1e-7, 1e-7, `${file}: effective inter`)
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) close(h.affine[r][c], p.affine[r][c], 0, 1e-4, `${file}: affine[${r}][${c}] (${h.affineSource})`)
  assert.equal(axcodes(h.affine), p.axcodes, `${file}: axcodes`)
}

const entries = manifest.entries.filter((e) => e.props)

test('the manifest lists the shared files and they are present', {skip}, () => {
  assert.ok(entries.length >= 45, `only ${entries.length} entries with properties`)
  for (const e of manifest.entries) assert.ok(existsSync(fileOf(e)), `${fileOf(e)} missing`)
})

for (const entry of entries) {
  const file = fileOf(entry)
  const p = entry.props!
  const name = entry.local.replace(/^(conformance|labelled)\//, '')
  if (p.load_error) {
    test(`${name}: refused with a one-line UserError (nibabel: ${p.load_error.split(':')[0]})`, () => {
      assert.throws(
        () => readNifti(file),
        (error: unknown) => error instanceof UserError && /not a NIfTI file/.test(error.message) && !error.message.includes('\n'),
      )
    })
    continue
  }
  if (p.nibabel_class === 'Spm2AnalyzeImage') {
    test(`${name}: Analyze 7.5 (not NIfTI) is refused clearly`, () => {
      assert.throws(
        () => readNifti(file),
        (error: unknown) => error instanceof UserError && /Analyze 7\.5/.test(error.message),
      )
    })
    continue
  }
  if (p.data_error) {
    test(`${name}: header matches nibabel; the missing .img is a UserError naming it`, () => {
      checkHeader(name, readNiftiHeader(file), p)
      assert.throws(
        () => readNifti(file),
        (error: unknown) => error instanceof UserError && /\.img.* is missing/.test(error.message),
      )
    })
    continue
  }
  test(`${name}: header, affine, scaling, statistics and stored bytes match nibabel`, () => {
    const image = readNifti(file)
    checkHeader(name, image.header, p)
    assert.equal(crc32(image.storedBytes) >>> 0, p.crc32_stored_voxels, `${name}: crc32 of the stored voxel bytes`)
    const stats = voxelStats(image)
    // statistics: 1e-5 relative (absolute 1e-9 for values of 0)
    close(stats.min, p.min!, 1e-5, 1e-9, `${name}: min`)
    close(stats.max, p.max!, 1e-5, 1e-9, `${name}: max`)
    close(stats.mean, p.mean!, 1e-5, 1e-9, `${name}: mean`)
    assert.equal(stats.nanCount, p.n_nan, `${name}: NaN count`)
    if (p.imag_mean !== undefined) {
      close(stats.imaginary!.min, p.imag_min!, 1e-5, 1e-9, `${name}: imaginary min`)
      close(stats.imaginary!.max, p.imag_max!, 1e-5, 1e-9, `${name}: imaginary max`)
      close(stats.imaginary!.mean, p.imag_mean!, 1e-5, 1e-9, `${name}: imaginary mean`)
    }
  })
}

test('truncated files fail with a UserError that says so', {skip}, async () => {
  const {mkdtempSync, writeFileSync} = await import('node:fs')
  const {tmpdir} = await import('node:os')
  const {gzipSync} = await import('node:zlib')
  const dir = mkdtempSync(join(tmpdir(), 'sipl-nifti-'))
  const whole = readFileSync(join(DATA, 'nifti/nibabel/anatomical.nii'))
  const cut = join(dir, 'cut.nii')
  writeFileSync(cut, whole.subarray(0, 5000))
  assert.throws(
    () => readNifti(cut),
    (e: unknown) => e instanceof UserError && /truncated NIfTI file/.test(e.message),
  )
  const cutGz = join(dir, 'cut.nii.gz')
  const gz = gzipSync(whole)
  writeFileSync(cutGz, gz.subarray(0, gz.length >> 1))
  assert.throws(
    () => readNifti(cutGz),
    (e: unknown) => e instanceof UserError && /truncated or corrupt/.test(e.message),
  )
  const tiny = join(dir, 'tiny.nii')
  writeFileSync(tiny, 'hello')
  assert.throws(
    () => readNifti(tiny),
    (e: unknown) => e instanceof UserError && /not a NIfTI file/.test(e.message),
  )
})

test('the two byte orders hold the same values (big.nii.gz vs little.nii.gz)', {skip}, () => {
  const big = readNifti(join(DATA, 'nifti/nifti-reader-js/big.nii.gz'))
  const little = readNifti(join(DATA, 'nifti/nifti-reader-js/little.nii.gz'))
  assert.equal(big.header.littleEndian, false)
  assert.equal(little.header.littleEndian, true)
  assert.deepEqual(Array.from(big.data), Array.from(little.data))
})
