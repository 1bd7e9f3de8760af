/**
 * The wasm kernels' runtime: one shared WebAssembly.Memory, the compiled module (relaxed
 * SIMD when this V8 can compile it, else plain SIMD) and a pool of worker threads that run the
 * same exports on the same memory. Created lazily on the first kernel call and kept for the
 * life of the process; the workers are unref'd, so they never keep a CLI command alive.
 *
 * tfjs `cpu` kernels are synchronous, so the calling (main) thread takes part in every job and
 * then blocks in Atomics.wait until the workers are done.
 */
import {existsSync, readFileSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {join} from 'node:path'
import {setFlagsFromString} from 'node:v8'
import {Worker} from 'node:worker_threads'
import {UserError} from '../../errors.js'
import {environment} from '../../paths.js'
import {projectRoot} from '../../project-root.js'
import {CTL, DATA_BASE, JOB, JOB_ADDRESS, JOB_WORDS, JOIN_CLOSED, JOIN_COUNT, layoutChecksum} from './job.js'
import {wasm, type WasmMemory, type WasmModule} from './wasm-api.js'

export interface ConvExports {
  layoutChecksum(): number
  runJob(job: number, thread: number): void
  packFilter(w: number, K: number, cout: number, Kp: number, dst: number): void
  packFilterTransposed(w: number, K: number, cout: number, Kp: number, dst: number): void
  transposeFilterGrad(src: number, K: number, cout: number, Kp: number, dst: number): void
  padVolume(
    x: number,
    B: number,
    inD: number,
    inH: number,
    inW: number,
    front: number,
    top: number,
    left: number,
    Dp: number,
    Hp: number,
    Wp: number,
    dst: number,
  ): void
  gemm(...args: number[]): void
  packPanels(src: number, rowBytes: number, colBytes: number, k: number, n: number, dst: number): void
  concatChannels(dst: number, a: number, ca: number, b: number, cb: number, voxels: number): void
  splitChannels(src: number, a: number, ca: number, b: number, cb: number, voxels: number): void
}

export interface RuntimeInfo {
  simd: 'relaxed' | 'plain'
  threads: number
  wasmFile: string
}

/** build/ of the package */
function wasmDir(): string {
  return join(projectRoot(), 'build')
}
const PAGE = 65536
/** polls of the generation word before a thread sleeps: a fraction of a millisecond, the spin count ../shared/reference/gemm found best */
const SPIN = 200_000

export function wasmFiles(): {relaxed: string; simd: string} {
  const dir = wasmDir()
  return {relaxed: join(dir, 'kernels.relaxed.wasm'), simd: join(dir, 'kernels.simd.wasm')}
}

/** True when `npm run build` produced the kernels (build/kernels.*.wasm). */
export function wasmBuilt(): boolean {
  return existsSync(wasmFiles().simd)
}

function compile(files: {relaxed: string; simd: string}): {module: WasmModule; simd: 'relaxed' | 'plain'; file: string} {
  // Node 20's V8 has relaxed SIMD behind a flag; it must be set before the module is compiled
  setFlagsFromString('--experimental-wasm-relaxed-simd')
  if (existsSync(files.relaxed)) {
    const bytes = readFileSync(files.relaxed)
    if (wasm.validate(bytes)) return {module: new wasm.Module(bytes), simd: 'relaxed', file: files.relaxed}
  }
  return {module: new wasm.Module(readFileSync(files.simd)), simd: 'plain', file: files.simd}
}

/**
 * Refuses a module built from another job layout than src/kernels/cpu/job.ts's (a build/ older or
 * newer than dist/): its kernels would read the wrong words of every job.
 */
export function checkJobLayout(exports: Record<string, unknown>, file: string): void {
  const built = typeof exports.layoutChecksum === 'function' ? (exports.layoutChecksum as () => number)() >>> 0 : undefined
  const expected = layoutChecksum()
  if (built === expected) return
  const found = built === undefined ? 'no job layout checksum' : `job layout checksum ${hex(built)}`
  throw new UserError(`${file} has ${found}, this sipl's job layout is ${hex(expected)}: rebuild the kernels with 'npm run build'`)
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`

export class ConvRuntime {
  readonly memory: WasmMemory
  readonly exports: ConvExports
  readonly info: RuntimeInfo
  private readonly ctl: Int32Array
  /** the job descriptor words (fixed address, below the initial memory: the view stays valid when the memory grows) */
  private readonly jobWords: Int32Array
  private readonly workers: Worker[] = []
  private top = DATA_BASE

  /** `files`: the module's builds (tests pass others) */
  constructor(threads: number, files = wasmFiles()) {
    const {module, simd, file} = compile(files)
    this.memory = new wasm.Memory({initial: 256, maximum: 65536, shared: true})
    const {exports} = new wasm.Instance(module, {env: {memory: this.memory, abort: () => undefined}})
    checkJobLayout(exports, file)
    this.exports = exports as unknown as ConvExports
    this.ctl = new Int32Array(this.memory.buffer, 0, 64)
    this.jobWords = new Int32Array(this.memory.buffer, JOB_ADDRESS, JOB_WORDS)
    const wanted = threads > 0 ? threads : availableParallelism()
    for (let i = 1; i < wanted; i++) {
      const worker = new Worker(new URL('./worker.js', import.meta.url), {workerData: {module, memory: this.memory, index: i, spin: SPIN}})
      worker.unref()
      this.workers.push(worker)
    }
    // no waiting for the workers to start: a job never waits for a thread that has not joined it
    this.info = {simd, threads: this.workers.length + 1, wasmFile: file}
  }

  /** how many jobs worker threads have taken part in so far */
  workerJobs(): number {
    return Atomics.load(this.ctl, CTL.WORKER_JOBS)
  }

  get threads(): number {
    return this.workers.length + 1
  }

  /** Frees every allocation (each kernel call starts from an empty heap). */
  reset(): void {
    this.top = DATA_BASE
  }

  /** Reserves `floats` float32 slots (64-byte aligned) and returns the byte address. */
  alloc(floats: number): number {
    const address = this.top
    this.top = address + Math.ceil((floats * 4) / 64) * 64
    const need = this.top - this.memory.buffer.byteLength
    if (need > 0) {
      if (this.top > 4 * 1024 ** 3 - PAGE)
        throw new Error(`conv3d kernel needs ${(this.top / 1024 ** 3).toFixed(1)} GiB (wasm32 limit is 4 GiB)`)
      // grow with headroom so that a training step's kernels do not grow the memory one by one
      this.memory.grow(Math.max(Math.ceil(need / PAGE), Math.ceil(this.memory.buffer.byteLength / PAGE / 4)))
    }
    return address
  }

  f32(address: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, address, length)
  }

  f64(address: number, length: number): Float64Array {
    return new Float64Array(this.memory.buffer, address, length)
  }

  /** The job descriptor words, to be filled before `run`. */
  job(): Int32Array {
    this.jobWords.fill(0)
    return this.jobWords
  }

  /**
   * Runs the job in the descriptor on this thread and on every worker that joins before this
   * thread has finished its own share, and returns when those are done.
   */
  run(): void {
    const ctl = this.ctl
    // a job of one chunk has nothing to share: the workers are not woken for it (the SIPL step
    // posts dozens, on the coarse grids, between which a woken worker would only spin)
    const single = this.jobWords[JOB.CHUNKS] === 1
    const n = single ? 0 : this.workers.length
    if (n > 0) {
      const gen = (Atomics.load(ctl, CTL.GEN) + 1) | 0
      Atomics.store(ctl, CTL.DONE, 0)
      Atomics.store(ctl, CTL.JOB, JOB_ADDRESS)
      Atomics.store(ctl, CTL.JOINED, (gen & 0xffff) << 16)
      Atomics.store(ctl, CTL.GEN, gen)
      Atomics.notify(ctl, CTL.GEN)
    }
    let failure: unknown
    try {
      this.exports.runJob(JOB_ADDRESS, 0)
    } catch (error) {
      failure = error
    }
    if (n > 0) {
      // close the job: a worker that wakes up only now stays out; wait for those that joined
      const joined = Atomics.or(ctl, CTL.JOINED, JOIN_CLOSED) & JOIN_COUNT
      let done = Atomics.load(ctl, CTL.DONE)
      for (let polls = 0; done < joined; done = Atomics.load(ctl, CTL.DONE)) {
        if (++polls > SPIN) Atomics.wait(ctl, CTL.DONE, done, 50)
      }
      if (Atomics.exchange(ctl, CTL.FAILED, 0) !== 0) failure ??= new Error('conv3d kernel failed on a worker thread')
    }
    if (failure) throw failure
  }
}

let runtime: ConvRuntime | undefined

/** The process's runtime, created on first use with `threads` (0 = one per core); its size is then fixed. */
export function convRuntime(threads: number): ConvRuntime {
  runtime ??= new ConvRuntime(threads)
  return runtime
}

/** The process's runtime (SIPL_THREADS threads) with an empty heap: each kernel call starts from one. */
export function freshRuntime(): ConvRuntime {
  const rt = runtime ?? convRuntime(environment().threads)
  rt.reset()
  return rt
}

export function existingRuntime(): ConvRuntime | undefined {
  return runtime
}
