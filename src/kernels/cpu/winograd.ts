/**
 * The Winograd F(4×4×4, 3×3×3) path of the cpu convolutions (assembly/winograd.ts): forward and
 * filter gradient of stride-1, undilated 3×3×3 convolutions, and through the forward, their
 * stride-1 input gradient (a convolution with the mirrored filter). 27 multiply-adds per output
 * and channel pair become 3.4, at the price of the transforms' additions. Design and
 * measurements: docs/kernels.md.
 */
import {winogradEnabled} from '../../paths.js'
import {copyIn, roundUp, SUM_SLOTS, writeForwardOperands, writeGeometry, type ConvInfo, type Epilogue} from './conv-job.js'
import {JOB, KIND} from './job.js'
import type {ConvRuntime} from './runtime.js'

/** Below this many input channels, im2col stays faster (the GEMMs over channels are too thin). */
export const WINOGRAD_MIN_CHANNELS = 4

let enabled = true
/** Turns the Winograd path off in this process (benchmarks and tests compare it with im2col); SIPL_WINOGRAD=0 does it for a whole run. */
export function setWinograd(on: boolean): void {
  enabled = on
}

/**
 * Whether the Winograd filter gradient computes it: as winogradApplies, and its accumulators (up to
 * 8 slots of 216·Cin·Cout floats, cleared and summed every call) at most 16 MiB a slot. Wider layers
 * (Cin·Cout > 19 418, e.g. 192 → 192) take the im2col filter gradient, whose slots are 27·Cin·Cout.
 */
export function winogradFilterGradApplies(info: ConvInfo): boolean {
  return winogradApplies(info) && FREQUENCIES * info.inChannels * info.outChannels <= FILTER_GRAD_SLOT_FLOATS
}
const FILTER_GRAD_SLOT_FLOATS = 4 * 1024 * 1024

/** Whether the Winograd kernels compute this convolution (else the im2col ones do). */
export function winogradApplies(info: ConvInfo): boolean {
  return (
    enabled &&
    winogradEnabled() &&
    info.filterDepth === 3 &&
    info.filterHeight === 3 &&
    info.filterWidth === 3 &&
    info.strideDepth === 1 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationDepth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    info.inChannels >= WINOGRAD_MIN_CHANNELS &&
    worthTiling(info)
  )
}

/**
 * Enough whole tiles to pay for transforming the filter (216·Cin·Cout values each way, whatever the
 * volume): at least 8 tiles, at least half of their 4³ outputs inside the volume. On the SIPL demo
 * network's deep layers (1³–4³ volumes, 64 channels) Winograd was ten times slower than im2col,
 * on its 8³ layers about the same (docs/bench/2026-11-26-cpu-kernels.md).
 */
function worthTiling(info: ConvInfo): boolean {
  const {tiles} = tiling(info)
  const outputs = info.batchSize * info.outDepth * info.outHeight * info.outWidth
  return tiles >= 8 && 2 * outputs >= tiles * TILE ** 3
}

/**
 * Bytes of transformed tiles a thread keeps per chunk (V and M): both stay in its L2 (1 MiB per
 * core here) between the transforms and the 216 GEMMs. The filter gradient takes larger chunks
 * (V and Y), because its GEMMs are Cin × tiles × Cout with the tiles as the inner dimension: each
 * of them loads and stores its ∂L/∂U block once per chunk, and 8 tiles were too few to pay for it
 * (docs/bench/2026-11-26-cpu-kernels.md).
 */
const CHUNK_BYTES = 384 * 1024
const FILTER_GRAD_CHUNK_BYTES = 1536 * 1024

/** outputs per tile along each axis, and transformed values (frequencies) per tile: F(4, 3) */
const TILE = 4
const FREQUENCIES = 216

function tiling(info: ConvInfo): {tiles: number; tilesD: number; tilesH: number; tilesW: number} {
  const tilesD = Math.ceil(info.outDepth / TILE)
  const tilesH = Math.ceil(info.outHeight / TILE)
  const tilesW = Math.ceil(info.outWidth / TILE)
  return {tiles: info.batchSize * tilesD * tilesH * tilesW, tilesD, tilesH, tilesW}
}

/** Tiles per chunk for rows of `width` floats in both transformed blocks: a multiple of 4 (the GEMM's row group). */
function tilesPerChunk(width: number, bytes: number): number {
  return Math.max(4, Math.floor(bytes / (FREQUENCIES * 4 * width) / 4) * 4)
}

function prepare(rt: ConvRuntime, info: ConvInfo, kind: number, tb: number, width: number): Int32Array {
  const job = rt.job()
  const {tiles, tilesD, tilesH, tilesW} = tiling(info)
  writeGeometry(job, info)
  job[JOB.KIND] = kind
  job[JOB.TILES_D] = tilesD
  job[JOB.TILES_H] = tilesH
  job[JOB.TILES_W] = tilesW
  job[JOB.ROWS_PER_CHUNK] = tb
  job[JOB.CHUNKS] = Math.ceil(tiles / tb)
  // 64 floats for the GEMM's edge tiles, a staged row of 6 voxels and one 6³ window of every
  // channel for the transforms (stagedBytes in assembly/winograd.ts), then the two blocks, each
  // frequency one cache line (16 floats) longer than its rows (frequencyStride)
  const head = 64 + (6 + FREQUENCIES) * roundUp(Math.max(info.inChannels, info.outChannels), 8)
  job[JOB.V_OFFSET] = head * 4
  const stride = head + FREQUENCIES * (tb * width + 2 * 16)
  job[JOB.SCRATCH] = rt.alloc(stride * rt.threads)
  job[JOB.SCRATCH_STRIDE] = stride * 4
  return job
}

/** y = conv3d(x, W) (+ bias, then ReLU, when given) for a convolution where winogradApplies; x is in the heap at byte address `x`; returns y's address. */
export function winogradForward(rt: ConvRuntime, x: number, w: Float32Array, info: ConvInfo, epilogue?: Epilogue): number {
  const {inChannels: cin, outChannels: cout} = info
  const width = roundUp(cin, 4) + roundUp(cout, 4)
  // at least 4 chunks per thread, so that a thread slowed down by the machine leaves work to the others
  const balanced = roundUp(Math.ceil(tiling(info).tiles / (rt.threads * 4)), 4)
  const u = packFilter(rt, w, cin, cout)
  const job = prepare(rt, info, KIND.winogradForward, Math.min(tilesPerChunk(width, CHUNK_BYTES), balanced), width)
  const yLength = info.batchSize * info.outDepth * info.outHeight * info.outWidth * cout
  const y = rt.alloc(yLength)
  writeForwardOperands(rt, job, x, u, y, epilogue)
  rt.run()
  return y
}

/** dW for a convolution where winogradApplies (x and dy in the heap): up to 8 slots of ∂L/∂U summed in order, then mapped back to the 3×3×3 taps. */
export function winogradFilterGrad(rt: ConvRuntime, x: number, dy: number, info: ConvInfo): Float32Array {
  const {inChannels: cin, outChannels: cout} = info
  const width = roundUp(cin, 4) + roundUp(cout, 8)
  // no balancing by thread count: the chunks set the summation order; no more slots than chunks
  // (each slot is 216·Cin·Cout floats to clear and to add up)
  const tb = tilesPerChunk(width, FILTER_GRAD_CHUNK_BYTES)
  const slots = Math.min(SUM_SLOTS, Math.ceil(tiling(info).tiles / tb))
  const job = prepare(rt, info, KIND.winogradFilterGrad, tb, width)
  job[JOB.X] = x
  job[JOB.DY] = dy
  const accLen = FREQUENCIES * cin * cout
  const accStride = roundUp(accLen, 16)
  job[JOB.SLOTS] = slots
  job[JOB.ACC] = rt.alloc(accStride * slots)
  job[JOB.ACC_STRIDE] = accStride * 4
  job[JOB.ACC_LEN] = accLen
  const dw = rt.alloc(27 * cin * cout)
  rt.run()
  // the same job's words for the two reduction jobs: the slots added into the first in order, then
  // mapped back to the taps 4 (ci, co) pairs at a time (their scratch fits in the threads')
  job[JOB.KIND] = KIND.sumSlots
  job[JOB.COUNTER] = 0
  job[JOB.ROWS_PER_CHUNK] = SUM_ITEM
  job[JOB.CHUNKS] = Math.ceil(accLen / SUM_ITEM)
  if (slots > 1) rt.run()
  job[JOB.KIND] = KIND.winogradFilterGradReduce
  job[JOB.COUNTER] = 0
  job[JOB.W] = dw
  job[JOB.ROWS_PER_CHUNK] = REDUCE_GROUPS
  job[JOB.CHUNKS] = Math.ceil((cin * cout) / (4 * REDUCE_GROUPS))
  rt.run()
  return rt.f32(dw, 27 * cin * cout).slice()
}

/** floats per work item of the slot sum, and groups of 4 (ci, co) pairs per work item of the transform back */
const SUM_ITEM = 16384
const REDUCE_GROUPS = 8

/** U = the transformed filter, packed for the forward's GEMMs, made by every thread (input channels as work items); returns its address. */
function packFilter(rt: ConvRuntime, w: Float32Array, cin: number, cout: number): number {
  const u = rt.alloc(FREQUENCIES * roundUp(cout, 8) * cin)
  const raw = copyIn(rt, w)
  const job = rt.job()
  job[JOB.KIND] = KIND.winogradPackFilter
  job[JOB.X] = raw
  job[JOB.W] = u
  job[JOB.CIN] = cin
  job[JOB.COUT] = cout
  const stride = 4 * (27 + 54 + 108 + 4 * FREQUENCIES)
  job[JOB.SCRATCH] = rt.alloc(stride * rt.threads)
  job[JOB.SCRATCH_STRIDE] = stride * 4
  rt.run()
  return u
}
