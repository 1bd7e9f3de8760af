/**
 * The local executor and collection, driven through the real CLI with a fake trial command
 * (test/experiments/fake-sipl.ts) so that every path — success, forced failure, retry, cancel,
 * resume — is exercised in seconds. The real train/eval run in e2e.integration.test.ts.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl, type CliResult} from '../helpers/cli.js'
import {writeFakeSipl} from './fake-sipl.js'

function setup(): {dir: string; fake: string; control: string; env: Record<string, string>} {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-local-'))
  const {command, control} = writeFakeSipl(dir)
  return {dir, fake: command, control, env: {FAKE_SIPL_CONTROL: control}}
}

/** `sipl sweep|ablate` on the demo config with the fake trial command and --json; it must exit 0. */
function runJson(command: 'sweep' | 'ablate', options: string[], out: string, fake: string, env: Record<string, string>): CliResult {
  const run = sipl([command, '--config', 'experiments/demo.yaml', ...options, '--out', out, '--trial-command', fake, '--json'], {env})
  assert.equal(run.code, 0, run.stderr)
  return run
}

const GRID = ['--grid', 'model.queries=8,16', '--grid', 'smg.tau.end=0.3,0.5']

test('local 2×2 sweep: a forced failure is reported as failed, the others are collected; --retry-failed reruns only it', () => {
  const {dir, fake, control, env} = setup()
  const out = join(dir, 'sweep')
  writeFileSync(join(control, 'queries=16_tau.end=0.3.fail'), '')
  const args = ['sweep', '--config', 'experiments/demo.yaml', ...GRID, '--out', out, '--trial-command', fake, '--parallel', '2']
  const first = sipl([...args, '--json'], {env})
  assert.equal(first.code, 0, first.stderr)
  const result = JSON.parse(first.stdout) as {
    collected: {counts: Record<string, number>; rows: {name: string; state: string; meanDice: number | null}[]}
  }
  assert.deepEqual(
    result.collected.rows.map((r) => [r.name, r.state]),
    [
      ['queries=8_tau.end=0.3', 'done'],
      ['queries=8_tau.end=0.5', 'done'],
      ['queries=16_tau.end=0.3', 'failed'],
      ['queries=16_tau.end=0.5', 'done'],
    ],
  )
  // the fake's per-case Dice: 0.5 + q/100 + i/50 (i = 0..2) + (seed % 5)/1000 with seed 2023 → mean 0.5 + q/100 + 0.02 + 0.003
  assert.ok(Math.abs(result.collected.rows[0].meanDice! - 0.603) < 1e-9)
  assert.ok(Math.abs(result.collected.rows[3].meanDice! - 0.683) < 1e-9)
  const md = readFileSync(join(out, 'results.md'), 'utf8')
  assert.match(md, /\| queries=16_tau\.end=0\.3 \| 16 \| 0\.3 \| FAILED \|/)
  assert.match(md, /queries=16_tau\.end=0\.3 failed: Error: forced failure of queries=16_tau\.end=0\.3/)
  const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n')
  assert.equal(csv.length, 5)
  assert.equal(csv[0], 'trial,model.queries,smg.tau.end,state,mean Dice,Dice liver,Dice spleen,Dice kidney,mean HD95 (mm)')
  // one plot per swept key; the queries plot has one line per tau, the failed trial's point left out
  const svg = readFileSync(join(out, 'plots', 'model.queries.svg'), 'utf8')
  assert.match(svg, /smg\.tau\.end=0\.3/)
  assert.match(svg, /smg\.tau\.end=0\.5/)
  assert.equal([...svg.matchAll(/<polyline /g)].length, 1, 'the tau=0.3 series has only one finite point, so no line')
  assert.equal([...svg.matchAll(/<circle /g)].length, 3 + 2, '3 finite points + 2 legend markers')
  assert.ok(existsSync(join(out, 'plots', 'smg.tau.end.svg')))

  // status from the files alone
  const status = sipl(['sweep', 'status', out, '--json'])
  assert.equal(status.code, 0, status.stderr)
  const st = JSON.parse(status.stdout) as {counts: Record<string, number>; trials: {state: string; detail?: string}[]}
  assert.equal(st.counts.done, 3)
  assert.equal(st.counts.failed, 1)
  assert.match(st.trials[2].detail ?? '', /forced failure/)

  // running the same sweep again is refused with the way forward
  const again = sipl(args, {env})
  assert.equal(again.code, 2)
  assert.match(again.stderr, /already holds this experiment.*--retry-failed/)

  // retry: only the failed trial runs again
  rmSync(join(control, 'queries=16_tau.end=0.3.fail'))
  writeFileSync(join(control, 'calls.log'), '')
  const retry = sipl(['sweep', '--out', out, '--retry-failed', '--json'], {env})
  assert.equal(retry.code, 0, retry.stderr)
  const r = JSON.parse(retry.stdout) as {ran: number[]; collected: {counts: Record<string, number>}}
  assert.deepEqual(r.ran, [2])
  assert.equal(r.collected.counts.done, 4)
  assert.deepEqual(readFileSync(join(control, 'calls.log'), 'utf8').trim().split('\n'), [
    'preprocess queries=16_tau.end=0.3',
    'train queries=16_tau.end=0.3',
    'eval queries=16_tau.end=0.3 --json',
  ])
})

test('a trial with an invalid value is recorded as failed and never runs; seeds are averaged per setting', () => {
  const {dir, fake, control, env} = setup()
  const out = join(dir, 'sweep')
  const run = runJson('sweep', ['--grid', 'model.queries=8,0', '--seeds', '1,2'], out, fake, env)
  const result = JSON.parse(run.stdout) as {
    trials: {name: string; invalid?: string}[]
    collected: {
      rows: {state: string; detail?: string}[]
      settings: {params: Record<string, number>; done: number; trials: number; meanDice: number | null; sdDice: number | null}[]
    }
  }
  assert.deepEqual(
    result.trials.map((t) => t.name),
    ['queries=8_seed=1', 'queries=8_seed=2', 'queries=0_seed=1', 'queries=0_seed=2'],
  )
  assert.match(result.trials[2].invalid ?? '', /model\.queries/)
  assert.equal(result.collected.rows[2].state, 'failed')
  assert.match(result.collected.rows[2].detail ?? '', /invalid config/)
  assert.equal(readFileSync(join(control, 'calls.log'), 'utf8').includes('queries=0'), false, 'the invalid trial never ran')
  // seed 1 → +0.001, seed 2 → +0.002 (fake): mean 0.5 + 0.08 + 0.02 + 0.0015, sd of the two = 0.001/√2
  const s8 = result.collected.settings.find((s) => s.params['model.queries'] === 8)!
  assert.equal(s8.done, 2)
  assert.ok(Math.abs(s8.meanDice! - 0.6015) < 1e-9)
  assert.ok(Math.abs(s8.sdDice! - 0.001 / Math.SQRT2) < 1e-9)
  const s0 = result.collected.settings.find((s) => s.params['model.queries'] === 0)!
  assert.equal(s0.done, 0)
  assert.equal(s0.meanDice, null)
  assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /## Averaged over seed/)
})

test('trial.sh resumes a trial that has checkpoints/last, and SIGTERM records cancelled', async () => {
  const {dir, fake, control, env} = setup()
  const out = join(dir, 'sweep')
  const run = sipl(['sweep', '--config', 'experiments/demo.yaml', '--grid', 'model.queries=8,16', '--out', out, '--trial-command', fake], {
    env,
  })
  assert.equal(run.code, 0, run.stderr)
  writeFileSync(join(control, 'calls.log'), '')
  // run trial 0 again by hand, as a requeued Slurm task would: it resumes
  const child = spawn('bash', [join(out, 'trial.sh'), '0'], {env: {...process.env, ...env}, stdio: 'ignore'})
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  assert.equal(code, 0)
  assert.equal(readFileSync(join(control, 'calls.log'), 'utf8').split('\n')[1], 'train queries=8 --resume')

  // trial 1 sleeps in train; SIGTERM (what scancel sends) → state cancelled, exit 143
  rmSync(join(out, 'trials', 'queries=16', 'checkpoints'), {recursive: true})
  writeFileSync(join(control, 'queries=16.sleep'), '30')
  const slow = spawn('bash', [join(out, 'trial.sh'), '1'], {env: {...process.env, ...env}, stdio: 'ignore'})
  const trialJson = join(out, 'trials', 'queries=16', 'trial.json')
  for (let i = 0; i < 100 && !readFileSync(trialJson, 'utf8').includes('"running"'); i++) await new Promise((r) => setTimeout(r, 50))
  await new Promise((r) => setTimeout(r, 300))
  const start = Date.now()
  slow.kill('SIGTERM')
  const slowCode = await new Promise<number | null>((resolve) => slow.on('exit', resolve))
  assert.equal(slowCode, 143)
  assert.ok(Date.now() - start < 5000, 'the signal is handled at once, not after train ends')
  assert.equal((JSON.parse(readFileSync(trialJson, 'utf8')) as {state: string}).state, 'cancelled')
  const status = JSON.parse(sipl(['sweep', 'status', out, '--json']).stdout) as {counts: Record<string, number>}
  assert.equal(status.counts.cancelled, 1)
  // collection still works and reports it as failed
  const collected = sipl(['sweep', 'collect', out])
  assert.equal(collected.code, 0, collected.stderr)
  assert.match(collected.stdout, /queries=16: failed \(cancelled\)/)
})

test('local --dry-run prints one command per trial and writes nothing', () => {
  const {dir, fake} = setup()
  const out = join(dir, 'sweep')
  const run = sipl(['sweep', '--config', 'experiments/demo.yaml', ...GRID, '--out', out, '--trial-command', fake, '--dry-run'])
  assert.equal(run.code, 0, run.stderr)
  const lines = run.stdout.trim().split('\n')
  assert.equal(lines.length, 4)
  assert.equal(lines[3], `bash ${join(out, 'trial.sh')} 3   # queries=16, tau.end=0.5`)
  assert.equal(existsSync(out), false)
})

test('ablate: each variant is an overlay in its resolved config; the table puts the full model first with Δ and p against it', () => {
  const {dir, fake, env} = setup()
  const out = join(dir, 'ablation')
  const run = runJson('ablate', ['--remove', 'ipl', '--remove', 'smg', '--cpp-init', 'onehot'], out, fake, env)
  const config = (name: string): string => readFileSync(join(out, 'trials', name, 'config.yaml'), 'utf8')
  assert.match(config('full'), /^  ipl: true$/m)
  assert.match(config('no-ipl'), /^  ipl: false$/m)
  assert.match(config('no-ipl'), /^  smg: true$/m)
  assert.match(config('no-smg'), /^  smg: false$/m)
  assert.match(config('cpp-onehot'), /^    init: onehot$/m)
  const result = JSON.parse(run.stdout) as {collected: {rows: {name: string; label: string; delta: number | null; p: number | null}[]}}
  const rows = result.collected.rows
  assert.deepEqual(
    rows.map((r) => r.label),
    ['SIPL (full)', '− IPL', '− SMG', 'one-hot CPP'],
  )
  // the fake takes 0.1 + i/100 off case i without IPL: Δ = −0.11; scipy.stats.ttest_rel → t = −19.0526, p = 0.0027434893944259307
  assert.ok(Math.abs(rows[1].delta! + 0.11) < 1e-12)
  assert.ok(Math.abs(rows[1].p! - 0.0027434893944259307) < 1e-9, `p = ${rows[1].p}`)
  // the fake scores −SMG like the full model: no difference, p = 1
  assert.equal(rows[2].delta, 0)
  assert.equal(rows[2].p, 1)
  assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /^\| − IPL \| done \| .* \| -11\.00 \| 0\.0027 \| 3 \|$/m)
})
