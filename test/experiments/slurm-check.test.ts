/**
 * The Slurm request check and the pending-reason verdicts, on partitions and reasons written out by
 * hand (the live cluster's side is in slurm.test.ts).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {chmodSync, existsSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {UserError} from '../../src/errors.js'
import {
  checkRequestFits,
  controllerUnreachable,
  fitProblems,
  parseGpuCount,
  parseMemMb,
  parseSlurmMinutes,
  pendingVerdict,
  type PartitionInfo,
  type SlurmRequest,
} from '../../src/experiments/slurm-check.js'

test('Slurm memory, time and GRES texts', () => {
  assert.equal(parseMemMb('64G'), 65536)
  assert.equal(parseMemMb('500M'), 500)
  assert.equal(parseMemMb('22899'), 22899, 'no unit means megabytes, as sbatch and sinfo %m')
  assert.equal(parseMemMb('1T'), 1048576)
  assert.equal(parseMemMb('2048K'), 2)
  assert.equal(parseMemMb('lots'), undefined)

  assert.equal(parseSlurmMinutes('30'), 30)
  assert.equal(parseSlurmMinutes('30:30'), 30.5, 'minutes:seconds')
  assert.equal(parseSlurmMinutes('48:00:00'), 2880)
  assert.equal(parseSlurmMinutes('1-12'), 2160, 'days-hours')
  assert.equal(parseSlurmMinutes('2-00:30'), 2910, 'days-hours:minutes')
  assert.equal(parseSlurmMinutes('1-00:00:30'), 1440.5)
  assert.equal(parseSlurmMinutes('UNLIMITED'), Infinity)
  assert.equal(parseSlurmMinutes('infinite'), Infinity)
  assert.equal(parseSlurmMinutes('soon'), undefined)

  assert.equal(parseGpuCount('(null)'), 0)
  assert.equal(parseGpuCount('gpu:4'), 4)
  assert.equal(parseGpuCount('gpu:a100:4(S:0-1)'), 4)
  assert.equal(parseGpuCount('gpu:a100:2(S:0),gpu:v100:1(S:1),mps:400'), 3)
  assert.equal(parseGpuCount('mps:100'), 0)
})

const node = (name: string, cpus: number, memMb: number, gpus = 0) => ({name, cpus, memMb, gpus})
const partition = (nodes: PartitionInfo['nodes'], limits: Partial<PartitionInfo> = {}): PartitionInfo => ({
  name: 'debug',
  state: 'UP',
  maxMinutes: Infinity,
  maxCpusPerNode: Infinity,
  maxMemPerNodeMb: Infinity,
  nodes,
  ...limits,
})
const request = (r: Partial<SlurmRequest> = {}): SlurmRequest => ({time: '48:00:00', gpus: 1, cpusPerTask: 8, mem: '64G', ...r})

test('the request of the issue on a 2-CPU, 22 GB node without GPUs: every resource that does not fit, with its flag and key', () => {
  const small = partition([node('vm', 2, 22899)])
  const problems = fitProblems(request(), small)
  assert.deepEqual(problems, [
    "1 GPU per trial, but no node in partition 'debug' has a GPU: use --gpus 0 (executor.slurm.gpus: 0) to run on CPUs, or a GPU partition with --partition (executor.slurm.partition)",
    "8 CPUs per trial, but partition 'debug' gives a task at most 2: use --cpus-per-task 2 (executor.slurm.cpusPerTask)",
    "64G of memory per trial, but partition 'debug' gives a task at most 22G: use --mem 22G or less (executor.slurm.mem)",
  ])
  // the demo's own request fits
  assert.deepEqual(fitProblems(request({gpus: 0, cpusPerTask: 2, mem: '2G', time: '01:00:00'}), small), [])
})

test('partition limits count as well as node sizes; a request spread over different nodes does not fit', () => {
  const limited = partition([node('a', 64, 512000, 4)], {maxCpusPerNode: 16, maxMemPerNodeMb: 65536, maxMinutes: 1440})
  assert.deepEqual(fitProblems(request({gpus: 4, cpusPerTask: 16, mem: '64G', time: '1-00:00:00'}), limited), [])
  const over = fitProblems(request({gpus: 8, cpusPerTask: 32, mem: '128G', time: '48:00:00'}), limited)
  assert.equal(over.length, 4)
  assert.match(over[0], /^8 GPUs per trial, but the nodes in partition 'debug' have at most 4: use --gpus 4 \(executor\.slurm\.gpus\)$/)
  assert.match(over[1], /at most 16: use --cpus-per-task 16/)
  assert.match(over[2], /at most 64G: use --mem 64G or less/)
  assert.match(
    over[3],
    /^a time limit of 48:00:00 per trial, but partition 'debug' allows at most 1-00:00:00: use --time 1-00:00:00 or less \(executor\.slurm\.time\)$/,
  )

  // GPUs on one node, CPUs on another: each exists, never together
  const split = partition([node('gpu', 4, 32000, 2), node('cpu', 64, 256000, 0)])
  assert.deepEqual(fitProblems(request({gpus: 1, cpusPerTask: 8, mem: '16G'}), split), [
    "8 CPUs, 16G and 1 GPU per trial, but no single node in partition 'debug' has them all: lower --cpus-per-task, --mem or --gpus (executor.slurm.*), or choose another --partition",
  ])
  assert.deepEqual(fitProblems(request({gpus: 1, cpusPerTask: 4, mem: '16G'}), split), [])
  // GRES sipl cannot read: no verdict on GPUs rather than a wrong one
  assert.deepEqual(
    fitProblems(request({gpus: 2, cpusPerTask: 1, mem: '1G'}), partition([{name: 'x', cpus: 4, memMb: 8000, gpus: undefined}])),
    [],
  )
})

test('pending reasons: the ones that never resolve on their own, and the ones that do', () => {
  for (const reason of [
    'PartitionConfig',
    'PartitionTimeLimit',
    'PartitionNodeLimit',
    'BadConstraints',
    'InvalidAccount',
    'InvalidQOS',
    'AccountNotAllowed',
    'QOSNotAllowed',
    'QOSMaxCpuPerJobLimit',
    'QOSMaxGRESPerJob',
    'QOSMaxWallDurationPerJobLimit',
    'AssocMaxCpuPerJobLimit',
    'QOSMaxMemoryPerNode',
    'QOSMinCpuNotSatisfied',
    'MaxMemPerLimit',
    'DependencyNeverSatisfied',
    'ReqNodeNotAvail, UnavailableNodes:',
  ])
    assert.equal(pendingVerdict(reason).neverStarts, true, reason)
  for (const reason of [
    'Priority',
    'Resources',
    'Dependency',
    'BeginTime',
    'JobHeldUser',
    'JobHeldAdmin',
    'PartitionDown',
    'QOSGrpCpuLimit',
    'AssocGrpGRES',
    'JobArrayTaskLimit',
    'ReqNodeNotAvail, UnavailableNodes:node[01-04]',
    'ReqNodeNotAvail, Reserved for maintenance',
  ])
    assert.equal(pendingVerdict(reason).neverStarts, false, reason)
  assert.match(
    pendingVerdict('PartitionConfig').explanation,
    /^never starts: asks for more CPUs, memory or GPUs than any node of the partition has/,
  )
  // a per-user limit waits for the user's other jobs; with none running, this task alone is over it
  assert.equal(pendingVerdict('QOSMaxCpuPerUserLimit', 3).neverStarts, false)
  assert.match(pendingVerdict('QOSMaxCpuPerUserLimit', 3).explanation, /waiting for your other jobs/)
  assert.equal(pendingVerdict('QOSMaxCpuPerUserLimit', 0).neverStarts, true)
})

/** Fake scontrol and sbatch on PATH that print what real Slurm prints, with the exit status given. */
function withFakeSlurm<T>(tools: {scontrol: [string, number]; sbatch: [string, number]}, body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-fake-slurm-'))
  for (const [tool, [stderr, status]] of Object.entries(tools)) {
    const file = join(dir, tool)
    writeFileSync(file, `#!/bin/sh\ntouch '${join(dir, tool + '.called')}'\nprintf '%s\\n' '${stderr}' >&2\nexit ${status}\n`)
    chmodSync(file, 0o755)
  }
  const path = process.env.PATH
  process.env.PATH = `${dir}:${path}`
  try {
    return body(dir)
  } finally {
    process.env.PATH = path
  }
}

const DOWN_SCONTROL = 'slurm_load_partitions error: Unable to contact slurm controller (connect failure)'
const DOWN_SBATCH = 'sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)'

test('a controller that does not answer is named as such, not blamed on the request', () => {
  const small = request({gpus: 0, cpusPerTask: 1, mem: '2G', time: '00:30:00'})
  // scontrol already cannot reach it: refused before sbatch is asked
  withFakeSlurm({scontrol: [DOWN_SCONTROL, 1], sbatch: [DOWN_SBATCH, 1]}, (dir) => {
    assert.throws(
      () => checkRequestFits(small, ['--array=0-1']),
      (e: unknown) =>
        e instanceof UserError &&
        e.message ===
          "the Slurm controller does not answer (scontrol show partition: slurm_load_partitions error: Unable to contact slurm controller (connect failure)); nothing was submitted: check 'scontrol ping' (slurmctld must be up and reachable from this host), then run the same command again",
    )
    assert.equal(existsSync(join(dir, 'sbatch.called')), false)
  })
  // scontrol fails for another reason (its output is then not used), sbatch cannot reach the controller
  withFakeSlurm({scontrol: ['scontrol: error: Invalid user for SlurmUser slurm', 1], sbatch: [DOWN_SBATCH, 1]}, () => {
    assert.throws(
      () => checkRequestFits(small, ['--array=0-1']),
      (e: unknown) =>
        e instanceof UserError &&
        /^the Slurm controller does not answer \(sbatch --test-only: Batch job submission failed: Unable to contact slurm controller \(connect failure\)\)/.test(
          e.message,
        ) &&
        !/refuses the request|--partition/.test(e.message),
    )
  })
  // a real refusal still names the request and the flags that change it
  const refusal = 'sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified'
  withFakeSlurm({scontrol: ['', 1], sbatch: [refusal, 1]}, () => {
    assert.throws(
      () => checkRequestFits(small, ['--array=0-1']),
      /^UserError: Slurm refuses the request \(sbatch --test-only: Batch job submission failed: Invalid account .*\); change it with --partition/,
    )
  })
  assert.equal(
    controllerUnreachable('squeue', 'slurm_load_jobs error: Socket timed out on send/recv operation')?.message.split(' (')[0],
    'the Slurm controller does not answer',
  )
  assert.equal(controllerUnreachable('sbatch', 'sbatch: error: invalid partition specified: gpu'), undefined)
})
