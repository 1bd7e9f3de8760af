/**
 * Group / instance norm over the rows of x `[n, C]` (one sample) and its backward, for the `cpu`
 * backend: the formulas of src/model/layers.ts `normalizeRows`, in two passes each way instead of
 * ~6 forward and ~14 backward full-size ops (at a 64³ patch those were a quarter of a SIPL demo
 * training step). Channel c is in group ⌊c / (C / groups)⌋; group statistics are the averages of
 * their channels' statistics. Sums in float64.
 */
import type {tf} from '../../backend/tf.js'
import {sumRows, type KernelArgs} from './elementwise.js'
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

/**
 * Σ over rows of x·y per channel (y = x: sums of squares), four channels per pass with the
 * accumulators in registers; a remainder channel goes alone.
 */
function columnDots(x: Float32Array, y: Float32Array, C: number, out: Float64Array): void {
  let c = 0
  for (; c + 4 <= C; c += 4) {
    let s0 = 0
    let s1 = 0
    let s2 = 0
    let s3 = 0
    for (let p = c; p < x.length; p += C) {
      s0 += x[p] * y[p]
      s1 += x[p + 1] * y[p + 1]
      s2 += x[p + 2] * y[p + 2]
      s3 += x[p + 3] * y[p + 3]
    }
    out[c] = s0
    out[c + 1] = s1
    out[c + 2] = s2
    out[c + 3] = s3
  }
  for (; c < C; c++) {
    let sum = 0
    for (let p = c; p < x.length; p += C) sum += x[p] * y[p]
    out[c] = sum
  }
}

function columnSums(x: Float32Array, C: number): Float64Array {
  const sums = new Float32Array(C)
  sumRows(x, 0, x.length / C, C, sums, 0)
  return Float64Array.from(sums)
}

/** outputs: y `[n, C]`, and per channel its group's mean and 1/σ (kept for the backward) */
export function groupNormKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const x = floats(backend, inputs.x)
  const gamma = floats(backend, inputs.gamma)
  const beta = floats(backend, inputs.beta)
  const {groups, eps} = attrs as unknown as GroupNormAttrs
  const [n, C] = inputs.x.shape
  const mean = columnSums(x, C)
  const meanSquare = new Float64Array(C)
  columnDots(x, x, C, meanSquare)
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
  const y = new Float32Array(x.length)
  for (let p = 0; p < x.length; p += C) for (let c = 0; c < C; c++) y[p + c] = x[p + c] * scale[c] + shift[c]
  return [output(backend, [n, C], y), output(backend, [C], meanOut), output(backend, [C], inv)]
}

/**
 * dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = γ·dy, dγ = Σ dy·x̂, dβ = Σ dy (means over each
 * normalisation set), x̂ = (x − μ)/σ recomputed from the saved μ and 1/σ.
 */
export function groupNormGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const dy = floats(backend, inputs.dy)
  const x = floats(backend, inputs.x)
  const gamma = floats(backend, inputs.gamma)
  const mean = floats(backend, inputs.mean)
  const inv = floats(backend, inputs.inv)
  const {groups} = attrs as unknown as GroupNormAttrs
  const [n, C] = inputs.x.shape
  const dBeta = columnSums(dy, C)
  // Σ dy·x̂ = inv·(Σ dy·x − μ·Σ dy)
  const dyx = new Float64Array(C)
  columnDots(dy, x, C, dyx)
  const dGamma = Float64Array.from(dyx, (v, c) => inv[c] * (v - mean[c] * dBeta[c]))
  const m1 = Float64Array.from(dBeta, (v, c) => (gamma[c] * v) / n)
  const m2 = Float64Array.from(dGamma, (v, c) => (gamma[c] * v) / n)
  averageOverGroups(m1, groups)
  averageOverGroups(m2, groups)
  // dx = dy·γ·inv − x̂·inv·m2 − inv·m1 = dy·a + x·k + k0 per channel
  const a = Float64Array.from(gamma, (g, c) => g * inv[c])
  const k = Float64Array.from(inv, (v, c) => -v * v * m2[c])
  const k0 = Float64Array.from(inv, (v, c) => mean[c] * v * v * m2[c] - v * m1[c])
  const dx = new Float32Array(x.length)
  for (let p = 0; p < x.length; p += C) for (let c = 0; c < C; c++) dx[p + c] = dy[p + c] * a[c] + x[p + c] * k[c] + k0[c]
  return [output(backend, [n, C], dx), output(backend, [C], Float32Array.from(dGamma)), output(backend, [C], Float32Array.from(dBeta))]
}
