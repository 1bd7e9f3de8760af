/**
 * Ops that run as one fused kernel (each way) on the `cpu` backend with sipl's fast kernels, and
 * as the plain composition of tfjs ops on every other backend and with the reference kernels, so
 * results and gradients are the same everywhere (each is tested against its composition):
 * - conv3d + bias (+ ReLU): the bias and ReLU are the epilogue of the convolution's GEMM, and their
 *   backward one pass that also sums the bias gradient; saves five full passes over the activation
 *   per layer and step (Add, Relu, then Step, Multiply and a Sum), which a profile of unet-ref
 *   showed to cost as much as the convolutions themselves at 64³ (docs/kernels.md);
 * - conv3dTranspose + bias: the transposed convolution's output starts from the bias;
 * - the AdamW step, soft Dice + cross-entropy, and group / instance norm.
 */
import {tf} from '../backend/tf.js'
import {activeCpuKernels} from './register.js'
import type {AdamWStep} from './cpu/optimizer.js'
import type {FullResolutionAttrs} from './cpu/full-resolution.js'

export const FUSED_CONV = 'SiplConv3DBiasAct'
export const FUSED_CONV_GRAD = 'SiplConv3DBiasActGrad'

export interface FusedConvOptions {
  strides: number | [number, number, number]
  pad: 'same' | 'valid'
  relu: boolean
  /** false when x is data (the first layer): its gradient is then zeros and costs nothing */
  inputGrad?: boolean
}

function composite(x: tf.Tensor5D | [tf.Tensor5D, tf.Tensor5D], w: tf.Tensor5D, b: tf.Tensor1D, o: FusedConvOptions): tf.Tensor5D {
  return tf.tidy(() => {
    const input = Array.isArray(x) ? (tf.concat(x, 4) as tf.Tensor5D) : x
    const y = tf.add(tf.conv3d(input, w, o.strides, o.pad), b) as tf.Tensor5D
    return o.relu ? tf.relu(y) : y
  })
}

/**
 * relu?(conv3d(x, w) + b); x [B, D, H, W, Cin], w [kD, kH, kW, Cin, Cout], b [Cout]. x may be a
 * pair [a, skip] that the convolution reads concatenated along channels (a U-Net decoder's
 * up-sampled features and skip connection): on `cpu` the concatenation is built in the kernel's
 * heap and its gradient split there, with no concat or split tensors (Concat and SplitV were a
 * large part of a unet-ref step: docs/bench/2026-11-26-cpu-kernels.md).
 */
export function conv3dBiasAct(
  x: tf.Tensor5D | [tf.Tensor5D, tf.Tensor5D],
  w: tf.Tensor5D,
  b: tf.Tensor1D,
  options: FusedConvOptions,
): tf.Tensor5D {
  if (!fusedKernelsActive()) return composite(x, w, b, options)
  const {strides, pad, relu} = options
  const parts = Array.isArray(x) ? x : [x]
  const fused = tf.customGrad((...args: (tf.Tensor | ((saved: tf.Tensor[]) => void))[]) => {
    const tensors = args.slice(0, parts.length + 2) as tf.Tensor[]
    const save = args[parts.length + 2] as (saved: tf.Tensor[]) => void
    const [xi, skip] = tensors.slice(0, parts.length)
    const [wi, bi] = tensors.slice(parts.length)
    const inputs: tf.NamedTensorMap = skip ? {x: xi, skip, filter: wi, bias: bi} : {x: xi, filter: wi, bias: bi}
    const y = tf.engine().runKernel(FUSED_CONV, inputs, {strides, pad, relu}) as tf.Tensor5D
    save([...tensors.slice(0, parts.length), wi, y])
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, ss] = saved.slice(0, parts.length)
        const [ws, ys] = saved.slice(parts.length)
        // [dx, (dskip,) dW, db] in one kernel: the ReLU mask, bias gradient, filter and input gradients share one copy of dz
        const inputGrad = options.inputGrad !== false
        const grads: tf.NamedTensorMap = {dy: dy as tf.Tensor, y: ys, x: xs, filter: ws, ...(ss ? {skip: ss} : {})}
        return tf.engine().runKernel(FUSED_CONV_GRAD, grads, {strides, pad, relu, inputGrad}) as tf.Tensor[]
      },
    }
  })
  return fused(...parts, w, b) as tf.Tensor5D
}

export const FUSED_CONV_TRANSPOSE = 'SiplConv3DTransposeBias'
export const FUSED_CONV_TRANSPOSE_GRAD = 'SiplConv3DTransposeBiasGrad'

/**
 * conv3dTranspose(x, w) + b (+ residual); x [B, D, H, W, Cin], w [kD, kH, kW, Cout, Cin], b [Cout],
 * output shape `outShape` (as tf.conv3dTranspose), residual of that shape. On `cpu` the output
 * starts from the bias, the residual is added in the same kernel, and the backward (bias, input
 * and filter gradients) reads one copy of dy.
 */
export function conv3dTransposeBias(
  x: tf.Tensor5D,
  w: tf.Tensor5D,
  b: tf.Tensor1D,
  outShape: [number, number, number, number, number],
  strides: number | [number, number, number],
  pad: 'same' | 'valid',
  residual?: tf.Tensor5D,
): tf.Tensor5D {
  if (!fusedKernelsActive())
    return tf.tidy(() => {
      const y = tf.add(tf.conv3dTranspose(x, w, outShape, strides, pad), b) as tf.Tensor5D
      return residual ? (tf.add(y, residual) as tf.Tensor5D) : y
    })
  const fused = tf.customGrad((...args: (tf.Tensor | ((saved: tf.Tensor[]) => void))[]) => {
    const [xi, wi, bi] = args as tf.Tensor[]
    const ri = residual ? (args[3] as tf.Tensor) : undefined
    const save = args.at(-1) as (saved: tf.Tensor[]) => void
    save([xi, wi])
    const inputs: tf.NamedTensorMap = ri ? {x: xi, filter: wi, bias: bi, residual: ri} : {x: xi, filter: wi, bias: bi}
    return {
      value: tf.engine().runKernel(FUSED_CONV_TRANSPOSE, inputs, {strides, pad, outShape}) as tf.Tensor5D,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, ws] = saved
        const grads = tf
          .engine()
          .runKernel(FUSED_CONV_TRANSPOSE_GRAD, {dy: dy as tf.Tensor, x: xs, filter: ws}, {strides, pad}) as tf.Tensor[]
        // the residual's gradient is dy: a new handle on its data (tf.clone copies nothing), as tf.add's gradient is
        return ri ? [...grads, tf.clone(dy as tf.Tensor)] : grads
      },
    }
  })
  return (residual ? fused(x, w, b, residual) : fused(x, w, b)) as tf.Tensor5D
}

/**
 * p ← p(1 − lr·λ) − lr · (m₁/c1) / (√(v₁/c2) + ε), m₁ = β₁m + (1 − β₁)g, v₁ = β₂v + (1 − β₂)g²;
 * returns [p₁, m₁, v₁]: the op composition, which every backend but `cpu` with sipl's kernels
 * runs per parameter; there src/kernels/adamw.ts runs all parameters in one pass
 * (`SiplAdamWGroup`) with the same bits.
 */
export function adamwUpdate(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: AdamWStep): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const m1 = m.mul(s.beta1).add(g.mul(1 - s.beta1))
    const v1 = v.mul(s.beta2).add(g.square().mul(1 - s.beta2))
    const decayed = p.mul(1 - s.lr * s.weightDecay)
    const p1 = decayed.sub(m1.div(s.c1).div(v1.div(s.c2).sqrt().add(s.epsilon)).mul(s.lr))
    return [p1, m1, v1] as [tf.Tensor, tf.Tensor, tf.Tensor]
  })
}

export const FUSED_DICE_CE = 'SiplDiceCe'
export const FUSED_DICE_CE_GRAD = 'SiplDiceCeGrad'

export const FUSED_SIGMOID = 'SiplSigmoid'

/**
 * σ(logits) for class probabilities at inference (no gradient): on `cpu` with the fast kernels the
 * σ of the training loss (SiplDiceCe's exp, four lanes at a time, on the worker pool), within
 * 3 ulp of tf.sigmoid, which calls Math.exp per element; tf.sigmoid everywhere else.
 */
export function sigmoidProbabilities(logits: tf.Tensor): tf.Tensor {
  return fusedKernelsActive() ? (tf.engine().runKernel(FUSED_SIGMOID, {x: logits}, {}) as tf.Tensor) : tf.sigmoid(logits)
}

export const FUSED_PROTOTYPE_SIGMOID = 'SiplPrototypeSigmoid'

/**
 * σ(u_b · g_bᵀ + c_b) per sample (no gradient): u `[B, V, e]`, prototypes `[B, K, e]`, shift `[B, K]`
 * or null → `[B, V, K]`, the IPL head's probabilities at inference in one kernel (on `cpu` with the
 * fast kernels only: callers check fusedKernelsActive), the same bits as the product, the shift's
 * Add and sigmoidProbabilities one after another.
 */
export function prototypeProbabilities(u: tf.Tensor3D, prototypes: tf.Tensor3D, shift: tf.Tensor2D | null): tf.Tensor3D {
  const inputs: tf.NamedTensorMap = shift ? {u, prototypes, shift} : {u, prototypes}
  return tf.engine().runKernel(FUSED_PROTOTYPE_SIGMOID, inputs, {}) as tf.Tensor3D
}

export const FUSED_FULL_RESOLUTION_PROBABILITIES = 'SiplFullResolutionProbabilities'

/** The operands of the SIPL backbone's full-resolution end (src/kernels/cpu/full-resolution.ts has the formulas). */
export interface FullResolutionOperands {
  x: tf.Tensor5D
  fullFilter: tf.Tensor5D
  fullGamma: tf.Tensor1D
  fullBeta: tf.Tensor1D
  decoded: tf.Tensor5D
  upFilter: tf.Tensor5D
  upBias: tf.Tensor1D
  outGamma: tf.Tensor1D
  outBeta: tf.Tensor1D
}

/**
 * σ(u_b · g_bᵀ + c_b) per sample with u the backbone's full-resolution end computed from its
 * operands in the same kernel (no gradient; on `cpu` with the fast kernels only: callers check
 * fusedKernelsActive): `[B, D·H·W, K]`, the same bits as the end's kernels one after another and
 * prototypeProbabilities.
 */
export function fullResolutionProbabilities(
  operands: FullResolutionOperands,
  prototypes: tf.Tensor3D,
  shift: tf.Tensor2D | null,
  attrs: FullResolutionAttrs,
): tf.Tensor3D {
  const inputs: tf.NamedTensorMap = shift ? {...operands, prototypes, shift} : {...operands, prototypes}
  return tf.engine().runKernel(FUSED_FULL_RESOLUTION_PROBABILITIES, inputs, {...attrs}) as tf.Tensor3D
}

/** True where the fused cpu kernels run: the `cpu` backend with sipl's fast kernels. */
export function fusedKernelsActive(): boolean {
  return tf.getBackend() === 'cpu' && activeCpuKernels() === 'fast'
}

export interface DiceCeOptions {
  activation: 'softmax' | 'sigmoid'
  /** Milletari's Σp² + Σy² in the Dice denominator instead of Σp + Σy */
  squared: boolean
  smooth: number
}

/**
 * (1 − mean over (sample, channel) of soft Dice) + cross-entropy, for logits and targets
 * `[B, N, C]`, as one kernel and one gradient kernel (src/kernels/cpu/dice-ce.ts). Only where
 * fusedKernelsActive(); src/model/losses.ts `diceCrossEntropy` is the entry point that falls back
 * to the op composition everywhere else.
 */
export function diceCrossEntropyFused(logits: tf.Tensor3D, targets: tf.Tensor3D, options: DiceCeOptions): tf.Scalar {
  const attrs = {...options}
  // the targets are data: not an input of the gradient scope (which would need a zero gradient
  // for them, a targets-sized array per loss and step), only saved for the backward
  const fused = tf.customGrad((...args: (tf.Tensor | ((saved: tf.Tensor[]) => void))[]) => {
    const z = args[0] as tf.Tensor
    const save = args[1] as (saved: tf.Tensor[]) => void
    const [loss, p, stats] = tf.engine().runKernel(FUSED_DICE_CE, {logits: z, targets}, attrs) as tf.Tensor[]
    save([p, targets, stats])
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [ps, ys, ss] = saved
        return tf.engine().runKernel(FUSED_DICE_CE_GRAD, {dy: dy as tf.Tensor, p: ps, targets: ys, stats: ss}, attrs) as tf.Tensor
      },
    }
  })
  return fused(logits) as tf.Scalar
}

/** LeakyReLU's gradient dy · Step(x, slope) in one pass (src/kernels/cpu/activations.ts), used by src/model/ops.ts */
export const FUSED_LEAKY_RELU_GRAD = 'SiplLeakyReluGrad'

export const FUSED_GROUP_NORM = 'SiplGroupNorm'
export const FUSED_GROUP_NORM_GRAD = 'SiplGroupNormGrad'

/**
 * y = γ·(x − μ)/σ + β over the rows of each of `samples` samples laid one after another in x
 * `[samples·n, C]`, statistics per sample and channel group (groups = C: instance norm), as one
 * kernel each way (src/kernels/cpu/group-norm.ts). Only where fusedKernelsActive();
 * src/model/layers.ts `SpatialNorm` falls back to the op composition.
 */
export interface GroupNormOptions {
  groups: number
  eps: number
  /** samples laid one after another in x's rows (default 1) */
  samples?: number
  /** LeakyReLU of the norm in the same kernel (one pass and one array fewer each way), with this negative slope */
  leakySlope?: number
}

export function groupNormFused(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, options: GroupNormOptions): tf.Tensor2D {
  const {groups, eps, samples = 1, leakySlope} = options
  const attrs: tf.NamedAttrMap = leakySlope === undefined ? {groups, eps, samples} : {groups, eps, samples, leakySlope}
  const fused = tf.customGrad((...args: (tf.Tensor | ((saved: tf.Tensor[]) => void))[]) => {
    const [xs, gs, bs] = args as tf.Tensor[]
    const save = args[3] as (saved: tf.Tensor[]) => void
    const [y, mean, inv] = tf.engine().runKernel(FUSED_GROUP_NORM, {x: xs, gamma: gs, beta: bs}, attrs) as tf.Tensor[]
    save(leakySlope === undefined ? [xs, gs, mean, inv] : [xs, gs, mean, inv, y])
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xi, gi, mi, ii, yi] = saved
        const inputs: tf.NamedTensorMap = {dy: dy as tf.Tensor, x: xi, gamma: gi, mean: mi, inv: ii}
        if (yi) inputs.y = yi
        return tf.engine().runKernel(FUSED_GROUP_NORM_GRAD, inputs, attrs) as tf.Tensor[]
      },
    }
  })
  return fused(x, gamma, beta) as tf.Tensor2D
}
