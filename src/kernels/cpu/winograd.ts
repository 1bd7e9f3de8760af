/**
 * The Winograd F(2×2×2, 3×3×3) path of the cpu convolutions (assembly/winograd.ts): forward and
 * filter gradient of stride-1, undilated 3×3×3 convolutions, and through the forward, their
 * stride-1 input gradient (a convolution with the mirrored filter). 27 multiply-adds per output
 * and channel pair become 8, at the price of additions in the transforms. Design and
 * measurements: docs/kernels.md.
 */
import {environment} from '../../paths.js'
import {copyIn, roundUp, writeGeometry, type ConvInfo} from './conv-job.js'
import {JOB, JOB_ADDRESS, KIND} from './job.js'
import {convRuntime} from './runtime.js'

/** Below this many input channels, im2col stays faster (the GEMMs over channels are too thin). */
export const WINOGRAD_MIN_CHANNELS = 4

let enabled = true
/** Turns the Winograd path off (benchmarks and tests compare it with im2col). */
export function setWinograd(on: boolean): void {
  enabled = on
}

/** Whether the Winograd kernels compute this convolution (else the im2col ones do). */
export function winogradApplies(info: ConvInfo): boolean {
  return (
    enabled &&
    info.filterDepth === 3 &&
    info.filterHeight === 3 &&
    info.filterWidth === 3 &&
    info.strideDepth === 1 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationDepth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    info.inChannels >= WINOGRAD_MIN_CHANNELS
  )
}

/**
 * Bytes of transformed tiles a thread keeps per chunk (V and M, or V and Y): both stay in its
 * L2 (1 MiB per core here) between the transforms and the 64 GEMMs.
 */
let chunkBytes = 384 * 1024
export function setWinogradChunkBytes(bytes: number): void {
  chunkBytes = bytes
}

/** The filter gradient sums its chunks into this many slots whatever the thread count: the same bits in every run. */
const FILTER_GRAD_SLOTS = 8

function tiling(info: ConvInfo): {tiles: number; tilesD: number; tilesH: number; tilesW: number} {
  const tilesD = Math.ceil(info.outDepth / 2)
  const tilesH = Math.ceil(info.outHeight / 2)
  const tilesW = Math.ceil(info.outWidth / 2)
  return {tiles: info.batchSize * tilesD * tilesH * tilesW, tilesD, tilesH, tilesW}
}

/** Tiles per chunk for rows of `width` floats in both transformed blocks: a multiple of 4 (the GEMM's row group). */
function tilesPerChunk(width: number): number {
  return Math.max(4, Math.floor(chunkBytes / (64 * 4 * width) / 4) * 4)
}

function prepare(info: ConvInfo, kind: number, tb: number, width: number) {
  const rt = convRuntime(environment().threads)
  rt.reset()
  const job = rt.job()
  const {tiles, tilesD, tilesH, tilesW} = tiling(info)
  writeGeometry(job, info)
  job[JOB.KIND] = kind
  job[JOB.TILES_D] = tilesD
  job[JOB.TILES_H] = tilesH
  job[JOB.TILES_W] = tilesW
  job[JOB.ROWS_PER_CHUNK] = tb
  job[JOB.CHUNKS] = Math.ceil(tiles / tb)
  // 64 floats for the GEMM's edge tiles, one 4³ window of every channel for the transforms, then
  // the two blocks, each frequency one cache line longer than its rows (frequencyStride in assembly/winograd.ts)
  const head = 64 + 64 * roundUp(Math.max(info.inChannels, info.outChannels), 8)
  job[JOB.V_OFFSET] = head * 4
  const stride = head + 64 * (tb * width + 32)
  job[JOB.SCRATCH] = rt.alloc(stride * rt.threads)
  job[JOB.SCRATCH_STRIDE] = stride * 4
  return {rt, job}
}

/** y = conv3d(x, W) (+ bias, then ReLU, when given) for a convolution where winogradApplies. */
export function winogradForward(
  x: Float32Array,
  w: Float32Array,
  info: ConvInfo,
  epilogue?: {bias: Float32Array; relu: boolean},
): Float32Array {
  const {inChannels: cin, outChannels: cout} = info
  const width = roundUp(cin, 4) + roundUp(cout, 4)
  const threads = convRuntime(environment().threads).threads
  // at least 4 chunks per thread, so that a thread slowed down by the machine leaves work to the others
  const balanced = roundUp(Math.ceil(tiling(info).tiles / (threads * 4)), 4)
  const {rt, job} = prepare(info, KIND.winogradForward, Math.min(tilesPerChunk(width), balanced), width)
  const u = rt.alloc(64 * roundUp(cout, 8) * cin)
  rt.exports.winogradPackFilter(copyIn(rt, w), cin, cout, u, rt.alloc(128))
  const yLength = info.batchSize * info.outDepth * info.outHeight * info.outWidth * cout
  const y = rt.alloc(yLength)
  job[JOB.X] = copyIn(rt, x)
  job[JOB.W] = u
  job[JOB.DY] = y
  if (epilogue) {
    job[JOB.BIAS] = copyIn(rt, epilogue.bias)
    job[JOB.RELU] = epilogue.relu ? 1 : 0
  }
  rt.run()
  return rt.f32(y, yLength).slice()
}

/** dW for a convolution where winogradApplies: 8 slots of ∂L/∂U summed in order, then mapped back to the 3×3×3 taps. */
export function winogradFilterGrad(x: Float32Array, dy: Float32Array, info: ConvInfo): Float32Array {
  const {inChannels: cin, outChannels: cout} = info
  const width = roundUp(cin, 4) + roundUp(cout, 8)
  // no balancing by thread count: the chunks set the summation order
  const tb = Math.max(4, Math.min(tilesPerChunk(width), roundUp(Math.ceil(tiling(info).tiles / FILTER_GRAD_SLOTS), 4)))
  const {rt, job} = prepare(info, KIND.winogradFilterGrad, tb, width)
  job[JOB.X] = copyIn(rt, x)
  job[JOB.DY] = copyIn(rt, dy)
  const accLen = 64 * cin * cout
  const accStride = roundUp(accLen, 16)
  job[JOB.SLOTS] = FILTER_GRAD_SLOTS
  job[JOB.ACC] = rt.alloc(accStride * FILTER_GRAD_SLOTS)
  job[JOB.ACC_STRIDE] = accStride * 4
  job[JOB.ACC_LEN] = accLen
  const dw = rt.alloc(27 * cin * cout)
  const tmp = rt.alloc(160)
  rt.run()
  rt.exports.winogradFilterGradReduce(JOB_ADDRESS, dw, tmp)
  return rt.f32(dw, 27 * cin * cout).slice()
}
