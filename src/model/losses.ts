/**
 * The training objective (SIPL paper Eq. 5, 11, 12, 13; DESIGN §4 "Losses").
 *
 *   L_seg    = soft Dice + binary cross-entropy over the K sigmoid outputs     Eq. 5
 *   L_aux^l  = soft Dice + cross-entropy over the K+1 classes of M^l           Eq. 12
 *   L        = L_seg + α Σ_l L_aux^l                                           Eq. 13
 *
 * Eq. 5 and 12 as printed are garbled (no factor 2, a missing square, the log term without its
 * (1−y) half); these are the standard forms the equations abbreviate. The Dice denominator keeps
 * the paper's squares (Milletari's V-Net form): Σp² + Σy². Dice is computed per sample and class
 * and averaged. Channel 0 of every pseudo mask is background, everywhere.
 *
 * Eq. 12 scores each layer's pseudo-mask logits M^l upsampled (trilinear, PyTorch's
 * align_corners=False) to the patch against the full-resolution one-hot label, as the paper prints
 * and the official code does. (`loss.auxTarget: coarse` instead scores M^l on its own grid
 * against the label block-averaged to that grid — what sipl did before.)
 *
 * Only basic ops (mul, add, exp, log, max, sum, matMul, oneHot) so that every backend runs them;
 * on the cpu backend Dice + cross-entropy is one fused kernel with the same formulas.
 */
import {tf} from '../backend/tf.js'
import type {LossConfig} from '../config/schema.js'
import {diceCrossEntropyFused, fusedKernelsActive, type DiceCeOptions} from '../kernels/fused.js'
import {resizeTrilinearFused} from '../kernels/resize.js'
import {downsampleMean, resizeTrilinear} from './ops.js'
import type {SiplOutputs} from './sipl.js'

export interface Targets {
  /** main-head targets, one 0/1 channel per class or region, `[B, D, H, W, K]` */
  regions: tf.Tensor5D
  /** exclusive label map 0..K, `[B, D, H, W]` int32 (aux target) */
  labels: tf.Tensor4D
}

function oneHotLabels(labels: tf.Tensor4D, depth: number): tf.Tensor5D {
  const [b, d, h, w] = labels.shape
  return tf.reshape(tf.oneHot(tf.reshape(tf.cast(labels, 'int32'), [-1]), depth, 1, 0, 'float32'), [b, d, h, w, depth]) as tf.Tensor5D
}

/**
 * Exclusive classes: region k = (label == k). Overlapping regions (BraTS): the regions are nested,
 * region k = (label ≥ k) — WT = {1,2,3}, TC = {2,3}, ET = {3} on the MSD labels.
 */
export function targetsFromLabels(labels: tf.Tensor4D, numClasses: number, overlappingRegions: boolean): Targets {
  return tf.tidy(() => {
    const [b, d, h, w] = labels.shape
    const rows = tf.reshape(oneHotLabels(labels, numClasses + 1), [-1, numClasses + 1])
    let classes = tf.slice(rows, [0, 1], [-1, numClasses]) as tf.Tensor2D
    if (overlappingRegions) {
      const upper = tf.tensor2d(Array.from({length: numClasses}, (_, j) => Array.from({length: numClasses}, (_, k) => (j >= k ? 1 : 0))))
      classes = tf.matMul(classes, upper)
    }
    return {regions: tf.reshape(classes, [b, d, h, w, numClasses]) as tf.Tensor5D, labels: tf.cast(labels, 'int32') as tf.Tensor4D}
  })
}

/** 1 − mean over (sample, channel) of (2 Σ p·y + s) / (Σ p² + Σ y² + s) (squared; else Σ p + Σ y); p, y `[B, …, C]` */
export function softDiceLoss(probabilities: tf.Tensor, targets: tf.Tensor, smooth: number, squared = true): tf.Scalar {
  const b = probabilities.shape[0]
  const c = probabilities.shape[probabilities.rank - 1]
  const p = tf.reshape(probabilities, [b, -1, c])
  const y = tf.reshape(targets, [b, -1, c])
  // Σ over voxels as a product with ones (a leading-axis tf.sum transposes on the cpu backend)
  const voxelSum = (t: tf.Tensor) => tf.matMul(tf.ones([b, 1, t.shape[1]!]), t as tf.Tensor3D)
  const intersection = voxelSum(tf.mul(p, y))
  const denominator = squared ? tf.add(voxelSum(tf.square(p)), voxelSum(tf.square(y))) : tf.add(voxelSum(p), voxelSum(y))
  const dice = tf.div(tf.add(tf.mul(intersection, 2), smooth), tf.add(denominator, smooth))
  return tf.sub(1, tf.mean(dice)) as tf.Scalar
}

/** mean binary cross-entropy from logits, the stable form max(x,0) − x·y + log(1 + e^−|x|) */
export function bceWithLogits(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  const perElement = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))))
  return tf.mean(perElement) as tf.Scalar
}

/** log-softmax over the last axis from basic ops */
function logSoftmax(logits: tf.Tensor2D): tf.Tensor2D {
  const shifted = tf.sub(logits, tf.max(logits, -1, true))
  return tf.sub(shifted, tf.log(tf.sum(tf.exp(shifted), -1, true))) as tf.Tensor2D
}

/**
 * Soft Dice + cross-entropy on logits `[B, …, C]` against targets of the same shape: with
 * `sigmoid`, Dice of σ(logits) + mean BCE over every element (Eq. 5); with `softmax`, Dice of the
 * softmax + mean over voxels of −Σ y·log p (Eq. 12). One fused kernel and one gradient kernel on
 * the cpu backend with sipl's kernels (src/kernels/cpu/dice-ce.ts; ~25 full passes fewer), this
 * composition of basic ops everywhere else.
 */
export function diceCrossEntropy(logits: tf.Tensor, targets: tf.Tensor, options: DiceCeOptions): tf.Scalar {
  const b = logits.shape[0]
  const c = logits.shape[logits.rank - 1]
  if (fusedKernelsActive())
    return diceCrossEntropyFused(tf.reshape(logits, [b, -1, c]) as tf.Tensor3D, tf.reshape(targets, [b, -1, c]) as tf.Tensor3D, options)
  if (options.activation === 'sigmoid')
    return tf.add(softDiceLoss(tf.sigmoid(logits), targets, options.smooth, options.squared), bceWithLogits(logits, targets)) as tf.Scalar
  const logp = logSoftmax(tf.reshape(logits, [-1, c]) as tf.Tensor2D)
  const crossEntropy = tf.neg(tf.mean(tf.sum(tf.mul(tf.reshape(targets, [-1, c]), logp), -1)))
  const dice = softDiceLoss(tf.reshape(tf.exp(logp), logits.shape), targets, options.smooth, options.squared)
  return tf.add(dice, crossEntropy) as tf.Scalar
}

/** Eq. 5 */
export function segLoss(logits: tf.Tensor5D, regions: tf.Tensor5D, loss: LossConfig): tf.Scalar {
  return diceCrossEntropy(logits, regions, {activation: 'sigmoid', squared: true, smooth: loss.diceSmooth})
}

/** Eq. 12 for one layer: mask logits `[B, d, h, w, K+1]` against (soft) class targets of the same shape */
export function auxLoss(maskLogits: tf.Tensor5D, classTargets: tf.Tensor5D, loss: LossConfig): tf.Scalar {
  return diceCrossEntropy(maskLogits, classTargets, {activation: 'softmax', squared: true, smooth: loss.diceSmooth})
}

/** Eq. 12 for every layer: `full` scores M^l upsampled to the patch, `coarse` on its own grid against block-averaged labels */
function auxLosses(aux: tf.Tensor5D[], full: tf.Tensor5D, loss: LossConfig): tf.Scalar[] {
  const patch = full.shape.slice(1, 4)
  const coarseTargets = new Map<string, tf.Tensor5D>()
  return aux.map((mask) => {
    const grid = mask.shape.slice(1, 4)
    if (loss.auxTarget === 'full') {
      const upsampled = fusedKernelsActive() ? resizeTrilinearFused(mask, patch) : resizeTrilinear(mask, patch)
      return auxLoss(upsampled, full, loss)
    }
    const key = grid.join('x')
    if (!coarseTargets.has(key)) {
      const factor = patch.map((s, i) => s / grid[i]) as [number, number, number]
      coarseTargets.set(key, downsampleMean(full, factor))
    }
    return auxLoss(mask, coarseTargets.get(key)!, loss)
  })
}

export interface SiplLosses {
  total: tf.Scalar
  seg: tf.Scalar
  /** Σ_l L_aux^l */
  aux: tf.Scalar
  /** L_aux^l of each mask-generator layer, in layer order */
  auxPerLayer: tf.Scalar[]
}

/** Eq. 13: L = L_seg + α Σ_l L_aux^l. Call inside tf.tidy / optimizer.minimize. */
export function siplLoss(out: Pick<SiplOutputs, 'logits' | 'aux'>, t: Targets, loss: LossConfig): SiplLosses {
  const seg = segLoss(out.logits, t.regions, loss)
  const full = oneHotLabels(t.labels, out.aux[0]?.shape[4] ?? t.regions.shape[4] + 1)
  const auxPerLayer = auxLosses(out.aux, full, loss)
  const aux = (auxPerLayer.length === 0 ? tf.scalar(0) : tf.addN(auxPerLayer)) as tf.Scalar
  const total = tf.add(seg, tf.mul(aux, loss.alpha)) as tf.Scalar
  return {total, seg, aux, auxPerLayer}
}
