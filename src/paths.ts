/**
 * The only module that reads process.env (besides backend/log defaults, which take
 * their values from here). `.env` in the working directory is loaded once, if present.
 * Every variable is listed with its default in `.env.example`.
 */
import {existsSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {resolve} from 'node:path'
import dotenv from 'dotenv'

let loaded = false
function loadDotEnv(): void {
  if (loaded) return
  loaded = true
  const file = resolve(process.cwd(), '.env')
  if (existsSync(file)) dotenv.config({path: file, quiet: true})
}

function read(name: string): string | undefined {
  loadDotEnv()
  const value = process.env[name]
  return value === undefined || value === '' ? undefined : value
}

export interface Environment {
  /** tfjs backend: auto | tensorflow | webgpu | wasm | cpu */
  backend: string
  /** where run directories go when a command gets no --out */
  runsDir: string
  /** where datasets (raw and preprocessed) live when a config gives relative data paths */
  dataDir: string
  logLevel: string
  /** worker threads for CPU kernels; 0 = one per core; never more than the cores (threadsCapped) */
  threads: number
  /** the Python with torch that `sipl bench --torch` runs */
  python: string
  /** cpu backend: Winograd F(4,3) for stride-1 3×3×3 convolutions (false: im2col for every convolution) */
  winograd: boolean
}

/** SIPL_THREADS as asked (0 = one per core; unparsable or negative = 0). */
function requestedThreads(): number {
  const threads = Number(read('SIPL_THREADS') ?? '0')
  return Number.isFinite(threads) && threads >= 0 ? Math.floor(threads) : 0
}

/**
 * SIPL_THREADS when it asks for more threads than there are cores: each worker thread holds a
 * wasm instance and its stack, so SIPL_THREADS=100000 ran out of memory, and threads beyond the
 * cores only queue. environment() caps it at the core count; the commands log this notice.
 */
export function threadsCapped(): {requested: number; cores: number} | undefined {
  const requested = requestedThreads()
  const cores = availableParallelism()
  return requested > cores ? {requested, cores} : undefined
}

export function environment(): Environment {
  const threads = requestedThreads()
  return {
    backend: read('SIPL_BACKEND') ?? 'auto',
    runsDir: resolve(read('SIPL_RUNS_DIR') ?? 'runs'),
    dataDir: resolve(read('SIPL_DATA_DIR') ?? 'data'),
    logLevel: read('SIPL_LOG_LEVEL') ?? 'info',
    threads: Math.min(threads, availableParallelism()),
    python: read('SIPL_PYTHON') ?? 'python3',
    winograd: winogradEnabled(),
  }
}

/** SIPL_WINOGRAD alone: asked on every convolution, where building the whole environment() cost ~6 ms per SIPL training step */
export function winogradEnabled(): boolean {
  return read('SIPL_WINOGRAD') !== '0'
}
