/**
 * Group / instance norm over the rows of each sample of x `[S·n, C]` and its backward, for the `cpu`
 * backend: the formulas of src/model/layers.ts `normalizeRows`, in two passes each way instead of
 * ~6 forward and ~14 backward full-size ops, which dominated a SIPL demo training step. Channel c is in group ⌊c / (C / groups)⌋; group statistics are the averages of
 * their channels' statistics. Both passes run in WebAssembly SIMD on the worker pool
 * (assembly/channels.ts): column sums in float32 per chunk of rows, float64 across chunks in an
 * order that does not depend on the thread count, then one per-channel affine map (JS loops were
 * slower: docs/bench/2026-11-26-cpu-kernels.md).
 */
import type {tf} from '../../backend/tf.js'
import {copyIn, float64Slots, writeRows} from './conv-job.js'
import {channelAffine, rowsPerChunk} from './channel-affine.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {leakyReluStepInto} from './activations.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, output, outputFromHeap} from './tensors.js'

export interface GroupNormAttrs {
  groups: number
  eps: number
  /** samples laid one after another in x's rows, each normalised on its own */
  samples: number
  /** LeakyReLU's negative slope when the norm's output goes through it in the same kernel; absent: no activation */
  leakySlope?: number
}

/** per-channel values averaged over each channel's group, in place */
function averageOverGroups(v: Float64Array, groups: number): void {
  const size = v.length / groups
  for (let g = 0; g < groups; g++) {
    let sum = 0
    for (let c = g * size; c < (g + 1) * size; c++) sum += v[c]
    for (let c = g * size; c < (g + 1) * size; c++) v[c] = sum / size
  }
}

/** rows per sample; the samples must split the rows evenly */
function samplesOf(rows: number, samples: number): number {
  if (!Number.isInteger(samples) || samples < 1 || rows % samples !== 0)
    throw new Error(`SiplGroupNorm: ${rows} rows do not split into ${samples} samples`)
  return rows / samples
}

/** Σ a and Σ a·b per channel over the rows of a and b (heap addresses, `rows` × C), in float64. */
function columnSums(rt: ConvRuntime, a: number, b: number, rows: number, C: number): {sums: Float64Array; products: Float64Array} {
  const job = rt.job()
  job[JOB.KIND] = KIND.columnSums
  job[JOB.X] = a
  job[JOB.W] = b
  job[JOB.COUT] = C
  const chunks = writeRows(job, rows, rowsPerChunk(C))
  // a slot: float64 [Σ a per channel, Σ a·b per channel]
  const totals = float64Slots(rt, job, chunks, 2 * C)
  rt.run()
  const total = totals()
  return {sums: total.subarray(0, C), products: total.subarray(C)}
}

/**
 * outputs: y `[S·n, C]`, and per sample and channel its group's mean and 1/σ `[S, C]` (kept for
 * the backward). x holds S = attrs.samples samples of n rows each, normalised one by one (a batch
 * without splitting it into per-sample tensors and concatenating the results).
 */
export function groupNormKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const settings = attrs as unknown as GroupNormAttrs
  const [rows, C] = inputs.x.shape
  const rt = freshRuntime()
  const x = copyIn(rt, floats(backend, inputs.x))
  const y = rt.alloc(rows * C)
  const {mean, inv} = groupNormAt(rt, x, y, rows, C, floats(backend, inputs.gamma), floats(backend, inputs.beta), settings)
  return [
    outputFromHeap(backend, [rows, C], rt.f32(y, rows * C)),
    output(backend, [settings.samples, C], mean),
    output(backend, [settings.samples, C], inv),
  ]
}

/**
 * The norm of x `[S·n, C]` at heap address x into y (y = x: in place), as groupNormKernel's y;
 * returns its per sample and channel mean and 1/σ `[S, C]`.
 */
export function groupNormAt(
  rt: ConvRuntime,
  x: number,
  y: number,
  rows: number,
  C: number,
  gamma: Float32Array,
  beta: Float32Array,
  {groups, eps, samples, leakySlope}: GroupNormAttrs,
): {mean: Float32Array; inv: Float32Array} {
  const n = samplesOf(rows, samples)
  const meanOut = new Float32Array(samples * C)
  const inv = new Float32Array(samples * C)
  // the affine map has no second operand here: its coefficients are zeros
  const none = new Float64Array(C)
  for (let s = 0; s < samples; s++) {
    const at = x + 4 * s * n * C
    const {sums: mean, products: meanSquare} = columnSums(rt, at, at, n, C)
    for (let c = 0; c < C; c++) {
      mean[c] /= n
      meanSquare[c] /= n
    }
    averageOverGroups(mean, groups)
    averageOverGroups(meanSquare, groups)
    const scale = new Float64Array(C)
    const shift = new Float64Array(C)
    for (let c = 0, o = s * C; c < C; c++, o++) {
      // var = E[x²] − E[x]², clamped: rounding can make it slightly negative
      inv[o] = 1 / Math.sqrt(Math.max(meanSquare[c] - mean[c] * mean[c], 0) + eps)
      meanOut[o] = mean[c]
      scale[c] = gamma[c] * inv[o]
      shift[c] = beta[c] - meanOut[o] * scale[c]
    }
    channelAffine(rt, at, 0, y + 4 * s * n * C, n, C, scale, none, shift, leakySlope)
  }
  return {mean: meanOut, inv}
}

/**
 * dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = γ·dy, dγ = Σ dy·x̂, dβ = Σ dy (means over each
 * normalisation set), x̂ = (x − μ)/σ recomputed from the saved μ and 1/σ.
 */
export function groupNormGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const gamma = floats(backend, inputs.gamma)
  const means = floats(backend, inputs.mean)
  const invs = floats(backend, inputs.inv)
  const {groups, samples, leakySlope} = attrs as unknown as GroupNormAttrs
  const [rows, C] = inputs.x.shape
  const n = samplesOf(rows, samples)
  const rt = freshRuntime()
  // with the activation fused: the gradient at the norm's output first, the sign of the
  // pre-activation read from the activation's output inputs.y (y > 0 exactly when z > 0, NaN
  // exactly when z is NaN)
  const dy =
    leakySlope === undefined
      ? copyIn(rt, floats(backend, inputs.dy))
      : leakyReluStepInto(rt, floats(backend, inputs.dy), floats(backend, inputs.y), leakySlope)
  const x = copyIn(rt, floats(backend, inputs.x))
  const dx = rt.alloc(rows * C)
  const dGammaTotal = new Float32Array(C)
  const dBetaTotal = new Float32Array(C)
  // the last sample first: the order in which tfjs adds up the gradients of a parameter used once
  // per sample (the bits of a batch split into per-sample norms)
  for (let s = samples - 1; s >= 0; s--) {
    const mean = means.subarray(s * C, (s + 1) * C)
    const inv = invs.subarray(s * C, (s + 1) * C)
    const offset = 4 * s * n * C
    // Σ dy·x̂ = inv·(Σ dy·x − μ·Σ dy)
    const {sums: dBeta, products: dyx} = columnSums(rt, dy + offset, x + offset, n, C)
    const dGamma = Float64Array.from(dyx, (v, c) => inv[c] * (v - mean[c] * dBeta[c]))
    const m1 = Float64Array.from(dBeta, (v, c) => (gamma[c] * v) / n)
    const m2 = Float64Array.from(dGamma, (v, c) => (gamma[c] * v) / n)
    averageOverGroups(m1, groups)
    averageOverGroups(m2, groups)
    // dx = dy·γ·inv − x̂·inv·m2 − inv·m1 = dy·a + x·k + k0 per channel
    const a = Float64Array.from(gamma, (g, c) => g * inv[c])
    const k = Float64Array.from(inv, (v, c) => -v * v * m2[c])
    const k0 = Float64Array.from(inv, (v, c) => mean[c] * v * v * m2[c] - v * m1[c])
    channelAffine(rt, dy + offset, x + offset, dx + offset, n, C, a, k, k0)
    for (let c = 0; c < C; c++) {
      // float32 sums, as tfjs's Add of float32 gradients
      dGammaTotal[c] = s === samples - 1 ? dGamma[c] : Math.fround(dGammaTotal[c] + Math.fround(dGamma[c]))
      dBetaTotal[c] = s === samples - 1 ? dBeta[c] : Math.fround(dBetaTotal[c] + Math.fround(dBeta[c]))
    }
  }
  return [outputFromHeap(backend, [rows, C], rt.f32(dx, rows * C)), output(backend, [C], dGammaTotal), output(backend, [C], dBetaTotal)]
}
