/**
 * One kMaX decoder layer of the SMG (src/model/smg.ts `KmaxLayer.apply`, Eq. 6–10) as one kernel
 * each way for the `cpu` backend. As tfjs ops a layer was ~240 kernel calls forward and ~900
 * backward (dense maps, LayerNorms, GELUs, the per-head attention, the assignment, filter and
 * update chain, and the Identity/Reshape/Cast traffic of their gradients); the call overhead, not
 * the arithmetic, was most of the SIPL demo step. Here the formulas of KmaxLayer run on plain
 * float32 arrays (src/kernels/cpu/rows.ts) with the products on the wasm GEMM, and the forward
 * leaves every intermediate the backward needs in one workspace tensor.
 *
 * Inputs: pixels `[B, P, C]`, queries `[B, N, d]`, the layer's parameters by the names of
 * KMAX_PARAMETERS (tfjs layouts: dense kernels `[in, out]`), and for the Eq. 10 filter the
 * binarised previous pseudo mask `previous` `[B, P, K+1]`. Attributes: heads, tau, filter.
 */
import type {tf} from '../../backend/tf.js'
import type {KernelArgs} from './elementwise.js'
import {
  addInto,
  affineRows,
  dense,
  denseBackward,
  layerNormBackward,
  layerNormRows,
  matmul,
  rowMajor,
  transposed,
  type RowStats,
} from './rows.js'
import {gelu, geluBackward} from './activations.js'
import {floats, output, outputArray} from './tensors.js'
import {Scratch} from './scratch.js'

/** the layer's parameters, in the order of the gradient kernel's outputs (after dPixels, dQueries) */
export const KMAX_PARAMETERS = [
  'pixelProj.kernel',
  'pixelProj.bias',
  'pixelNorm.gamma',
  'pixelNorm.beta',
  'pixelHead.kernel',
  'pixelHead.bias',
  'kernelNorm.gamma',
  'kernelNorm.beta',
  'kernelProj.kernel',
  'kernelProj.bias',
  'valueProj.kernel',
  'valueProj.bias',
  'crossNorm.gamma',
  'crossOut.kernel',
  'attnNorm.gamma',
  'attnNorm.beta',
  'qkv.kernel',
  'qkv.bias',
  'attnOut.kernel',
  'attnOut.bias',
  'ffnNorm.gamma',
  'ffnNorm.beta',
  'ffn1.kernel',
  'ffn1.bias',
  'ffn2.kernel',
  'ffn2.bias',
  'classNorm.gamma',
  'classNorm.beta',
  'class1.kernel',
  'class1.bias',
  'class2.kernel',
  'class2.bias',
] as const
export type KmaxParameter = (typeof KMAX_PARAMETERS)[number]

export interface KmaxAttrs {
  heads: number
  tau: number
  /** whether `previous` is given (Eq. 10 runs) */
  filter: boolean
  /** false drops the cross-attention update (KmaxLayerInput.crossAttention): no voxel is aggregated */
  cross: boolean
}

const LAYER_NORM_EPS = 1e-5
const RMS_EPS = 1e-6
const L2_EPS_SQUARED = 1e-12

interface Dims {
  B: number
  P: number
  C: number
  N: number
  d: number
  H: number
  F: number
  K1: number
}

function dimsOf(pixels: tf.TensorInfo, queries: tf.TensorInfo, params: Record<string, tf.TensorInfo>, heads: number): Dims {
  const [B, P, C] = pixels.shape
  const [, N, d] = queries.shape
  return {B, P, C, N, d, H: heads, F: params['ffn1.kernel'].shape[1], K1: params['class2.kernel'].shape[1]}
}

/** The workspace: what the backward reads, at fixed offsets from the dimensions. */
function workspaceLayout({B, P, N, d, H, F, K1}: Dims) {
  const R = B * P
  const Q = B * N
  const sizes = {
    pixelNormed: R * d,
    pixelRstd: R,
    projected: R * d,
    embeddings: R * d,
    invNorm: R,
    clusters: R,
    keep: Q,
    queryNormed: Q * d,
    queryRstd: Q,
    qkv: Q * 3 * d,
    attention: B * H * N * N,
    mixed: Q * d,
    aggregate: Q * d,
    aggregateRinv: Q,
    updateNormed: Q * d,
    updateRstd: Q,
    ffnHidden: Q * F,
    outNormed: Q * d,
    outRstd: Q,
    kernels: Q * d,
    classHidden: Q * d,
    clusterToClass: Q * K1,
    pixelToCluster: R * N,
  }
  let total = 0
  const offsets = {} as Record<keyof typeof sizes, [number, number]>
  for (const [name, size] of Object.entries(sizes) as [keyof typeof sizes, number][]) {
    offsets[name] = [total, size]
    total += size
  }
  return {offsets, total}
}

type Workspace = Record<keyof ReturnType<typeof workspaceLayout>['offsets'], Float32Array>

function workspaceViews(buffer: Float32Array, dims: Dims): Workspace {
  const {offsets} = workspaceLayout(dims)
  return Object.fromEntries(Object.entries(offsets).map(([name, [at, size]]) => [name, buffer.subarray(at, at + size)])) as Workspace
}

function parameterValues(backend: unknown, inputs: Record<string, tf.TensorInfo>): Record<KmaxParameter, Float32Array> {
  return Object.fromEntries(KMAX_PARAMETERS.map((name) => [name, floats(backend, inputs[name])])) as Record<KmaxParameter, Float32Array>
}

/** for each voxel the first cluster of largest similarity (tf.argMax's tie rule) */
function argmaxRows(s: Float32Array, rows: number, n: number, into: Int32Array, at: number): void {
  for (let r = 0, o = 0; r < rows; r++, o += n) {
    let best = 0
    let max = s[o]
    for (let j = 1; j < n; j++) {
      if (s[o + j] > max) {
        max = s[o + j]
        best = j
      }
    }
    into[at + r] = best
  }
}

/**
 * Eq. 10: keep_n = [max over foreground classes of |M_k^{l−1} ∩ A_n| / |A_n| ≥ τ], with the
 * ratio and τ rounded to float32 as the op composition compares them.
 */
function clusterKeep(clusters: Int32Array, previous: Float32Array, dims: Dims, tau: number, keep: Float32Array): void {
  const {B, P, N, K1} = dims
  const threshold = Math.fround(tau)
  const counts = new Float64Array(N * K1)
  for (let b = 0; b < B; b++) {
    counts.fill(0)
    for (let p = 0; p < P; p++) {
      const n = clusters[b * P + p]
      const row = (b * P + p) * K1
      for (let k = 0; k < K1; k++) counts[n * K1 + k] += previous[row + k]
    }
    for (let n = 0; n < N; n++) {
      let size = 0
      let foreground = -Infinity
      for (let k = 0; k < K1; k++) {
        size += counts[n * K1 + k]
        if (k > 0) foreground = Math.max(foreground, counts[n * K1 + k])
      }
      const ratio = K1 > 1 ? Math.fround(foreground / Math.max(size, 1)) : 0
      keep[b * N + n] = ratio >= threshold ? 1 : 0
    }
  }
}

/** Multi-head self-attention of the queries from qkv `[B·N, 3d]`: weights `[B, H, N, N]` and the mixed values `[B·N, d]`. */
function attention(qkv: Float32Array, dims: Dims, weights: Float32Array, mixed: Float32Array): void {
  const {B, N, d, H} = dims
  const dh = d / H
  const scale = Math.fround(1 / Math.sqrt(dh))
  const logits = new Float64Array(N)
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const w0 = (b * H + h) * N * N
      for (let i = 0; i < N; i++) {
        const qi = (b * N + i) * 3 * d + h * dh
        let max = -Infinity
        for (let j = 0; j < N; j++) {
          const kj = (b * N + j) * 3 * d + d + h * dh
          let dot = 0
          for (let t = 0; t < dh; t++) dot += qkv[qi + t] * qkv[kj + t]
          logits[j] = dot * scale
          max = Math.max(max, logits[j])
        }
        let sum = 0
        for (let j = 0; j < N; j++) sum += logits[j] = Math.exp(logits[j] - max)
        for (let j = 0; j < N; j++) weights[w0 + i * N + j] = logits[j] / sum
        const out = (b * N + i) * d + h * dh
        for (let t = 0; t < dh; t++) {
          let acc = 0
          for (let j = 0; j < N; j++) acc += weights[w0 + i * N + j] * qkv[(b * N + j) * 3 * d + 2 * d + h * dh + t]
          mixed[out + t] = acc
        }
      }
    }
  }
}

/** the forward's temporaries, recycled from call to call (src/kernels/cpu/scratch.ts has why) */
const forwardScratch = new Scratch()

export function kmaxLayerKernel(args: KernelArgs): tf.TensorInfo[] {
  return forwardScratch.around((s) => kmaxLayerForward(args, s))
}

/** Every temporary from `s`; the outputs from the backend's array pool (or new, for the int32 clusters). */
function kmaxLayerForward({inputs, backend, attrs}: KernelArgs, s: Scratch): tf.TensorInfo[] {
  const {heads, tau, filter, cross} = attrs as unknown as KmaxAttrs
  const dims = dimsOf(inputs.pixels, inputs.queries, inputs, heads)
  const {B, P, C, N, d, F, K1} = dims
  const R = B * P
  const Q = B * N
  const w = parameterValues(backend, inputs)
  const x = floats(backend, inputs.pixels)
  const q0 = floats(backend, inputs.queries)
  // LN's affine map, then a dense map, on the query rows
  const normThenDense = (normed: Float32Array, norm: string, proj: string, cout: number) =>
    dense(
      affineRows(normed, Q, d, w[`${norm}.gamma` as KmaxParameter], w[`${norm}.beta` as KmaxParameter], s.take(Q * d)),
      Q,
      d,
      w[`${proj}.kernel` as KmaxParameter],
      w[`${proj}.bias` as KmaxParameter],
      cout,
      s.take(Q * cout),
    )
  const stats = (rows: number): RowStats => ({normed: s.take(rows * d), rstd: s.take(rows)})
  // an output from the pool: every part is written below; zeroed all the same, so that a part added
  // to the layout and not written reads zeros, not another tensor's values
  const buffer = outputArray(backend, workspaceLayout(dims).total).fill(0)
  const ws = workspaceViews(buffer, dims)

  // pixel side: P′ = GELU(LN(F_d W_p)), F̂ = L2norm(P′ W_f), V = P′ W_v
  const a = dense(x, R, C, w['pixelProj.kernel'], w['pixelProj.bias'], d, s.take(R * d))
  const pixelStats = layerNormRows(a, R, d, LAYER_NORM_EPS, stats(R))
  ws.pixelNormed.set(pixelStats.normed)
  ws.pixelRstd.set(pixelStats.rstd)
  const projected = gelu(affineRows(pixelStats.normed, R, d, w['pixelNorm.gamma'], w['pixelNorm.beta'], s.take(R * d)), s.take(R * d))
  ws.projected.set(projected)
  const h = dense(projected, R, d, w['pixelHead.kernel'], w['pixelHead.bias'], d, s.take(R * d))
  for (let r = 0, o = 0; r < R; r++, o += d) {
    let squares = 0
    for (let j = 0; j < d; j++) squares += h[o + j] * h[o + j]
    const inv = 1 / Math.sqrt(squares + L2_EPS_SQUARED)
    ws.invNorm[r] = inv
    for (let j = 0; j < d; j++) ws.embeddings[o + j] = h[o + j] * inv
  }
  const values = dense(projected, R, d, w['valueProj.kernel'], w['valueProj.bias'], d, s.take(R * d))

  // Eq. 6: A = onehot(argmax_N F̂ · K(Q^{l−1})ᵀ), K(Q) = LN(Q) W_k
  const queryStats = layerNormRows(q0, Q, d, LAYER_NORM_EPS, stats(Q))
  ws.queryNormed.set(queryStats.normed)
  ws.queryRstd.set(queryStats.rstd)
  const k0 = normThenDense(queryStats.normed, 'kernelNorm', 'kernelProj', d)
  const clusters = new Int32Array(R)
  const similarity = s.take(P * N)
  for (let b = 0; b < B; b++) {
    matmul(rowMajor(ws.embeddings, d, b * P * d), transposed(k0, d, b * N * d), P, d, N, similarity)
    argmaxRows(similarity, P, N, clusters, b * P)
  }
  ws.clusters.set(clusters)
  // Eq. 10–11: clusters not mostly inside one foreground class of M^{l−1} sit out
  const keep = ws.keep
  if (filter) clusterKeep(clusters, floats(backend, inputs.previous), dims, tau, keep)
  else keep.fill(1)

  // MHSA(LN(Q^{l−1}))
  const z = affineRows(queryStats.normed, Q, d, w['attnNorm.gamma'], w['attnNorm.beta'], s.take(Q * d))
  const qkv = dense(z, Q, d, w['qkv.kernel'], w['qkv.bias'], 3 * d, s.take(Q * 3 * d))
  ws.qkv.set(qkv)
  attention(qkv, dims, ws.attention, ws.mixed)
  const selfAttended = dense(ws.mixed, Q, d, w['attnOut.kernel'], w['attnOut.bias'], d, s.take(Q * d))

  // cross-attention: W_o · RMS(Aᵀ V), the sum over each kept cluster's voxels
  const aggregate = new Float64Array(Q * d)
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      const n = clusters[b * P + p]
      if (!cross || keep[b * N + n] === 0) continue
      const src = (b * P + p) * d
      const dst = (b * N + n) * d
      for (let j = 0; j < d; j++) aggregate[dst + j] += values[src + j]
    }
  }
  ws.aggregate.set(aggregate)
  const scaled = s.take(Q * d)
  const gammaR = w['crossNorm.gamma']
  for (let r = 0, o = 0; r < Q; r++, o += d) {
    let squares = 0
    for (let j = 0; j < d; j++) squares += ws.aggregate[o + j] ** 2
    const inv = 1 / Math.sqrt(squares / d + RMS_EPS)
    ws.aggregateRinv[r] = inv
    for (let j = 0; j < d; j++) scaled[o + j] = ws.aggregate[o + j] * inv * gammaR[j]
  }
  const crossed = dense(scaled, Q, d, w['crossOut.kernel'], null, d, s.take(Q * d))
  const updated = s.take(Q * d)
  for (let i = 0; i < Q * d; i++) updated[i] = Math.fround(q0[i] + selfAttended[i]) + crossed[i]

  // Q^l = Q + FFN(LN(Q))
  const updateStats = layerNormRows(updated, Q, d, LAYER_NORM_EPS, stats(Q))
  ws.updateNormed.set(updateStats.normed)
  ws.updateRstd.set(updateStats.rstd)
  const hidden = normThenDense(updateStats.normed, 'ffnNorm', 'ffn1', F)
  ws.ffnHidden.set(hidden)
  const q1 = addInto(dense(gelu(hidden, s.take(Q * F)), Q, F, w['ffn2.kernel'], w['ffn2.bias'], d, outputArray(backend, Q * d)), updated)

  // Eq. 7–9: M = (F̂ · K(Q^l)ᵀ) · MLP(LN(Q^l)) / √N
  const outStats = layerNormRows(q1, Q, d, LAYER_NORM_EPS, stats(Q))
  ws.outNormed.set(outStats.normed)
  ws.outRstd.set(outStats.rstd)
  const k1 = normThenDense(outStats.normed, 'kernelNorm', 'kernelProj', d)
  ws.kernels.set(k1)
  const c1 = normThenDense(outStats.normed, 'classNorm', 'class1', d)
  ws.classHidden.set(c1)
  const mcc = dense(gelu(c1, s.take(Q * d)), Q, d, w['class2.kernel'], w['class2.bias'], K1, s.take(Q * K1))
  ws.clusterToClass.set(mcc)
  // every element written by the products
  const masks = outputArray(backend, R * K1)
  for (let b = 0; b < B; b++) {
    matmul(rowMajor(ws.embeddings, d, b * P * d), transposed(k1, d, b * N * d), P, d, N, ws.pixelToCluster, b * P * N)
    matmul(rowMajor(ws.pixelToCluster, N, b * P * N), rowMajor(mcc, K1, b * N * K1), P, N, K1, masks, b * P * K1)
  }
  const scale = Math.fround(1 / Math.sqrt(N))
  for (let i = 0; i < masks.length; i++) masks[i] *= scale

  const assignment = outputArray(backend, R * N).fill(0)
  for (let r = 0; r < R; r++) assignment[r * N + clusters[r]] = keep[Math.floor(r / P) * N + clusters[r]]
  return [
    output(backend, [B, N, d], q1),
    output(backend, [B, P, K1], masks),
    output(backend, [B, P, N], assignment),
    output(backend, [B, P], clusters, 'int32'),
    output(backend, [B, N], Float32Array.from(keep)),
    output(backend, [buffer.length], buffer),
  ]
}

/** the backward of LN(x)·γ + β over rows, adding into dx and returning [dγ, dβ] */
function layerNormGrads(
  dy: Float32Array,
  stats: RowStats,
  rows: number,
  c: number,
  gamma: Float32Array,
  dx: Float32Array,
): [Float32Array, Float32Array] {
  const dGamma = new Float64Array(c)
  const dBeta = new Float64Array(c)
  layerNormBackward(dy, stats, rows, c, gamma, dGamma, dBeta, dx)
  return [Float32Array.from(dGamma), Float32Array.from(dBeta)]
}

/**
 * Inputs: dQueries `[B, N, d]`, dMask `[B, P, K+1]` (the gradients of the two differentiable
 * outputs), pixels, queries, workspace and the parameters. Outputs: dPixels, dQueries and one
 * gradient per KMAX_PARAMETERS entry. No gradient passes through the hard assignment (Eq. 6) or
 * the filter.
 */
export function kmaxLayerGradKernel(args: KernelArgs): tf.TensorInfo[] {
  return backwardScratch.around((s) => kmaxLayerBackward(args, s))
}

/** the backward's temporaries, recycled from call to call (src/kernels/cpu/scratch.ts has why) */
const backwardScratch = new Scratch()

/** Every temporary from `s`; dPixels and dQueries from the backend's array pool, the parameters' gradients new. */
function kmaxLayerBackward({inputs, backend, attrs}: KernelArgs, s: Scratch): tf.TensorInfo[] {
  const {heads, cross} = attrs as unknown as KmaxAttrs
  const dims = dimsOf(inputs.pixels, inputs.queries, inputs, heads)
  const {B, P, C, N, d, H, F, K1} = dims
  const copy = (values: Float32Array) => {
    const into = s.take(values.length)
    into.set(values)
    return into
  }
  const R = B * P
  const Q = B * N
  const dh = d / H
  const w = parameterValues(backend, inputs)
  const x = floats(backend, inputs.pixels)
  const ws = workspaceViews(floats(backend, inputs.workspace), dims)
  const dQ1 = floats(backend, inputs.dQueries)
  const dMask = floats(backend, inputs.dMask)
  const grads = {} as Record<KmaxParameter, Float32Array>
  const outStats: RowStats = {normed: ws.outNormed, rstd: ws.outRstd}
  // the gradients of y = x·W + b: dW and db into grads, dx returned (into `into`, else a temporary)
  const denseGrads = (
    dy: Float32Array,
    x: Float32Array,
    rows: number,
    cin: number,
    proj: string,
    cout: number,
    into = s.take(rows * cin),
  ) => {
    const g = denseBackward(dy, x, rows, cin, w[`${proj}.kernel` as KmaxParameter], cout, {bias: true, dx: true, dxInto: into})
    grads[`${proj}.kernel` as KmaxParameter] = g.dw
    grads[`${proj}.bias` as KmaxParameter] = g.db!
    return g.dx!
  }

  // M = (M_pc · M_cc)·s
  const scale = Math.fround(1 / Math.sqrt(N))
  const dScaled = s.take(R * K1)
  for (let i = 0; i < dScaled.length; i++) dScaled[i] = dMask[i] * scale
  // each written whole by the products below
  const dPixelToCluster = s.take(R * N)
  const dClusterToClass = s.take(Q * K1)
  const dEmbeddings = s.take(R * d)
  const dKernels = s.take(Q * d)
  for (let b = 0; b < B; b++) {
    matmul(rowMajor(dScaled, K1, b * P * K1), transposed(ws.clusterToClass, K1, b * N * K1), P, K1, N, dPixelToCluster, b * P * N)
    matmul(transposed(ws.pixelToCluster, N, b * P * N), rowMajor(dScaled, K1, b * P * K1), N, P, K1, dClusterToClass, b * N * K1)
    matmul(rowMajor(dPixelToCluster, N, b * P * N), rowMajor(ws.kernels, d, b * N * d), P, N, d, dEmbeddings, b * P * d)
    matmul(transposed(dPixelToCluster, N, b * P * N), rowMajor(ws.embeddings, d, b * P * d), N, P, d, dKernels, b * N * d)
  }

  // M_cc = MLP(LN_c(Q^l))
  const dQ = copy(dQ1)
  const classIn = affineRows(ws.outNormed, Q, d, w['classNorm.gamma'], w['classNorm.beta'], s.take(Q * d))
  const classAct = gelu(ws.classHidden, s.take(Q * d))
  const dClassAct = denseGrads(dClusterToClass, classAct, Q, d, 'class2', K1)
  const dClassIn = denseGrads(geluBackward(dClassAct, ws.classHidden), classIn, Q, d, 'class1', d)
  ;[grads['classNorm.gamma'], grads['classNorm.beta']] = layerNormGrads(dClassIn, outStats, Q, d, w['classNorm.gamma'], dQ)

  // K(Q^l) = LN_k(Q^l) W_k; the pre-update kernels only drive the argmax, which passes no gradient
  const kernelIn = affineRows(ws.outNormed, Q, d, w['kernelNorm.gamma'], w['kernelNorm.beta'], s.take(Q * d))
  const dKernelIn = denseGrads(dKernels, kernelIn, Q, d, 'kernelProj', d)
  ;[grads['kernelNorm.gamma'], grads['kernelNorm.beta']] = layerNormGrads(dKernelIn, outStats, Q, d, w['kernelNorm.gamma'], dQ)

  // Q^l = Q + FFN(LN_f(Q))
  const dUpdated = copy(dQ)
  const updateStats: RowStats = {normed: ws.updateNormed, rstd: ws.updateRstd}
  const ffnIn = affineRows(ws.updateNormed, Q, d, w['ffnNorm.gamma'], w['ffnNorm.beta'], s.take(Q * d))
  const dFfnAct = denseGrads(dQ, gelu(ws.ffnHidden, s.take(Q * F)), Q, F, 'ffn2', d)
  const dFfnIn = denseGrads(geluBackward(dFfnAct, ws.ffnHidden), ffnIn, Q, d, 'ffn1', F)
  ;[grads['ffnNorm.gamma'], grads['ffnNorm.beta']] = layerNormGrads(dFfnIn, updateStats, Q, d, w['ffnNorm.gamma'], dUpdated)

  // Q = Q^{l−1} + MHSA(LN_a(Q^{l−1})) + W_o·RMS(Aᵀ V)
  const dQueries = outputArray(backend, Q * d)
  dQueries.set(dUpdated)
  const gammaR = w['crossNorm.gamma']
  const scaled = s.take(Q * d)
  for (let r = 0, o = 0; r < Q; r++, o += d)
    for (let j = 0; j < d; j++) scaled[o + j] = ws.aggregate[o + j] * ws.aggregateRinv[r] * gammaR[j]
  const co = denseBackward(dUpdated, scaled, Q, d, w['crossOut.kernel'], d, {bias: false, dx: true, dxInto: s.take(Q * d)})
  grads['crossOut.kernel'] = co.dw
  const dCross = co.dx!
  const dGammaR = new Float64Array(d)
  const dAggregate = s.take(Q * d)
  for (let r = 0, o = 0; r < Q; r++, o += d) {
    const inv = ws.aggregateRinv[r]
    let sum = 0
    for (let j = 0; j < d; j++) {
      const n = ws.aggregate[o + j] * inv
      dGammaR[j] += dCross[o + j] * n
      sum += dCross[o + j] * gammaR[j] * n
    }
    const mean = sum / d
    for (let j = 0; j < d; j++) dAggregate[o + j] = (dCross[o + j] * gammaR[j] - ws.aggregate[o + j] * inv * mean) * inv
  }
  grads['crossNorm.gamma'] = Float32Array.from(dGammaR)
  const dValues = s.take(R * d).fill(0)
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      const n = ws.clusters[b * P + p]
      if (!cross || ws.keep[b * N + n] === 0) continue
      dValues.set(dAggregate.subarray((b * N + n) * d, (b * N + n + 1) * d), (b * P + p) * d)
    }
  }
  const dProjected = denseGrads(dValues, ws.projected, R, d, 'valueProj', d)

  const dMixed = denseGrads(dUpdated, ws.mixed, Q, d, 'attnOut', d)
  const dQkv = s.take(Q * 3 * d).fill(0)
  const attentionScale = Math.fround(1 / Math.sqrt(dh))
  const dWeights = new Float64Array(N)
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const w0 = (b * H + h) * N * N
      const qAt = (i: number) => (b * N + i) * 3 * d + h * dh
      for (let i = 0; i < N; i++) {
        const mi = (b * N + i) * d + h * dh
        let dot = 0
        for (let j = 0; j < N; j++) {
          const vj = qAt(j) + 2 * d
          let s = 0
          for (let t = 0; t < dh; t++) {
            s += dMixed[mi + t] * ws.qkv[vj + t]
            dQkv[vj + t] += ws.attention[w0 + i * N + j] * dMixed[mi + t]
          }
          dWeights[j] = s
          dot += s * ws.attention[w0 + i * N + j]
        }
        const qi = qAt(i)
        for (let j = 0; j < N; j++) {
          const dLogit = ws.attention[w0 + i * N + j] * (dWeights[j] - dot) * attentionScale
          const kj = qAt(j) + d
          for (let t = 0; t < dh; t++) {
            dQkv[qi + t] += dLogit * ws.qkv[kj + t]
            dQkv[kj + t] += dLogit * ws.qkv[qi + t]
          }
        }
      }
    }
  }
  const queryStats: RowStats = {normed: ws.queryNormed, rstd: ws.queryRstd}
  const attnIn = affineRows(ws.queryNormed, Q, d, w['attnNorm.gamma'], w['attnNorm.beta'], s.take(Q * d))
  const qkvGrads = denseBackward(dQkv, attnIn, Q, d, w['qkv.kernel'], 3 * d, {bias: true, dx: true, dxInto: s.take(Q * d)})
  grads['qkv.kernel'] = qkvGrads.dw
  grads['qkv.bias'] = qkvGrads.db!
  ;[grads['attnNorm.gamma'], grads['attnNorm.beta']] = layerNormGrads(qkvGrads.dx!, queryStats, Q, d, w['attnNorm.gamma'], dQueries)

  // F̂ = L2norm(P′ W_f), P′ = GELU(LN_p(F_d W_p))
  const dH = s.take(R * d)
  for (let r = 0, o = 0; r < R; r++, o += d) {
    let dot = 0
    for (let j = 0; j < d; j++) dot += dEmbeddings[o + j] * ws.embeddings[o + j]
    const inv = ws.invNorm[r]
    for (let j = 0; j < d; j++) dH[o + j] = (dEmbeddings[o + j] - ws.embeddings[o + j] * dot) * inv
  }
  const dHead = denseGrads(dH, ws.projected, R, d, 'pixelHead', d)
  addInto(dProjected, dHead)
  const pixelIn = affineRows(ws.pixelNormed, R, d, w['pixelNorm.gamma'], w['pixelNorm.beta'], s.take(R * d))
  geluBackward(dProjected, pixelIn)
  const dA = s.take(R * d).fill(0)
  ;[grads['pixelNorm.gamma'], grads['pixelNorm.beta']] = layerNormGrads(
    dProjected,
    {normed: ws.pixelNormed, rstd: ws.pixelRstd},
    R,
    d,
    w['pixelNorm.gamma'],
    dA,
  )
  const dPixels = denseGrads(dA, x, R, C, 'pixelProj', d, outputArray(backend, R * C))

  return [
    output(backend, [B, P, C], dPixels),
    output(backend, [B, N, d], dQueries),
    ...KMAX_PARAMETERS.map((name) => output(backend, inputs[name].shape, grads[name])),
  ]
}
