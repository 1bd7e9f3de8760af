/**
 * Group / instance norm over the rows of x `[n, C]` (one sample) and its backward, for the `cpu`
 * backend: the formulas of src/model/layers.ts `normalizeRows`, in two passes each way instead of
 * ~6 forward and ~14 backward full-size ops, which dominated a SIPL demo training step. Channel c is in group ⌊c / (C / groups)⌋; group statistics are the averages of
 * their channels' statistics. Both passes run in WebAssembly SIMD on the worker pool
 * (assembly/channels.ts): column sums in float32 per chunk of rows, float64 across chunks in an
 * order that does not depend on the thread count, then one per-channel affine map (JS loops were
 * slower: docs/bench/2026-11-26-cpu-kernels.md).
 */
import type {tf} from '../../backend/tf.js'
import {copyIn, float64Slots} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, output} from './tensors.js'

export interface GroupNormAttrs {
  groups: number
  eps: number
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

/** Rows per work item: ~64 KiB of each operand; it sets the summation order, so it depends on C only. */
const rowsPerChunk = (C: number) => Math.max(16, Math.floor(16384 / C))

/** Σ a and Σ a·b per channel over the rows of a and b (heap addresses, `rows` × C), in float64. */
function columnSums(rt: ConvRuntime, a: number, b: number, rows: number, C: number): {sums: Float64Array; products: Float64Array} {
  const job = rt.job()
  const perChunk = rowsPerChunk(C)
  const chunks = Math.ceil(rows / perChunk)
  job[JOB.KIND] = KIND.columnSums
  job[JOB.X] = a
  job[JOB.W] = b
  job[JOB.COUT] = C
  job[JOB.ROWS] = rows
  job[JOB.ROWS_PER_CHUNK] = perChunk
  job[JOB.CHUNKS] = chunks
  // a slot: float64 [Σ a per channel, Σ a·b per channel]
  const totals = float64Slots(rt, job, chunks, 2 * C)
  rt.run()
  const total = totals()
  return {sums: total.subarray(0, C), products: total.subarray(C)}
}

/** a·s + b·t + u per channel (b = 0: no b term) into a new array of rows × C */
function channelAffine(
  rt: ConvRuntime,
  a: number,
  b: number,
  rows: number,
  C: number,
  s: ArrayLike<number>,
  t: ArrayLike<number>,
  u: ArrayLike<number>,
): Float32Array {
  const coefficients = new Float32Array(3 * C)
  coefficients.set(s)
  coefficients.set(t, C)
  coefficients.set(u, 2 * C)
  const out = rt.alloc(rows * C)
  const job = rt.job()
  job[JOB.KIND] = KIND.channelAffine
  job[JOB.X] = a
  job[JOB.W] = b
  job[JOB.DY] = out
  job[JOB.BIAS] = copyIn(rt, coefficients)
  job[JOB.COUT] = C
  job[JOB.ROWS] = rows
  job[JOB.ROWS_PER_CHUNK] = rowsPerChunk(C)
  job[JOB.CHUNKS] = Math.ceil(rows / rowsPerChunk(C))
  rt.run()
  return rt.f32(out, rows * C).slice()
}

/** outputs: y `[n, C]`, and per channel its group's mean and 1/σ (kept for the backward) */
export function groupNormKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const gamma = floats(backend, inputs.gamma)
  const beta = floats(backend, inputs.beta)
  const {groups, eps} = attrs as unknown as GroupNormAttrs
  const [n, C] = inputs.x.shape
  const rt = freshRuntime()
  const x = copyIn(rt, floats(backend, inputs.x))
  const {sums: mean, products: meanSquare} = columnSums(rt, x, x, n, C)
  for (let c = 0; c < C; c++) {
    mean[c] /= n
    meanSquare[c] /= n
  }
  averageOverGroups(mean, groups)
  averageOverGroups(meanSquare, groups)
  const meanOut = new Float32Array(C)
  const inv = new Float32Array(C)
  const scale = new Float64Array(C)
  const shift = new Float64Array(C)
  for (let c = 0; c < C; c++) {
    // var = E[x²] − E[x]², clamped: rounding can make it slightly negative
    inv[c] = 1 / Math.sqrt(Math.max(meanSquare[c] - mean[c] * mean[c], 0) + eps)
    meanOut[c] = mean[c]
    scale[c] = gamma[c] * inv[c]
    shift[c] = beta[c] - meanOut[c] * scale[c]
  }
  const y = channelAffine(rt, x, 0, n, C, scale, new Float64Array(C), shift)
  return [output(backend, [n, C], y), output(backend, [C], meanOut), output(backend, [C], inv)]
}

/**
 * dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = γ·dy, dγ = Σ dy·x̂, dβ = Σ dy (means over each
 * normalisation set), x̂ = (x − μ)/σ recomputed from the saved μ and 1/σ.
 */
export function groupNormGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const gamma = floats(backend, inputs.gamma)
  const mean = floats(backend, inputs.mean)
  const inv = floats(backend, inputs.inv)
  const {groups} = attrs as unknown as GroupNormAttrs
  const [n, C] = inputs.x.shape
  const rt = freshRuntime()
  const dy = copyIn(rt, floats(backend, inputs.dy))
  const x = copyIn(rt, floats(backend, inputs.x))
  // Σ dy·x̂ = inv·(Σ dy·x − μ·Σ dy)
  const {sums: dBeta, products: dyx} = columnSums(rt, dy, x, n, C)
  const dGamma = Float64Array.from(dyx, (v, c) => inv[c] * (v - mean[c] * dBeta[c]))
  const m1 = Float64Array.from(dBeta, (v, c) => (gamma[c] * v) / n)
  const m2 = Float64Array.from(dGamma, (v, c) => (gamma[c] * v) / n)
  averageOverGroups(m1, groups)
  averageOverGroups(m2, groups)
  // dx = dy·γ·inv − x̂·inv·m2 − inv·m1 = dy·a + x·k + k0 per channel
  const a = Float64Array.from(gamma, (g, c) => g * inv[c])
  const k = Float64Array.from(inv, (v, c) => -v * v * m2[c])
  const k0 = Float64Array.from(inv, (v, c) => mean[c] * v * v * m2[c] - v * m1[c])
  const dx = channelAffine(rt, dy, x, n, C, a, k, k0)
  return [output(backend, [n, C], dx), output(backend, [C], Float32Array.from(dGamma)), output(backend, [C], Float32Array.from(dBeta))]
}
