/**
 * What every convolution job of the wasm module needs from JS: the geometry words of the job
 * descriptor (src/kernels/cpu/job.ts) and copies into the shared heap.
 */
import {tf} from '../../backend/tf.js'
import {JOB} from './job.js'
import type {ConvRuntime} from './runtime.js'

export type ConvInfo = ReturnType<typeof tf.backend_util.computeConv3DInfo>

export const roundUp = (n: number, m: number) => Math.ceil(n / m) * m

/**
 * Accumulators of every summing job (im2col and Winograd filter gradients, the fused bias
 * gradient): a fixed number, whatever the thread count, so that the summation order, hence every
 * bit of the result, is the same from run to run (exact resume, docs/training.md).
 */
export const SUM_SLOTS = 8

/** The shape words of a job: batch, volumes, channels, filter, strides, dilations, padding. */
export function writeGeometry(job: Int32Array, info: ConvInfo): void {
  const words: [number, number][] = [
    [JOB.BATCH, info.batchSize],
    [JOB.IN_D, info.inDepth],
    [JOB.IN_H, info.inHeight],
    [JOB.IN_W, info.inWidth],
    [JOB.CIN, info.inChannels],
    [JOB.OUT_D, info.outDepth],
    [JOB.OUT_H, info.outHeight],
    [JOB.OUT_W, info.outWidth],
    [JOB.COUT, info.outChannels],
    [JOB.K_D, info.filterDepth],
    [JOB.K_H, info.filterHeight],
    [JOB.K_W, info.filterWidth],
    [JOB.S_D, info.strideDepth],
    [JOB.S_H, info.strideHeight],
    [JOB.S_W, info.strideWidth],
    [JOB.DIL_D, info.dilationDepth],
    [JOB.DIL_H, info.dilationHeight],
    [JOB.DIL_W, info.dilationWidth],
    [JOB.PAD_F, info.padInfo.front],
    [JOB.PAD_T, info.padInfo.top],
    [JOB.PAD_L, info.padInfo.left],
  ]
  for (const [i, v] of words) job[i] = v
}

/** Floats per work item of an element-wise job (AdamW, σ, GELU, the LeakyReLU gradient): 64 KiB of each operand. */
export const ELEMENTS_PER_CHUNK = 16384

/** The words of a job over `rows` rows (or elements) taken `perChunk` at a time: J_ROWS, J_ROWS_PER_CHUNK, J_CHUNKS; returns the chunk count. */
export function writeRows(job: Int32Array, rows: number, perChunk: number): number {
  const chunks = Math.ceil(rows / perChunk)
  job[JOB.ROWS] = rows
  job[JOB.ROWS_PER_CHUNK] = perChunk
  job[JOB.CHUNKS] = chunks
  return chunks
}

/** Copies `values` into a fresh heap allocation and returns its byte address. */
export function copyIn(rt: ConvRuntime, values: Float32Array): number {
  const address = rt.alloc(values.length)
  rt.f32(address, values.length).set(values)
  return address
}

/** Bias added to a convolution's output rows, then ReLU when asked: the fused epilogue. */
export interface Epilogue {
  bias: Float32Array
  relu: boolean
}

/** The operand words of a forward job (im2col or Winograd): input x, packed filter w, output y, and the epilogue when given. */
export function writeForwardOperands(rt: ConvRuntime, job: Int32Array, x: number, w: number, y: number, epilogue?: Epilogue): void {
  job[JOB.X] = x
  job[JOB.W] = w
  job[JOB.DY] = y
  if (epilogue) {
    job[JOB.BIAS] = copyIn(rt, epilogue.bias)
    job[JOB.RELU] = epilogue.relu ? 1 : 0
  }
}

/**
 * Float64 accumulator slots for a job that sums its chunks into them (chunk k into slot k mod
 * slots, in order: assembly/job.ts `clearedSlot`): SUM_SLOTS, or fewer when there are fewer
 * chunks. Fills the job's J_SLOTS, J_ACC and J_ACC_STRIDE; the returned function, called once the
 * job has run, adds the slots up in slot order, so the totals do not depend on the thread count.
 */
export function float64Slots(rt: ConvRuntime, job: Int32Array, chunks: number, length: number): () => Float64Array {
  const slots = Math.max(1, Math.min(SUM_SLOTS, chunks))
  const stride = roundUp(2 * length, 16) // floats
  const acc = rt.alloc(stride * slots)
  job[JOB.SLOTS] = slots
  job[JOB.ACC] = acc
  job[JOB.ACC_STRIDE] = stride * 4
  return () => {
    const total = new Float64Array(length)
    for (let s = 0; s < slots; s++) {
      const slot = rt.f64(acc + s * stride * 4, length)
      for (let i = 0; i < length; i++) total[i] += slot[i]
    }
    return total
  }
}
