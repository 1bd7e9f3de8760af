/**
 * One writer per folder, with real processes: a second process fails naming the holder; of
 * processes racing for a free lock, or for a dead holder's lock, exactly one wins; a dead holder
 * on this machine is taken over with a warning, one on another host only after LOCK_STALE_MS
 * without a refresh, with --break-lock or after a Slurm requeue; SIGTERM releases the lock.
 */
import {test, type TestContext} from 'node:test'
import assert from 'node:assert/strict'
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {dirname, join} from 'node:path'
import {LOCK_STALE_MS, lockFileOf} from '../../src/util/lock.js'
import {PROJECT_ROOT} from '../helpers/cli.js'
import {tempDir} from '../helpers/temp-dir.js'

/**
 * argv: FOLDER HOLD_MS [GO_FILE]; env LOCK_MODE = plain | break | wait. Prints 'LOCKED <pid>' on
 * stdout when it holds the lock, holds it HOLD_MS (-1: until stdin ends), exits 2 with the
 * error line when it cannot. With GO_FILE it starts trying only once that file exists.
 */
const HOLDER = `
import {existsSync} from 'node:fs'
import {lockFolder} from ${JSON.stringify(join(PROJECT_ROOT, 'dist/src/util/lock.js'))}
import {createLogger} from ${JSON.stringify(join(PROJECT_ROOT, 'dist/src/log/logger.js'))}
const [folder, holdMs, go] = process.argv.slice(2)
const mode = process.env.LOCK_MODE ?? 'plain'
if (go) while (!existsSync(go)) await new Promise((r) => setTimeout(r, 1))
let lock
try {
  lock = await lockFolder(folder, {what: 'run folder', log: createLogger({level: 'info'}), breakLock: mode === 'break', wait: mode === 'wait', outFlag: '--out'})
} catch (error) {
  process.stderr.write('Error: ' + error.message + '\\n')
  process.exit(2)
}
process.stdout.write('LOCKED ' + process.pid + '\\n')
if (Number(holdMs) < 0) await new Promise((r) => { process.stdin.on('data', () => {}); process.stdin.on('end', r) })
else await new Promise((r) => setTimeout(r, Number(holdMs)))
lock.release()
`

function setup(t: TestContext): {root: string; script: string; folder: string} {
  const root = tempDir(t, 'sipl-lock-')
  const script = join(root, 'holder.mjs')
  writeFileSync(script, HOLDER)
  return {root, script, folder: join(root, 'runs', 'demo')}
}

function start(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): {child: ChildProcess; out: () => string; err: () => string} {
  const child = spawn(process.execPath, [script, ...args], {env: {...process.env, ...env}, stdio: ['pipe', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (err += d))
  return {child, out: () => out, err: () => err}
}

async function until(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const exited = (child: ChildProcess) =>
  new Promise<{code: number | null; signal: NodeJS.Signals | null}>((done) =>
    child.exitCode !== null || child.signalCode !== null
      ? done({code: child.exitCode, signal: child.signalCode})
      : child.on('exit', (code, signal) => done({code, signal})),
  )

function tryOnce(script: string, folder: string, env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [script, folder, '0'], {env: {...process.env, ...env}, encoding: 'utf8'})
}

test('a second process exits 2 naming the holder (pid, host, command); once the holder ends, the folder is free', async (t) => {
  const {root, script, folder} = setup(t)
  const holder = start(script, [folder, '-1'])
  await until(() => holder.out().includes('LOCKED'), 'the holder')
  const lockFile = lockFileOf(folder)
  assert.equal(lockFile, join(root, 'runs', '.demo.sipl-lock'))
  const record = JSON.parse(readFileSync(lockFile, 'utf8')) as {pid: number; host: string; command: string; started: string}
  assert.equal(record.pid, holder.child.pid)
  assert.equal(record.host, hostname())
  assert.ok(Math.abs(Date.parse(record.started) - Date.now()) < 60_000)

  const second = tryOnce(script, folder)
  assert.equal(second.status, 2)
  const line = second.stderr.trim()
  assert.equal(line.split('\n').length, 1, line)
  assert.match(
    line,
    new RegExp(
      `^Error: run folder ${folder} is being written by another sipl: pid ${holder.child.pid} on ${hostname()} \\(sipl ${folder} -1\\), since `,
    ),
  )
  assert.match(line, /wait for it to finish or write elsewhere \(--out\)$/, 'a holder on this machine: no --break-lock advice')

  holder.child.stdin!.end()
  assert.deepEqual(await exited(holder.child), {code: 0, signal: null})
  assert.ok(!existsSync(lockFile), 'released on exit')
  const third = tryOnce(script, folder)
  assert.equal(third.status, 0, third.stderr)
})

test('six processes racing for a free lock, then for a dead holder’s lock: exactly one wins each time, the takeover is logged', async (t) => {
  const {root, script, folder} = setup(t)
  for (const round of ['free', 'stale']) {
    if (round === 'stale') {
      // a holder killed with SIGKILL leaves its lock behind
      const killed = start(script, [folder, '-1'])
      await until(() => killed.out().includes('LOCKED'), 'the holder to be killed')
      killed.child.kill('SIGKILL')
      await exited(killed.child)
      assert.ok(existsSync(lockFileOf(folder)))
    }
    const go = join(root, `go-${round}`)
    const racers = Array.from({length: 6}, () => start(script, [folder, '1500', go]))
    await new Promise((r) => setTimeout(r, 1500)) // let every racer start and wait for the go file
    writeFileSync(go, '')
    const results = await Promise.all(racers.map((r) => exited(r.child)))
    const winners = racers.filter((r) => r.out().includes('LOCKED'))
    assert.equal(winners.length, 1, `${round}: ${racers.map((r) => r.err()).join(' | ')}`)
    assert.equal(results.filter((r) => r.code === 2).length, 5)
    for (const loser of racers.filter((r) => !r.out().includes('LOCKED')))
      assert.match(loser.err(), /is being written by another sipl: pid \d+/)
    if (round === 'stale') {
      // the winner says it took over when it saw the abandoned lock; the racer that removed it
      // says so when another got the lock first (the winner may then never have seen it)
      const said = racers.map((r) => r.err()).join('\n')
      assert.match(said, /(took over the lock of .*|removed the abandoned lock of .*\()its process \d+ is gone/, said)
    }
    assert.ok(!existsSync(lockFileOf(folder)))
  }
})

test('a lock from another host: refused with --break-lock advice; taken over when not refreshed for LOCK_STALE_MS, with --break-lock, or after a Slurm requeue', (t) => {
  const {script, folder} = setup(t)
  const lockFile = lockFileOf(folder)
  mkdirSync(dirname(lockFile), {recursive: true})
  const foreign = (extra: Record<string, unknown> = {}) => {
    const record = {
      pid: 4242,
      host: 'gpu-node-7',
      machine: 'gpu-node-7|another-boot|pid:[1]',
      command: 'sipl train --out runs/demo',
      started: '2026-12-01T10:00:00.000Z',
      token: 'abc',
      ...extra,
    }
    writeFileSync(lockFile, JSON.stringify(record))
  }
  foreign()
  const refused = tryOnce(script, folder)
  assert.equal(refused.status, 2)
  assert.match(
    refused.stderr,
    /pid 4242 on gpu-node-7 \(sipl train --out runs\/demo\), since 2026-12-01T10:00:00.000Z, last refreshed \d+ s ago/,
  )
  assert.match(refused.stderr, /if that process is gone \(its node failed\), add --break-lock/)

  // older than the bound: taken over
  const old = (Date.now() - LOCK_STALE_MS - 60_000) / 1000
  utimesSync(lockFile, old, old)
  const stale = tryOnce(script, folder)
  assert.equal(stale.status, 0, stale.stderr)
  assert.match(stale.stderr, /took over the lock of .*: it was not refreshed for 61 min/)

  foreign()
  const broken = tryOnce(script, folder, {LOCK_MODE: 'break'})
  assert.equal(broken.status, 0, broken.stderr)
  assert.match(broken.stderr, /took over the lock of .*: --break-lock/)

  foreign({slurmJob: '77', slurmRestart: 0})
  const sameJobSameRun = tryOnce(script, folder, {SLURM_JOB_ID: '77', SLURM_RESTART_COUNT: '0'})
  assert.equal(sameJobSameRun.status, 2, 'the same job without a requeue may be a parallel step')
  const requeued = tryOnce(script, folder, {SLURM_JOB_ID: '77', SLURM_RESTART_COUNT: '1'})
  assert.equal(requeued.status, 0, requeued.stderr)
  assert.match(requeued.stderr, /took over the lock of .*: Slurm requeued job 77/)
})

test('a live holder on this machine is never taken over, not even with --break-lock; SIGTERM releases its lock and still ends it', async (t) => {
  const {script, folder} = setup(t)
  const holder = start(script, [folder, '-1'])
  await until(() => holder.out().includes('LOCKED'), 'the holder')
  assert.equal(tryOnce(script, folder, {LOCK_MODE: 'break'}).status, 2)
  holder.child.kill('SIGTERM')
  assert.deepEqual(await exited(holder.child), {code: null, signal: 'SIGTERM'})
  assert.ok(!existsSync(lockFileOf(folder)), 'released on SIGTERM')
})

test('with wait (the preprocessed cache), the second process waits for the holder, then takes the lock', async (t) => {
  const {script, folder} = setup(t)
  const holder = start(script, [folder, '-1'])
  await until(() => holder.out().includes('LOCKED'), 'the holder')
  const waiter = start(script, [folder, '0'], {LOCK_MODE: 'wait'})
  await until(() => waiter.err().includes('waiting for'), 'the waiter to say whom it waits for')
  assert.match(waiter.err(), new RegExp(`waiting for pid ${holder.child.pid} on ${hostname()}`))
  assert.ok(!waiter.out().includes('LOCKED'))
  holder.child.stdin!.end()
  assert.equal((await exited(waiter.child)).code, 0)
  assert.ok(waiter.out().includes('LOCKED'))
})
