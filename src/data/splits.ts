/**
 * Train / val / test splits are files (`splits.json`), never implicit (DESIGN §3). When the file
 * is absent it is made once — from a named published split or seeded at random — and then
 * respected, so every run of a study sees the same cases.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {writeFileAtomic} from '../util/atomic.js'
import {Rng} from '../util/rng.js'

export interface Splits {
  train: string[]
  val: string[]
  test: string[]
}

const btcv = (numbers: number[]) => numbers.map((n) => `img${String(n).padStart(4, '0')}`)
const lung = (numbers: number[]) => numbers.map((n) => `lung_${String(n).padStart(3, '0')}`)
const brats = (numbers: number[]) => numbers.map((n) => `BRATS_${String(n).padStart(3, '0')}`)

// MSD Task06_Lung and Task01_BrainTumour as UNETR++ split them (Amshaker/unetr_plus_plus @ dcba1c6e,
// last changed in d896dd5b: unetr_pp_trainer_lung.py and unetr_pp_trainer_tumor.py, do_split(),
// which overwrite fold 0 with fixed lists). UNETR++ trains on 'train' and scores its 'val' fold
// after training (evaluation_scripts/run_evaluation_lung.sh runs the trainer with -val), so that
// fold is the test set here; there is no validation split, and the final epoch is the model, as
// UNETR++ evaluates model_final_checkpoint.
const UNETRPP_LUNG_TEST = [1, 3, 25, 27, 44, 46, 48, 58, 62, 70, 81, 83, 93]
const UNETRPP_LUNG_TRAIN = [
  4, 5, 6, 9, 10, 14, 15, 16, 18, 20, 22, 23, 26, 28, 29, 31, 33, 34, 36, 37, 38, 41, 42, 43, 45, 47, 49, 51, 53, 54, 55, 57, 59, 61, 64,
  65, 66, 69, 71, 73, 74, 75, 78, 79, 80, 84, 86, 92, 95, 96,
]
const UNETRPP_BRATS_TEST = [
  11, 12, 18, 20, 21, 28, 29, 32, 34, 36, 41, 47, 49, 53, 56, 57, 69, 71, 89, 90, 92, 95, 103, 105, 106, 107, 109, 118, 145, 147, 156, 161,
  172, 176, 181, 194, 196, 198, 204, 205, 209, 220, 221, 227, 234, 235, 245, 250, 256, 257, 260, 269, 270, 271, 281, 282, 287, 289, 291,
  292, 310, 314, 323, 327, 330, 333, 337, 346, 350, 352, 361, 382, 397,
]
// the 24 of the 484 cases that UNETR++'s lists leave out (the paper's "5 %" of 80:5:15): unused
// there, unused here (put them in a splits.json 'val' list to get model selection)
const UNETRPP_BRATS_UNUSED = [58, 59, 76, 77, 99, 113, 114, 124, 139, 151, 152, 157, 190, 240, 242, 295, 305, 325, 331, 362, 389, 425, 432, 450]
// UNETR++'s 387 training cases are every other case of BRATS_001 … BRATS_484
const UNETRPP_BRATS_TRAIN = Array.from({length: 484}, (_, i) => i + 1).filter(
  (n) => !UNETRPP_BRATS_TEST.includes(n) && !UNETRPP_BRATS_UNUSED.includes(n),
)

/**
 * Named splits, per preset. Published BTCV splits of the 30 labelled training scans (the 20 official test scans have no
 * public labels). Both lists were read from the authors' repositories:
 *  - 'sipl': banbooliang/SIPL-MIS @ 8c30320e, dataset/dataset_list/PAOT_BTCV_{train,test}.txt
 *    (24 / 6; the official code also validates on the 6 test scans — here val stays empty).
 *  - 'synapse': Amshaker/unetr_plus_plus @ dcba1c6e, unetr_pp_trainer_synapse.py do_split()
 *    (18 train / 12 "val", which are the cases nnFormer and UNETR++ report as their test set).
 */
export const NAMED_SPLITS: Record<string, Record<string, Splits>> = {
  btcv: {
    sipl: {
      train: btcv([1, 2, 4, 5, 7, 8, 9, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 37, 38]),
      val: [],
      test: btcv([3, 6, 10, 36, 39, 40]),
    },
    synapse: {
      train: btcv([5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40]),
      val: [],
      test: btcv([1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38]),
    },
  },
  // 'unetrpp': UNETR++'s fixed lists (above), which the paper's Lungs and BraTS baselines share
  lungs: {unetrpp: {train: lung(UNETRPP_LUNG_TRAIN), val: [], test: lung(UNETRPP_LUNG_TEST)}},
  brats: {unetrpp: {train: brats(UNETRPP_BRATS_TRAIN), val: [], test: brats(UNETRPP_BRATS_TEST)}},
}

/** A new split of `ids` for this config: named (checked against the data) or seeded random. */
export function makeSplits(ids: string[], config: ExperimentConfig): Splits {
  const {split, splitFractions, preset} = config.data
  if (split !== 'random') {
    const named = NAMED_SPLITS[preset]?.[split]
    if (!named) {
      const known = Object.entries(NAMED_SPLITS).flatMap(([p, s]) => Object.keys(s).map((n) => `${n} (${p})`))
      throw new UserError(`data.split '${split}' is not a named split for preset '${preset}'; use 'random' or one of: ${known.join(', ')}`)
    }
    const have = new Set(ids)
    const missing = [...named.train, ...named.val, ...named.test].filter((id) => !have.has(id))
    if (missing.length > 0)
      throw new UserError(`data.split '${split}' needs cases the dataset does not have: ${missing.join(', ')}; check data.root or use split 'random'`)
    return {train: [...named.train], val: [...named.val], test: [...named.test]}
  }
  const total = splitFractions.reduce((a, b) => a + b, 0)
  if (!(total > 0)) throw new UserError(`data.splitFractions ${JSON.stringify(splitFractions)} must not all be 0`)
  const shuffled = new Rng(config.seed).shuffle([...ids].sort())
  const n = shuffled.length
  let nTest = Math.round((splitFractions[2] / total) * n)
  let nVal = Math.round((splitFractions[1] / total) * n)
  // at least one training case; any non-zero fraction gets at least one case when there are enough
  if (splitFractions[2] > 0 && nTest === 0 && n >= 3) nTest = 1
  if (splitFractions[1] > 0 && nVal === 0 && n >= 3) nVal = 1
  while (nTest + nVal >= n && (nTest > 0 || nVal > 0)) {
    if (nVal >= nTest && nVal > 0) nVal--
    else nTest--
  }
  const test = shuffled.slice(0, nTest).sort()
  const val = shuffled.slice(nTest, nTest + nVal).sort()
  return {train: shuffled.slice(nTest + nVal).sort(), val, test}
}

/** config.data.splitsFile (relative to the working directory) or <cache>/splits.json. */
export function splitsPath(config: ExperimentConfig, cacheDir: string): string {
  return config.data.splitsFile ? resolve(config.data.splitsFile) : join(cacheDir, 'splits.json')
}

export function validateSplits(file: string, value: unknown, cases: string[]): Splits {
  const ok = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')
  const doc = value as Partial<Splits> | null
  if (!doc || typeof doc !== 'object' || !ok(doc.train) || !ok(doc.val ?? []) || !ok(doc.test ?? []))
    throw new UserError(`${file}: expected {"train": [ids], "val": [ids], "test": [ids]}`)
  const splits = {train: doc.train, val: doc.val ?? [], test: doc.test ?? []}
  const known = new Set(cases)
  const unknown = [...splits.train, ...splits.val, ...splits.test].filter((id) => !known.has(id))
  if (unknown.length > 0)
    throw new UserError(`${file}: case(s) ${unknown.slice(0, 5).join(', ')} are not in the preprocessed cache; fix the file or delete it to regenerate`)
  const seen = new Map<string, string>()
  for (const part of ['train', 'val', 'test'] as const)
    for (const id of splits[part]) {
      if (seen.has(id)) throw new UserError(`${file}: case ${id} is in both '${seen.get(id)}' and '${part}'`)
      seen.set(id, part)
    }
  if (splits.train.length === 0) throw new UserError(`${file}: 'train' is empty`)
  return splits
}

/** Reads the splits file, or creates it (atomically) when absent. */
export function readOrCreateSplits(config: ExperimentConfig, cacheDir: string, cases: string[]): Splits {
  const file = splitsPath(config, cacheDir)
  if (existsSync(file)) {
    let value: unknown
    try {
      value = JSON.parse(readFileSync(file, 'utf8'))
    } catch (error) {
      throw new UserError(`${file}: not valid JSON (${(error as Error).message})`)
    }
    return validateSplits(file, value, cases)
  }
  const splits = makeSplits(cases, config)
  writeFileAtomic(file, JSON.stringify(splits, null, 2) + '\n')
  return splits
}
