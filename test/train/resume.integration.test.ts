/**
 * Exact resume: a run SIGKILLed in the middle of an epoch and resumed with --resume ends with
 * the same weights, optimiser state and sampling Rng state, bit for bit, as an uninterrupted run
 * of the same length (cpu backend). So does a run whose `last` a kill left between the two
 * renames that replace it.
 *
 * SIPL_THREADS=2: the fast cpu kernels run on a worker pool, and their sums are taken in an order
 * that does not depend on which thread did what (docs/kernels.md "Numerical behaviour"); exact
 * resume is a property of those deterministic kernels.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {sameTensors} from '../helpers/checkpoints.js'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'
import {referenceRun} from '../helpers/reference-run.js'
import {tempDir} from '../helpers/temp-dir.js'
import {TINY} from '../e2e/tiny.js'

const ARGS = (out: string) => [
  'train',
  '-c',
  'experiments/demo.yaml',
  ...TINY,
  '--set',
  'train.epochs=3',
  '--set',
  'train.itersPerEpoch=2',
  '--set',
  'train.valEvery=0',
  '--backend',
  'cpu',
  '--out',
  out,
]

/** above any pid_max, so never a running process */
const DEAD_PID = 99_999_999

test('SIGKILL mid-epoch, then --resume: identical to an uninterrupted run', async (t) => {
  const {root, env, whole} = referenceRun(t, 'sipl-resume-', ARGS)

  // kill the second run as soon as step 3 (the first step of epoch 2 of 3) is logged
  const killed = join(root, 'killed')
  const child = spawn(process.execPath, [resolve(PROJECT_ROOT, 'bin/run.js'), ...ARGS(killed)], {
    cwd: PROJECT_ROOT,
    env: {...process.env, SIPL_LOG_LEVEL: 'warn', ...env},
    stdio: 'ignore',
  })
  const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)))
  const log = join(killed, 'train.log')
  const stepLogged = () => existsSync(log) && /"step":3\b/.test(readFileSync(log, 'utf8'))
  while (!stepLogged() && child.exitCode === null) await new Promise((r) => setTimeout(r, 25))
  child.kill('SIGKILL')
  assert.equal(await exited, 'SIGKILL')
  const at = JSON.parse(readFileSync(join(killed, 'checkpoints', 'last', 'state.json'), 'utf8')) as {epoch: number; step: number}
  assert.deepEqual([at.epoch, at.step], [1, 2], 'killed inside epoch 2: last is the end of epoch 1')

  const r2 = sipl(['train', '--out', killed, '--resume', '--backend', 'cpu'], {env})
  assert.equal(r2.code, 0, r2.stderr)
  for (const file of ['model.safetensors', 'optimizer.safetensors'])
    sameTensors(join(whole, 'checkpoints', 'last', file), join(killed, 'checkpoints', 'last', file))
  const s1 = JSON.parse(readFileSync(join(whole, 'checkpoints', 'last', 'state.json'), 'utf8'))
  const s2 = JSON.parse(readFileSync(join(killed, 'checkpoints', 'last', 'state.json'), 'utf8'))
  assert.deepEqual([s2.epoch, s2.step, s2.rng, s2.lr, s2.tau], [s1.epoch, s1.step, s1.rng, s1.lr, s1.tau])
  // metrics.jsonl has each epoch once, with the same losses as the uninterrupted run
  const rows = (dir: string) =>
    readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as {epoch: number; loss: number})
  assert.deepEqual(
    rows(killed).map((r) => [r.epoch, r.loss]),
    rows(whole).map((r) => [r.epoch, r.loss]),
  )
  // a second plain train into the same folder refuses to overwrite it
  const again = sipl(ARGS(killed), {env})
  assert.equal(again.code, 2)
  assert.match(again.stderr, /already holds a trained run; add --resume/)

  // A kill between the two renames that replace `last` (made on disk, with the names this sipl
  // gave its temporaries before they carried the host): no `last`, the previous copy
  // (epoch 1) moved aside, the new one (epoch 2) complete under its temporary name; beside them
  // litter of dead processes. --resume puts epoch 2 back, removes the litter and ends bit for
  // bit where the uninterrupted run ended.
  const cut = join(root, 'cut')
  cpSync(whole, cut, {recursive: true})
  const ck = join(cut, 'checkpoints')
  for (const name of ['last', 'best', 'epoch-3']) rmSync(join(ck, name), {recursive: true})
  const swap = `.last.tmp-${DEAD_PID}-1700000000000`
  cpSync(join(ck, 'epoch-1'), join(ck, `${swap}.old`), {recursive: true})
  cpSync(join(ck, 'epoch-2'), join(ck, swap), {recursive: true})
  mkdirSync(join(ck, `.best.tmp-${DEAD_PID}-1700000000001000`))
  writeFileSync(join(ck, `.best.tmp-${DEAD_PID}-1700000000001000`, 'model.safetensors'), 'half')
  writeFileSync(join(cut, `.metrics.jsonl.tmp-${DEAD_PID}-1700000000002000`), 'half')
  const r3 = sipl(['train', '--out', cut, '--resume', '--backend', 'cpu', '--json'], {env})
  assert.equal(r3.code, 0, r3.stderr)
  assert.equal((JSON.parse(r3.stdout) as {resumedFrom: number}).resumedFrom, 2, 'resumed from the newer copy')
  assert.match(r3.stderr, new RegExp(`recovered checkpoints/last ← ${swap.replace(/\./g, '\\.')}: a kill had interrupted its replacement`))
  for (const file of ['model.safetensors', 'optimizer.safetensors'])
    sameTensors(join(whole, 'checkpoints', 'last', file), join(ck, 'last', file))
  const s3 = JSON.parse(readFileSync(join(ck, 'last', 'state.json'), 'utf8'))
  assert.deepEqual([s3.epoch, s3.step, s3.rng, s3.lr, s3.tau], [s1.epoch, s1.step, s1.rng, s1.lr, s1.tau])
  assert.deepEqual(
    rows(cut).map((r) => [r.epoch, r.loss]),
    rows(whole).map((r) => [r.epoch, r.loss]),
  )
  assert.deepEqual(
    readdirSync(ck).filter((n) => n.startsWith('.')),
    [],
    'no temporaries left in checkpoints/',
  )
  assert.deepEqual(
    readdirSync(cut).filter((n) => n.includes('.tmp-')),
    [],
    'no temporaries left in the run folder',
  )
})

test('the same weights and optimiser state, bit for bit, with 1 thread and with 3 (the kernels sum in a fixed order)', (t) => {
  const root = tempDir(t, 'sipl-threads-')
  const runs = ['1', '3'].map((threads) => {
    const out = join(root, `threads-${threads}`)
    const r = sipl(ARGS(out), {env: {SIPL_DATA_DIR: join(root, 'data'), SIPL_THREADS: threads}})
    assert.equal(r.code, 0, r.stderr)
    return out
  })
  for (const file of ['model.safetensors', 'optimizer.safetensors'])
    sameTensors(join(runs[0], 'checkpoints', 'last', file), join(runs[1], 'checkpoints', 'last', file))
})
