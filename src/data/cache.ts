/**
 * The preprocessed cache that training and evaluation read (format fixed in the common brief):
 *   <cache>/plan.json            what was done, classes, spacing, patch, intensity statistics, cases
 *   <cache>/<id>.json            per-case header (CaseHeader: grid, affine, original geometry, crop, pad)
 *   <cache>/<id>.image.f32       Float32 little-endian, channels-last: index = c + C·(x + X·(y + Y·z))
 *   <cache>/<id>.label.u8        Uint8, x-fastest, 0 = background, 1..K
 *   <cache>/splits.json          {train, val, test}
 * Raw typed arrays load with one read and no parsing. Every file is written atomically and the
 * case's .json last, so a case counts as done only when its header exists with the current
 * settings hash; an interrupted run leaves nothing that looks finished. One process writes a
 * cache at a time (its lock, src/util/lock.ts); another one waits for it, then finds its cases done.
 */
import {createHash} from 'node:crypto'
import {existsSync, readFileSync, statSync} from 'node:fs'
import {isAbsolute, join, resolve} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {writeNifti} from '../io/nifti-writer.js'
import {progress} from '../log/progress.js'
import {silentLogger, type Logger} from '../log/logger.js'
import {environment} from '../paths.js'
import {removeStaleTemporaries, writeFileAtomic} from '../util/atomic.js'
import {withFolderLock} from '../util/lock.js'
import {Rng} from '../util/rng.js'
import {BRATS_REGIONS, dataRoot, listCases, type CaseSource} from './datasets.js'
import {
  fingerprintFrom,
  labelMappingOf,
  preprocessCase,
  readCaseImage,
  readCaseLabel,
  sampleForeground,
  type CaseHeader,
  type IntensityFingerprint,
} from './preprocess.js'
import {addUnmapped, describeUnmapped} from './label-map.js'
import {labelsToGrid} from './resample.js'
import {readOrCreateSplits, type Splits} from './splits.js'
import {generateSynthetic, syntheticIsCurrent, syntheticStamp} from './synthetic.js'

export type {CaseHeader} from './preprocess.js'

/** bump when the on-disk layout or the preprocessing maths change, so old caches are redone */
export const CACHE_VERSION = 1

export interface Plan {
  version: number
  preset: string
  classes: string[]
  /** label value → name, 0 = background */
  labels: Record<string, string>
  channels: number
  spacing: [number, number, number]
  patch: [number, number, number]
  intensity: Record<string, unknown>
  cases: string[]
  overlappingRegions: boolean
  /** BraTS: region name → the exclusive label values it unites */
  regions?: Record<string, number[]>
  /** data.labelMap as applied: class → source values, and the source values it left out → voxels over all cases */
  labelMap?: Record<string, number[]>
  unmappedLabels?: Record<string, number>
  orientation: 'RAS'
  cropForeground: boolean
  dataRoot: string
  settingsHash: string
  /** shapes after preprocessing: median and per case, [X, Y, Z] */
  medianShape: [number, number, number]
  steps: string[]
  created: string
}

export interface LoadedCase {
  id: string
  image: Float32Array
  label?: Uint8Array
  shape: [number, number, number]
  channels: number
  spacing: [number, number, number]
  header: CaseHeader
}

/** config.data.cache (relative to SIPL_DATA_DIR) or <data root>/preprocessed. */
export function cacheDirOf(config: ExperimentConfig): string {
  const cache = config.data.cache
  if (cache === undefined) return join(dataRoot(config), 'preprocessed')
  return isAbsolute(cache) ? cache : resolve(environment().dataDir, cache)
}

/** Everything that changes the preprocessed output; a different hash means the cache is stale. */
export function settingsHash(config: ExperimentConfig): string {
  const relevant = {
    version: CACHE_VERSION,
    root: dataRoot(config),
    preset: config.data.preset,
    imagesDir: config.data.imagesDir,
    labelsDir: config.data.labelsDir,
    classes: config.data.classes,
    labelMap: config.data.labelMap,
    channels: config.data.channels,
    synthetic: config.data.preset === 'synthetic' ? syntheticStamp(config) : undefined,
    preprocess: config.preprocess,
    // ct-percentile statistics come from the training split
    split: config.preprocess.intensity.mode === 'ct-percentile' ? [config.data.split, config.data.splitFractions, config.seed] : undefined,
  }
  return createHash('sha256').update(JSON.stringify(relevant)).digest('hex').slice(0, 16)
}

const file = {
  header: (dir: string, id: string) => join(dir, `${id}.json`),
  image: (dir: string, id: string) => join(dir, `${id}.image.f32`),
  label: (dir: string, id: string) => join(dir, `${id}.label.u8`),
}

function readJson<T>(path: string, what: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T
  } catch (error) {
    throw new UserError(`${path}: ${what} is unreadable (${(error as Error).message}); run 'sipl preprocess --force' to rebuild the cache`)
  }
}

export function loadPlan(cacheDir: string): Plan {
  const path = join(cacheDir, 'plan.json')
  if (!existsSync(path)) throw new UserError(`${cacheDir}: no plan.json, the cache is missing or incomplete; run 'sipl preprocess --config …'`)
  return readJson<Plan>(path, 'plan.json')
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return -1
  }
}

/** A Float32Array / Uint8Array over a file's bytes (copied only when the buffer is misaligned). */
function readTyped<T extends Float32Array | Uint8Array>(path: string, Type: {new (b: ArrayBuffer, o: number, n: number): T; BYTES_PER_ELEMENT: number}, n: number): T {
  const bytes = readFileSync(path)
  if (bytes.length !== n * Type.BYTES_PER_ELEMENT)
    throw new UserError(`${path}: ${bytes.length} bytes, expected ${n * Type.BYTES_PER_ELEMENT}; the cache is damaged, run 'sipl preprocess --force'`)
  if (bytes.byteOffset % Type.BYTES_PER_ELEMENT === 0) return new Type(bytes.buffer as ArrayBuffer, bytes.byteOffset, n)
  const copy = new Uint8Array(bytes)
  return new Type(copy.buffer, 0, n)
}

/** A case's header alone (its grids and geometry), without the voxels. */
export function loadCaseHeader(cacheDir: string, id: string): CaseHeader {
  const headerPath = file.header(cacheDir, id)
  if (!existsSync(headerPath)) throw new UserError(`${cacheDir}: case '${id}' is not in the cache; run 'sipl preprocess' or fix splits.json`)
  return readJson<CaseHeader>(headerPath, `the header of case ${id}`)
}

export function loadCase(cacheDir: string, id: string): LoadedCase {
  const header = loadCaseHeader(cacheDir, id)
  const voxels = header.shape[0] * header.shape[1] * header.shape[2]
  const image = readTyped(file.image(cacheDir, id), Float32Array, voxels * header.channels)
  const labelPath = file.label(cacheDir, id)
  const label = existsSync(labelPath) ? readTyped(labelPath, Uint8Array, voxels) : undefined
  return {id, image, label, shape: header.shape, channels: header.channels, spacing: header.spacing, header}
}

export function loadSplits(config: ExperimentConfig, cacheDir: string): Splits {
  return readOrCreateSplits(config, cacheDir, loadPlan(cacheDir).cases)
}

function caseIsDone(cacheDir: string, id: string, hash: string): boolean {
  const headerPath = file.header(cacheDir, id)
  if (!existsSync(headerPath)) return false
  try {
    const header = JSON.parse(readFileSync(headerPath, 'utf8')) as CaseHeader
    const voxels = header.shape[0] * header.shape[1] * header.shape[2]
    return (
      header.settingsHash === hash &&
      sizeOf(file.image(cacheDir, id)) === voxels * header.channels * 4 &&
      (header.original.labelFile === undefined || sizeOf(file.label(cacheDir, id)) === voxels)
    )
  } catch {
    return false
  }
}

/** True when plan.json matches the config and every case header exists: no raw data is touched. */
export function cacheIsComplete(config: ExperimentConfig, cacheDir = cacheDirOf(config)): boolean {
  const planPath = join(cacheDir, 'plan.json')
  if (!existsSync(planPath)) return false
  try {
    const plan = JSON.parse(readFileSync(planPath, 'utf8')) as Plan
    return plan.settingsHash === settingsHash(config) && plan.cases.every((id) => existsSync(file.header(cacheDir, id)))
  } catch {
    return false
  }
}

/** Channel-planar → channels-last interleaved (the tensor layout [Z, Y, X, C]). */
export function interleave(channels: Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0]
  const C = channels.length
  const n = channels[0].length
  const out = new Float32Array(n * C)
  for (let c = 0; c < C; c++) {
    const ch = channels[c]
    for (let i = 0; i < n; i++) out[c + C * i] = ch[i]
  }
  return out
}

function writeCase(cacheDir: string, header: CaseHeader, channels: Float32Array[], label?: Uint8Array): void {
  const image = interleave(channels)
  writeFileAtomic(file.image(cacheDir, header.id), new Uint8Array(image.buffer, image.byteOffset, image.byteLength))
  if (label) writeFileAtomic(file.label(cacheDir, header.id), label)
  writeFileAtomic(file.header(cacheDir, header.id), JSON.stringify(header) + '\n')
}

function computeFingerprint(config: ExperimentConfig, cases: CaseSource[], trainIds: string[], cacheDir: string, hash: string, log: Logger) {
  const path = join(cacheDir, 'fingerprint.json')
  if (existsSync(path)) {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as IntensityFingerprint & {settingsHash: string}
    if (saved.settingsHash === hash) return saved
  }
  const intensity = config.preprocess.intensity
  if (intensity.mode !== 'ct-percentile') throw new Error('fingerprint only for ct-percentile')
  const train = new Set(trainIds)
  const rng = new Rng(config.seed)
  const samples: number[] = []
  const used = cases.filter((c) => train.has(c.id))
  const bar = progress(log, 'intensity statistics', used.length)
  for (const [i, source] of used.entries()) {
    // nnU-Net samples 10 000 foreground voxels per training case
    const {image, channels} = readCaseImage(source, config.data.channels, config.preprocess.nonFinite)
    const label = readCaseLabel(source, image, config.data.classes.length, labelMappingOf(config))
    for (const v of sampleForeground(channels[0], label, 10_000, rng)) samples.push(v)
    bar.update(i + 1)
  }
  bar.stop()
  const fingerprint = fingerprintFrom(samples, intensity.percentiles)
  writeFileAtomic(path, JSON.stringify({...fingerprint, settingsHash: hash}, null, 2) + '\n')
  return fingerprint
}

export interface PreprocessSummary {
  cacheDir: string
  cases: number
  processed: number
  skipped: number
  seconds: number
  spacing: [number, number, number]
  medianShape: [number, number, number]
  splits: {train: number; val: number; test: number}
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.floor((s.length - 1) / 2)]
}

export interface PreprocessOptions {
  force?: boolean
  log?: Logger
  quiet?: boolean
  /** take over the cache's lock from another host (--break-lock) */
  breakLock?: boolean
}

/**
 * `sipl preprocess`: (synthetic data if needed,) every case not yet done, then plan.json and
 * splits.json, holding the cache's lock; a live holder is waited for, since it makes the same cases.
 */
export async function runPreprocess(config: ExperimentConfig, options: PreprocessOptions = {}): Promise<PreprocessSummary> {
  const log = options.log ?? silentLogger
  const cacheDir = cacheDirOf(config)
  // the dataset first: the lock file goes beside the cache, in the dataset's folder, which a
  // missing dataset must not get created
  if (config.data.preset !== 'synthetic') listCases(config)
  return withFolderLock(cacheDir, {what: 'preprocessed cache', log, wait: true, breakLock: options.breakLock}, () => {
    const litter = removeStaleTemporaries(cacheDir)
    if (litter.length > 0) log.info({removed: litter.length}, 'removed temporaries left by an interrupted preprocess')
    return preprocessLocked(config, cacheDir, options, log)
  })
}

async function preprocessLocked(config: ExperimentConfig, cacheDir: string, options: PreprocessOptions, log: Logger): Promise<PreprocessSummary> {
  const started = Date.now()
  if (config.data.preset === 'synthetic' && (options.force || !syntheticIsCurrent(config))) generateSynthetic(config, log)
  const hash = settingsHash(config)
  const cases = listCases(config)
  const ids = cases.map((c) => c.id)
  const splits = readOrCreateSplits(config, cacheDir, ids)
  const fingerprint =
    config.preprocess.intensity.mode === 'ct-percentile' ? computeFingerprint(config, cases, splits.train, cacheDir, hash, log) : undefined
  let processed = 0
  let skipped = 0
  const bar = progress(log, 'preprocess', cases.length, {quiet: options.quiet})
  for (const [i, source] of cases.entries()) {
    if (!options.force && caseIsDone(cacheDir, source.id, hash)) skipped++
    else {
      const result = preprocessCase(source, config, hash, fingerprint)
      if (result.header.nonFiniteReplaced)
        log.warn(
          {case: source.id, replaced: result.header.nonFiniteReplaced, with: config.preprocess.nonFinite},
          `case ${source.id}: ${result.header.nonFiniteReplaced} NaN/Inf image voxel(s) replaced (preprocess.nonFinite: ${config.preprocess.nonFinite})`,
        )
      if (result.label && result.header.labelCounts.every((n, k) => k === 0 || n === 0))
        log.warn({case: source.id, label: source.label}, `case ${source.id}: the label map is empty after preprocessing (${source.label})`)
      writeCase(cacheDir, result.header, result.channels, result.label)
      processed++
    }
    bar.update(i + 1, {case: source.id})
    // yield to the event loop so progress output and signals get through between cases
    await new Promise((r) => setImmediate(r))
  }
  bar.stop()
  const headers = ids.map((id) => readJson<CaseHeader>(file.header(cacheDir, id), `the header of case ${id}`))
  const shapes = headers.map((h) => h.shape)
  const unmapped = new Map<number, number>()
  for (const h of headers) if (h.unmappedLabels) addUnmapped(unmapped, h.unmappedLabels)
  if (unmapped.size > 0)
    log.info(
      {values: Object.fromEntries(unmapped), cases: headers.filter((h) => Object.keys(h.unmappedLabels ?? {}).length > 0).length},
      `data.labelMap does not list the label values ${describeUnmapped(unmapped)}; they became background`,
    )
  const medianShape = [0, 1, 2].map((a) => median(shapes.map((s) => s[a]))) as [number, number, number]
  const intensity = {...config.preprocess.intensity, ...(fingerprint ?? {})}
  const plan: Plan = {
    version: CACHE_VERSION,
    preset: config.data.preset,
    classes: [...config.data.classes],
    labels: Object.fromEntries([['0', 'background'], ...config.data.classes.map((c, k) => [String(k + 1), c])]),
    channels: config.data.channels,
    spacing: [...config.preprocess.spacing] as [number, number, number],
    patch: [...config.preprocess.patch] as [number, number, number],
    intensity,
    cases: ids,
    overlappingRegions: config.data.overlappingRegions,
    regions: config.data.overlappingRegions ? regionsFor(config) : undefined,
    labelMap: config.data.labelMap,
    unmappedLabels: config.data.labelMap ? Object.fromEntries(unmapped) : undefined,
    orientation: 'RAS',
    cropForeground: config.preprocess.cropForeground,
    dataRoot: dataRoot(config),
    settingsHash: hash,
    medianShape,
    steps: [
      'reorient to RAS (axis permutation, exact)',
      `resample to ${config.preprocess.spacing.join('×')} mm (trilinear images, nearest-neighbour labels)`,
      `intensity: ${config.preprocess.intensity.mode}`,
      config.preprocess.cropForeground ? 'crop to the foreground bounding box (image foreground ∪ labels)' : 'no crop',
      `pad symmetrically to at least ${config.preprocess.patch.join('×')}`,
    ],
    created: new Date().toISOString(),
  }
  writeFileAtomic(join(cacheDir, 'plan.json'), JSON.stringify(plan, null, 2) + '\n')
  const seconds = (Date.now() - started) / 1000
  log.info({cacheDir, processed, skipped, seconds}, 'preprocessing done')
  return {
    cacheDir,
    cases: ids.length,
    processed,
    skipped,
    seconds,
    spacing: plan.spacing,
    medianShape,
    splits: {train: splits.train.length, val: splits.val.length, test: splits.test.length},
  }
}

function regionsFor(config: ExperimentConfig): Record<string, number[]> {
  const names = config.data.classes
  if (!names.every((n) => n in BRATS_REGIONS))
    throw new UserError(
      `data.overlappingRegions is true but data.classes is [${names.join(', ')}]; overlapping regions are the MSD BraTS ones: classes [WT, TC, ET]`,
    )
  return Object.fromEntries(names.map((n) => [n, BRATS_REGIONS[n]]))
}

/**
 * What training calls first: returns the cache folder, generating phantoms and preprocessing only
 * when the cache is missing or was made with other settings. A complete cache costs one read of
 * plan.json and one stat per case.
 */
export async function ensurePreprocessed(config: ExperimentConfig, log: Logger = silentLogger): Promise<string> {
  const cacheDir = cacheDirOf(config)
  if (cacheIsComplete(config, cacheDir)) return cacheDir
  if (existsSync(join(cacheDir, 'plan.json'))) log.warn({cacheDir}, 'the preprocessed cache was made with other settings; preprocessing again')
  else log.info({cacheDir}, 'no preprocessed cache yet; preprocessing')
  await runPreprocess(config, {log})
  return cacheDir
}

/** A label map on the preprocessed grid, brought back to the original image grid (nearest neighbour through world space). */
export function toOriginalGrid(header: CaseHeader, labelMap: Uint8Array): Uint8Array {
  const n = header.shape[0] * header.shape[1] * header.shape[2]
  if (labelMap.length !== n) throw new Error(`label map has ${labelMap.length} voxels, case ${header.id} has ${n}`)
  return labelsToGrid(labelMap, header.shape, header.affine, header.original.shape, header.original.affine)
}

/** Writes a prediction on the original grid with the original sform/qform and codes; returns the path. */
export function restoreToOriginal(header: CaseHeader, labelMap: Uint8Array, outFile: string): string {
  return writeOriginalGrid(header, toOriginalGrid(header, labelMap), outFile)
}

/** Writes a label map that is already on the original grid (toOriginalGrid) with the original geometry. */
export function writeOriginalGrid(header: CaseHeader, original: Uint8Array, outFile: string): string {
  return writeNifti(outFile, {
    shape: header.original.shape,
    data: original,
    geometry: header.original.geometry,
    description: `sipl prediction for ${header.id}`,
  })
}
