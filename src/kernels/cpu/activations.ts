/**
 * Element-wise activations in WebAssembly SIMD on the worker pool (assembly/activations.ts), with
 * the exp of the training loss's σ (SiplDiceCe: a 4-wide polynomial; σ within 3 ulp): `SiplSigmoid`,
 * the class probabilities at inference, and the kMaX layer's GELU and its gradient
 * (src/kernels/cpu/rows.ts). tfjs's Sigmoid and the JavaScript GELU called Math.exp per element,
 * ~10–25 ns each here: a tenth of the demo net's inference forward went into the σ alone.
 */
import type {tf} from '../../backend/tf.js'
import {copyIn, ELEMENTS_PER_CHUNK, writeRows} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, outputFromHeap} from './tensors.js'

/** Runs an element-wise job of `kind` over x (and `second`, of x's length, when given); returns a view of its output in the heap. */
function elementwiseJob(rt: ConvRuntime, kind: number, x: Float32Array, second?: Float32Array): Float32Array {
  const xAt = copyIn(rt, x)
  // address 0 is below every heap allocation: "no second operand"
  const secondAt = second ? copyIn(rt, second) : 0
  const out = rt.alloc(x.length)
  const job = rt.job()
  job[JOB.KIND] = kind
  job[JOB.X] = xAt
  job[JOB.W] = secondAt
  job[JOB.DY] = out
  writeRows(job, x.length, ELEMENTS_PER_CHUNK)
  rt.run()
  return rt.f32(out, x.length)
}

/** `SiplSigmoid`: σ(x), no gradient */
export function sigmoidKernel({inputs, backend}: KernelArgs): tf.TensorInfo {
  return outputFromHeap(backend, inputs.x.shape, elementwiseJob(freshRuntime(), KIND.sigmoid, floats(backend, inputs.x)))
}

/** GELU (tanh form, src/model/ops.ts `gelu`) of x, as v·σ(2u) with u = √(2/π)(v + 0.044715v³), into a new array */
export function gelu(x: Float32Array): Float32Array {
  return elementwiseJob(freshRuntime(), KIND.gelu, x).slice()
}

/** dy · GELU′(x), in place into dy; returns dy */
export function geluBackward(dy: Float32Array, x: Float32Array): Float32Array {
  dy.set(elementwiseJob(freshRuntime(), KIND.gelu, dy, x))
  return dy
}
