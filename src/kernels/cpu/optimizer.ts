/**
 * The fused AdamW step (src/kernels/adamw.ts `adamwStep`, the formula of src/kernels/fused.ts
 * `adamwUpdate`) for the `cpu` backend, in
 * WebAssembly SIMD on the worker pool (assembly/adamw.ts). float32 vector arithmetic rounds after
 * every operation, as the op composition does, so both give the same bits. A JS loop (Math.fround
 * after each operation) was too slow for the btcv config's 34.6 M parameters (docs/bench/
 * 2026-11-26-cpu-kernels.md).
 */
import type {tf} from '../../backend/tf.js'
import {copyIn, ELEMENTS_PER_CHUNK, writeRows} from './conv-job.js'
import type {KernelArgs} from './elementwise.js'
import {JOB, KIND} from './job.js'
import {freshRuntime} from './runtime.js'
import {floats, outputFromHeap, values} from './tensors.js'

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

/** Runs the AdamW job on `length` parameters at heap addresses p, g, m, v; p, m and v are updated in place. */
function runAdamW(rt: ReturnType<typeof freshRuntime>, [p, g, m, v]: number[], length: number, s: AdamWStep): void {
  const job = rt.job()
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
  writeRows(job, length, ELEMENTS_PER_CHUNK)
  rt.run()
}

/**
 * The AdamW step of many parameters in one worker-pool run (src/kernels/adamw.ts `adamwStep`):
 * inputs p0…, g0…, m0…, v0… (attribute count), laid end to end in the heap. Parameter i whose
 * attribute inPlace[i] is true gets its new p, m and v written back into its inputs' own arrays
 * (the caller has checked that no other tensor shares them); the others get outputs: p1 of each,
 * then m1 of each, then v1 of each. float32 vector arithmetic rounds after every operation, as
 * the op composition (src/kernels/fused.ts `adamwUpdate`) does: the same bits.
 */
export function adamwGroupKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const s = attrs as unknown as AdamWStep & {count: number; inPlace?: boolean[]}
  const sizes = Array.from({length: s.count}, (_, i) => inputs[`p${i}`].shape.reduce((a, b) => a * b, 1))
  const length = sizes.reduce((a, b) => a + b, 0)
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0))
  const rt = freshRuntime()
  const operands = ['p', 'g', 'm', 'v'].map((name) => {
    const address = rt.alloc(length)
    const heap = rt.f32(address, length)
    for (let i = 0; i < s.count; i++) heap.set(floats(backend, inputs[`${name}${i}`]), offsets[i])
    return address
  })
  runAdamW(rt, operands, length, s)
  const updated: [string, number][] = [
    ['p', operands[0]],
    ['m', operands[2]],
    ['v', operands[3]],
  ]
  const inPlace = (i: number) => s.inPlace?.[i] === true
  const outputs: tf.TensorInfo[] = []
  for (const [name, address] of updated) {
    const all = rt.f32(address, length)
    for (let i = 0; i < s.count; i++) {
      const part = all.subarray(offsets[i], offsets[i] + sizes[i])
      if (!inPlace(i)) {
        // its own copy (no shared buffers)
        outputs.push(outputFromHeap(backend, inputs[`p${i}`].shape, part))
        continue
      }
      const own = values(backend, inputs[`${name}${i}`])
      if (!(own instanceof Float32Array)) throw new Error(`SiplAdamWGroup: ${name}${i} is not float32, it cannot be updated in place`)
      own.set(part)
    }
  }
  return outputs
}
