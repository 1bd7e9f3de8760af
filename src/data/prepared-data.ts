/**
 * What training and evaluation read from the preprocessed cache, prepared in one call: the cache
 * (made first when it is missing or was made with other settings), its plan, the split, and the
 * classes, channels and patch the plan fixed (the config's where an older plan lacks them).
 */
import type {ExperimentConfig} from '../config/schema.js'
import type {Logger} from '../log/logger.js'
import {ensurePreprocessed} from './cache.js'
import {loadPlan, loadSplits, type Plan} from './cache-files.js'
import type {Splits} from './splits.js'
import type {Vec3} from '../util/vec3.js'

export interface PreparedData {
  cacheDir: string
  plan: Plan
  splits: Splits
  classes: string[]
  channels: number
  patch: Vec3
}

export async function prepareData(config: ExperimentConfig, log: Logger): Promise<PreparedData> {
  const cacheDir = await ensurePreprocessed(config, log)
  const plan = loadPlan(cacheDir)
  const splits = loadSplits(config, cacheDir)
  return {
    cacheDir,
    plan,
    splits,
    classes: plan.classes ?? config.data.classes,
    channels: plan.channels ?? config.data.channels,
    patch: (plan.patch ?? config.preprocess.patch) as Vec3,
  }
}
