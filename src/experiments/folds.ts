/**
 * K-fold cross-validation for sweeps (`--folds K`): the training pool (train ∪ val of the base
 * config's splits) is shuffled with the config seed and dealt into K folds; fold k validates on
 * chunk k and trains on the rest. The test split never changes, so every fold is scored on the
 * same held-out cases. Each fold is a splits file the trial points at with data.splitsFile (a
 * user splits file wins over generated ones, docs/volumes.md), so nothing else needs to know
 * about folds.
 */
import {join} from 'node:path'
import {UserError} from '../errors.js'
import type {ExperimentConfig} from '../config/schema.js'
import {ensurePreprocessed} from '../data/cache.js'
import {loadSplits} from '../data/cache-files.js'
import type {Splits} from '../data/splits.js'
import type {Logger} from '../log/logger.js'
import {writeFileAtomic} from '../util/atomic.js'
import {Rng} from '../util/rng.js'

export const foldFile = (dir: string, fold: number): string => join(dir, 'folds', `fold-${fold}.json`)

export function foldSplits(splits: Splits, folds: number, seed: number): Splits[] {
  const pool = [...splits.train, ...splits.val].sort()
  if (!Number.isInteger(folds) || folds < 2) throw new UserError(`--folds ${folds}: give the number of folds, at least 2 (e.g. --folds 5)`)
  if (pool.length < folds)
    throw new UserError(`--folds ${folds}: only ${pool.length} training cases, so at most ${pool.length} folds; use fewer folds`)
  const shuffled = new Rng(seed).shuffle([...pool])
  return Array.from({length: folds}, (_, k) => {
    const val = shuffled.filter((_, i) => i % folds === k).sort()
    const inVal = new Set(val)
    return {train: pool.filter((id) => !inVal.has(id)), val, test: [...splits.test]}
  })
}

/** Preprocesses the base config's data if needed (once), then writes <dir>/folds/fold-k.json. */
export async function writeFoldFiles(dir: string, base: ExperimentConfig, folds: number, log: Logger): Promise<void> {
  log.info({folds}, 'reading the splits for cross-validation (preprocessing first if the cache is missing)')
  const cacheDir = await ensurePreprocessed(base, log)
  const parts = foldSplits(loadSplits(base, cacheDir), folds, base.seed)
  parts.forEach((splits, k) => writeFileAtomic(foldFile(dir, k), JSON.stringify(splits, null, 2) + '\n'))
}
