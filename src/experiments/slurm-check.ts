/**
 * What a Slurm cluster can run, asked before submitting and while waiting.
 *
 * Before: Slurm accepts an array that asks for more than any node of the partition has and leaves
 * it PENDING for ever (reason PartitionConfig), and it refuses a GPU request on a cluster without GPU
 * GRES with a message that names no flag. So the request is compared with the partition first
 * (`scontrol show partition`, `sinfo -N`), naming the resource that does not fit and the flag and
 * config key that change it; then `sbatch --test-only` has the last word on what sinfo cannot see
 * (accounts, QOS, constraints).
 *
 * While waiting: squeue's pending reason (%r) per task, and which reasons never resolve on their own
 * (docs/experiments.md lists them with the reasons why).
 */
import {spawnSync} from 'node:child_process'
import {userInfo} from 'node:os'
import {UserError} from '../errors.js'
import type {SlurmSettings} from './layout.js'

/** Slurm memory (`--mem`, sinfo %m): a number with an optional K/M/G/T suffix, M when none. */
export function parseMemMb(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT])?B?\s*$/i.exec(text)
  if (!m) return undefined
  const scale: Record<string, number> = {K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024}
  return Number(m[1]) * scale[(m[2] ?? 'M').toUpperCase()]
}

/**
 * Slurm time (`--time`, MaxTime) in minutes: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`;
 * Infinity for UNLIMITED/infinite; undefined when it is none of these.
 */
export function parseSlurmMinutes(text: string): number | undefined {
  const t = text.trim()
  if (/^(unlimited|infinite)$/i.test(t)) return Infinity
  const days = /^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$/.exec(t)
  if (days) return Number(days[1]) * 1440 + Number(days[2]) * 60 + Number(days[3] ?? 0) + Number(days[4] ?? 0) / 60
  const parts = t.split(':')
  if (parts.length > 3 || !parts.every((p) => /^\d+$/.test(p))) return undefined
  const n = parts.map(Number)
  if (n.length === 1) return n[0]
  if (n.length === 2) return n[0] + n[1] / 60
  return n[0] * 60 + n[1] + n[2] / 60
}

/** GPUs in a node's GRES (sinfo %G), e.g. `gpu:a100:4(S:0-1),gpu:v100:2` → 6; `(null)` → 0; undefined if unreadable. */
export function parseGpuCount(gres: string): number | undefined {
  const text = gres.trim()
  if (text === '' || text === '(null)') return 0
  let total = 0
  for (const entry of text.split(/,(?![^(]*\))/)) {
    const name = entry.split(':')[0]
    if (name !== 'gpu') continue
    const count = /^gpu(?::[^:(]+)?:(\d+)/.exec(entry)
    if (!count) return undefined
    total += Number(count[1])
  }
  return total
}

export interface NodeResources {
  name: string
  cpus: number
  memMb: number
  /** undefined when the GRES text could not be read */
  gpus: number | undefined
}

export interface PartitionInfo {
  name: string
  state: string
  maxMinutes: number
  maxCpusPerNode: number
  maxMemPerNodeMb: number
  nodes: NodeResources[]
}

export type SlurmRequest = Pick<SlurmSettings, 'partition' | 'time' | 'gpus' | 'cpusPerTask' | 'mem'>

const fmtMb = (mb: number): string => (mb >= 1024 ? `${Math.floor(mb / 1024)}G` : `${Math.floor(mb)}M`)
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** One message per resource the request cannot get on any node of the partition; [] when it fits. */
export function fitProblems(request: SlurmRequest, partition: PartitionInfo): string[] {
  const problems: string[] = []
  const where = `partition '${partition.name}'`
  const nodes = partition.nodes
  if (nodes.length === 0) return [`${where} has no nodes`]
  const cpuLimit = Math.min(partition.maxCpusPerNode, Math.max(...nodes.map((n) => n.cpus)))
  const memLimit = Math.min(partition.maxMemPerNodeMb, Math.max(...nodes.map((n) => n.memMb)))
  const gpuCounts = nodes.map((n) => n.gpus)
  const gpuLimit = gpuCounts.some((g) => g === undefined) ? undefined : Math.max(...(gpuCounts as number[]))
  const memMb = parseMemMb(request.mem)
  const minutes = parseSlurmMinutes(request.time)

  if (request.gpus > 0 && gpuLimit !== undefined && request.gpus > gpuLimit)
    problems.push(
      gpuLimit === 0
        ? `${plural(request.gpus, 'GPU')} per trial, but no node in ${where} has a GPU: use --gpus 0 (executor.slurm.gpus: 0) to run on CPUs, or a GPU partition with --partition (executor.slurm.partition)`
        : `${plural(request.gpus, 'GPU')} per trial, but the nodes in ${where} have at most ${gpuLimit}: use --gpus ${gpuLimit} (executor.slurm.gpus)`,
    )
  if (request.cpusPerTask > cpuLimit)
    problems.push(
      `${plural(request.cpusPerTask, 'CPU')} per trial, but ${where} gives a task at most ${cpuLimit}: use --cpus-per-task ${cpuLimit} (executor.slurm.cpusPerTask)`,
    )
  if (memMb !== undefined && memMb > memLimit)
    problems.push(
      `${request.mem} of memory per trial, but ${where} gives a task at most ${fmtMb(memLimit)}: use --mem ${fmtMb(memLimit)} or less (executor.slurm.mem)`,
    )
  if (minutes !== undefined && minutes > partition.maxMinutes)
    problems.push(
      `a time limit of ${request.time} per trial, but ${where} allows at most ${formatMinutes(partition.maxMinutes)}: use --time ${formatMinutes(partition.maxMinutes)} or less (executor.slurm.time)`,
    )
  if (problems.length === 0) {
    // each resource exists somewhere, but maybe not all on one node
    const fits = nodes.some(
      (n) =>
        n.cpus >= request.cpusPerTask &&
        (memMb === undefined || n.memMb >= memMb) &&
        (request.gpus === 0 || n.gpus === undefined || n.gpus >= request.gpus),
    )
    if (!fits)
      problems.push(
        `${plural(request.cpusPerTask, 'CPU')}, ${request.mem}${request.gpus > 0 ? ` and ${plural(request.gpus, 'GPU')}` : ''} per trial, but no single node in ${where} has them all: lower --cpus-per-task, --mem or --gpus (executor.slurm.*), or choose another --partition`,
      )
  }
  return problems
}

function formatMinutes(minutes: number): string {
  const total = Math.floor(minutes)
  const d = Math.floor(total / 1440)
  const h = Math.floor((total % 1440) / 60)
  const m = total % 60
  const hms = `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:00`
  return d > 0 ? `${d}-${hms}` : hms
}

function run(command: string, args: string[]): {stdout: string; stderr: string; status: number | null; missing: boolean} {
  const result = spawnSync(command, args, {encoding: 'utf8', timeout: 60_000})
  const missing = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
  return {stdout: result.stdout ?? '', stderr: result.stderr ?? '', status: result.status, missing}
}

function keyValues(line: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const token of line.trim().split(/\s+/)) {
    const eq = token.indexOf('=')
    if (eq > 0) map.set(token.slice(0, eq), token.slice(eq + 1))
  }
  return map
}

/**
 * Slurm's words when its controller (slurmctld) does not answer, from any client (sbatch, scontrol,
 * squeue): the request is then not at fault, and no flag changes it.
 */
const CONTROLLER_UNREACHABLE =
  /Unable to contact slurm controller|Socket timed out on send\/recv|backup controller in standby mode|Zero Bytes were transmitted or received/i

/** The one-line error for a controller that does not answer, quoting what the client said. */
export function controllerUnreachable(what: string, said: string): UserError | undefined {
  const line = said
    .split('\n')
    .map((l) => l.trim())
    .find((l) => CONTROLLER_UNREACHABLE.test(l))
  if (line === undefined) return undefined
  return new UserError(
    `the Slurm controller does not answer (${what}: ${line.replace(/^sbatch: (error: )?/, '')}); nothing was submitted: check 'scontrol ping' (slurmctld must be up and reachable from this host), then run the same command again`,
  )
}

const limit = (value: string | undefined, parse: (s: string) => number | undefined): number =>
  value === undefined || /^unlimited$/i.test(value) ? Infinity : (parse(value) ?? Infinity)

/**
 * The partition a job goes to (`name`, else the cluster's default) with its limits and nodes, read
 * from `scontrol -a -o show partition` and `sinfo -N`. undefined when those tools are not here; a
 * UserError when the named partition does not exist.
 */
export function readPartition(name: string | undefined): PartitionInfo | undefined {
  // -a: hidden partitions too, which a user may still be allowed to submit to by name
  const shown = run('scontrol', ['-a', '-o', 'show', 'partition'])
  if (!shown.missing && shown.status !== 0) {
    const down = controllerUnreachable('scontrol show partition', shown.stderr + shown.stdout)
    if (down) throw down
  }
  if (shown.missing || shown.status !== 0) return undefined
  const partitions = shown.stdout
    .split('\n')
    .filter((l) => l.startsWith('PartitionName='))
    .map(keyValues)
  const chosen =
    name === undefined ? partitions.find((p) => p.get('Default') === 'YES') : partitions.find((p) => p.get('PartitionName') === name)
  if (chosen === undefined) {
    const names = partitions.map((p) => p.get('PartitionName')!).join(', ')
    if (name === undefined)
      throw new UserError(
        `this cluster has no default partition: name one with --partition (executor.slurm.partition); partitions: ${names}`,
      )
    throw new UserError(
      `partition '${name}' does not exist on this cluster (partitions: ${names}): use --partition NAME (executor.slurm.partition)`,
    )
  }
  const partitionName = chosen.get('PartitionName')!
  const listed = run('sinfo', ['-h', '-N', '-p', partitionName, '-o', '%N|%c|%m|%G'])
  if (listed.missing || listed.status !== 0) return undefined
  const seen = new Set<string>()
  const nodes: NodeResources[] = []
  for (const line of listed.stdout.split('\n')) {
    const [node, cpus, mem, gres] = line.trim().split('|')
    if (!node || seen.has(node) || !/^\d+$/.test(cpus ?? '') || parseMemMb(mem ?? '') === undefined) continue
    seen.add(node)
    nodes.push({name: node, cpus: Number(cpus), memMb: parseMemMb(mem)!, gpus: parseGpuCount(gres ?? '')})
  }
  return {
    name: partitionName,
    state: chosen.get('State') ?? 'UNKNOWN',
    maxMinutes: limit(chosen.get('MaxTime'), parseSlurmMinutes),
    maxCpusPerNode: limit(chosen.get('MaxCPUsPerNode'), (s) => (/^\d+$/.test(s) ? Number(s) : undefined)),
    maxMemPerNodeMb: limit(chosen.get('MaxMemPerNode'), parseMemMb),
    nodes,
  }
}

export interface FitCheck {
  partition?: PartitionInfo
  /** what sbatch --test-only said when it accepted the request */
  testOnly?: string
  /** things that do not block submission but may keep the tasks waiting */
  warnings: string[]
}

/**
 * Refuses (UserError, one line) a request the partition cannot run, before anything is submitted.
 * `sbatchArgs` are the array's resource options, given to `sbatch --test-only` after the sinfo comparison.
 */
export function checkRequestFits(request: SlurmRequest, sbatchArgs: string[]): FitCheck {
  const warnings: string[] = []
  const partition = readPartition(request.partition)
  if (partition !== undefined) {
    const problems = fitProblems(request, partition)
    if (problems.length > 0) throw new UserError(`the Slurm request does not fit: ${problems.join('; ')}`)
    if (partition.state !== 'UP')
      warnings.push(`partition '${partition.name}' is ${partition.state}: the tasks wait until an administrator brings it up`)
  }
  const test = run('sbatch', ['--test-only', ...sbatchArgs, '--wrap=true'])
  if (test.missing) return {partition, warnings}
  const said = (test.stderr + test.stdout)
    .trim()
    .split('\n')
    .map((l) => l.replace(/^sbatch: (error: )?/, '').trim())
    .filter((l) => l !== '')
  if (test.status !== 0) {
    const down = controllerUnreachable('sbatch --test-only', test.stderr + test.stdout)
    if (down) throw down
    throw new UserError(
      `Slurm refuses the request (sbatch --test-only: ${said.join('; ')}); change it with --partition, --account, --time, --gpus, --cpus-per-task, --mem or --sbatch (executor.slurm.*)`,
    )
  }
  return {partition, testOnly: said.join('; '), warnings}
}

// ---------------------------------------------------------------- pending reasons

export interface PendingVerdict {
  /** true when Slurm will not start the task unless the request, the account or the cluster changes */
  neverStarts: boolean
  /** what the reason means, and the fix when there is one */
  explanation: string
}

const RETRY = 'scancel it, then rerun with --retry-failed and'

/**
 * What a task's pending reason (squeue %r) means for sipl. `userRunning` is how many jobs of this user
 * are running: a per-user limit with none running can only be this task's own request.
 */
export function pendingVerdict(reason: string, userRunning = 1): PendingVerdict {
  const r = reason.trim()
  const never = (explanation: string): PendingVerdict => ({neverStarts: true, explanation: `never starts: ${explanation}`})
  if (r === 'PartitionConfig')
    return never(
      `asks for more CPUs, memory or GPUs than any node of the partition has; ${RETRY} a smaller --cpus-per-task, --mem or --gpus`,
    )
  if (r === 'PartitionTimeLimit') return never(`--time is above the partition's MaxTime; ${RETRY} a shorter --time`)
  if (r === 'PartitionNodeLimit') return never(`asks for more nodes than the partition allows; ${RETRY} another --partition`)
  if (r === 'BadConstraints') return never(`no node has the requested features (--constraint); ${RETRY} other --sbatch lines`)
  if (r === 'InvalidAccount' || r === 'InvalidQOS' || r === 'AccountNotAllowed' || r === 'QOSNotAllowed')
    return never(`the account or QOS is not valid for this user or partition; ${RETRY} another --account or --sbatch=--qos=…`)
  if (r === 'DependencyNeverSatisfied') return never('the job it depends on ended in a way that cannot satisfy the dependency')
  if (/^(QOS|Assoc)Max\w*Per(Job|Node)/.test(r) || /^QOSMin/.test(r) || r === 'MaxMemPerLimit')
    return never(
      `one task's request is beyond a per-job or per-node limit of its QOS or account (${r}); ${RETRY} a smaller request or another --sbatch=--qos=…`,
    )
  if (/^ReqNodeNotAvail/.test(r)) {
    if (/maintenance/i.test(r)) return {neverStarts: false, explanation: 'waiting for a maintenance reservation to end'}
    const unavailable = /UnavailableNodes:(\S*)/.exec(r)?.[1]
    // Slurm names the down, drained or reserved nodes it waits for; an empty list names nothing that could come back
    if (unavailable === '')
      return never(
        `no node of the partition can take it and Slurm names none that could come back; ${RETRY} another --partition or other --sbatch lines`,
      )
    return {
      neverStarts: false,
      explanation: `waiting for nodes that are down, drained or reserved${unavailable ? ` (${unavailable})` : ''}`,
    }
  }
  if (/^QOSMax\w*PerUser/.test(r))
    return userRunning === 0
      ? never(
          `this task alone is beyond a per-user limit of its QOS or account (${r}), and none of your jobs is running; ${RETRY} a smaller request`,
        )
      : {neverStarts: false, explanation: `waiting for your other jobs to end (per-user limit ${r})`}
  if (r === 'JobHeldUser' || r === 'JobHeldAdmin') return {neverStarts: false, explanation: 'held until released (scontrol release JOB)'}
  if (r === 'PartitionDown' || r === 'PartitionInactive')
    return {neverStarts: false, explanation: 'the partition is down; it starts when it is up again'}
  if (r === 'Dependency') return {neverStarts: false, explanation: 'waiting for the job it depends on'}
  if (r === 'Priority' || r === 'Resources' || r === 'None' || r === '')
    return {neverStarts: false, explanation: r === 'Resources' ? 'waiting for free resources' : 'waiting for its turn'}
  return {neverStarts: false, explanation: 'waiting'}
}

/** Running jobs of the user running sipl; the per-user-limit verdict needs it. */
export function runningJobsOfUser(): number | undefined {
  const result = run('squeue', ['-h', '-t', 'R', '-u', userInfo().username, '-o', '%i'])
  if (result.missing || result.status !== 0) return undefined
  return result.stdout.split('\n').filter((l) => l.trim() !== '').length
}
