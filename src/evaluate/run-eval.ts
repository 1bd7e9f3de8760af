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
import {loadCase, loadCaseHeader} from '../data/cache-files.js'
import {prepareData} from '../data/prepared-data.js'
import {restoreToOriginal} from '../data/original-grid.js'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {progress} from '../log/progress.js'
import {inferenceEpoch} from '../model/sipl.js'
import {qualitativePng} from '../report/figures.js'
import {runPaths} from '../run/run-dir.js'
import {hasCheckpoint, readableCheckpoint, readLoopState} from '../run/checkpoint.js'
import {writeFileAtomic} from '../util/atomic.js'
import {scoreCase, type CaseResult} from './evaluate.js'

import {describeMirroring} from './mirroring.js'
import {loadRunModel, predictCase} from './predict.js'
import {predictionSettings, type PredictionSettings} from './settings.js'
import type {Vec3} from '../util/vec3.js'

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
  /** from planRunEval, when the caller checked its inputs against it first */
  plan?: RunEvalPlan
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

/** What an evaluation of a run will do, known before any case is predicted (so inputs can be checked against it). */
export interface RunEvalPlan {
  /** the folder the weights are read from (checkpoints/<name>, or its complete hidden copy after a kill) */
  checkpointDir: string
  checkpointEpoch: number
  /** how the masks will be predicted (checked against what the run was trained with) */
  prediction: PredictionSettings
  cacheDir: string
  split: 'test' | 'val'
  /** the cases that will be predicted */
  ids: string[]
  classes: string[]
  /** the plan's input channels and patch size, which the network was trained with */
  channels: number
  patch: Vec3
  /** each case's grid in its original image, where its prediction is written */
  originalShapes: Map<string, number[]>
}

/** Checks the checkpoint, makes the preprocessed cache if needed, and lists the cases an evaluation predicts. */
export async function planRunEval(config: ExperimentConfig, runDir: string, checkpoint: string, log: Logger): Promise<RunEvalPlan> {
  const paths = runPaths(runDir)
  const dir = readableCheckpoint(paths.checkpoint(checkpoint))
  if (!hasCheckpoint(dir))
    throw new UserError(
      `${paths.checkpoint(checkpoint)}: no such checkpoint; train the run first ('sipl train -c <config> --out ${runDir}') or pick --checkpoint last`,
    )
  const state = readLoopState(dir)
  // refuses an impossible eval config (eval.ttaAxes beyond the trained mirror axes, largestComponent off under sipl) before any work
  const prediction = predictionSettings(config, {name: checkpoint, epoch: state.epoch, savedAt: state.savedAt})
  const {cacheDir, splits, classes, channels, patch} = await prepareData(config, log)
  const split = splits.test.length > 0 ? 'test' : 'val'
  const ids = splits[split]
  if (ids.length === 0) throw new UserError(`${cacheDir}/splits.json has no test or val cases to evaluate; fix data.splitFractions`)
  const originalShapes = new Map(ids.map((id) => [id, loadCaseHeader(cacheDir, id).original.shape]))
  return {
    checkpointDir: dir,
    checkpointEpoch: state.epoch,
    prediction,
    cacheDir,
    split,
    ids,
    classes,
    channels,
    patch,
    originalShapes,
  }
}

export async function evaluateRun(options: RunEvalOptions): Promise<RunEvalResult> {
  const {config, log} = options
  const prepared = options.plan ?? (await planRunEval(config, options.runDir, options.checkpoint, log))
  const {cacheDir, split, ids, classes, channels, patch} = prepared
  const numClasses = classes.length
  const overlappingRegions = config.data.overlappingRegions
  const epoch = prepared.checkpointEpoch

  const {prediction} = prepared
  const {model} = loadRunModel(config, options.runDir, options.checkpoint, {channels, numClasses})
  log.info({checkpoint: options.checkpoint, epoch, cases: ids.length, split, protocol: config.eval.protocol}, 'evaluating')
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
    const shape = c.shape as Vec3
    const {labels} = await predictCase(
      model,
      {image: c.image, shape, channels: c.channels},
      {patch, numClasses, overlappingRegions, eval: config.eval, mirrorAxes: prediction.ttaAxes, epoch: inferenceEpoch(epoch)},
    )
    results.push(
      scoreCase(id, labels, c.label, shape, c.spacing as Vec3, numClasses, {
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
    // a turn of the event loop: SIGTERM's handler (which releases the eval folder's lock) and the lock's refresh timer run
    await new Promise((r) => setImmediate(r))
  }
  bar.stop()
  model.dispose()
  return {results, classes, checkpoint: options.checkpoint, checkpointEpoch: epoch, prediction, split, predictions, figures}
}
