/**
 * Per-trial state from the files (trial.json written by trial.sh) and, for Slurm trials, squeue.
 * A trial whose process or Slurm task is gone without writing 'done' is failed (interrupted, lost,
 * cancelled); it never blocks the others.
 */
import {existsSync, readFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {readTrialRecord, trialDir, type ExperimentRecord, type TrialRecord} from './layout.js'
import {queueStates, readSubmissions, type QueueEntry, type Submission} from './slurm.js'
import {pendingVerdict, runningJobsOfUser} from './slurm-check.js'

export type TrialState = 'pending' | 'queued' | 'running' | 'done' | 'failed' | 'cancelled'

export interface TrialStatus {
  index: number
  name: string
  label: string
  state: TrialState
  /** why it failed, or what Slurm says */
  detail?: string
  /** Slurm's reason while the task is pending (squeue %r) */
  pendingReason?: string
  /** the pending reason is one that does not resolve on its own (slurm-check.ts pendingVerdict) */
  neverStarts?: boolean
  job?: string
  exitCode?: number | null
  startedAt?: string
  updatedAt?: string
}

/** failed and cancelled trials count as failed in tables and for --retry-failed */
export const isFailed = (s: TrialStatus): boolean => s.state === 'failed' || s.state === 'cancelled'

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Last line of trial.log that says what went wrong ('Error: …'), else its last line. */
export function failureHint(logFile: string): string | undefined {
  if (!existsSync(logFile)) return undefined
  const lines = readFileSync(logFile, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('== '))
  const error = [...lines].reverse().find((l) => /error/i.test(l))
  const line = error ?? lines[lines.length - 1]
  return line === undefined ? undefined : line.length > 300 ? line.slice(0, 300) + '…' : line
}

/** The latest submission that included this trial. */
function submissionOf(submissions: Submission[], index: number): Submission | undefined {
  return [...submissions].reverse().find((s) => s.indices.includes(index))
}

const FINISHED_SLURM = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|REVOKED)/

/** `Slurm: PENDING (PartitionConfig): never starts: …` and the flags that go with it. */
function queuedDetail(
  entry: QueueEntry,
  userRunning: () => number | undefined,
): Pick<TrialStatus, 'detail' | 'pendingReason' | 'neverStarts'> {
  if (entry.state !== 'PENDING' || entry.reason === undefined) return {detail: `Slurm: ${entry.state}`}
  const verdict = pendingVerdict(entry.reason, /PerUser/.test(entry.reason) ? (userRunning() ?? 1) : 1)
  return {
    detail: `Slurm: PENDING (${entry.reason}): ${verdict.explanation}`,
    pendingReason: entry.reason,
    ...(verdict.neverStarts ? {neverStarts: true} : {}),
  }
}

export function trialStatuses(dir: string, record: ExperimentRecord): TrialStatus[] {
  const submissions = readSubmissions(dir)
  const queue = submissions.length > 0 ? queueStates(submissions.map((s) => s.jobId)) : new Map<string, QueueEntry>()
  let running: number | undefined | null = null
  const userRunning = (): number | undefined => (running === null ? (running = runningJobsOfUser()) : running)
  const here = hostname()
  return record.trials.map((trial) => {
    const base = {index: trial.index, name: trial.name, label: trial.label}
    const file: TrialRecord | undefined = readTrialRecord(dir, trial)
    const submission = submissionOf(submissions, trial.index)
    const taskId = submission ? `${submission.jobId}_${trial.index}` : undefined
    const entry = taskId !== undefined ? queue?.get(taskId) : undefined
    const slurmState = entry?.state
    const log = join(trialDir(dir, trial), 'trial.log')
    const common = {...base, job: file?.job || taskId, exitCode: file?.exitCode, startedAt: file?.startedAt, updatedAt: file?.updatedAt}

    if (file === undefined) {
      if (submission === undefined) return {...common, state: 'pending' as const}
      if (queue === undefined) return {...common, state: 'queued' as const, detail: 'squeue unavailable here; state from files only'}
      if (slurmState === undefined || FINISHED_SLURM.test(slurmState)) {
        return {
          ...common,
          state: 'failed' as const,
          detail: `never started (Slurm: ${slurmState ?? 'no longer queued'}; cancelled or removed before it ran)`,
        }
      }
      if (slurmState === 'RUNNING') return {...common, state: 'running' as const, detail: `Slurm: ${slurmState}`}
      return {...common, state: 'queued' as const, ...queuedDetail(entry!, userRunning)}
    }
    // a preempted task writes 'cancelled' on SIGTERM, and Slurm puts it back in the queue (--requeue):
    // while Slurm still holds it, it is waiting to resume, not finished
    if (file.state !== 'done' && file.job && file.job === taskId && slurmState !== undefined && !FINISHED_SLURM.test(slurmState)) {
      if (slurmState === 'RUNNING' || slurmState === 'COMPLETING') return {...common, state: 'running' as const}
      const pending = queuedDetail(entry!, userRunning)
      return {
        ...common,
        state: 'queued' as const,
        ...pending,
        detail: `requeued (${pending.detail}); will resume from its last checkpoint`,
      }
    }
    switch (file.state) {
      case 'done':
        return {...common, state: 'done' as const}
      case 'failed':
        return {...common, state: 'failed' as const, detail: file.error ?? failureHint(log)}
      case 'cancelled':
        return {...common, state: 'cancelled' as const, detail: 'terminated by SIGTERM/SIGINT (cancelled, preempted or out of time)'}
      case 'running': {
        if (file.job) {
          if (queue === undefined) return {...common, state: 'running' as const, detail: 'squeue unavailable here; state from files only'}
          if (slurmState === 'RUNNING' || slurmState === 'COMPLETING') return {...common, state: 'running' as const}
          if (slurmState === 'PENDING' || slurmState === 'REQUEUED')
            return {...common, state: 'queued' as const, detail: 'requeued; will resume'}
          return {
            ...common,
            state: 'failed' as const,
            detail: `the Slurm task ended without reporting (Slurm: ${slurmState ?? 'gone'}; killed, out of memory or node failure)`,
          }
        }
        if (file.host === here && file.pid !== undefined && !pidAlive(file.pid))
          return {...common, state: 'failed' as const, detail: 'interrupted (its process is gone)'}
        return {...common, state: 'running' as const}
      }
      default:
        return {...common, state: 'failed' as const, detail: `unknown state '${String(file.state)}' in trial.json`}
    }
  })
}

export function stateCounts(statuses: TrialStatus[]): Record<TrialState, number> {
  const counts: Record<TrialState, number> = {pending: 0, queued: 0, running: 0, done: 0, failed: 0, cancelled: 0}
  for (const s of statuses) counts[s.state]++
  return counts
}
