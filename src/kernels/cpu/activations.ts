/**
 * Element-wise activations in WebAssembly SIMD on the worker pool (assembly/activations.ts): with
 * the exp of the training loss's σ (SiplDiceCe: a 4-wide polynomial; σ within 3 ulp), `SiplSigmoid`,
 * the class probabilities at inference, and the kMaX layer's GELU and its gradient
 * (src/kernels/cpu/kmax.ts); and LeakyReLU's gradient dy · Step(x, slope), the kernel
 * `SiplLeakyReluGrad` (src/model/ops.ts) and the first pass of the norm's backward when the norm's
 * kernel applied the activation (src/kernels/cpu/group-norm.ts). tfjs's Sigmoid and the
 * JavaScript GELU called Math.exp per element, ~10–25 ns each here: a tenth of the demo net's
 * inference forward went into the σ alone. The LeakyReLU gradient gives the bits of tfjs's Step
 * into a float32 array and a Multiply, which at full resolution were two passes and a fresh
 * activation-sized array per layer.
 */
import type {tf} from '../../backend/tf.js'
import {copyIn, ELEMENTS_PER_CHUNK, writeRows} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, outputFromHeap} from './tensors.js'

/**
 * Runs an element-wise job of `kind` over x (and `second`, of x's length, when given; `slope` into
 * J_BIAS when given); returns the heap address of its output, x's length.
 */
function elementwiseJob(rt: ConvRuntime, kind: number, x: Float32Array, second?: Float32Array, slope?: number): number {
  const xAt = copyIn(rt, x)
  // address 0 is below every heap allocation: "no second operand"
  const secondAt = second ? copyIn(rt, second) : 0
  const out = rt.alloc(x.length)
  const job = rt.job()
  job[JOB.KIND] = kind
  job[JOB.X] = xAt
  job[JOB.W] = secondAt
  job[JOB.DY] = out
  // Step writes the slope into a float32 array, and the product reads it back from there
  if (slope !== undefined) job[JOB.BIAS] = copyIn(rt, Float32Array.of(slope))
  writeRows(job, x.length, ELEMENTS_PER_CHUNK)
  rt.run()
  return out
}

/** `SiplSigmoid`: σ(x), no gradient */
export function sigmoidKernel({inputs, backend}: KernelArgs): tf.TensorInfo {
  const x = floats(backend, inputs.x)
  const rt = freshRuntime()
  return outputFromHeap(backend, inputs.x.shape, rt.f32(elementwiseJob(rt, KIND.sigmoid, x), x.length))
}

/** GELU (tanh form, src/model/ops.ts `gelu`) of x, as v·σ(2u) with u = √(2/π)(v + 0.044715v³), into `out` (a new array when not given) */
export function gelu(x: Float32Array, out: Float32Array = new Float32Array(x.length)): Float32Array {
  const rt = freshRuntime()
  out.set(rt.f32(elementwiseJob(rt, KIND.gelu, x), x.length))
  return out
}

/** dy · GELU′(x), in place into dy; returns dy */
export function geluBackward(dy: Float32Array, x: Float32Array): Float32Array {
  const rt = freshRuntime()
  dy.set(rt.f32(elementwiseJob(rt, KIND.gelu, dy, x), dy.length))
  return dy
}

/**
 * dy · Step(x, slope) into the heap; returns its address. `signs` may be x or LeakyReLU(x): both
 * are > 0 exactly where x is, and NaN exactly where x is.
 */
export function leakyReluStepInto(rt: ConvRuntime, dy: Float32Array, signs: Float32Array, slope: number): number {
  return elementwiseJob(rt, KIND.leakyReluGrad, dy, signs, slope)
}

/** `SiplLeakyReluGrad`: inputs dy and x of one shape, attribute alpha */
export function leakyReluGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const dy = floats(backend, inputs.dy)
  const rt = freshRuntime()
  const dz = leakyReluStepInto(rt, dy, floats(backend, inputs.x), (attrs as {alpha: number}).alpha)
  return outputFromHeap(backend, inputs.x.shape, rt.f32(dz, dy.length))
}
