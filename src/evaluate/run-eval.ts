/**
 * `sipl eval --run DIR`: the run's checkpoint (best by default) predicts every test case of the
 * preprocessed cache with the sliding window; predictions are written back in the original
 * geometry as `eval/predictions/<case>.nii.gz`; metrics are computed on the preprocessed grid
 * against the cached labels (the grid the network was trained and validated on) under
 * eval.protocol; a few cases get a qualitative PNG in `eval/figures/`. Test-time mirroring uses
 * only the axes the training mirrored (mirroring.ts), and says so in the log.
 */
import {join} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {ensurePreprocessed, loadCase, loadPlan, loadSplits, restoreToOriginal} from '../data/cache.js'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {progress} from '../log/progress.js'
import {SiplNet} from '../model/sipl.js'
import {qualitativePng} from '../report/figures.js'
import {runPaths} from '../run/run-dir.js'
import {hasCheckpoint, loadWeights, readLoopState} from '../train/checkpoint.js'
import {writeFileAtomic} from '../util/atomic.js'
import {scoreCase, type CaseResult} from './evaluate.js'
import type {Spacing3} from './metrics.js'
import {describeMirroring} from './mirroring.js'
import {predictCase} from './predict.js'
import {predictionSettings, type PredictionSettings} from './settings.js'
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
  /** how the masks were predicted (recorded in summary.json) */
  prediction: PredictionSettings
  split: 'test' | 'val'
  predictions: string[]
  figures: string[]
}

export async function evaluateRun(options: RunEvalOptions): Promise<RunEvalResult> {
  const {config, log} = options
  const paths = runPaths(options.runDir)
  const dir = paths.checkpoint(options.checkpoint)
  if (!hasCheckpoint(dir))
    throw new UserError(
      `${dir}: no such checkpoint; train the run first ('sipl train -c <config> --out ${options.runDir}') or pick --checkpoint last`,
    )
  const state = readLoopState(dir)
  // refuses an impossible eval config (eval.ttaAxes beyond the trained mirror axes, largestComponent off under sipl) before any work
  const prediction = predictionSettings(config, {name: options.checkpoint, epoch: state.epoch, savedAt: state.savedAt})

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

  const model = new SiplNet({model: config.model, smg: config.smg, inChannels: channels, numClasses, seed: config.seed, overlappingRegions})
  loadWeights(dir, model.namedVariables())
  log.info({checkpoint: options.checkpoint, epoch: state.epoch, cases: ids.length, split, protocol: config.eval.protocol}, 'evaluating')
  const mirroring = describeMirroring(config, prediction.ttaAxes)
  if (mirroring)
    log.info({ttaAxes: prediction.ttaAxes, flip: config.train.augment.flip, flipAxes: config.train.augment.flipAxes}, mirroring)

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
      {patch, numClasses, overlappingRegions, eval: config.eval, mirrorAxes: prediction.ttaAxes, epoch: state.epoch},
    )
    results.push(
      scoreCase(id, labels, c.label, shape, c.spacing as Spacing3, numClasses, {
        overlappingRegions,
        tolerance: config.eval.surfaceTolerance,
        protocol: config.eval.protocol,
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
    bar.update(i + 1, {case: id, dice: results[results.length - 1].meanDice ?? NaN})
  }
  bar.stop()
  model.dispose()
  return {results, classes, checkpoint: options.checkpoint, checkpointEpoch: state.epoch, prediction, split, predictions, figures}
}
