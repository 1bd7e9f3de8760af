/**
 * Soft Dice + cross-entropy on logits in one pass (forward) and one pass (backward), for the
 * `cpu` backend: the loss of SIPL's main head (sigmoid, Eq. 5), of its auxiliary masks (softmax,
 * Eq. 12) and of unet-ref. As ops it is ~25 full passes over the logits (softmax, logs, products,
 * sums, and as many again for the gradient), slower than a convolution layer; one JS loop each
 * way spent most of its time in Math.exp (docs/bench/2026-11-26-cpu-kernels.md). The passes run in
 * WebAssembly SIMD on the worker pool (assembly/dice-ce.ts); the per-chunk sums are float32, their
 * totals float64, in an order that does not depend on the thread count. The formulas are those of
 * src/model/losses.ts.
 *
 * Inputs are `[B, N, C]` (sample, voxel, channel). Outputs of the forward kernel: the loss, the
 * probabilities p (kept for the backward) and per (sample, channel) [Dice, denominator].
 */
import type {tf} from '../../backend/tf.js'
import {copyIn, float64Slots, roundUp} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, output, outputFromHeap} from './tensors.js'

export interface DiceCeAttrs {
  activation: 'softmax' | 'sigmoid'
  /** Milletari's Σp² + Σy² in the Dice denominator instead of Σp + Σy */
  squared: boolean
  smooth: number
}

export function diceCeKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const {activation, squared, smooth} = attrs as unknown as DiceCeAttrs
  const {rt, job, out: p, shape} = describe(KIND.diceCe, backend, inputs.logits, inputs.targets, activation, squared)
  const [B, N, C] = shape
  // a slot: float64 [cross-entropy, Σ p·y per (sample, channel), denominator per (sample, channel)]
  const totals = float64Slots(rt, job, job[JOB.CHUNKS], 1 + 2 * B * C)
  // per thread: three floats per row of a chunk (softmax's row sums and dot products)
  allocScratch(rt, job, 3 * ROWS_PER_CHUNK)
  rt.run()
  const sums = totals()
  // softmax: mean over voxels of −Σ_c y log p; sigmoid: mean over every element
  const ceMean = sums[0] / (activation === 'softmax' ? B * N : B * N * C)
  const stats = new Float32Array(B * C * 2)
  let diceSum = 0
  for (let k = 0; k < B * C; k++) {
    const d = sums[1 + B * C + k] + smooth
    const dice = (2 * sums[1 + k] + smooth) / d
    diceSum += dice
    stats[2 * k] = dice
    stats[2 * k + 1] = d
  }
  const loss = Float32Array.of(ceMean + 1 - diceSum / (B * C))
  return [output(backend, [], loss), outputFromHeap(backend, [B, N, C], rt.f32(p, B * N * C)), output(backend, [B, C, 2], stats)]
}

/** d loss / d logits, scaled by dy (the scalar upstream gradient). */
export function diceCeGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const dy = floats(backend, inputs.dy)[0]
  const stats = floats(backend, inputs.stats)
  const {activation, squared} = attrs as unknown as DiceCeAttrs
  const {rt, job, out: dz, shape} = describe(KIND.diceCeGrad, backend, inputs.p, inputs.targets, activation, squared)
  const [B, N, C] = shape
  // d loss_Dice / d p = −1/(B·C) · (2y − Dice · ∂denominator/∂p) / denominator = a·y − b·(squared ? p : 1)
  const diceScale = -1 / (B * C)
  const coefficients = new Float32Array(2 + 2 * B * C)
  coefficients[0] = dy
  coefficients[1] = 1 / (activation === 'softmax' ? B * N : B * N * C)
  for (let k = 0; k < B * C; k++) {
    const [dice, denominator] = [stats[2 * k], stats[2 * k + 1]]
    coefficients[2 + k] = (2 * diceScale) / denominator
    coefficients[2 + B * C + k] = (diceScale * dice * (squared ? 2 : 1)) / denominator
  }
  job[JOB.ACC] = copyIn(rt, coefficients)
  // per thread: the row's Dice gradient, one float per channel
  allocScratch(rt, job, C)
  rt.run()
  return outputFromHeap(backend, [B, N, C], rt.f32(dz, B * N * C))
}

/**
 * Voxels per chunk (inside one sample): it sets the forward's summation order, so it must not
 * depend on the thread count; 1024 rows of 4 channels are 16 KiB of each operand.
 */
const ROWS_PER_CHUNK = 1024

/** A job of `kind` in a fresh heap over x (J_X) and targets (J_W), both [B, N, C], writing [B, N, C] floats at `out` (J_DY). */
function describe(
  kind: number,
  backend: unknown,
  x: tf.TensorInfo,
  targets: tf.TensorInfo,
  activation: DiceCeAttrs['activation'],
  squared: boolean,
): {rt: ConvRuntime; job: Int32Array; out: number; shape: number[]} {
  const shape = x.shape
  const [B, N, C] = shape
  const rt = freshRuntime()
  const out = rt.alloc(B * N * C)
  const job = rt.job()
  job[JOB.KIND] = kind
  job[JOB.BATCH] = B
  job[JOB.ROWS] = N
  job[JOB.COUT] = C
  job[JOB.ROWS_PER_CHUNK] = ROWS_PER_CHUNK
  job[JOB.CHUNKS] = B * Math.ceil(N / ROWS_PER_CHUNK)
  job[JOB.SIGMOID] = activation === 'sigmoid' ? 1 : 0
  job[JOB.SQUARED] = squared ? 1 : 0
  job[JOB.X] = copyIn(rt, floats(backend, x))
  job[JOB.W] = copyIn(rt, floats(backend, targets))
  job[JOB.DY] = out
  return {rt, job, out, shape}
}

/** Scratch of `floatsPerThread` floats (rounded up to 16) for each thread (J_SCRATCH, J_SCRATCH_STRIDE). */
function allocScratch(rt: ConvRuntime, job: Int32Array, floatsPerThread: number): void {
  const stride = roundUp(floatsPerThread, 16)
  job[JOB.SCRATCH] = rt.alloc(stride * rt.threads)
  job[JOB.SCRATCH_STRIDE] = stride * 4
}
