/**
 * LeakyReLU's gradient dy · Step(x, slope) on the `cpu` backend, in WebAssembly SIMD on the worker
 * pool (assembly/channels.ts leakyReluGrad): the kernel `SiplLeakyReluGrad` (src/model/ops.ts) and
 * the first pass of the norm's backward when the norm's kernel applied the activation
 * (src/kernels/cpu/group-norm.ts). The same bits as tfjs's Step into a float32 array and a
 * Multiply, which at full resolution were two passes and a fresh activation-sized array per layer.
 */
import type {tf} from '../../backend/tf.js'
import {copyIn, ELEMENTS_PER_CHUNK, writeRows} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, output, outputFromHeap} from './tensors.js'

/**
 * dy · Step(x, slope) into the heap; returns its address. `signs` may be x or LeakyReLU(x): both
 * are > 0 exactly where x is, and NaN exactly where x is.
 */
export function leakyReluStepInto(rt: ConvRuntime, dy: Float32Array, signs: Float32Array, slope: number): number {
  const dyAt = copyIn(rt, dy)
  const signsAt = copyIn(rt, signs)
  const dz = rt.alloc(dy.length)
  const job = rt.job()
  job[JOB.KIND] = KIND.leakyReluGrad
  job[JOB.X] = dyAt
  job[JOB.W] = signsAt
  job[JOB.DY] = dz
  // Step writes the slope into a float32 array, and the product reads it back from there
  job[JOB.BIAS] = copyIn(rt, Float32Array.of(slope))
  writeRows(job, dy.length, ELEMENTS_PER_CHUNK)
  rt.run()
  return dz
}

/** `SiplLeakyReluGrad`: inputs dy and x of one shape, attribute alpha */
export function leakyReluGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const length = inputs.x.shape.reduce((a, b) => a * b, 1)
  const rt = freshRuntime()
  const dz = leakyReluStepInto(rt, floats(backend, inputs.dy), floats(backend, inputs.x), (attrs as {alpha: number}).alpha)
  return outputFromHeap(backend, inputs.x.shape, rt.f32(dz, length))
}
