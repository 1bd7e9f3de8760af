/** Flags shared by `sipl sweep` and `sipl ablate`: where, how (executor) and Slurm resources. */
import {Flags} from '@oclif/core'
import {environment} from '../paths.js'
import type {LaunchOptions} from './launch.js'
import {defaultSipl} from './layout.js'

export const executorFlags = {
  out: Flags.string({
    char: 'o',
    description: 'experiment directory (default <SIPL_RUNS_DIR>/<config name>-sweep or -ablation)',
    helpValue: 'DIR',
  }),
  executor: Flags.string({description: 'where trials run (default: config executor.kind)', options: ['local', 'slurm']}),
  parallel: Flags.integer({
    char: 'j',
    description: 'local: trials run at once (default executor.parallel); slurm: at most N array tasks at once (%N)',
    min: 1,
  }),
  'dry-run': Flags.boolean({
    description: 'print the sbatch script (slurm) or the trial commands (local); write and run nothing',
    default: false,
  }),
  'retry-failed': Flags.boolean({description: 'rerun only the failed, cancelled or never-run trials of --out DIR', default: false}),
  wait: Flags.boolean({description: 'slurm: wait until the array and the collect job have finished, then print the table', default: false}),
  partition: Flags.string({description: 'slurm partition (executor.slurm.partition)', helpGroup: 'SLURM'}),
  account: Flags.string({description: 'slurm account (executor.slurm.account)', helpGroup: 'SLURM'}),
  time: Flags.string({description: 'time limit per trial, e.g. 48:00:00 (executor.slurm.time)', helpGroup: 'SLURM'}),
  gpus: Flags.integer({description: 'GPUs per trial; 0 writes no --gpus line (executor.slurm.gpus)', min: 0, helpGroup: 'SLURM'}),
  'cpus-per-task': Flags.integer({description: 'CPUs per trial (executor.slurm.cpusPerTask)', min: 1, helpGroup: 'SLURM'}),
  mem: Flags.string({description: 'memory per trial, e.g. 64G (executor.slurm.mem)', helpGroup: 'SLURM'}),
  sbatch: Flags.string({
    description: "extra '#SBATCH' line, e.g. --sbatch=--qos=long (repeatable; added to executor.slurm.extra)",
    multiple: true,
    default: [],
    helpGroup: 'SLURM',
  }),
  'trial-command': Flags.string({
    description: 'executable each trial runs instead of sipl (called with the same train/eval arguments; for testing)',
    hidden: true,
  }),
}

interface ExecutorFlagValues {
  out?: string
  executor?: string
  parallel?: number
  'dry-run': boolean
  'retry-failed': boolean
  wait: boolean
  partition?: string
  account?: string
  time?: string
  gpus?: number
  'cpus-per-task'?: number
  mem?: string
  sbatch: string[]
  'trial-command'?: string
  backend?: string
  config?: string
  set?: string[]
  'break-lock'?: boolean
}

export function launchOptionsFromFlags(flags: ExecutorFlagValues): Omit<LaunchOptions, 'kind'> {
  return {
    dir: flags.out,
    runsDir: environment().runsDir,
    configFile: flags.config,
    sets: flags.set ?? [],
    executor: flags.executor as 'local' | 'slurm' | undefined,
    parallel: flags.parallel,
    slurm: {
      partition: flags.partition,
      account: flags.account,
      time: flags.time,
      gpus: flags.gpus,
      cpusPerTask: flags['cpus-per-task'],
      mem: flags.mem,
      extra: flags.sbatch,
    },
    dryRun: flags['dry-run'],
    retryFailed: flags['retry-failed'],
    wait: flags.wait,
    sipl: flags['trial-command'] !== undefined ? [flags['trial-command']] : defaultSipl(),
    // relative data paths resolve against SIPL_DATA_DIR: pin it, so trials find the same data
    // wherever they start (a cluster may start tasks with a clean environment)
    env: {SIPL_DATA_DIR: environment().dataDir, ...(flags.backend !== undefined ? {SIPL_BACKEND: flags.backend} : {})},
    collectSipl: defaultSipl(),
    breakLock: flags['break-lock'] ?? false,
  }
}
