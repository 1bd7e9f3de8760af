/**
 * `SiplSigmoid`: σ(z) of the class logits at inference, in WebAssembly SIMD on the worker pool
 * (assembly/dice-ce.ts `sigmoid`), with the exp of the training loss's σ (SiplDiceCe, a 4-wide
 * polynomial within 2 ulp). tfjs's Sigmoid calls Math.exp per element, ~10–25 ns each here: a
 * tenth of the demo net's inference forward went into it.
 */
import type {tf} from '../../backend/tf.js'
import {copyIn} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime} from './runtime.js'
import {floats, outputFromHeap} from './tensors.js'

/** floats per work item: 64 KiB */
const CHUNK = 16384

export function sigmoidKernel({inputs, backend}: KernelArgs): tf.TensorInfo {
  const z = floats(backend, inputs.x)
  const rt = freshRuntime()
  const zAt = copyIn(rt, z)
  const p = rt.alloc(z.length)
  const job = rt.job()
  job[JOB.KIND] = KIND.sigmoid
  job[JOB.X] = zAt
  job[JOB.DY] = p
  job[JOB.ROWS] = z.length
  job[JOB.ROWS_PER_CHUNK] = CHUNK
  job[JOB.CHUNKS] = Math.ceil(z.length / CHUNK)
  rt.run()
  return outputFromHeap(backend, inputs.x.shape, rt.f32(p, z.length))
}
