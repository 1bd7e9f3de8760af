/**
 * One case from raw NIfTI to the preprocessed grid (DESIGN §3, the official SIPL / MONAI order):
 *   1. read image(s) (scaled to float32; 4-D files give channels) and the label map; check that
 *      they share a grid;
 *   2. reorient to RAS (pure axis permutation, exact);
 *   3. resample to the target spacing (trilinear images, nearest-neighbour labels);
 *   4. normalise intensities (ct-window | ct-percentile | zscore-nonzero | none);
 *   5. crop to the foreground bounding box (image foreground ∪ labelled voxels, so no label is cut);
 *   6. pad symmetrically to at least the patch size.
 * The affine of the result is tracked through every step, so a prediction on this grid can be
 * mapped back to the original one through world coordinates (see original-grid.ts restoreToOriginal).
 */
import type {ExperimentConfig} from '../config/schema.js'
import type {PreprocessConfig} from '../config/sections/preprocess.js'
import {UserError} from '../errors.js'
import {assertScalar, assertUsableGeometry, readNifti, scaledFloat32, type NiftiImage} from '../io/nifti.js'
import {geometryOf, type NiftiGeometry} from '../io/nifti-writer.js'
import {AFFINE_TOLERANCE, affineSpacing, axcodes, ioOrientation, matMul, maxAffineDifference, reorient, reorientGeometry, type Mat4} from '../io/orientation.js'
import {percentileOfSorted} from '../util/percentile.js'
import {Rng} from '../util/rng.js'
import type {CaseSource} from './datasets.js'
import {LabelMapping} from './label-map.js'
import {resampleGrid, resampleLinear, resampleNearest} from './resample.js'
import type {Vec3} from '../util/vec3.js'

/** Dataset-level intensity statistics (ct-percentile), computed once from the training cases. */
export interface IntensityFingerprint {
  lower: number
  upper: number
  mean: number
  std: number
  samples: number
}

export interface CaseHeader {
  id: string
  /** preprocessed grid [X, Y, Z], RAS */
  shape: Vec3
  channels: number
  spacing: Vec3
  /** voxel → world (mm) of the preprocessed grid */
  affine: Mat4
  original: {
    file: string
    files: string[]
    labelFile?: string
    shape: Vec3
    spacing: Vec3
    affine: Mat4
    axcodes: string
    /** sform/qform and codes as stored, so restored predictions carry the source geometry */
    geometry: NiftiGeometry
  }
  resampled: {shape: Vec3; affine: Mat4}
  /** in the resampled grid: [start, end) per axis */
  crop: {start: Vec3; end: Vec3}
  pad: {before: Vec3; after: Vec3}
  /** per-case statistics used (zscore-nonzero: mean/std per channel) */
  intensity: Record<string, unknown>
  /** voxels per label value 0..K in the preprocessed label map */
  labelCounts: number[]
  /** NaN / ±Inf image voxels replaced under preprocess.nonFinite 'min' or 'zero' (absent: none) */
  nonFiniteReplaced?: number
  /** data.labelMap: source label values it does not list (now background) → voxels in the original label file */
  unmappedLabels?: Record<string, number>
  settingsHash: string
}

export interface PreprocessedCase {
  header: CaseHeader
  /** channel-planar: one x-fastest Float32Array per channel */
  channels: Float32Array[]
  label?: Uint8Array
}

/** The largest preprocessed grid: one float32 channel of it is 8 GiB. */
const MAX_GRID_VOXELS = 2 ** 31

const spatialOf = (shape: number[]) => [shape[0], shape[1] ?? 1, shape[2] ?? 1] as Vec3
const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i])

export type NonFinitePolicy = PreprocessConfig['nonFinite']

/**
 * NaN / ±Inf voxels of one image file, refused or replaced per `policy` (per channel: 'min' takes
 * that channel's smallest finite value). Returns how many were replaced.
 */
export function checkFinite(channels: Float32Array[], policy: NonFinitePolicy, caseId: string, file: string): number {
  const counts = {nan: 0, posInf: 0, negInf: 0}
  for (const ch of channels)
    for (let i = 0; i < ch.length; i++) {
      const v = ch[i]
      if (Number.isFinite(v)) continue
      if (Number.isNaN(v)) counts.nan++
      else if (v > 0) counts.posInf++
      else counts.negInf++
    }
  const total = counts.nan + counts.posInf + counts.negInf
  if (total === 0) return 0
  const what = [`${counts.nan} NaN`, `${counts.posInf} +Inf`, `${counts.negInf} -Inf`].filter((t) => !t.startsWith('0 ')).join(', ')
  const of = channels.length * channels[0].length
  if (policy === 'error')
    throw new UserError(
      `case ${caseId}: image ${file} holds ${what} voxel(s) of ${of}; fix the file, or set preprocess.nonFinite: min (or zero) to replace them`,
    )
  for (const ch of channels) {
    let fill = 0
    if (policy === 'min') {
      fill = Infinity
      for (let i = 0; i < ch.length; i++) if (ch[i] < fill && Number.isFinite(ch[i])) fill = ch[i]
      if (fill === Infinity)
        throw new UserError(`case ${caseId}: image ${file} has a channel with no finite voxel at all; fix or leave out the file`)
    }
    for (let i = 0; i < ch.length; i++) if (!Number.isFinite(ch[i])) ch[i] = fill
  }
  return total
}

/** Reads the image channels of a case: one 3-D/4-D file, or one 3-D file per channel. */
export function readCaseImage(
  source: CaseSource,
  expectedChannels: number,
  nonFinite: NonFinitePolicy = 'error',
): {image: NiftiImage; channels: Float32Array[]; shape: Vec3; nonFiniteReplaced: number} {
  const images = source.images.map((f) => readNifti(f))
  const first = images[0]
  const shape = spatialOf(first.header.shape)
  const channels: Float32Array[] = []
  let nonFiniteReplaced = 0
  for (const image of images) {
    assertScalar(image, 'an image channel')
    assertUsableGeometry(image)
    const s = spatialOf(image.header.shape)
    if (!sameShape(s, shape))
      throw new UserError(`case ${source.id}: channel files ${first.path} [${shape}] and ${image.path} [${s}] have different shapes`)
    const values = scaledFloat32(image)
    const n = shape[0] * shape[1] * shape[2]
    const own: Float32Array[] = []
    for (let c = 0; c < values.length / n; c++) own.push(values.subarray(c * n, (c + 1) * n))
    nonFiniteReplaced += checkFinite(own, nonFinite, source.id, image.path)
    channels.push(...own)
  }
  if (channels.length !== expectedChannels)
    throw new UserError(
      `case ${source.id}: ${source.images.join(', ')} hold ${channels.length} channel(s) but data.channels is ${expectedChannels}; set data.channels to match`,
    )
  return {image: first, channels, shape, nonFiniteReplaced}
}

/**
 * Reads the label map and checks it is on the image grid. Without a mapping it must hold only
 * 0..maxLabel; with one (data.labelMap) its values become class indices, and the values the map
 * does not list become background and are counted in `unmapped`.
 */
export function readCaseLabel(
  source: CaseSource,
  image: NiftiImage,
  maxLabel: number,
  mapping?: LabelMapping,
  unmapped: Map<number, number> = new Map(),
): Uint8Array {
  const label = readNifti(source.label!)
  assertScalar(label, 'a label map')
  assertUsableGeometry(label)
  const imageShape = spatialOf(image.header.shape)
  const labelShape = label.header.shape
  if (!sameShape(spatialOf(labelShape), imageShape) || labelShape.slice(3).some((d) => d !== 1))
    throw new UserError(
      `case ${source.id}: label ${label.path} has shape [${labelShape}] but image ${image.path} has [${image.header.shape}]; they must share one voxel grid`,
    )
  const diff = maxAffineDifference(label.header.affine, image.header.affine)
  if (diff > AFFINE_TOLERANCE)
    throw new UserError(
      `case ${source.id}: label ${label.path} and image ${image.path} have different affines (max difference ${diff.toPrecision(3)}); resample the label onto the image grid`,
    )
  const [slope, inter] = label.header.effectiveSlopeInter
  const out = new Uint8Array(label.data.length)
  if (mapping) {
    mapping.apply(label.data, slope, inter, out, unmapped, (v) => {
      throw new UserError(`case ${source.id}: label ${label.path} holds the value ${v}; label values are whole numbers`)
    })
    return out
  }
  for (let i = 0; i < out.length; i++) {
    const v = label.data[i] * slope + inter
    if (!(v >= 0 && v <= maxLabel && Number.isInteger(v)))
      throw new UserError(
        `case ${source.id}: label ${label.path} holds the value ${v}; expected integers 0..${maxLabel} (background + ${maxLabel} classes in data.classes), or map the dataset's values to the classes with data.labelMap`,
      )
    out[i] = v
  }
  return out
}

/** The label mapping of a config (data.labelMap), or undefined when the labels are already 0..K. */
export function labelMappingOf(config: ExperimentConfig): LabelMapping | undefined {
  return config.data.labelMap ? new LabelMapping(config.data.labelMap, config.data.classes) : undefined
}

/** Up to `perCase` foreground intensities of channel 0 (seeded), for ct-percentile statistics. */
export function sampleForeground(channel: Float32Array, label: Uint8Array, perCase: number, rng: Rng): number[] {
  const foreground: number[] = []
  for (let i = 0; i < label.length; i++) if (label[i] > 0) foreground.push(channel[i])
  if (foreground.length <= perCase) return foreground
  return Array.from({length: perCase}, () => foreground[rng.int(foreground.length)])
}

export function fingerprintFrom(samples: number[], percentiles: [number, number]): IntensityFingerprint {
  if (samples.length === 0) throw new UserError('ct-percentile normalisation needs labelled foreground voxels in the training cases; none found')
  const sorted = Float64Array.from(samples).sort()
  const values = Array.from(sorted)
  let sum = 0
  for (const v of values) sum += v
  const mean = sum / values.length
  let sq = 0
  for (const v of values) sq += (v - mean) ** 2
  return {
    lower: percentileOfSorted(values, percentiles[0]),
    upper: percentileOfSorted(values, percentiles[1]),
    mean,
    std: Math.sqrt(sq / values.length),
    samples: values.length,
  }
}

interface Normalised {
  /** value for padding (what "outside the body" became) */
  padValue: number
  /** per-voxel foreground for cropping */
  isForeground: (i: number) => boolean
  stats: Record<string, unknown>
}

function normalise(channels: Float32Array[], config: ExperimentConfig, fingerprint?: IntensityFingerprint): Normalised {
  const intensity = config.preprocess.intensity
  switch (intensity.mode) {
    case 'ct-window': {
      // MONAI ScaleIntensityRanged(a_min, a_max, b_min 0, b_max 1, clip=True)
      const [a, b] = intensity.window
      for (const ch of channels) for (let i = 0; i < ch.length; i++) ch[i] = Math.min(1, Math.max(0, (ch[i] - a) / (b - a)))
      // CropForegroundd(source=image) keeps voxels > 0, i.e. above the window's lower bound
      return {padValue: 0, isForeground: (i) => channels.some((ch) => ch[i] > 0), stats: {window: [a, b]}}
    }
    case 'ct-percentile': {
      // nnU-Net CTNormalization: clip to dataset foreground percentiles, z-score with foreground mean / sd
      const f = fingerprint!
      const sd = Math.max(f.std, 1e-8)
      for (const ch of channels) for (let i = 0; i < ch.length; i++) ch[i] = (Math.min(f.upper, Math.max(f.lower, ch[i])) - f.mean) / sd
      const floor = (f.lower - f.mean) / sd
      return {padValue: floor, isForeground: (i) => channels.some((ch) => ch[i] > floor), stats: {...f}}
    }
    case 'zscore-nonzero': {
      // MONAI NormalizeIntensityd(nonzero=True, channel_wise=True): zeros (outside the brain) stay 0
      const perChannel = channels.map((ch) => {
        let n = 0
        let sum = 0
        for (let i = 0; i < ch.length; i++)
          if (ch[i] !== 0) {
            sum += ch[i]
            n++
          }
        const mean = n ? sum / n : 0
        let sq = 0
        for (let i = 0; i < ch.length; i++) if (ch[i] !== 0) sq += (ch[i] - mean) ** 2
        const std = n ? Math.sqrt(sq / n) : 1
        const scale = std > 1e-8 ? 1 / std : 1
        for (let i = 0; i < ch.length; i++) if (ch[i] !== 0) ch[i] = (ch[i] - mean) * scale
        return {mean, std, nonzero: n}
      })
      return {padValue: 0, isForeground: (i) => channels.some((ch) => ch[i] !== 0), stats: {perChannel}}
    }
    case 'none':
      return {padValue: 0, isForeground: (i) => channels.some((ch) => ch[i] !== 0), stats: {}}
  }
}

function boundingBox(shape: Vec3, inside: (i: number) => boolean): {start: Vec3; end: Vec3} | undefined {
  const [X, Y, Z] = shape
  const start: Vec3 = [X, Y, Z]
  const end: Vec3 = [0, 0, 0]
  let i = 0
  let any = false
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++, i++) {
        if (!inside(i)) continue
        any = true
        if (x < start[0]) start[0] = x
        if (y < start[1]) start[1] = y
        if (z < start[2]) start[2] = z
        if (x >= end[0]) end[0] = x + 1
        if (y >= end[1]) end[1] = y + 1
        if (z >= end[2]) end[2] = z + 1
      }
  return any ? {start, end} : undefined
}

/** Copies [start, end) of `src` into a new array padded by `before`/`after`, filled with `fill`. */
function cropPad<T extends Float32Array | Uint8Array>(src: T, shape: Vec3, start: Vec3, end: Vec3, before: Vec3, after: Vec3, fill: number): T {
  const out = [0, 1, 2].map((a) => end[a] - start[a] + before[a] + after[a]) as Vec3
  const dst = new (src.constructor as new (n: number) => T)(out[0] * out[1] * out[2])
  if (fill !== 0) dst.fill(fill)
  const rowLength = end[0] - start[0]
  for (let z = start[2]; z < end[2]; z++)
    for (let y = start[1]; y < end[1]; y++) {
      const from = start[0] + shape[0] * (y + shape[1] * z)
      const to = before[0] + out[0] * (y - start[1] + before[1] + out[1] * (z - start[2] + before[2]))
      dst.set(src.subarray(from, from + rowLength), to)
    }
  return dst
}

export function preprocessCase(
  source: CaseSource,
  config: ExperimentConfig,
  settingsHash: string,
  fingerprint?: IntensityFingerprint,
): PreprocessedCase {
  // 1. read
  let read: ReturnType<typeof readCaseImage> | undefined = readCaseImage(source, config.data.channels, config.preprocess.nonFinite)
  const {shape, nonFiniteReplaced} = read
  const imageHeader = read.image.header
  const maxLabel = config.data.classes.length
  const unmapped = new Map<number, number>()
  const rawLabel = source.label ? readCaseLabel(source, read.image, maxLabel, labelMappingOf(config), unmapped) : undefined
  const originalAffine = imageHeader.affine
  // 2. RAS; the decoded file (its stored bytes and voxels) is let go first, so that it and the
  //    reoriented copy need not be in memory together
  const orientation = ioOrientation(originalAffine)
  let channels = read.channels
  read = undefined
  channels = channels.map((ch) => reorient(ch, shape, orientation).data)
  let label = rawLabel ? reorient(rawLabel, shape, orientation).data : undefined
  const {shape: rasShape, voxelTransform} = reorientGeometry(shape, orientation)
  const rasAffine = matMul(originalAffine, voxelTransform)
  // 3. spacing
  const spacing = affineSpacing(rasAffine)
  const target = config.preprocess.spacing as Vec3
  const grid = resampleGrid(rasShape, spacing, target)
  const gridVoxels = grid.shape[0] * grid.shape[1] * grid.shape[2]
  if (gridVoxels > MAX_GRID_VOXELS)
    throw new UserError(
      `case ${source.id}: resampling [${rasShape.join(', ')}] voxels of ${spacing.map((s) => +s.toPrecision(4)).join('×')} mm to ${target.join('×')} mm gives a ${grid.shape.join('×')} grid (${gridVoxels.toExponential(2)} voxels, over ${MAX_GRID_VOXELS}); check the image's voxel sizes or raise preprocess.spacing`,
    )
  channels = channels.map((ch) => resampleLinear(ch, rasShape, grid))
  if (label) label = resampleNearest(label, rasShape, grid)
  const resampledAffine = matMul(rasAffine, grid.voxelTransform)
  // 4. intensities
  const norm = normalise(channels, config, fingerprint)
  // 5. crop (image foreground ∪ labelled voxels)
  let start: Vec3 = [0, 0, 0]
  let end: Vec3 = [...grid.shape] as Vec3
  if (config.preprocess.cropForeground) {
    const box = boundingBox(grid.shape, (i) => norm.isForeground(i) || (label !== undefined && label[i] > 0))
    if (box) ({start, end} = box)
  }
  // 6. pad to the patch, symmetric (MONAI SpatialPadd method='symmetric')
  const patch = config.preprocess.patch
  const before = [0, 0, 0] as Vec3
  const after = [0, 0, 0] as Vec3
  for (let a = 0; a < 3; a++) {
    const missing = Math.max(0, patch[a] - (end[a] - start[a]))
    before[a] = Math.floor(missing / 2)
    after[a] = missing - before[a]
  }
  channels = channels.map((ch) => cropPad(ch, grid.shape, start, end, before, after, norm.padValue))
  if (label) label = cropPad(label, grid.shape, start, end, before, after, 0)
  const outShape = [0, 1, 2].map((a) => end[a] - start[a] + before[a] + after[a]) as Vec3
  const shift: Mat4 = [
    [1, 0, 0, start[0] - before[0]],
    [0, 1, 0, start[1] - before[1]],
    [0, 0, 1, start[2] - before[2]],
    [0, 0, 0, 1],
  ]
  const affine = matMul(resampledAffine, shift)
  const labelCounts = new Array<number>(maxLabel + 1).fill(0)
  if (label) for (const v of label) labelCounts[v]++
  const header: CaseHeader = {
    id: source.id,
    shape: outShape,
    channels: channels.length,
    spacing: [...target] as Vec3,
    affine,
    original: {
      file: source.images[0],
      files: source.images,
      labelFile: source.label,
      shape,
      spacing: affineSpacing(originalAffine),
      affine: originalAffine,
      axcodes: axcodes(originalAffine),
      geometry: geometryOf(imageHeader),
    },
    resampled: {shape: grid.shape, affine: resampledAffine},
    crop: {start, end},
    pad: {before, after},
    intensity: norm.stats,
    labelCounts,
    ...(nonFiniteReplaced > 0 ? {nonFiniteReplaced} : {}),
    ...(config.data.labelMap && source.label ? {unmappedLabels: Object.fromEntries(unmapped)} : {}),
    settingsHash,
  }
  return {header, channels, label}
}

