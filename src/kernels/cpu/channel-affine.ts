/**
 * One per-channel affine map over rows in the kernels' heap, as a job on the worker pool
 * (assembly/channels.ts): the group norm's output and gradient, and the residual sum of the
 * transposed convolution (src/kernels/cpu/conv3d.ts).
 */
import {copyIn, writeRows} from './conv-job.js'
import {JOB, KIND} from './job.js'
import type {ConvRuntime} from './runtime.js'

/** Rows per work item: ~64 KiB of each operand; it sets the summation order, so it depends on C only. */
export const rowsPerChunk = (C: number) => Math.max(16, Math.floor(16384 / C))

/**
 * a·s + b·t + u per channel (b = 0: no b term) into the heap at `out`, rows × C; with
 * `leakySlope`, LeakyReLU of it in the same pass (the formula of sipl's LeakyRelu kernel,
 * src/kernels/cpu/elementwise.ts: the same bits)
 */
export function channelAffine(
  rt: ConvRuntime,
  a: number,
  b: number,
  out: number,
  rows: number,
  C: number,
  s: ArrayLike<number>,
  t: ArrayLike<number>,
  u: ArrayLike<number>,
  leakySlope?: number,
): void {
  // with a slope, it follows as a float64 at the next even float (8-byte aligned in the heap)
  const slopeAt = (3 * C + 1) & ~1
  const coefficients = new Float32Array(leakySlope === undefined ? 3 * C : slopeAt + 2)
  coefficients.set(s)
  coefficients.set(t, C)
  coefficients.set(u, 2 * C)
  if (leakySlope !== undefined) new Float64Array(coefficients.buffer, 4 * slopeAt, 1)[0] = leakySlope
  const job = rt.job()
  job[JOB.KIND] = KIND.channelAffine
  job[JOB.X] = a
  job[JOB.W] = b
  job[JOB.DY] = out
  job[JOB.BIAS] = copyIn(rt, coefficients)
  job[JOB.COUT] = C
  writeRows(job, rows, rowsPerChunk(C))
  if (leakySlope !== undefined) job[JOB.RELU] = 1
  rt.run()
}
