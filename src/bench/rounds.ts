/**
 * `sipl bench --rounds R`: the timed runs repeated R times, sipl's backends and PyTorch taking turns
 * (sipl, PyTorch, sipl, PyTorch, …), and merged into one row per backend. On a machine that other
 * jobs share (a cluster node, a CI runner, a cloud VM), load comes and goes over seconds to
 * minutes; timing all of sipl's steps and then all of PyTorch's puts the two sides in different
 * load, and their ratio then measures the load. Taking turns gives both sides the same spells.
 */
import type {ExperimentConfig} from '../config/schema.js'
import {median} from '../util/median.js'
import {runBench, type BenchOptions, type BenchRow} from './bench.js'
import {addTorchRatios, torchBench, twinBench, type TorchMalloc} from './torch.js'

export interface BenchRoundsOptions extends BenchOptions {
  rounds: number
  /** also time PyTorch (unet-ref, or with `config` the SIPL twin) with this Python and thread count */
  torch?: {python: string; threads: number; malloc: TorchMalloc}
  /** --net sipl: the experiment config the twin is built from */
  config?: ExperimentConfig
}

/**
 * Runs the benchmark `rounds` times, sipl's backends then PyTorch in each round, and merges the
 * rounds (mergeRounds). The agreement checks (reference kernels, twin) and the profiled warm-up
 * step run in the first round only.
 */
export async function runBenchRounds(options: BenchRoundsOptions): Promise<BenchRow[]> {
  const {log, torch, config} = options
  const rounds: BenchRow[][] = []
  let backends = options.backends
  for (let round = 0; round < options.rounds; round++) {
    // what the first round measured once (agreement, kernel calls, peak memory) mergeRounds takes from it
    const first = round === 0
    const check = options.check && first
    if (options.rounds > 1) log(`round ${round + 1} of ${options.rounds}`)
    const rows = await runBench({...options, backends, check, profile: first})
    // after the first round, only the backends it timed: one that failed its agreement check has
    // null timings, and a later, unchecked round must not time it anyway
    if (first) backends = backends.filter((name) => rows.some((row) => row.backend === name && row.stepMsMedian !== null))
    if (torch) {
      log(`pytorch: ${options.steps} steps at ${options.size}³ on ${torch.threads} threads`)
      const base = {...torch, size: options.size, steps: options.steps, warmup: options.warmup}
      if (config) {
        const twin = await twinBench({
          ...base,
          config,
          seed: options.seed,
          inferSize: options.inferSize,
          inferBatch: options.inferBatch,
          inferWarmup: options.inferWarmup,
          check,
        })
        if (twin.twinMaxRelErr !== undefined) {
          const verdict = twin.twinAgrees ? 'every quantity within its bound' : 'DISAGREES'
          log(`twin agreement: max relative difference ${twin.twinMaxRelErr.toExponential(2)} (${verdict})`)
          for (const row of rows)
            if (row.backend === 'cpu') Object.assign(row, {twinMaxRelErr: twin.twinMaxRelErr, twinAgrees: twin.twinAgrees})
        }
        rows.push(twin.row)
      } else rows.push(torchBench(base))
    }
    rounds.push(rows)
  }
  const merged = mergeRounds(rounds)
  const pytorch = merged.find((row) => row.backend === 'pytorch')
  if (pytorch) addTorchRatios(merged, pytorch)
  return merged
}

/**
 * One row per backend of the first round, from the rows of every round (in round order): the
 * step times of all rounds pooled (median and min over all of them), the inference time the
 * median of the rounds' (each round's kept in inferMsRounds); everything else as the first round
 * measured it (the agreement checks run only there). A row the first round did not time (it
 * failed its check) stays as it is; a backend absent from the first round is left out.
 */
export function mergeRounds(rounds: BenchRow[][]): BenchRow[] {
  if (rounds.length === 1) return rounds[0]
  return rounds[0].map((first) => {
    if (first.stepMsMedian === null) return first
    const same = rounds.map((rows) => rows.find((row) => row.backend === first.backend && row.net === first.net))
    const timed = same.filter((row): row is BenchRow => row !== undefined && row.stepMs !== undefined && row.stepMs.length > 0)
    if (timed.length === 0) return first
    const stepMs = timed.flatMap((row) => row.stepMs!)
    const infer = timed.map((row) => row.inferMs).filter((ms): ms is number => ms !== null)
    const merged: BenchRow = {
      ...first,
      stepMs,
      stepMsMedian: median(stepMs),
      stepMsMin: Math.min(...stepMs),
      steps: stepMs.length,
      rounds: timed.length,
      inferMs: infer.length > 0 ? median(infer) : first.inferMs,
    }
    if (infer.length > 0) merged.inferMsRounds = infer
    return merged
  })
}
