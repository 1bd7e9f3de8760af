/**
 * `sipl eval --run DIR`: the run's checkpoint (best by default) predicts every test case of the
 * preprocessed cache with the sliding window; predictions are written back in the original
 * geometry as `eval/predictions/<case>.nii.gz`; metrics are computed on the preprocessed grid
 * against the cached labels (the grid the network was trained and validated on); a few cases
 * get a qualitative PNG in `eval/figures/`.
 */
import {join} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {ensurePreprocessed, loadCase, loadPlan, loadSplits, restoreToOriginal} from '../data/cache.js'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {progress} from '../log/progress.js'
import {qualitativePng} from '../report/figures.js'
import {writeFileAtomic} from '../util/atomic.js'
import {scoreCase, type CaseResult} from './evaluate.js'
import type {Spacing3} from './metrics.js'
import {loadRunModel, predictCase, requireCheckpoint} from './predict.js'
import type {Triple} from './sliding-window.js'

export interface RunEvalOptions {
  config: ExperimentConfig
  runDir: string
  /** checkpoint folder name under checkpoints/: best (default), last, epoch-N */
  checkpoint: string
  outDir: string
  log: Logger
  quiet?: boolean
  /** how many cases get a qualitative figure */
  figures: number
}

export interface RunEvalResult {
  results: CaseResult[]
  classes: string[]
  checkpoint: string
  checkpointEpoch: number
  split: 'test' | 'val'
  predictions: string[]
  figures: string[]
}

export async function evaluateRun(options: RunEvalOptions): Promise<RunEvalResult> {
  const {config, log} = options
  requireCheckpoint(options.runDir, options.checkpoint)
  const cacheDir = await ensurePreprocessed(config, log)
  const plan = loadPlan(cacheDir)
  const splits = loadSplits(config, cacheDir)
  const split = splits.test.length > 0 ? 'test' : 'val'
  const ids = splits[split]
  if (ids.length === 0) throw new UserError(`${cacheDir}/splits.json has no test or val cases to evaluate; fix data.splitFractions`)
  const classes: string[] = plan.classes ?? config.data.classes
  const numClasses = classes.length
  const channels: number = plan.channels ?? config.data.channels
  const patch = (plan.patch ?? config.preprocess.patch) as Triple
  const overlappingRegions = config.data.overlappingRegions

  const {model, epoch} = loadRunModel(config, options.runDir, options.checkpoint, {channels, numClasses})
  log.info({checkpoint: options.checkpoint, epoch, cases: ids.length, split}, 'evaluating')

  const results: CaseResult[] = []
  const predictions: string[] = []
  const figures: string[] = []
  const bar = progress(log, 'eval', ids.length, {quiet: options.quiet})
  for (const [i, id] of ids.entries()) {
    const c = loadCase(cacheDir, id)
    if (!c.label)
      throw new UserError(`preprocessed case ${id} has no label, so it cannot be scored; use --pred/--labels for unlabelled data`)
    const shape = c.shape as Triple
    const {labels} = await predictCase(
      model,
      {image: c.image, shape, channels: c.channels},
      {patch, numClasses, overlappingRegions, eval: config.eval, epoch},
    )
    results.push(
      scoreCase(id, labels, c.label, shape, c.spacing as Spacing3, numClasses, {
        overlappingRegions,
        tolerance: config.eval.surfaceTolerance,
      }),
    )
    if (config.eval.savePredictions) {
      const file = join(options.outDir, 'predictions', `${id}.nii.gz`)
      predictions.push(restoreToOriginal(c.header, labels, file))
    }
    if (i < options.figures) {
      const {png} = qualitativePng({image: c.image, channels: c.channels, shape, reference: c.label, prediction: labels})
      const file = join(options.outDir, 'figures', `${id}.png`)
      writeFileAtomic(file, png)
      figures.push(file)
    }
    bar.update(i + 1, {case: id, dice: results[results.length - 1].meanDice})
  }
  bar.stop()
  model.dispose()
  return {results, classes, checkpoint: options.checkpoint, checkpointEpoch: epoch, split, predictions, figures}
}
