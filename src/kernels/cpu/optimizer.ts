/**
 * The fused AdamW step of src/kernels/fused.ts (`adamwUpdate`) for the `cpu` backend, in
 * WebAssembly SIMD on the worker pool (assembly/adamw.ts). float32 vector arithmetic rounds after
 * every operation, as the op composition does, so both give the same bits. A JS loop (Math.fround
 * after each operation) was too slow for the btcv config's 34.6 M parameters (docs/bench/
 * 2026-11-26-cpu-kernels.md).
 */
import type {tf} from '../../backend/tf.js'
import {copyIn} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime} from './runtime.js'
import {floats, output} from './tensors.js'

/** One AdamW step's constants (src/train/optimizers.ts): c1, c2 are the bias corrections 1 − βᵗ. */
export interface AdamWStep {
  lr: number
  beta1: number
  beta2: number
  epsilon: number
  weightDecay: number
  c1: number
  c2: number
}

/** parameters per work item: 64 KiB of each operand */
const CHUNK = 16384

export function adamwKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const s = attrs as unknown as AdamWStep
  const length = inputs.p.shape.reduce((a, b) => a * b, 1)
  const rt = freshRuntime()
  const job = rt.job()
  const [p, g, m, v] = [inputs.p, inputs.g, inputs.m, inputs.v].map((t) => copyIn(rt, floats(backend, t)))
  job[JOB.KIND] = KIND.adamw
  job[JOB.X] = p
  job[JOB.W] = g
  job[JOB.DY] = m
  job[JOB.ACC] = v
  // every constant is a float32 scalar tensor in the op composition: rounded the same way here
  job[JOB.BIAS] = copyIn(
    rt,
    Float32Array.of(s.beta1, s.beta2, 1 - s.beta1, 1 - s.beta2, s.c1, s.c2, s.epsilon, s.lr, 1 - s.lr * s.weightDecay),
  )
  job[JOB.ROWS] = length
  job[JOB.ROWS_PER_CHUNK] = CHUNK
  job[JOB.CHUNKS] = Math.ceil(length / CHUNK)
  rt.run()
  const shape = inputs.p.shape
  return [p, m, v].map((at) => output(backend, shape, rt.f32(at, length).slice()))
}
