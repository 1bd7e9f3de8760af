/**
 * Row-wise building blocks on plain float32 arrays for sipl's whole-layer kernels (the kMaX layer
 * of src/kernels/cpu/kmax.ts): dense maps on the wasm GEMM, LayerNorm, L2 normalisation,
 * each with its backward. A matrix is row-major `[rows, cols]`; per-row statistics and column sums
 * are taken in float64 and stored as float32, so they are at least as accurate as the op
 * composition they replace. The loops run on the calling thread and large products on the worker
 * pool with rows split between threads, so results do not depend on the thread count. (The layer's
 * GELU is in src/kernels/cpu/activations.ts.)
 */
import {product, type View} from './matmul.js'

/** a row-major `[rows, cols]` matrix starting at `offset` */
export const rowMajor = (values: Float32Array, cols: number, offset = 0): View => ({values, offset, row: cols, col: 1})

/** the transpose of a row-major `[rows, cols]` matrix starting at `offset`, read in place */
export const transposed = (values: Float32Array, cols: number, offset = 0): View => ({values, offset, row: 1, col: cols})

/** out[m×n] (at outOffset) = a[m×k] · b[k×n] */
export function matmul(
  a: View,
  b: View,
  m: number,
  k: number,
  n: number,
  out: Float32Array = new Float32Array(m * n),
  outOffset = 0,
): Float32Array {
  product(a, b, m, k, n, out, outOffset)
  return out
}

/** y = x·W (+ b); x `[rows, cin]`, W `[cin, cout]` (tfjs's dense layout), b `[cout]`; into `out` when given */
export function dense(
  x: Float32Array,
  rows: number,
  cin: number,
  w: Float32Array,
  b: Float32Array | null,
  cout: number,
  out: Float32Array = new Float32Array(rows * cout),
): Float32Array {
  const y = matmul(rowMajor(x, cin), rowMajor(w, cout), rows, cin, cout, out)
  if (b) for (let r = 0, o = 0; r < rows; r++, o += cout) for (let j = 0; j < cout; j++) y[o + j] += b[j]
  return y
}

/** Σ over rows of x `[rows, cols]`, in float64, added to `into` */
export function addColumnSums(x: Float32Array, rows: number, cols: number, into: Float64Array): Float64Array {
  for (let r = 0, o = 0; r < rows; r++, o += cols) for (let j = 0; j < cols; j++) into[j] += x[o + j]
  return into
}

export interface DenseGrads {
  /** xᵀ·dy, `[cin, cout]` */
  dw: Float32Array
  /** Σ dy over rows, `[cout]` (null without a bias) */
  db: Float32Array | null
  /** dy·Wᵀ, `[rows, cin]` (null when not asked) */
  dx: Float32Array | null
}

/** The gradients of y = x·W + b from dy `[rows, cout]`; dx into `dxInto` when given. */
export function denseBackward(
  dy: Float32Array,
  x: Float32Array,
  rows: number,
  cin: number,
  w: Float32Array,
  cout: number,
  options: {bias: boolean; dx: boolean; dxInto?: Float32Array},
): DenseGrads {
  const dw = matmul(transposed(x, cin), rowMajor(dy, cout), cin, rows, cout)
  const db = options.bias ? Float32Array.from(addColumnSums(dy, rows, cout, new Float64Array(cout))) : null
  const dx = options.dx ? matmul(rowMajor(dy, cout), transposed(w, cout), rows, cout, cin, options.dxInto) : null
  return {dw, db, dx}
}

export interface RowStats {
  /** (x − mean) / √(var + ε) per row, `[rows, c]` */
  normed: Float32Array
  /** 1 / √(var + ε) per row */
  rstd: Float32Array
}

/** LayerNorm's normalisation of each row (population variance, as tf.moments); into `into` when given */
export function layerNormRows(
  x: Float32Array,
  rows: number,
  c: number,
  eps: number,
  into: RowStats = {normed: new Float32Array(rows * c), rstd: new Float32Array(rows)},
): RowStats {
  const {normed, rstd} = into
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    let sum = 0
    for (let j = 0; j < c; j++) sum += x[o + j]
    const mean = sum / c
    let squares = 0
    for (let j = 0; j < c; j++) squares += (x[o + j] - mean) ** 2
    const inv = 1 / Math.sqrt(squares / c + eps)
    rstd[r] = inv
    for (let j = 0; j < c; j++) normed[o + j] = (x[o + j] - mean) * inv
  }
  return into
}

/** n·γ + β per row; into `y` when given */
export function affineRows(
  n: Float32Array,
  rows: number,
  c: number,
  gamma: Float32Array,
  beta: Float32Array | null,
  y: Float32Array = new Float32Array(rows * c),
): Float32Array {
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    for (let j = 0; j < c; j++) y[o + j] = n[o + j] * gamma[j] + (beta ? beta[j] : 0)
  }
  return y
}

/**
 * Backward of y = n·γ + β with n the normalised rows: adds Σ dy·n to dGamma and Σ dy to dBeta,
 * and adds dx = rstd·(g − mean(g) − n·mean(g·n)), g = dy·γ, into `dx`.
 */
export function layerNormBackward(
  dy: Float32Array,
  stats: RowStats,
  rows: number,
  c: number,
  gamma: Float32Array,
  dGamma: Float64Array,
  dBeta: Float64Array | null,
  dx: Float32Array,
): void {
  const {normed, rstd} = stats
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    let sumG = 0
    let sumGn = 0
    for (let j = 0; j < c; j++) {
      const g = dy[o + j] * gamma[j]
      sumG += g
      sumGn += g * normed[o + j]
      dGamma[j] += dy[o + j] * normed[o + j]
      if (dBeta) dBeta[j] += dy[o + j]
    }
    const meanG = sumG / c
    const meanGn = sumGn / c
    const inv = rstd[r]
    for (let j = 0; j < c; j++) dx[o + j] += inv * (dy[o + j] * gamma[j] - meanG - normed[o + j] * meanGn)
  }
}

/** a += b, element-wise */
export function addInto(a: Float32Array, b: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] += b[i]
  return a
}
