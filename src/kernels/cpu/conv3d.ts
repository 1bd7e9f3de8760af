/**
 * Conv3D, Conv3DBackpropFilterV2 and Conv3DBackpropInputV2 for tfjs's `cpu` backend as
 * im2col + GEMM in WebAssembly SIMD on a worker pool (assembly/conv3d.ts, runtime.ts). Each
 * call copies its inputs into the shared wasm heap, posts one job (row chunks of the im2col
 * matrix, taken dynamically by every thread), and copies the result out into a new tensor.
 * Design and measurements: docs/kernels.md.
 */
import {tf} from '../../backend/tf.js'
import {environment} from '../../paths.js'
import {JOB, JOB_ADDRESS, KIND} from './job.js'
import {convRuntime, type ConvRuntime} from './runtime.js'
import {sumRows} from './elementwise.js'
import {floats, output} from './tensors.js'
import {copyIn, roundUp, writeGeometry, type ConvInfo} from './conv-job.js'
import {winogradApplies, winogradFilterGrad, winogradForward} from './winograd.js'

type TensorInfo = tf.TensorInfo
interface KernelArgs {
  inputs: Record<string, TensorInfo>
  backend: unknown
  attrs?: Record<string, unknown>
}

/** Bytes of im2col rows each thread builds per chunk: fits the 1 MiB L2 next to the filter panels. */
let chunkBytes = 192 * 1024
export function setChunkBytes(bytes: number): void {
  chunkBytes = bytes
}

function runtime(): ConvRuntime {
  return convRuntime(environment().threads)
}

/**
 * Rows of the im2col matrix per chunk: L2-sized, but (balance) at least 4 chunks per thread. The
 * filter gradient passes balance = false: its chunks set the summation order, which must not
 * depend on the thread count.
 */
function rowsPerChunk(rows: number, Kp: number, threads: number, balance: boolean): number {
  const byCache = Math.max(4, Math.floor(chunkBytes / (Kp * 4 * 4)) * 4)
  const byBalance = balance ? roundUp(Math.ceil(rows / (threads * 4)), 4) : Infinity
  return Math.max(4, Math.min(byCache, byBalance))
}

/** Fills the geometry words and the row chunking of the im2col kernels. */
function describe(job: Int32Array, info: ConvInfo, kind: number, rt: ConvRuntime): {M: number; K: number; Kp: number; mc: number} {
  const K = info.filterDepth * info.filterHeight * info.filterWidth * info.inChannels
  const Kp = roundUp(K, 8)
  const M = info.batchSize * info.outDepth * info.outHeight * info.outWidth
  const mc = rowsPerChunk(M, Kp, rt.threads, kind !== KIND.filterGrad)
  writeGeometry(job, info)
  job[JOB.KIND] = kind
  job[JOB.CHUNKS] = Math.ceil(M / mc)
  job[JOB.ROWS_PER_CHUNK] = mc
  job[JOB.K] = K
  job[JOB.KP] = Kp
  return {M, K, Kp, mc}
}

/** Per-thread scratch: 256 bytes for edge tiles + one chunk of im2col rows. */
function scratch(job: Int32Array, rt: ConvRuntime, mc: number, Kp: number): void {
  const stride = 64 + roundUp(mc * Kp, 16)
  job[JOB.SCRATCH] = rt.alloc(stride * rt.threads)
  job[JOB.SCRATCH_STRIDE] = stride * 4
}

/** y = conv3d(x, W): y[m, :] = im2col(x)[m, :] · W[K, Cout] (+ bias, then ReLU, when given) */
export function conv3dForward(
  x: Float32Array,
  w: Float32Array,
  info: ConvInfo,
  epilogue?: {bias: Float32Array; relu: boolean},
): Float32Array {
  if (winogradApplies(info)) return winogradForward(x, w, info, epilogue)
  const rt = runtime()
  rt.reset()
  const job = rt.job()
  const {M, K, Kp, mc} = describe(job, info, KIND.forward, rt)
  const cout = info.outChannels
  const wRaw = copyIn(rt, w)
  const wPacked = rt.alloc(roundUp(cout, 8) * Kp)
  rt.exports.packFilter(wRaw, K, cout, Kp, wPacked)
  const y = rt.alloc(M * cout)
  job[JOB.X] = copyIn(rt, x)
  job[JOB.W] = wPacked
  job[JOB.DY] = y
  if (epilogue) {
    job[JOB.BIAS] = copyIn(rt, epilogue.bias)
    job[JOB.RELU] = epilogue.relu ? 1 : 0
  }
  scratch(job, rt, mc, Kp)
  rt.run()
  return rt.f32(y, M * cout).slice()
}

/**
 * Accumulators of the filter gradient: a fixed number, whatever the thread count, so that the
 * summation order, hence every bit of dW, is the same from run to run (exact resume, docs/training.md).
 */
const FILTER_GRAD_SLOTS = 8

/** dW = im2col(x)ᵀ · dy: chunk c is added into slot c mod 8, in order; the slots are summed in order at the end. */
export function conv3dFilterGrad(x: Float32Array, dy: Float32Array, info: ConvInfo): Float32Array {
  if (winogradApplies(info)) return winogradFilterGrad(x, dy, info)
  const rt = runtime()
  rt.reset()
  const job = rt.job()
  const {K, Kp, mc} = describe(job, info, KIND.filterGrad, rt)
  const cout = info.outChannels
  job[JOB.X] = copyIn(rt, x)
  job[JOB.DY] = copyIn(rt, dy)
  scratch(job, rt, mc, Kp)
  const accLen = cout * Kp
  const accStride = roundUp(accLen, 16)
  job[JOB.SLOTS] = FILTER_GRAD_SLOTS
  job[JOB.ACC] = rt.alloc(accStride * FILTER_GRAD_SLOTS)
  job[JOB.ACC_STRIDE] = accStride * 4
  job[JOB.ACC_LEN] = accLen
  const dw = rt.alloc(K * cout)
  rt.run()
  rt.exports.reduceFilterGrad(JOB_ADDRESS, dw)
  return rt.f32(dw, K * cout).slice()
}

/**
 * At stride 1 the input gradient is itself a convolution: dx = conv(dy, W′) with the filter
 * mirrored in space and its channels swapped, W′[kd, kh, kw, co, ci] = W[kD−1−kd, kH−1−kh, kW−1−kw, ci, co],
 * and padding kD−1−front (etc.) in front. That runs on the forward kernel, whose rows are
 * disjoint: no per-thread copies of dx, no scatter, no summing job.
 */
function stride1InputGrad(dy: Float32Array, w: Float32Array, info: ConvInfo): Float32Array {
  const {filterDepth: kD, filterHeight: kH, filterWidth: kW, inChannels: cin, outChannels: cout} = info
  const mirrored = new Float32Array(w.length)
  for (let d = 0; d < kD; d++)
    for (let h = 0; h < kH; h++)
      for (let x = 0; x < kW; x++) {
        const from = ((d * kH + h) * kW + x) * cin * cout
        const to = (((kD - 1 - d) * kH + (kH - 1 - h)) * kW + (kW - 1 - x)) * cout * cin
        for (let ci = 0; ci < cin; ci++) for (let co = 0; co < cout; co++) mirrored[to + co * cin + ci] = w[from + ci * cout + co]
      }
  const transposed: ConvInfo = {
    ...info,
    inDepth: info.outDepth,
    inHeight: info.outHeight,
    inWidth: info.outWidth,
    inChannels: cout,
    outDepth: info.inDepth,
    outHeight: info.inHeight,
    outWidth: info.inWidth,
    outChannels: cin,
    dilationDepth: 1,
    dilationHeight: 1,
    dilationWidth: 1,
    padInfo: {...info.padInfo, front: kD - 1 - info.padInfo.front, top: kH - 1 - info.padInfo.top, left: kW - 1 - info.padInfo.left},
  }
  return conv3dForward(dy, mirrored, transposed)
}

/**
 * dx = col2im(dy · Wᵀ), every thread scattering into one dx. Chunks are slabs of output depth
 * planes thick enough that slabs c and c + 2 never touch the same input voxel; the even slabs run
 * first, then the odd ones, so concurrent chunks write disjoint voxels and each voxel receives its
 * contributions in one fixed order: no per-thread copies of dx, no summing job, and the same bits
 * in every run.
 */
export function conv3dInputGrad(dy: Float32Array, w: Float32Array, info: ConvInfo): Float32Array {
  if (info.strideDepth === 1 && info.strideHeight === 1 && info.strideWidth === 1) return stride1InputGrad(dy, w, info)
  const rt = runtime()
  rt.reset()
  const job = rt.job()
  const {K, Kp, mc} = describe(job, info, KIND.inputGrad, rt)
  const cout = info.outChannels
  const wRaw = copyIn(rt, w)
  const wPacked = rt.alloc(Kp * cout)
  rt.exports.packFilterTransposed(wRaw, K, cout, Kp, wPacked)
  job[JOB.W] = wPacked
  job[JOB.DY] = copyIn(rt, dy)
  scratch(job, rt, mc, Kp)
  const dxLen = info.batchSize * info.inDepth * info.inHeight * info.inWidth * info.inChannels
  const dx = rt.alloc(dxLen)
  rt.f32(dx, dxLen).fill(0)
  job[JOB.ACC0] = dx
  // plane p of dy reaches input planes p·s − pad … p·s − pad + k − 1: slabs of h planes with
  // h·s > k − 1 − s leave a gap between slab c and slab c + 2
  const {filterDepth: k, strideDepth: s, outDepth, outHeight, outWidth} = info
  const slab = Math.max(1, Math.floor((k - 1 - s) / s) + 1)
  const planes = info.batchSize * outDepth
  const slabs = Math.ceil(planes / slab)
  job[JOB.ROWS_PER_CHUNK] = slab * outHeight * outWidth
  job[JOB.SUB_ROWS] = mc
  job[JOB.CHUNK_STEP] = 2
  for (const parity of [0, 1]) {
    job[JOB.COUNTER] = 0
    job[JOB.CHUNK_FIRST] = parity
    job[JOB.CHUNKS] = Math.ceil((slabs - parity) / 2)
    if (job[JOB.CHUNKS] > 0) rt.run()
  }
  return rt.f32(dx, dxLen).slice()
}

type Triple = [number, number, number] | number
type Pad = 'valid' | 'same' | number

export function conv3dKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {x, filter} = inputs
  const {strides, pad, dilations} = attrs as {strides: Triple; pad: Pad; dilations: Triple}
  const info = tf.backend_util.computeConv3DInfo(
    x.shape as [number, number, number, number, number],
    filter.shape as [number, number, number, number, number],
    strides,
    dilations,
    pad as 'valid' | 'same',
  )
  return output(backend, info.outShape, conv3dForward(floats(backend, x), floats(backend, filter), info))
}

export function conv3dBackpropFilterKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {x, dy} = inputs
  const {strides, pad, filterShape} = attrs as {strides: Triple; pad: Pad; filterShape: number[]}
  const info = tf.backend_util.computeConv3DInfo(
    x.shape as [number, number, number, number, number],
    filterShape as [number, number, number, number, number],
    strides,
    1,
    pad as 'valid' | 'same',
  )
  return output(backend, filterShape, conv3dFilterGrad(floats(backend, x), floats(backend, dy), info))
}

export function conv3dBackpropInputKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {dy, filter} = inputs
  const {strides, pad, inputShape} = attrs as {strides: Triple; pad: Pad; inputShape: number[]}
  const info = tf.backend_util.computeConv3DInfo(
    inputShape as [number, number, number, number, number],
    filter.shape as [number, number, number, number, number],
    strides,
    1,
    pad as 'valid' | 'same',
  )
  return output(backend, inputShape, conv3dInputGrad(floats(backend, dy), floats(backend, filter), info))
}

/** Conv3D + bias (+ ReLU) in one pass: the epilogue runs on each row chunk while it is in cache. */
export function conv3dBiasActKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {x, filter, bias} = inputs
  const {strides, pad, relu} = attrs as {strides: Triple; pad: Pad; relu: boolean}
  const info = tf.backend_util.computeConv3DInfo(
    x.shape as [number, number, number, number, number],
    filter.shape as [number, number, number, number, number],
    strides,
    1,
    pad as 'valid' | 'same',
  )
  const epilogue = {bias: floats(backend, bias), relu}
  return output(backend, info.outShape, conv3dForward(floats(backend, x), floats(backend, filter), info, epilogue))
}

const RELU_STEP = [0, 1, NaN]

/**
 * The backward of bias + ReLU: dz = dy · step(y) (all of dy without ReLU), db = Σ dz over every
 * axis but the last. The product, not a select, so that NaN in dy propagates as in the composition
 * (dy · Step(y)); two passes, because one pass with a per-channel accumulator runs 2–3× slower.
 */
export function biasActGradKernel({inputs, backend, attrs}: KernelArgs): TensorInfo[] {
  const {dy, y} = inputs
  const relu = (attrs as {relu: boolean}).relu
  const g = floats(backend, dy)
  const out = floats(backend, y)
  const channels = y.shape[y.shape.length - 1]
  let dz = g
  if (relu) {
    dz = new Float32Array(g.length)
    // Step(y) from a table indexed by comparisons, not ternaries: the ReLU pattern is half on, half
    // off, and a branch mispredicts every other element (4–5× slower)
    for (let i = 0; i < g.length; i++) {
      const v = out[i]
      dz[i] = g[i] * RELU_STEP[+(v > 0) + 2 * +(v !== v)]
    }
  }
  const db = new Float32Array(channels)
  sumRows(dz, 0, g.length / channels, channels, db, 0)
  return [output(backend, y.shape, relu ? dz : g.slice()), output(backend, [channels], db)]
}
