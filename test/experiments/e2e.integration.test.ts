/**
 * The real thing on the demo-size model: trials run `sipl preprocess`, `sipl train` (one epoch of
 * one iteration) and `sipl eval`, locally and as a Slurm job array, and are collected into the
 * table and plots. Small phantoms, one test case and no validation keep each trial to ~30 s on 2 cores.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl, siplInBackground} from '../helpers/cli.js'
import {PROTOCOL_DESCRIPTIONS} from '../../src/evaluate/evaluate.js'

const data = mkdtempSync(join(tmpdir(), 'sipl-e2e-data-'))
const ENV = {SIPL_DATA_DIR: data, SIPL_BACKEND: 'cpu', SIPL_LOG_LEVEL: 'warn'}
const TINY = [
  'data.synthetic.shape=[40,40,40]',
  'data.synthetic.cases=5',
  // one test case: the sweep table needs no paired test, and eval is half the cost of a trial
  'data.splitFractions=[0.8,0,0.2]',
  'train.epochs=1',
  'train.itersPerEpoch=1',
  'train.samplesPerVolume=1',
  'train.valEvery=0',
  'train.checkpointEvery=0',
  'eval.overlap=0',
].flatMap((s) => ['--set', s])
const GRID = ['--grid', 'model.queries=4,8', '--grid', 'smg.tau.end=0.3,0.5']

interface Collected {
  counts: Record<string, number>
  rows: {name: string; state: string; meanDice: number | null; dice: Record<string, number | null>; detail?: string}[]
}

test('local 2×2 sweep with the real train + eval: table and plots; a trial that fails at run time is reported, the others complete', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'sipl-e2e-')), 'sweep')
  const sweep = siplInBackground(
    ['sweep', '--config', 'experiments/demo.yaml', ...TINY, ...GRID, '--out', out, '--parallel', '2', '--json'],
    {env: ENV},
  )
  // break the last trial while the first two run (it starts only when one of them ends), as a
  // crash at run time would: its train step fails on the config, the other three are unaffected
  const last = join(out, 'trials', 'queries=8_tau.end=0.5')
  for (let i = 0; i < 2400 && !existsSync(join(out, 'experiment.json')); i++) await new Promise((r) => setTimeout(r, 50))
  assert.ok(!existsSync(join(last, 'trial.json')), 'the last trial must not have started yet')
  writeFileSync(join(last, 'config.yaml'), 'name: demo\nmodel:\n  quereis: 8\n')
  const code = await sweep.exited
  const {stdout, stderr} = sweep.output()
  assert.equal(code, 0, stderr)
  const result = JSON.parse(stdout) as {collected: Collected}
  const rows = result.collected.rows
  assert.deepEqual(
    rows.map((r) => [r.name, r.state]),
    [
      ['queries=4_tau.end=0.3', 'done'],
      ['queries=4_tau.end=0.5', 'done'],
      ['queries=8_tau.end=0.3', 'done'],
      ['queries=8_tau.end=0.5', 'failed'],
    ],
  )
  assert.match(rows[3].detail ?? '', /quereis/)
  for (const row of rows.slice(0, 3)) {
    assert.ok(row.meanDice !== null && row.meanDice >= 0 && row.meanDice <= 1, `${row.name} mean Dice ${row.meanDice}`)
    // the table's mean is the eval's own summary
    const summary = JSON.parse(readFileSync(join(out, 'trials', row.name, 'eval', 'summary.json'), 'utf8')) as {meanDice: number}
    assert.equal(row.meanDice, summary.meanDice)
    assert.deepEqual(Object.keys(row.dice), ['liver', 'spleen', 'kidney'])
    // each trial is an ordinary run directory with the swept value in its resolved config
    const config = readFileSync(join(out, 'trials', row.name, 'config.yaml'), 'utf8')
    assert.match(config, new RegExp(`queries: ${/queries=(\d+)/.exec(row.name)![1]}\\b`))
    assert.ok(existsSync(join(out, 'trials', row.name, 'checkpoints', 'last')))
    assert.ok(existsSync(join(out, 'trials', row.name, 'eval', 'per-case.csv')))
  }
  const md = readFileSync(join(out, 'results.md'), 'utf8')
  assert.match(md, /\| queries=8_tau\.end=0\.5 \| 8 \| 0\.5 \| FAILED \|/)
  // the trials' eval/summary.json protocol (demo.yaml: the default, strict) under the table
  assert.ok(md.includes(`${PROTOCOL_DESCRIPTIONS.strict}.`), md)
  for (const plot of ['model.queries.svg', 'smg.tau.end.svg']) {
    const svg = readFileSync(join(out, 'plots', plot), 'utf8')
    assert.match(svg, /<svg [^>]*>/)
    assert.ok(svg.includes('<circle'), `${plot} has points`)
  }
})

const sbatch = spawnSync('sbatch', ['--version'])
const noSlurm = sbatch.error !== undefined || !/is UP/.test(spawnSync('scontrol', ['ping'], {encoding: 'utf8'}).stdout ?? '')
const skip = noSlurm && process.env.CI !== 'true' ? 'no Slurm cluster here (start one with: sudo scripts/slurm-local.sh)' : false
if (skip) console.log(`# skipping the real Slurm sweep: ${skip}`)

test('Slurm: a 4-trial sweep with the real train + eval as a job array, collected by the afterany job', {skip}, () => {
  assert.equal(noSlurm, false, 'CI=true but no Slurm cluster answers: .ci/run starts one with scripts/slurm-local.sh')
  const out = join(mkdtempSync(join(tmpdir(), 'sipl-e2e-slurm-')), 'sweep')
  const run = sipl(
    [
      'sweep',
      '--config',
      'experiments/demo.yaml',
      ...TINY,
      ...GRID,
      '--out',
      out,
      '--executor',
      'slurm',
      // GPUs, memory and time from experiments/demo.yaml's executor.slurm; one CPU each, so two run at once
      '--cpus-per-task',
      '1',
      '--wait',
      '--json',
    ],
    {env: ENV, timeoutMs: 300_000},
  )
  assert.equal(run.code, 0, run.stderr)
  const result = JSON.parse(run.stdout) as {submission: {jobId: string; collectJobId: string}; collected: Collected}
  assert.deepEqual(result.collected.counts.done, 4, JSON.stringify(result.collected.rows.map((r) => [r.name, r.state, r.detail])))
  // the collect job (not this process) wrote the tables first
  const log = readFileSync(join(out, 'logs', `collect-${result.submission.collectJobId}.out`), 'utf8')
  assert.match(log, /4 done, 0 failed/)
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Collected
  assert.equal(json.rows.length, 4)
  for (const row of json.rows) assert.ok(row.meanDice !== null && row.meanDice >= 0 && row.meanDice <= 1)
  for (const name of ['queries=4_tau.end=0.3', 'queries=8_tau.end=0.5'])
    assert.match(readFileSync(join(out, 'trials', name, 'trial.json'), 'utf8'), new RegExp(`"job":"${result.submission.jobId}_\\d"`))
})
