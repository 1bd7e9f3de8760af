/**
 * The model side of inference: a WindowPredictor over a SiplNet (σ of the main head's logits),
 * and whole-case prediction through the sliding window.
 */
import {tf} from '../backend/tf.js'
import type {EvalConfig} from '../config/schema.js'
import type {SiplNet} from '../model/sipl.js'
import type {MirrorAxis} from './mirroring.js'
import {largestComponentFor} from './evaluate.js'
import {keepLargestComponent} from './postprocess.js'
import {probabilitiesToLabels, slidingWindow, type Triple, type WindowPredictor} from './sliding-window.js'

export function modelPredictor(model: SiplNet, patch: Triple, channels: number, epoch: number): WindowPredictor {
  const [px, py, pz] = patch
  return async (batch, n) => {
    const probs = tf.tidy(() => {
      const x = tf.tensor5d(batch, [n, pz, py, px, channels]) // [B, D, H, W, C]
      return tf.sigmoid(model.apply(x, {training: false, epoch}).logits) // [B, D, H, W, K]
    })
    const data = (await probs.data()) as Float32Array
    probs.dispose()
    return data
  }
}

export interface CaseImage {
  image: Float32Array
  shape: Triple
  channels: number
}

/** Class probabilities [Z, Y, X, K] and the label map (x-fastest) of one preprocessed case. */
export async function predictCase(
  model: SiplNet,
  c: CaseImage,
  options: {
    patch: Triple
    numClasses: number
    overlappingRegions: boolean
    eval: EvalConfig
    /** test-time mirror axes: ttaMirrorAxes(config), never more than the training mirrored */
    mirrorAxes: MirrorAxis[]
    epoch: number
    onProgress?: (done: number, total: number) => void
  },
): Promise<{probabilities: Float32Array; labels: Uint8Array}> {
  const probabilities = await slidingWindow(c, modelPredictor(model, options.patch, c.channels, options.epoch), {
    patch: options.patch,
    numClasses: options.numClasses,
    overlap: options.eval.overlap,
    sigmaScale: options.eval.sigmaScale,
    mirrorAxes: options.mirrorAxes,
    batchSize: options.eval.batchSize,
    onProgress: options.onProgress,
  })
  let labels = probabilitiesToLabels(probabilities, options.numClasses, options.eval.threshold, options.overlappingRegions)
  if (largestComponentFor(options.eval) && !options.overlappingRegions) labels = keepLargestComponent(labels, c.shape, options.numClasses)
  return {probabilities, labels}
}
