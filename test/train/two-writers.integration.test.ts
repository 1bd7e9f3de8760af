/**
 * Two `sipl train` into one folder, as real processes: the second exits 2 naming the first (pid,
 * host, command) and writes nothing there; SIGTERM releases the lock; after a SIGKILL the next
 * train takes the dead process's lock over with a warning and completes.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync, statSync} from 'node:fs'
import {hostname, tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'
import {TINY} from '../e2e/tiny.js'

/** many steps for the processes to be interrupted, a few for those that must finish */
const ARGS = (out: string, steps = 200) => [
  'train',
  '-c',
  'experiments/demo.yaml',
  ...TINY,
  ...['--set', 'train.epochs=1', '--set', `train.itersPerEpoch=${steps}`, '--set', 'train.valEvery=0'],
  '--backend',
  'cpu',
  '--out',
  out,
]

function startTrain(out: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [resolve(PROJECT_ROOT, 'bin/run.js'), ...ARGS(out)], {
    cwd: PROJECT_ROOT,
    env: {...process.env, SIPL_LOG_LEVEL: 'warn', ...env},
    stdio: 'ignore',
  })
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((done) =>
    child.on('exit', (code, signal) => done({code, signal})),
  )
  return {child, exited}
}

async function untilStep(out: string, child: {exitCode: number | null}): Promise<void> {
  const log = join(out, 'train.log')
  while (!(existsSync(log) && /"step":1\b/.test(readFileSync(log, 'utf8'))) && child.exitCode === null)
    await new Promise((r) => setTimeout(r, 10))
  assert.equal(child.exitCode, null, 'still training')
}

test('a second train into a folder being trained exits 2 naming the first; SIGTERM releases; a SIGKILLed holder is taken over', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-two-writers-'))
  const env = {SIPL_DATA_DIR: join(root, 'data'), SIPL_THREADS: '1'}
  try {
    const run = join(root, 'run')
    const lock = join(root, '.run.sipl-lock')
    const first = startTrain(run, env)
    await untilStep(run, first.child)
    const config = statSync(join(run, 'config.yaml'))

    const second = sipl(ARGS(run), {env})
    assert.equal(second.code, 2, second.stderr)
    const line = second.stderr.trim()
    assert.equal(line.split('\n').length, 1, line)
    assert.match(
      line,
      new RegExp(
        `^Error: run folder ${run} is being written by another sipl: pid ${first.child.pid} on ${hostname()} \\(sipl train -c experiments/demo.yaml .* … .*--out ${run}\\), since .*; wait for it to finish or write elsewhere \\(--out\\)$`,
      ),
    )
    const resumed = sipl(['train', '--out', run, '--resume', '--backend', 'cpu'], {env})
    assert.equal(resumed.code, 2)
    assert.match(resumed.stderr, /is being written by another sipl/)
    assert.equal(statSync(join(run, 'config.yaml')).mtimeMs, config.mtimeMs, 'the second wrote no config')

    first.child.kill('SIGTERM')
    assert.deepEqual(await first.exited, {code: null, signal: 'SIGTERM'})
    assert.ok(!existsSync(lock), 'SIGTERM released the lock')

    // a SIGKILL leaves the lock; the next train finds its process gone, takes the lock over and
    // goes on to its own checks (here: killed in its first epoch, there is nothing to resume)
    const other = join(root, 'other')
    const killed = startTrain(other, env)
    await untilStep(other, killed.child)
    killed.child.kill('SIGKILL')
    await killed.exited
    assert.ok(existsSync(join(root, '.other.sipl-lock')))
    const next = sipl(['train', '--out', other, '--resume', '--backend', 'cpu'], {env})
    assert.equal(next.code, 2, next.stderr)
    assert.match(next.stderr, new RegExp(`took over the lock of ${other}: its process ${killed.child.pid} is gone`))
    assert.match(next.stderr, /nothing to resume/)
    assert.ok(!existsSync(join(root, '.other.sipl-lock')))
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
