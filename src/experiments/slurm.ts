/**
 * Slurm executor: one `sbatch --array` script for the trials plus a dependent (`afterany`) job that
 * collects whatever finished. Slurm does the scheduling, requeueing and accounting; sipl only writes
 * the script, submits it with `sbatch --parsable` and reads `squeue` for status (DESIGN §6).
 */
import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {UserError} from '../errors.js'
import {writeFileAtomic} from '../util/atomic.js'
import type {ExecutorConfig} from '../config/schema.js'
import {shQuote, trialScriptBody, type ExperimentRecord} from './layout.js'

export type SlurmOptions = ExecutorConfig['slurm']

export interface Submission {
  /** 1, 2, … one per sbatch of the array (the first run, then each --retry-failed) */
  number: number
  jobId: string
  collectJobId?: string
  indices: number[]
  submittedAt: string
  script: string
}

/** `0-3` for a contiguous run, else `1,3,7`; `%N` limits how many run at once. */
export function arraySpec(indices: number[], throttle?: number): string {
  const sorted = [...indices].sort((a, b) => a - b)
  const contiguous = sorted.every((v, i) => i === 0 || v === sorted[i - 1] + 1)
  const spec = contiguous && sorted.length > 1 ? `${sorted[0]}-${sorted[sorted.length - 1]}` : sorted.join(',')
  return throttle !== undefined && throttle > 0 ? `${spec}%${throttle}` : spec
}

function sbatchHeader(lines: string[]): string {
  return lines.map((l) => `#SBATCH ${l}`).join('\n')
}

/** The #SBATCH options for the resources of one trial; also what `sbatch --test-only` checks before submitting. */
export function resourceLines(slurm: SlurmOptions): string[] {
  const lines: string[] = []
  if (slurm.partition !== undefined) lines.push(`--partition=${slurm.partition}`)
  if (slurm.account !== undefined) lines.push(`--account=${slurm.account}`)
  lines.push(`--time=${slurm.time}`)
  // no --gpus line at all for CPU-only jobs: a cluster without GPU GRES rejects even --gpus=0
  if (slurm.gpus > 0) lines.push(`--gpus=${slurm.gpus}`)
  lines.push(`--cpus-per-task=${slurm.cpusPerTask}`, `--mem=${slurm.mem}`)
  return lines
}

export function arrayScript(dir: string, record: ExperimentRecord, indices: number[], slurm: SlurmOptions, throttle?: number): string {
  const abs = resolve(dir)
  const header = [
    `--job-name=sipl-${record.name}`,
    `--array=${arraySpec(indices, throttle)}`,
    `--output=${join(abs, 'logs', 'slurm-%A_%a.out')}`,
    // relative paths in the configs mean the same as where sipl was run
    `--chdir=${record.cwd ?? abs}`,
    // a preempted or failed-node task goes back to the queue and resumes from checkpoints/last
    '--requeue',
    '--open-mode=append',
    ...resourceLines(slurm),
    ...slurm.extra.map((line) => line.replace(/^#SBATCH\s+/, '')),
  ]
  const setup = slurm.setup.length > 0 ? `# environment set-up (executor.slurm.setup)\n${slurm.setup.join('\n')}\n` : ''
  return `#!/usr/bin/env bash
${sbatchHeader(header)}
# sipl ${record.kind} '${record.name}': ${indices.length} of ${record.trials.length} trials, one per array task.
# Each task runs sipl preprocess (under a lock), sipl train (with --resume when the trial has
# checkpoints/last) and sipl eval in
# ${join(abs, 'trials', '<name>')}; its state is in trial.json there.
${setup}${trialScriptBody(dir, record)}`
}

export function collectScript(dir: string, record: ExperimentRecord, slurm: SlurmOptions, sipl: string[]): string {
  const abs = resolve(dir)
  const header = [
    `--job-name=sipl-${record.name}-collect`,
    `--output=${join(abs, 'logs', 'collect-%j.out')}`,
    ...(slurm.partition !== undefined ? [`--partition=${slurm.partition}`] : []),
    ...(slurm.account !== undefined ? [`--account=${slurm.account}`] : []),
    // collection reads JSON/CSV files and writes tables: one core, little memory, minutes
    '--time=00:30:00',
    '--cpus-per-task=1',
    '--mem=2G',
  ]
  const setup = slurm.setup.length > 0 ? `${slurm.setup.join('\n')}\n` : ''
  return `#!/usr/bin/env bash
${sbatchHeader(header)}
# runs after every array task has ended (afterany): failed trials are reported, never block
${setup}exec ${sipl.map(shQuote).join(' ')} sweep collect ${shQuote(abs)}
`
}

function run(command: string, args: string[]): {stdout: string; stderr: string; status: number | null; missing: boolean} {
  const result = spawnSync(command, args, {encoding: 'utf8'})
  const missing = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
  return {stdout: result.stdout ?? '', stderr: result.stderr ?? '', status: result.status, missing}
}

export function sbatchAvailable(): boolean {
  return !run('sbatch', ['--version']).missing
}

/** `sbatch --parsable` prints `jobid` or `jobid;cluster`. */
function sbatch(args: string[]): string {
  const result = run('sbatch', ['--parsable', ...args])
  if (result.missing)
    throw new UserError(
      "sbatch not found on PATH: run this on a Slurm login node, or use '--executor local' (scripts/slurm-local.sh starts a test cluster)",
    )
  if (result.status !== 0) throw new UserError(`sbatch failed: ${(result.stderr || result.stdout).trim().split('\n').join(' ')}`)
  const id = result.stdout.trim().split(';')[0]
  if (!/^\d+$/.test(id)) throw new UserError(`sbatch printed '${result.stdout.trim()}' instead of a job id`)
  return id
}

export const submissionsFile = (dir: string): string => join(dir, 'slurm', 'submissions.json')

export function readSubmissions(dir: string): Submission[] {
  const file = submissionsFile(dir)
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Submission[]) : []
}

/** Writes the array + collect scripts and submits both; the collect job waits for the array (afterany). */
export function submitSlurm(
  dir: string,
  record: ExperimentRecord,
  indices: number[],
  slurm: SlurmOptions,
  throttle: number | undefined,
  collectSipl: string[],
): Submission {
  const previous = readSubmissions(dir)
  const number = previous.length + 1
  const script = join(resolve(dir), 'slurm', `array-${number}.sbatch`)
  writeFileAtomic(script, arrayScript(dir, record, indices, slurm, throttle))
  const collect = join(resolve(dir), 'slurm', 'collect.sbatch')
  writeFileAtomic(collect, collectScript(dir, record, slurm, collectSipl))
  const jobId = sbatch([script])
  const submission: Submission = {number, jobId, indices, submittedAt: new Date().toISOString(), script}
  // record the array at once, so status works even if the collect submission fails
  writeFileAtomic(submissionsFile(dir), JSON.stringify([...previous, submission], null, 2) + '\n')
  submission.collectJobId = sbatch([`--dependency=afterany:${jobId}`, collect])
  writeFileAtomic(submissionsFile(dir), JSON.stringify([...previous, submission], null, 2) + '\n')
  return submission
}

export interface QueueEntry {
  /** PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, … */
  state: string
  /** squeue's %r: why a pending task waits (Priority, Resources, PartitionConfig, …) */
  reason?: string
}

/**
 * Slurm's view of the given jobs: `<jobid>_<task>` (and plain `<jobid>`) → state and pending reason.
 * undefined when squeue cannot be asked (not on a Slurm host). Finished jobs stay visible only for
 * MinJobAge (5 min by default); trial.json covers the rest.
 */
export function queueStates(jobIds: string[]): Map<string, QueueEntry> | undefined {
  if (jobIds.length === 0) return new Map()
  const states = new Map<string, QueueEntry>()
  let answered = false
  // one id at a time: squeue rejects the whole list when any id has been purged
  for (const id of jobIds) {
    const result = run('squeue', ['-h', '-r', '-t', 'all', '-j', id, '-o', '%i|%T|%r'])
    if (result.missing) return undefined
    if (result.status === 0) answered = true
    else if (/Invalid job id/i.test(result.stderr)) answered = true
    for (const line of result.stdout.split('\n')) {
      const [job, state, ...reason] = line.trim().split('|')
      if (job && state) states.set(job, {state, ...(state === 'PENDING' && reason.length > 0 ? {reason: reason.join('|')} : {})})
    }
  }
  return answered ? states : undefined
}

/** Cancels jobs by id (used by the tests and `sweep cancel`-style clean-up); missing scancel is ignored. */
export function scancel(jobIds: string[]): void {
  if (jobIds.length > 0) run('scancel', jobIds)
}
