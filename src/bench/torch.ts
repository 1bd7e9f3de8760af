/**
 * The PyTorch side of `sipl bench --torch`: runs src/bench/unet_ref_torch.py (the same unet-ref, loss
 * and Adam in PyTorch) with the same size, steps and thread count, so that issue 7's ratios are
 * measured side by side in one run on one machine instead of against figures from elsewhere.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {projectRoot} from '../project-root.js'
import type {BenchRow} from './bench.js'
import {benchConfig, benchEpoch} from './sipl-net.js'
import {compareTwin, runTwinCheck, TWIN_SCRIPT, writeTwinCase} from './twin.js'

/**
 * How PyTorch's process gets its memory. 'retain': glibc keeps what PyTorch frees (no mmap for
 * large blocks, no trimming of the heap), so a tensor of the next call reuses pages already
 * touched; 'default': glibc as PyTorch usually runs. Why: PyTorch frees every activation after
 * use, glibc hands blocks of ≥ 128 KiB back to the kernel, and each page of the next allocation
 * is then a page fault; on the shared VMs of docs/bench/2026-12-07-array-pool.md a fault cost
 * ~7 µs and PyTorch's demo inference took 1.2–5.4 s by default against 1.13–1.14 s retaining.
 */
export type TorchMalloc = 'retain' | 'default'
export const TORCH_MALLOC: readonly TorchMalloc[] = ['retain', 'default']

/** glibc's malloc tunables for 'retain' */
const RETAIN_ENV = {MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: `${2 ** 62}`, MALLOC_TOP_PAD_: `${256 * 2 ** 20}`}

export interface TorchBenchOptions {
  size: number
  steps: number
  warmup: number
  threads: number
  /** the Python that has torch (env SIPL_PYTHON, default python3) */
  python: string
  malloc: TorchMalloc
}

interface TorchResult {
  torch: string
  threads: number
  stepMsMedian: number
  stepMsMin: number
  stepMs: number[]
  steps: number
}

/** Runs one of the PyTorch scripts with `threads` threads and returns the JSON of its last stdout line. */
function runTorchScript<T>(python: string, args: string[], threads: number, malloc: TorchMalloc): T {
  // OpenBLAS ignores torch.set_num_threads (../shared/reference/gemm/RESULTS.md): pin it as well
  const threadsEnv = {OMP_NUM_THREADS: `${threads}`, OPENBLAS_NUM_THREADS: `${threads}`, MKL_NUM_THREADS: `${threads}`}
  const mallocEnv = malloc === 'retain' ? RETAIN_ENV : {}
  const result = spawnSync(python, args, {encoding: 'utf8', env: {...process.env, ...threadsEnv, ...mallocEnv}})
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : (result.stderr.trim().split('\n').pop() ?? `exit ${result.status}`)
    throw new UserError(
      `--torch: ${python} ${args.slice(0, 2).join(' ')} failed (${why}); set SIPL_PYTHON to a Python with torch installed`,
    )
  }
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as T
}

export function torchBench(options: TorchBenchOptions): BenchRow & {torch: string} {
  const script = join(projectRoot(), 'src', 'bench', 'unet_ref_torch.py')
  const args = [script, '--size', `${options.size}`, '--steps', `${options.steps}`, '--warmup', `${options.warmup}`]
  args.push('--threads', `${options.threads}`)
  const parsed = runTorchScript<TorchResult>(options.python, args, options.threads, options.malloc)
  return {
    net: 'unet-ref',
    size: options.size,
    backend: 'pytorch',
    stepMsMedian: parsed.stepMsMedian,
    stepMsMin: parsed.stepMsMin,
    stepMs: parsed.stepMs,
    inferMs: null,
    maxRelErr: null,
    inferSize: 0,
    steps: parsed.steps,
    threads: parsed.threads,
    torch: parsed.torch,
    torchMalloc: options.malloc,
  }
}

/** Adds each timed row's median step time and inference time over PyTorch's (vsTorch, inferVsTorch; the targets are ≤ 1). */
export function addTorchRatios(rows: BenchRow[], torch: BenchRow): void {
  for (const row of rows) {
    if (row === torch) continue
    if (row.stepMsMedian !== null && torch.stepMsMedian) row.vsTorch = row.stepMsMedian / torch.stepMsMedian
    if (row.inferMs !== null && torch.inferMs) row.inferVsTorch = row.inferMs / torch.inferMs
  }
}

export interface TwinBenchOptions extends TorchBenchOptions {
  config: ExperimentConfig
  seed: number
  inferSize: number
  inferBatch: number
  /** untimed sliding-window passes before the timed one */
  inferWarmup: number
  /** check the twin's agreement first (float64 in PyTorch: at BTCV's size that needs tens of GB) */
  check: boolean
}

interface TwinTiming extends TorchResult {
  inferMs: number | null
  /** the untimed passes the script ran (absent when it ran no inference) */
  inferWarmup?: number
}

/**
 * The SIPL network side by side (issue 16): the twin (src/bench/sipl_twin.py) gets the weights and the
 * labelled batch sipl's `--net sipl` bench uses (same seed), checks its agreement with sipl on them,
 * then times the same training step (forward, backward, the config's optimiser) and a
 * sliding-window pass over the same windows, with the same thread count.
 */
export async function twinBench(
  options: TwinBenchOptions,
): Promise<{row: BenchRow & {torch: string}; twinMaxRelErr?: number; twinAgrees?: boolean}> {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-bench-twin-'))
  try {
    const config = benchConfig(options.config, options.size, options.seed)
    // sipl's own results are written only for the agreement check, which reads them
    await writeTwinCase(dir, {
      config,
      batch: config.train.batchSize,
      training: true,
      epoch: benchEpoch(config),
      dataSeed: options.seed,
      results: options.check,
    })
    let agreement: {twinMaxRelErr: number; twinAgrees: boolean} | undefined
    if (options.check) {
      const [report] = runTwinCheck(options.python, [dir])
      const {errors, allowed} = compareTwin(dir, report)
      agreement = {
        twinMaxRelErr: Math.max(...errors.values()),
        twinAgrees: [...errors].every(([key, error]) => error <= allowed.get(key)!),
      }
    }
    const args = [
      TWIN_SCRIPT,
      'bench',
      dir,
      '--steps',
      `${options.steps}`,
      '--warmup',
      `${options.warmup}`,
      '--threads',
      `${options.threads}`,
    ]
    args.push('--infer-size', `${options.inferSize}`, '--infer-batch', `${options.inferBatch}`, '--infer-warmup', `${options.inferWarmup}`)
    const timing = runTorchScript<TwinTiming>(options.python, args, options.threads, options.malloc)
    const row = {
      net: 'sipl',
      size: options.size,
      backend: 'pytorch',
      stepMsMedian: timing.stepMsMedian,
      stepMsMin: timing.stepMsMin,
      stepMs: timing.stepMs,
      inferMs: timing.inferMs,
      maxRelErr: null,
      inferSize: options.inferSize,
      inferWarmup: timing.inferWarmup,
      steps: timing.steps,
      threads: timing.threads,
      torch: timing.torch,
      torchMalloc: options.malloc,
    }
    return {row, ...agreement}
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}
