/**
 * A pool thread: instantiates the convolution module on the shared memory, then runs every
 * posted job. It spins on the generation word before sleeping in Atomics.wait, because a futex
 * wake-up costs two orders of magnitude more than waking a spinning thread (docs/bench/
 * 2026-11-26-cpu-kernels.md), and a training step posts dozens of jobs.
 */
import {workerData} from 'node:worker_threads'
import {CTL, JOIN_CLOSED, JOIN_COUNT} from './job.js'
import {wasm, type WasmMemory, type WasmModule} from './wasm-api.js'

interface PoolWorkerData {
  module: WasmModule
  memory: WasmMemory
  index: number
  spin: number
}

const {module, memory, index, spin} = workerData as PoolWorkerData
const instance = new wasm.Instance(module, {env: {memory, abort: () => undefined}})
const runJob = instance.exports.runJob as (job: number, thread: number) => void
const ctl = new Int32Array(memory.buffer, 0, 64)

// jobs posted while this thread was starting have been done by the others
let seen = Atomics.load(ctl, CTL.GEN)

/**
 * Joins job `gen` unless the caller has already closed it (it finished every chunk while this
 * thread was not running: on a busy machine a woken thread can wait milliseconds for a core).
 * Returns the slot (1, 2, …) whose scratch and accumulator this thread uses, or 0.
 */
function join(gen: number): number {
  for (;;) {
    const v = Atomics.load(ctl, CTL.JOINED)
    if (v >>> 16 !== (gen & 0xffff) || v & JOIN_CLOSED) return 0
    if (Atomics.compareExchange(ctl, CTL.JOINED, v, v + 1) === v) return (v & JOIN_COUNT) + 1
  }
}

for (;;) {
  let gen = Atomics.load(ctl, CTL.GEN)
  for (let polls = 0; gen === seen;) {
    if (++polls > spin) {
      Atomics.wait(ctl, CTL.GEN, seen)
      polls = 0
    }
    gen = Atomics.load(ctl, CTL.GEN)
  }
  seen = gen
  const slot = join(gen)
  if (slot === 0) continue
  Atomics.add(ctl, CTL.WORKER_JOBS, 1)
  try {
    runJob(Atomics.load(ctl, CTL.JOB), slot)
  } catch {
    Atomics.store(ctl, CTL.FAILED, 1)
  }
  Atomics.add(ctl, CTL.DONE, 1)
  Atomics.notify(ctl, CTL.DONE)
}
