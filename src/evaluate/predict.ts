/**
 * The model side of inference: a WindowPredictor over a SiplNet (σ of the main head's logits),
 * and whole-case prediction through the sliding window.
 */
import {tf} from '../backend/tf.js'
import type {EvalConfig, ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {SiplNet} from '../model/sipl.js'
import {runPaths} from '../run/run-dir.js'
import {hasCheckpoint, loadWeights, readableCheckpoint, readLoopState} from '../run/checkpoint.js'
import {largestComponentFor} from './evaluate.js'
import type {MirrorAxis} from './mirroring.js'
import {keepLargestComponent} from './postprocess.js'
import {slidingWindowLabels, type WindowPredictor} from './sliding-window.js'
import type {Vec3} from '../util/vec3.js'

/** The folder of a run's checkpoint (best, last, epoch-N); a missing one is a UserError. */
export function requireCheckpoint(runDir: string, checkpoint: string): string {
  // after a kill between the two renames of a checkpoint's replacement, its complete hidden copy
  const dir = readableCheckpoint(runPaths(runDir).checkpoint(checkpoint))
  if (!hasCheckpoint(dir))
    throw new UserError(
      `${dir}: no such checkpoint; train the run first ('sipl train -c <config> --out ${runDir}') or pick --checkpoint last`,
    )
  return dir
}

/** A run's network with the weights of one of its checkpoints, and the epoch they were saved at (τ at inference follows it). */
export function loadRunModel(
  config: ExperimentConfig,
  runDir: string,
  checkpoint: string,
  io: {channels: number; numClasses: number},
): {model: SiplNet; epoch: number} {
  const dir = requireCheckpoint(runDir, checkpoint)
  const state = readLoopState(dir)
  const model = new SiplNet({
    model: config.model,
    smg: config.smg,
    inChannels: io.channels,
    numClasses: io.numClasses,
    seed: config.seed,
    overlappingRegions: config.data.overlappingRegions,
  })
  loadWeights(dir, model.namedVariables())
  return {model, epoch: state.epoch}
}

/** The sliding window's predictor over a net's class probabilities (`SiplNet.probabilities` at an epoch, or the benchmark's net) */
export function modelPredictor(probabilities: (x: tf.Tensor5D) => tf.Tensor5D, patch: Vec3, channels: number): WindowPredictor {
  const [px, py, pz] = patch
  return async (batch, n) => {
    const probs = tf.tidy(() => probabilities(tf.tensor5d(batch, [n, pz, py, px, channels]))) // [B, D, H, W, C] → [B, D, H, W, K]
    const data = (await probs.data()) as Float32Array
    probs.dispose()
    return data
  }
}

export interface CaseImage {
  image: Float32Array
  shape: Vec3
  channels: number
}

/** The label map (x-fastest) of one preprocessed case. */
export async function predictCase(
  model: SiplNet,
  c: CaseImage,
  options: {
    patch: Vec3
    numClasses: number
    overlappingRegions: boolean
    eval: EvalConfig
    /** test-time mirror axes: ttaMirrorAxes(config), never more than the training mirrored */
    mirrorAxes: MirrorAxis[]
    epoch: number
    onProgress?: (done: number, total: number) => void
  },
): Promise<{labels: Uint8Array}> {
  const predict = modelPredictor((x) => model.probabilities(x, options.epoch), options.patch, c.channels)
  let labels = await slidingWindowLabels(c, predict, {
    patch: options.patch,
    numClasses: options.numClasses,
    overlap: options.eval.overlap,
    sigmaScale: options.eval.sigmaScale,
    mirrorAxes: options.mirrorAxes,
    batchSize: options.eval.batchSize,
    onProgress: options.onProgress,
    threshold: options.eval.threshold,
    overlappingRegions: options.overlappingRegions,
  })
  if (largestComponentFor(options.eval) && !options.overlappingRegions) labels = keepLargestComponent(labels, c.shape, options.numClasses)
  return {labels}
}
