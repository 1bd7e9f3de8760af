/**
 * `sipl inspect`: what a NIfTI file holds, with the same numbers nibabel gives (shape, dtype,
 * zooms, chosen affine, codes, scaling, orientation, scaled min/max/mean ignoring NaN).
 */
import {isUserError} from '../errors.js'
import {readNifti, voxelStats} from './nifti.js'
import {axcodes, type Mat4} from './orientation.js'

export interface InspectRecord {
  path: string
  shape: number[]
  datatype: string
  zooms: number[]
  affine: Mat4
  sformCode: number
  qformCode: number
  /** as stored; NaN (JSON null) or 0 mean "no scaling" */
  sclSlope: number | null
  sclInter: number | null
  axcodes: string
  min: number | null
  max: number | null
  mean: number | null
  nanCount: number
}

export interface InspectFailure {
  path: string
  error: string
}

const finiteOrNull = (v: number) => (Number.isFinite(v) ? v : null)

export function inspectFile(path: string): InspectRecord {
  const image = readNifti(path)
  const h = image.header
  const stats = voxelStats(image)
  return {
    path,
    shape: h.shape,
    datatype: h.datatype,
    zooms: h.zooms,
    affine: h.affine,
    sformCode: h.sformCode,
    qformCode: h.qformCode,
    sclSlope: finiteOrNull(h.sclSlope),
    sclInter: finiteOrNull(h.sclInter),
    axcodes: axcodes(h.affine),
    min: finiteOrNull(stats.min),
    max: finiteOrNull(stats.max),
    mean: finiteOrNull(stats.mean),
    nanCount: stats.nanCount,
  }
}

/** Inspects every file; a file that cannot be read becomes a failure record, the others are still reported. */
export function inspectFiles(paths: string[]): (InspectRecord | InspectFailure)[] {
  return paths.map((path) => {
    try {
      return inspectFile(path)
    } catch (error) {
      if (isUserError(error)) return {path, error: error.message}
      throw error
    }
  })
}

const num = (v: number | null) => (v === null ? 'n/a' : Number.isInteger(v) ? String(v) : String(+v.toPrecision(7)))

export function formatInspect(record: InspectRecord): string {
  const affine = record.affine
    .slice(0, 3)
    .map((row) => '  ' + row.map((v) => num(Math.abs(v) < 5e-7 ? 0 : v).padStart(11)).join(' '))
    .join('\n')
  return [
    `${record.path}`,
    `  shape ${record.shape.join(' × ')}  ${record.datatype}  zooms ${record.zooms.map(num).join(' × ')}  ${record.axcodes}`,
    `  sform_code ${record.sformCode}  qform_code ${record.qformCode}  scl_slope ${num(record.sclSlope)}  scl_inter ${num(record.sclInter)}`,
    `  min ${num(record.min)}  max ${num(record.max)}  mean ${num(record.mean)}  NaN ${record.nanCount}`,
    `  affine`,
    affine,
  ].join('\n')
}
