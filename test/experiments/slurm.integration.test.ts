/**
 * The Slurm executor: the --dry-run script, and real submissions to a running Slurm cluster
 * (scripts/slurm-local.sh starts a single-node one; .ci/run does so before the tests).
 * Without sbatch the cluster tests skip with the reason, except under CI=true where they must run.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PROJECT_ROOT, sipl, siplInBackground} from '../helpers/cli.js'
import {writeFakeSipl} from './fake-sipl.js'

function bashSyntaxOk(script: string): {ok: boolean; stderr: string} {
  const file = join(mkdtempSync(join(tmpdir(), 'sipl-sbatch-')), 'array.sbatch')
  writeFileSync(file, script)
  const result = spawnSync('bash', ['-n', file], {encoding: 'utf8'})
  return {ok: result.status === 0, stderr: result.stderr}
}

function sbatchLines(script: string): string[] {
  return script
    .split('\n')
    .filter((l) => l.startsWith('#SBATCH '))
    .map((l) => l.slice('#SBATCH '.length))
}

test('sweep --executor slurm --dry-run prints a valid sbatch script with one array task per trial', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'sipl-dry-')), 'sweep')
  const run = sipl([
    'sweep',
    '--config',
    'experiments/demo.yaml',
    '--grid',
    'model.queries=8,16,32,64',
    '--grid',
    'smg.tau.end=0.1,0.3,0.5,0.7',
    '--executor',
    'slurm',
    '--partition',
    'gpu',
    '--time',
    '12:00:00',
    '--gpus',
    '2',
    '--mem',
    '32G',
    '--sbatch=--qos=long',
    '--set',
    'executor.slurm.extra=["--constraint=a100"]',
    '--out',
    out,
    '--dry-run',
  ])
  assert.equal(run.code, 0, run.stderr)
  const syntax = bashSyntaxOk(run.stdout)
  assert.ok(syntax.ok, syntax.stderr)
  assert.ok(run.stdout.startsWith('#!/usr/bin/env bash\n#SBATCH '))
  const lines = sbatchLines(run.stdout)
  assert.ok(lines.includes('--array=0-15'), '4 × 4 grid = 16 array tasks')
  for (const expected of [
    '--partition=gpu',
    '--time=12:00:00',
    '--gpus=2',
    '--mem=32G',
    '--cpus-per-task=2', // experiments/demo.yaml's executor.slurm
    '--qos=long',
    '--constraint=a100',
  ])
    assert.ok(lines.includes(expected), `${expected} in ${lines.join(' ')}`)
  assert.ok(lines.includes(`--output=${join(out, 'logs', 'slurm-%A_%a.out')}`))
  const trials = /^TRIALS=\((.*)\)$/m.exec(run.stdout)![1].split(' ')
  assert.equal(trials.length, 16)
  assert.equal(trials[0], "'queries=8_tau.end=0.1'")
  assert.match(run.stdout, /train --config "\$T\/config\.yaml" --out "\$T" "\$\{RESUME\[@\]\}"/)
  assert.match(run.stdout, /eval --run "\$T" --json/)
  assert.equal(existsSync(out), false, '--dry-run writes nothing')
})

test('ablate --all --dry-run: clip/biobert without a file are skipped with the fix, a variant equal to the full model is merged', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'sipl-dry-')), 'ablation')
  const run = sipl(
    ['ablate', '--config', 'experiments/demo.yaml', '--all', '--executor', 'slurm', '--gpus', '0', '--out', out, '--dry-run', '--json'],
    {
      env: {SIPL_LOG_LEVEL: 'warn'},
    },
  )
  assert.equal(run.code, 0, run.stderr)
  const result = JSON.parse(run.stdout) as {script: string; trials: {name: string}[]; skipped: {variant: string; reason: string}[]}
  // demo.yaml's CPP init is already random, so cpp-random is the full model
  assert.deepEqual(
    result.trials.map((t) => t.name),
    ['full', 'no-ipl', 'no-smg', 'cpp-onehot'],
  )
  assert.deepEqual(
    result.skipped.map((s) => s.variant),
    ['cpp-biobert', 'cpp-clip', 'cpp-random'],
  )
  assert.match(result.skipped[1].reason, /--cpp-file clip=PATH/)
  const lines = sbatchLines(result.script)
  assert.ok(lines.includes('--array=0-3'))
  assert.ok(!lines.some((l) => l.startsWith('--gpus')), '--gpus 0 writes no --gpus line')
  assert.ok(bashSyntaxOk(result.script).ok)
})

// ---------------------------------------------------------------- a real cluster

function clusterReason(): string | undefined {
  const sbatch = spawnSync('sbatch', ['--version'], {encoding: 'utf8'})
  if (sbatch.error) return 'sbatch is not installed (start a test cluster with: sudo scripts/slurm-local.sh)'
  const ping = spawnSync('scontrol', ['ping'], {encoding: 'utf8'})
  if (!/is UP/.test(ping.stdout))
    return `sbatch is installed but no slurmctld answers (${(ping.stdout + ping.stderr).trim()}); start one with sudo scripts/slurm-local.sh`
  return undefined
}

const reason = clusterReason()
const inCi = process.env.CI === 'true'
if (reason !== undefined && !inCi) console.log(`# skipping the Slurm cluster tests: ${reason}`)
const skip = reason !== undefined && !inCi ? reason : false

/** A test on the Slurm cluster: skipped without one, except under CI=true, where it fails. */
function clusterTest(name: string, body: () => void | Promise<void>): void {
  test(name, {skip}, async () => {
    assert.equal(reason, undefined, `CI=true but no Slurm cluster: ${reason}`)
    await body()
  })
}

async function until<T>(what: string, seconds: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds}s waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 500))
  }
}

clusterTest(
  'slurm: 4-trial sweep as a job array; a failed and a cancelled trial are reported, the collect job still runs; --retry-failed resubmits only them',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sipl-slurm-'))
    const {command, control} = writeFakeSipl(dir)
    const env = {FAKE_SIPL_CONTROL: control}
    const out = join(dir, 'sweep')
    writeFileSync(join(control, 'queries=16_tau.end=0.3.fail'), '')
    writeFileSync(join(control, 'queries=16_tau.end=0.5.sleep'), '60')
    const base = [
      '--executor',
      'slurm',
      '--gpus',
      '0',
      '--cpus-per-task',
      '1',
      '--mem',
      '500M',
      '--time',
      '00:10:00',
      '--trial-command',
      command,
    ]
    const run = sipl(['sweep', '--config', 'experiments/demo.yaml', ...GRID_4, '--out', out, ...base, '--json'], {env})
    assert.equal(run.code, 0, run.stderr)
    const submitted = JSON.parse(run.stdout) as {submission: {jobId: string; collectJobId: string; indices: number[]}}
    assert.deepEqual(submitted.submission.indices, [0, 1, 2, 3])
    assert.match(submitted.submission.collectJobId, /^\d+$/)
    const status = (): {counts: Record<string, number>; trials: {state: string; job?: string; detail?: string}[]} =>
      JSON.parse(sipl(['sweep', 'status', out, '--json']).stdout) as {
        counts: Record<string, number>
        trials: {state: string; job?: string; detail?: string}[]
      }

    // cancel the sleeping trial once its script runs (its own trial.json says running, so its
    // SIGTERM trap is set), as a user's scancel or a preemption would; Slurm's RUNNING alone comes
    // before the script starts, and a task cancelled then never ran ('failed', never started)
    await until('trial 3 to run', 60, () => {
      const trial = status().trials[3]
      return trial.state === 'running' && trial.detail === undefined ? true : undefined
    })
    spawnSync('scancel', [`${submitted.submission.jobId}_3`])
    const results = join(out, 'results.json')
    const collected = await until('the collect job to write results.json', 90, () => {
      if (!existsSync(results)) return undefined
      const doc = JSON.parse(readFileSync(results, 'utf8')) as {
        counts: Record<string, number>
        rows: {name: string; state: string; meanDice: number | null}[]
      }
      return doc.counts.running + doc.counts.queued + doc.counts.pending === 0 ? doc : undefined
    })
    assert.deepEqual(
      collected.rows.map((r) => [r.name, r.state]),
      [
        ['queries=8_tau.end=0.3', 'done'],
        ['queries=8_tau.end=0.5', 'done'],
        ['queries=16_tau.end=0.3', 'failed'],
        ['queries=16_tau.end=0.5', 'cancelled'],
      ],
    )
    assert.ok(Math.abs(collected.rows[0].meanDice! - 0.603) < 1e-9)
    assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /\| queries=16_tau\.end=0\.5 \| 16 \| 0\.5 \| FAILED \|/)
    const collectLog = readFileSync(join(out, 'logs', `collect-${submitted.submission.collectJobId}.out`), 'utf8')
    assert.match(collectLog, /2 done, 2 failed/)
    const st = status()
    assert.equal(st.trials[0].job, `${submitted.submission.jobId}_0`)
    assert.match(st.trials[2].detail ?? '', /forced failure/)

    // retry: a new array of exactly the two failed trials, submitted the way the sweep was (executor,
    // resources and trial command come from experiment.json); wait for it and its collect job
    spawnSync('rm', ['-f', join(control, 'queries=16_tau.end=0.3.fail'), join(control, 'queries=16_tau.end=0.5.sleep')])
    const retry = sipl(['sweep', '--out', out, '--retry-failed', '--wait', '--json'], {env: {...env, SIPL_LOG_LEVEL: 'warn'}})
    assert.equal(retry.code, 0, retry.stderr)
    const again = JSON.parse(retry.stdout) as {ran: number[]; submission: {jobId: string}; collected: {counts: Record<string, number>}}
    assert.deepEqual(again.ran, [2, 3])
    assert.equal(again.collected.counts.done, 4)
    const script = readFileSync(join(out, 'slurm', 'array-2.sbatch'), 'utf8')
    assert.ok(sbatchLines(script).includes('--array=2-3'))
    assert.ok(sbatchLines(script).includes('--mem=500M'), "the first submission's resources are reused")
    assert.ok(!sbatchLines(script).some((l) => l.startsWith('--gpus')))
  },
)

const GRID_4 = ['--grid', 'model.queries=8,16', '--grid', 'smg.tau.end=0.3,0.5']

/** The largest CPU count and memory (MB) of a node in the default partition, from sinfo. */
function nodeSize(): {cpus: number; memMb: number} {
  const lines = spawnSync('sinfo', ['-h', '-N', '-o', '%P|%c|%m'], {encoding: 'utf8'})
    .stdout.split('\n')
    .filter((l) => l.split('|')[0].endsWith('*'))
  return {
    cpus: Math.max(...lines.map((l) => Number(l.split('|')[1]))),
    memMb: Math.max(...lines.map((l) => Number(l.split('|')[2]))),
  }
}

/** The array and collect job ids of every submission of an experiment directory. */
function submittedJobs(out: string): string[] {
  const file = join(out, 'slurm', 'submissions.json')
  if (!existsSync(file)) return []
  return (JSON.parse(readFileSync(file, 'utf8')) as {jobId: string; collectJobId?: string}[]).flatMap((s) =>
    s.collectJobId === undefined ? [s.jobId] : [s.jobId, s.collectJobId],
  )
}

/** scancel the jobs, then wait until Slurm has let them go, so the next test finds the node free. */
async function cancelAndDrain(jobs: string[]): Promise<void> {
  if (jobs.length === 0) return
  spawnSync('scancel', jobs)
  await until('the cancelled jobs to leave the node', 60, () =>
    spawnSync('squeue', ['-h', '-t', 'R,CG,PD', '-j', jobs.join(',')], {encoding: 'utf8'}).stdout.trim() === '' ? true : undefined,
  )
}

clusterTest('slurm: a request the partition cannot run is refused before anything is submitted, naming the resource and the flag', () => {
  const {cpus, memMb} = nodeSize()
  const out = join(mkdtempSync(join(tmpdir(), 'sipl-slurm-fit-')), 'sweep')
  const sweep = (...flags: string[]) =>
    sipl(['sweep', '--config', 'experiments/demo.yaml', '--grid', 'model.queries=4,8', '--executor', 'slurm', '--out', out, ...flags])
  const cases: [string[], RegExp][] = [
    // the first failure: a GPU asked for on a cluster without GPU GRES (this one has none)
    [['--gpus', '1'], /1 GPU per trial, but no node in partition '\w+' has a GPU: use --gpus 0 \(executor\.slurm\.gpus: 0\)/],
    // and its second: more CPUs and memory than the node has
    [
      ['--cpus-per-task', String(cpus + 6)],
      new RegExp(
        `${cpus + 6} CPUs per trial, but partition '\\w+' gives a task at most ${cpus}: use --cpus-per-task ${cpus} \\(executor\\.slurm\\.cpusPerTask\\)`,
      ),
    ],
    [
      ['--mem', `${Math.ceil(memMb / 1024) + 40}G`],
      /of memory per trial, but partition '\w+' gives a task at most \d+G: use --mem \d+G or less \(executor\.slurm\.mem\)/,
    ],
    [
      ['--partition', 'nosuchpartition'],
      /partition 'nosuchpartition' does not exist on this cluster \(partitions: .*\): use --partition NAME/,
    ],
  ]
  const before = spawnSync('squeue', ['-h', '-o', '%A'], {encoding: 'utf8'}).stdout
  for (const [flags, message] of cases) {
    const run = sweep(...flags)
    assert.equal(run.code, 2, `${flags.join(' ')}: ${run.stderr}`)
    const lines = run.stderr.trim().split('\n')
    assert.equal(lines.length, 1, run.stderr)
    assert.match(lines[0], /^Error: /)
    assert.match(lines[0], message)
    assert.equal(existsSync(out), false, 'nothing written, so the corrected command can use the same --out')
  }
  assert.equal(spawnSync('squeue', ['-h', '-o', '%A'], {encoding: 'utf8'}).stdout, before, 'nothing submitted')
  // --dry-run only warns: it may be run away from the cluster it is for
  const dry = sweep('--gpus', '1', '--dry-run')
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(dry.stderr, /WARN on this cluster the submission would be refused: .*--gpus 0/)
})

clusterTest(
  'slurm: sweep status shows the pending reason of each task and marks one that never resolves; --wait stops on it instead of waiting for ever',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sipl-slurm-stuck-'))
    const {command, control} = writeFakeSipl(dir)
    const out = join(dir, 'sweep')
    const {cpus} = nodeSize()
    // submitted held (a fitting request), then grown past the node while held, as a changed node
    // or partition would leave it: Slurm then keeps it PENDING with reason PartitionConfig
    const sweep = siplInBackground(
      [
        'sweep',
        '--config',
        'experiments/demo.yaml',
        '--grid',
        'model.queries=4,8',
        '--executor',
        'slurm',
        '--cpus-per-task',
        '1',
        '--sbatch=--hold',
        '--trial-command',
        command,
        '--out',
        out,
        '--wait',
      ],
      {env: {FAKE_SIPL_CONTROL: control}},
    )
    const submissions = join(out, 'slurm', 'submissions.json')
    let job = ''
    try {
      job = await until('the array to be submitted', 60, () =>
        existsSync(submissions) ? (JSON.parse(readFileSync(submissions, 'utf8')) as {jobId: string}[])[0]?.jobId : undefined,
      )
      const status = () =>
        JSON.parse(sipl(['sweep', 'status', out, '--json']).stdout) as {
          trials: {state: string; detail?: string; pendingReason?: string; neverStarts?: boolean}[]
        }
      const held = await until('the held tasks to show', 30, () => {
        const t = status().trials
        return t.every((x) => x.pendingReason === 'JobHeldUser') ? t : undefined
      })
      assert.ok(
        held.every((t) => t.state === 'queued' && t.neverStarts === undefined),
        'a held task waits for a release, it is not stuck',
      )

      spawnSync('scontrol', ['update', `JobId=${job}`, `NumCPUs=${cpus + 6}`])
      spawnSync('scontrol', ['release', job])
      const stuck = await until('PartitionConfig', 30, () => {
        const t = status().trials
        return t.every((x) => x.pendingReason === 'PartitionConfig') ? t : undefined
      })
      for (const t of stuck) {
        assert.equal(t.state, 'queued')
        assert.equal(t.neverStarts, true)
        assert.match(t.detail ?? '', /^Slurm: PENDING \(PartitionConfig\): never starts: asks for more CPUs, memory or GPUs than any node/)
      }
      const text = sipl(['sweep', 'status', out])
      assert.match(
        text.stdout,
        new RegExp(
          `^2 of 2 trials will never start as submitted \\(Slurm: PartitionConfig\\): scancel ${job}, then sipl sweep --out `,
          'm',
        ),
      )

      const code = await Promise.race([sweep.exited, new Promise<string>((r) => setTimeout(() => r('still waiting'), 60_000))])
      const {stderr} = sweep.output()
      assert.equal(code, 2, `--wait must give up on a task that never starts: ${stderr}`)
      assert.match(
        stderr,
        new RegExp(`^Error: Slurm will never start tasks ${job}_0, ${job}_1 \\(pending reason PartitionConfig\\): `, 'm'),
      )
    } finally {
      sweep.child.kill()
      await cancelAndDrain(submittedJobs(out))
    }
  },
)

/** The commands of the README's Slurm example, as written (the ```bash block under "On a Slurm cluster"). */
function readmeSlurmExample(): string[][] {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('### On a Slurm cluster'))
  const block = /```bash\n([\s\S]*?)```/.exec(section)
  assert.ok(block, "README.md has a ```bash block under '### On a Slurm cluster'")
  return block[1]
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('sipl '))
    .map((l) => l.split(/\s+/).slice(1))
}

clusterTest(
  "slurm: the README's Slurm example works as written on this cluster: the demo's own request is accepted and its tasks start",
  async () => {
    const [submit, status] = readmeSlurmExample()
    assert.deepEqual(submit.slice(0, 3), ['sweep', '-c', 'experiments/demo.yaml'])
    assert.ok(submit.includes('--executor') && !submit.includes('--dry-run') && !submit.includes('--gpus'), submit.join(' '))
    assert.equal(status[0], 'sweep')
    // as a user would: from their own folder (outside the repository), with the default runs/ and data/
    const cwd = mkdtempSync(join(tmpdir(), 'sipl-readme-slurm-'))
    const env = {SIPL_RUNS_DIR: '', SIPL_DATA_DIR: '', SIPL_BACKEND: ''}
    try {
      const run = sipl(submit, {cwd, env})
      assert.equal(run.code, 0, run.stderr)
      assert.match(run.stdout, /submitted 2 trials as Slurm job array \d+/)
      const started = await until('a demo trial to run', 120, () => {
        const r = sipl([...status, '--json'], {cwd, env})
        assert.equal(r.code, 0, r.stderr)
        const doc = JSON.parse(r.stdout) as {trials: {state: string; neverStarts?: boolean; detail?: string}[]}
        assert.ok(!doc.trials.some((t) => t.neverStarts), JSON.stringify(doc.trials))
        return doc.trials.some((t) => t.state === 'running') ? doc : undefined
      })
      assert.equal(started.trials.length, 2)
      const text = sipl(status, {cwd, env})
      assert.equal(text.code, 0, text.stderr)
      assert.match(text.stdout, /queries=(4|8) +running/)
    } finally {
      await cancelAndDrain(submittedJobs(join(cwd, 'runs', 'demo-sweep')))
    }
  },
)
