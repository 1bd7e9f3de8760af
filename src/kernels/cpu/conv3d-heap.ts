/**
 * The convolution jobs of tfjs's `cpu` backend on the shared wasm heap, as im2col + GEMM in
 * WebAssembly SIMD on a worker pool (assembly/conv3d.ts, runtime.ts): each job's operands are
 * copied into the heap (or are there already, from the previous job of a fused kernel), one job is
 * posted (row chunks of the im2col matrix, taken dynamically by every thread), and its result is
 * read back from the heap. The tfjs kernels over these jobs are in conv3d.ts. Design and
 * measurements: docs/kernels.md.
 */
import {JOB, KIND} from './job.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {
  copyIn,
  ELEMENTS_PER_CHUNK,
  float64Slots,
  roundUp,
  SUM_SLOTS,
  writeForwardOperands,
  writeGeometry,
  writeRows,
  type ConvInfo,
  type Epilogue,
} from './conv-job.js'
import {winogradApplies, winogradFilterGrad, winogradFilterGradApplies, winogradForward} from './winograd.js'

/** Bytes of im2col rows each thread builds per chunk: fits the 1 MiB L2 next to the filter panels. */
const CHUNK_BYTES = 192 * 1024
/**
 * Rows per chunk of the filter gradient at least, whatever CHUNK_BYTES says: each chunk is a
 * rank-(rows) update of a whole Cout × Kp slot, and on the coarse grids' wide layers (btcv's 3³
 * 384 → 384, Kp = 10 368) chunks of 4 rows made the slots' memory traffic outweigh the products
 */
const FILTER_GRAD_ROWS = 16

/**
 * Rows of the im2col matrix per chunk: L2-sized, but (balance) at least 4 chunks per thread. The
 * filter gradient passes balance = false: its chunks set the summation order, which must not
 * depend on the thread count.
 */
function rowsPerChunk(rows: number, Kp: number, threads: number, balance: boolean): number {
  // the filter gradient (balance = false) adds each chunk's rows into a Cout × Kp slot: at least
  // FILTER_GRAD_ROWS of them, or the slot's traffic outweighs the products on wide layers
  const byCache = Math.max(balance ? 4 : FILTER_GRAD_ROWS, Math.floor(CHUNK_BYTES / (Kp * 4 * 4)) * 4)
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

/**
 * y = conv3d(x, W): y[m, :] = im2col(x)[m, :] · W[K, Cout] (+ bias, then ReLU, when given), as a
 * view of the heap: valid until the next kernel call
 */
export function conv3dForward(x: Float32Array, w: Float32Array, info: ConvInfo, epilogue?: Epilogue): Float32Array {
  const rt = freshRuntime()
  return rt.f32(forwardAt(rt, copyIn(rt, x), w, info, epilogue), outputLength(info))
}

export const outputLength = (info: ConvInfo) => info.batchSize * info.outDepth * info.outHeight * info.outWidth * info.outChannels
export const inputLength = (info: ConvInfo) => info.batchSize * info.inDepth * info.inHeight * info.inWidth * info.inChannels

/**
 * conv3dForward with x already in the heap at byte address `x`: allocates after what the heap
 * holds and returns the address of y (outputLength(info) floats).
 */
export function forwardAt(rt: ConvRuntime, x: number, w: Float32Array, info: ConvInfo, epilogue?: Epilogue): number {
  if (directApplies(info)) return directForward(rt, x, w, info, epilogue)
  if (winogradApplies(info)) return winogradForward(rt, x, w, info, epilogue)
  const job = rt.job()
  const {M, K, Kp, mc} = describe(job, info, KIND.forward, rt)
  const cout = info.outChannels
  const wRaw = copyIn(rt, w)
  const wPacked = rt.alloc(roundUp(cout, 8) * Kp)
  rt.exports.packFilter(wRaw, K, cout, Kp, wPacked)
  const y = rt.alloc(M * cout)
  writeForwardOperands(rt, job, x, wPacked, y, epilogue)
  scratch(job, rt, mc, Kp)
  rt.run()
  return y
}

/**
 * A stride-1 convolution of one input channel into a multiple of 8 channels (the first layer of a
 * single-modality net): the direct job instead of im2col, whose rows there are one float per tap.
 * The same multiply-add chains as im2col + GEMM, so the same bits (assembly/conv3d.ts `convDirect`).
 */
function directApplies(info: ConvInfo): boolean {
  const unit = [info.strideDepth, info.strideHeight, info.strideWidth, info.dilationDepth, info.dilationHeight, info.dilationWidth]
  return info.inChannels === 1 && info.outChannels % 8 === 0 && unit.every((v) => v === 1)
}

/** Output rows (b, od, oh) per work item: ~16 per thread, so that a thread slowed down by the machine takes fewer */
const directRowsPerChunk = (rows: number, threads: number) => Math.max(1, Math.floor(rows / (16 * threads)))

function directForward(rt: ConvRuntime, x: number, w: Float32Array, info: ConvInfo, epilogue?: Epilogue): number {
  const {batchSize: B, inDepth, inHeight, inWidth, outDepth, outHeight, outWidth, outChannels: cout} = info
  const {filterDepth: kD, filterHeight: kH, filterWidth: kW} = info
  const K = kD * kH * kW
  const Kp = roundUp(K, 8)
  const wRaw = copyIn(rt, w)
  const wPacked = rt.alloc(cout * Kp)
  rt.exports.packFilter(wRaw, K, cout, Kp, wPacked)
  const [Dp, Hp, Wp] = [outDepth + kD - 1, outHeight + kH - 1, outWidth + kW - 1]
  const padded = rt.alloc(B * Dp * Hp * Wp)
  const {front, top, left} = info.padInfo
  rt.exports.padVolume(x, B, inDepth, inHeight, inWidth, front, top, left, Dp, Hp, Wp, padded)
  const y = rt.alloc(B * outDepth * outHeight * outWidth * cout)
  const job = rt.job()
  writeGeometry(job, info)
  job[JOB.KIND] = KIND.directForward
  job[JOB.K] = K
  job[JOB.KP] = Kp
  writeForwardOperands(rt, job, padded, wPacked, y, epilogue)
  const rows = B * outDepth * outHeight
  writeRows(job, rows, directRowsPerChunk(rows, rt.threads))
  rt.run()
  return y
}

/** dW = im2col(x)ᵀ · dy: chunk c is added into slot c mod 8, in order; the slots are summed in order at the end. */
export function conv3dFilterGrad(x: Float32Array, dy: Float32Array, info: ConvInfo): Float32Array {
  const rt = freshRuntime()
  return filterGradAt(rt, copyIn(rt, x), copyIn(rt, dy), info)
}

export function filterGradAt(rt: ConvRuntime, x: number, dy: number, info: ConvInfo): Float32Array {
  if (winogradFilterGradApplies(info)) return winogradFilterGrad(rt, x, dy, info)
  const job = rt.job()
  const {K, Kp, mc} = describe(job, info, KIND.filterGrad, rt)
  const cout = info.outChannels
  job[JOB.X] = x
  job[JOB.DY] = dy
  scratch(job, rt, mc, Kp)
  const accLen = cout * Kp
  const accStride = roundUp(accLen, 16)
  // fewer chunks than SUM_SLOTS: a slot per chunk. The empty slots would only be cleared and added
  // (+0 added to a sum that is never −0: the same bits), and on a coarse grid with many channels
  // (1³ × 64 → 64, Kp = 1 728) clearing and reducing 8 of them took most of the gradient's time.
  // At least one: an empty output (no chunks) still needs its slot cleared, or dW is the heap's stale values
  const slots = Math.max(1, Math.min(SUM_SLOTS, job[JOB.CHUNKS]))
  job[JOB.SLOTS] = slots
  job[JOB.ACC] = rt.alloc(accStride * slots)
  job[JOB.ACC_STRIDE] = accStride * 4
  job[JOB.ACC_LEN] = accLen
  const dw = rt.alloc(K * cout)
  rt.run()
  // the slots added into the first in order (the same words), then dWᵀ transposed into dW
  if (slots > 1) {
    job[JOB.KIND] = KIND.sumSlots
    job[JOB.COUNTER] = 0
    writeRows(job, accLen, ELEMENTS_PER_CHUNK)
    rt.run()
  }
  rt.exports.transposeFilterGrad(job[JOB.ACC], K, cout, Kp, dw)
  return rt.f32(dw, K * cout).slice()
}

/**
 * At stride 1 the input gradient is itself a convolution: dx = conv(dy, W′) with the filter
 * mirrored in space and its channels swapped, W′[kd, kh, kw, co, ci] = W[kD−1−kd, kH−1−kh, kW−1−kw, ci, co],
 * and padding kD−1−front (etc.) in front. That runs on the forward kernel, whose rows are
 * disjoint: no per-thread copies of dx, no scatter, no summing job.
 */
function stride1InputGrad(rt: ConvRuntime, dy: number, w: Float32Array, info: ConvInfo, epilogue?: Epilogue): number {
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
  return forwardAt(rt, dy, mirrored, transposed, epilogue)
}

/**
 * dx = col2im(dy · Wᵀ), every thread scattering into one dx. Chunks are slabs of output depth
 * planes thick enough that slabs c and c + 2 never touch the same input voxel; the even slabs run
 * first, then the odd ones, so concurrent chunks write disjoint voxels and each voxel receives its
 * contributions in one fixed order: no per-thread copies of dx, no summing job, and the same bits
 * in every run. Returns a view of the heap: valid until the next kernel call.
 */
export function conv3dInputGrad(dy: Float32Array, w: Float32Array, info: ConvInfo): Float32Array {
  const rt = freshRuntime()
  return rt.f32(inputGradAt(rt, copyIn(rt, dy), w, info), inputLength(info))
}

/**
 * The input gradient with dy in the heap: returns the address of dx (inputLength(info) floats).
 * With `bias`, dx starts from the bias instead of zeros (or gets it in the forward's epilogue at
 * stride 1): a transposed convolution + bias for the price of the transposed convolution.
 */
export function inputGradAt(rt: ConvRuntime, dy: number, w: Float32Array, info: ConvInfo, bias?: Float32Array): number {
  if (info.strideDepth === 1 && info.strideHeight === 1 && info.strideWidth === 1)
    return stride1InputGrad(rt, dy, w, info, bias && {bias, relu: false})
  if (directTransposedApplies(info)) return directTransposed(rt, dy, w, info, bias)
  const job = rt.job()
  const {K, Kp, mc} = describe(job, info, KIND.inputGrad, rt)
  const cout = info.outChannels
  const wRaw = copyIn(rt, w)
  const wPacked = rt.alloc(Kp * cout)
  rt.exports.packFilterTransposed(wRaw, K, cout, Kp, wPacked)
  job[JOB.W] = wPacked
  job[JOB.DY] = dy
  scratch(job, rt, mc, Kp)
  const dx = biasOrZeros(rt, inputLength(info), bias)
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
  return dx
}

/** dx for a scatter to add into: the bias in every row (one row, then doubling copies), or zeros */
function biasOrZeros(rt: ConvRuntime, length: number, bias?: Float32Array): number {
  const dx = rt.alloc(length)
  const start = rt.f32(dx, length)
  if (bias) {
    start.set(bias)
    for (let filled = bias.length; filled < length; filled *= 2) start.copyWithin(filled, 0, Math.min(filled, length - filled))
  } else start.fill(0)
  return dx
}

/**
 * Stride = kernel, no padding, into a multiple of 8 channels: each dx voxel receives one dy voxel
 * through one tap (the up-sampling of the SIPL backbone and unet-ref), the direct job instead of
 * the GEMM into im2col rows and their scatter, with the same bits (assembly/conv3d.ts `convDirectTransposed`).
 */
export function directTransposedApplies(info: ConvInfo): boolean {
  const {filterDepth: kD, filterHeight: kH, filterWidth: kW, padInfo} = info
  return (
    info.strideDepth === kD &&
    info.strideHeight === kH &&
    info.strideWidth === kW &&
    [info.dilationDepth, info.dilationHeight, info.dilationWidth].every((v) => v === 1) &&
    padInfo.front === 0 &&
    padInfo.top === 0 &&
    padInfo.left === 0 &&
    info.inDepth === info.outDepth * kD &&
    info.inHeight === info.outHeight * kH &&
    info.inWidth === info.outWidth * kW &&
    info.inChannels % 8 === 0
  )
}

/**
 * The direct job of directTransposedApplies: dx = b + conv3dTranspose(dy, W), + residual when
 * given (an address of dx's shape, or 0): returns dx's address
 */
export function directTransposed(rt: ConvRuntime, dy: number, w: Float32Array, info: ConvInfo, bias?: Float32Array, residual = 0): number {
  const {inChannels: cin, outChannels: cout} = info
  const taps = info.filterDepth * info.filterHeight * info.filterWidth
  // w is [taps, cin, cout]: per tap and dy channel, the dx channels side by side
  const perTap = new Float32Array(w.length)
  for (let t = 0; t < taps; t++)
    for (let ci = 0; ci < cin; ci++) for (let c = 0; c < cout; c++) perTap[(t * cout + c) * cin + ci] = w[(t * cin + ci) * cout + c]
  const wAt = copyIn(rt, perTap)
  const dx = rt.alloc(inputLength(info))
  const job = rt.job()
  writeGeometry(job, info)
  job[JOB.KIND] = KIND.directTransposed
  job[JOB.X] = dy
  job[JOB.W] = wAt
  job[JOB.ACC0] = dx
  job[JOB.BIAS] = bias ? copyIn(rt, bias) : 0
  job[JOB.RESIDUAL] = residual
  const rows = info.batchSize * info.inDepth * info.inHeight
  writeRows(job, rows, directRowsPerChunk(rows, rt.threads))
  rt.run()
  return dx
}

/** Rows of dz per chunk of the bias/ReLU backward (its chunks go into SUM_SLOTS, as the filter gradient's). */
const BIAS_GRAD_ROWS = 256

/**
 * dz = dy · step(y) in place in the heap (dz = dy without ReLU), and db = Σ_rows dz: float32
 * vectors per chunk of 256 rows, chunks added in float64 into 8 slots in order, the slots summed
 * in order here.
 */
export function biasActGradAt(rt: ConvRuntime, dz: number, y: number, rows: number, channels: number, relu: boolean): Float32Array {
  const job = rt.job()
  job[JOB.KIND] = KIND.biasActGrad
  job[JOB.DY] = dz
  job[JOB.X] = y
  job[JOB.RELU] = relu ? 1 : 0
  job[JOB.COUT] = channels
  const chunks = writeRows(job, rows, BIAS_GRAD_ROWS)
  const totals = float64Slots(rt, job, chunks, channels)
  rt.run()
  return Float32Array.from(totals())
}
