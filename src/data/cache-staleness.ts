/**
 * When the preprocessed cache is stale: the settings hash (everything that changes the
 * preprocessed output) stamped into plan.json and every case header, and the checks against it.
 */
import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {cacheDirOf, cacheFile, sizeOf, type CaseHeader, type Plan} from './cache-files.js'
import {dataRoot} from './datasets.js'
import {syntheticStamp} from './synthetic.js'

/** bump when the on-disk layout or the preprocessing maths change, so old caches are redone */
export const CACHE_VERSION = 1

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

export function caseIsDone(cacheDir: string, id: string, hash: string): boolean {
  const headerPath = cacheFile.header(cacheDir, id)
  if (!existsSync(headerPath)) return false
  try {
    const header = JSON.parse(readFileSync(headerPath, 'utf8')) as CaseHeader
    const voxels = header.shape[0] * header.shape[1] * header.shape[2]
    return (
      header.settingsHash === hash &&
      sizeOf(cacheFile.image(cacheDir, id)) === voxels * header.channels * 4 &&
      (header.original.labelFile === undefined || sizeOf(cacheFile.label(cacheDir, id)) === voxels)
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
    return plan.settingsHash === settingsHash(config) && plan.cases.every((id) => existsSync(cacheFile.header(cacheDir, id)))
  } catch {
    return false
  }
}
