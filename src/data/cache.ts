/**
 * The preprocessing stage: fills the preprocessed cache (cache-files.ts) with every case not yet
 * done under the current settings hash (cache-staleness.ts), then writes plan.json and
 * splits.json. One process writes a cache at a time (its lock, src/util/lock.ts); another one
 * waits for it, then finds its cases done.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {progress} from '../log/progress.js'
import {silentLogger, type Logger} from '../log/logger.js'
import {removeStaleTemporaries, writeFileAtomic} from '../util/atomic.js'
import {withFolderLock} from '../util/lock.js'
import {Rng} from '../util/rng.js'
import {cacheDirOf, cacheFile, readJson, writeCase, type CaseHeader, type Plan} from './cache-files.js'
import {CACHE_VERSION, cacheIsComplete, caseIsDone, settingsHash} from './cache-staleness.js'
import {BRATS_REGIONS, dataRoot, listCases, type CaseSource} from './datasets.js'
import {
  fingerprintFrom,
  labelMappingOf,
  preprocessCase,
  readCaseImage,
  readCaseLabel,
  sampleForeground,
  type IntensityFingerprint,
} from './preprocess.js'
import {addUnmapped, describeUnmapped} from './label-map.js'
import {readOrCreateSplits} from './splits.js'
import {generateSynthetic, syntheticIsCurrent} from './synthetic.js'

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

/** the lower of the two middle values for an even count (always one of the values: a shape that occurs) */
const lowerMedian = (values: number[]) => {
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
  const headers = ids.map((id) => readJson<CaseHeader>(cacheFile.header(cacheDir, id), `the header of case ${id}`))
  const shapes = headers.map((h) => h.shape)
  const unmapped = new Map<number, number>()
  for (const h of headers) if (h.unmappedLabels) addUnmapped(unmapped, h.unmappedLabels)
  if (unmapped.size > 0)
    log.info(
      {values: Object.fromEntries(unmapped), cases: headers.filter((h) => Object.keys(h.unmappedLabels ?? {}).length > 0).length},
      `data.labelMap does not list the label values ${describeUnmapped(unmapped)}; they became background`,
    )
  const medianShape = [0, 1, 2].map((a) => lowerMedian(shapes.map((s) => s[a]))) as [number, number, number]
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

