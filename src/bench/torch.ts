/**
 * The PyTorch side of `sipl bench --torch`: runs bench/unet_ref_torch.py (the same unet-ref, loss
 * and Adam in PyTorch) with the same size, steps and thread count, so that issue 7's ratios are
 * measured side by side in one run on one machine instead of against figures from elsewhere.
 */
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'
import {UserError} from '../errors.js'
import {PROJECT_ROOT} from '../experiments/layout.js'
import type {BenchRow} from './bench.js'

export interface TorchBenchOptions {
  size: number
  steps: number
  warmup: number
  threads: number
  /** the Python that has torch (env SIPL_PYTHON, default python3) */
  python: string
}

interface TorchResult {
  torch: string
  threads: number
  stepMsMedian: number
  stepMsMin: number
  steps: number
}

export function torchBench(options: TorchBenchOptions): BenchRow & {torch: string} {
  const script = join(PROJECT_ROOT, 'bench', 'unet_ref_torch.py')
  const args = [script, '--size', `${options.size}`, '--steps', `${options.steps}`, '--warmup', `${options.warmup}`]
  args.push('--threads', `${options.threads}`)
  // OpenBLAS ignores torch.set_num_threads (../shared/reference/gemm/RESULTS.md): pin it as well
  const threadsEnv = {
    OMP_NUM_THREADS: `${options.threads}`,
    OPENBLAS_NUM_THREADS: `${options.threads}`,
    MKL_NUM_THREADS: `${options.threads}`,
  }
  const result = spawnSync(options.python, args, {encoding: 'utf8', env: {...process.env, ...threadsEnv}})
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : (result.stderr.trim().split('\n').pop() ?? `exit ${result.status}`)
    throw new UserError(`--torch: ${options.python} ${script} failed (${why}); set SIPL_PYTHON to a Python with torch installed`)
  }
  const parsed = JSON.parse(result.stdout.trim().split('\n').pop()!) as TorchResult
  return {
    net: 'unet-ref',
    size: options.size,
    backend: 'pytorch',
    stepMsMedian: parsed.stepMsMedian,
    stepMsMin: parsed.stepMsMin,
    inferMs: null,
    maxRelErr: null,
    inferSize: 0,
    steps: parsed.steps,
    threads: parsed.threads,
    torch: parsed.torch,
  }
}

/** Adds each timed row's median step time over PyTorch's (vsTorch; issue 7's target is ≤ 1). */
export function addTorchRatios(rows: BenchRow[], torch: BenchRow): void {
  for (const row of rows)
    if (row !== torch && row.stepMsMedian !== null && torch.stepMsMedian) row.vsTorch = row.stepMsMedian / torch.stepMsMedian
}
