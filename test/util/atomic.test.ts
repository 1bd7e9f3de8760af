/**
 * Temporaries carry their owner (host, pid) in their name; those of dead processes are removed;
 * a folder whose swap was cut between its two renames is put back from the newer complete copy;
 * a failed fill leaves the old folder as it was.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tempDir} from '../helpers/temp-dir.js'
import {existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {basename, join} from 'node:path'
import {
  parseTemporary,
  recoverableCopy,
  recoverDir,
  removeStaleTemporaries,
  TEMP_HOST,
  tempName,
  writeDirAtomic,
  writeFileAtomic,
} from '../../src/util/atomic.js'

/** above any pid_max, so never a running process */
const DEAD_PID = 99_999_999

test('temporary names carry host and pid and parse back; names from before hosts were recorded parse too', () => {
  const name = basename(tempName('/x/metrics.jsonl'))
  assert.match(name, new RegExp(`^\\.metrics\\.jsonl\\.tmp-${TEMP_HOST}-${process.pid}-\\d+$`))
  const t = parseTemporary('/x', name)!
  assert.deepEqual([t.base, t.host, t.pid, t.old], ['metrics.jsonl', TEMP_HOST, process.pid, false])
  const hyphenHost = parseTemporary('/x', '.last.tmp-gpu-node-12-4242-1700000000000123.old')!
  assert.deepEqual(
    [hyphenHost.base, hyphenHost.host, hyphenHost.pid, hyphenHost.stamp, hyphenHost.old],
    ['last', 'gpu-node-12', 4242, 1700000000000123, true],
  )
  const legacy = parseTemporary('/x', '.last.tmp-4242-1700000000000')!
  assert.deepEqual([legacy.base, legacy.host, legacy.pid, legacy.old], ['last', undefined, 4242, false])
  assert.equal(parseTemporary('/x', 'last'), undefined)
  assert.equal(parseTemporary('/x', '.trial.json.tmp'), undefined)
})

test('removeStaleTemporaries removes those of dead processes and of other hosts, keeps live ones and ordinary files', (t) => {
  const dir = tempDir(t, 'sipl-atomic-')
  const dead = join(dir, `.metrics.csv.tmp-${TEMP_HOST}-${DEAD_PID}-1`)
  const deadLegacy = join(dir, `.config.yaml.tmp-${DEAD_PID}-2`)
  const otherHost = join(dir, `.manifest.json.tmp-elsewhere-${process.pid}-3`)
  const deadFolder = join(dir, `.last.tmp-${TEMP_HOST}-${DEAD_PID}-4`)
  const mine = join(dir, `.metrics.jsonl.tmp-${TEMP_HOST}-${process.pid}-5`)
  const parent = join(dir, `.eval.tmp-${TEMP_HOST}-${process.ppid}-6`)
  for (const f of [dead, deadLegacy, otherHost, mine, join(dir, 'metrics.csv')]) writeFileSync(f, 'x')
  mkdirSync(join(deadFolder, 'sub'), {recursive: true})
  mkdirSync(parent)
  const removed = removeStaleTemporaries(dir)
  assert.deepEqual(removed.sort(), [dead, deadLegacy, otherHost, deadFolder].sort())
  assert.deepEqual(readdirSync(dir).sort(), [basename(parent), basename(mine), 'metrics.csv'].sort())
  // `only` narrows it to the temporaries a command owns
  writeFileSync(dead, 'x')
  assert.deepEqual(
    removeStaleTemporaries(dir, (t) => t.base === 'other'),
    [],
  )
  assert.ok(existsSync(dead))
})

test('writeDirAtomic: a failing fill leaves the old folder and no temporary; a good one replaces it whole', (t) => {
  const dir = tempDir(t, 'sipl-atomic-')
  const target = join(dir, 'last')
  writeDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'state.json'), '{"epoch":1}'))
  assert.throws(
    () =>
      writeDirAtomic(target, (tmp) => {
        writeFileSync(join(tmp, 'model.safetensors'), 'half')
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), {code: 'ENOSPC', syscall: 'write'})
      }),
    (error: NodeJS.ErrnoException) => error.code === 'ENOSPC' && error.path === target,
  )
  assert.deepEqual(readdirSync(dir), ['last'])
  assert.deepEqual(readdirSync(target), ['state.json'])
  writeDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'state.json'), '{"epoch":2}'))
  assert.equal(readFileSync(join(target, 'state.json'), 'utf8'), '{"epoch":2}')
  assert.deepEqual(readdirSync(dir), ['last'])
  writeFileAtomic(join(dir, 'a.txt'), 'a')
  assert.deepEqual(readdirSync(dir).sort(), ['a.txt', 'last'])
})

test('a kill between the two renames of a folder swap: recoverDir puts the newer complete copy back', (t) => {
  const dir = tempDir(t, 'sipl-atomic-')
  const target = join(dir, 'last')
  const complete = (d: string) => existsSync(join(d, 'state.json'))
  const copy = (name: string, epoch: number | null) => {
    mkdirSync(join(dir, name))
    if (epoch !== null) writeFileSync(join(dir, name, 'state.json'), JSON.stringify({epoch}))
  }
  // the swap of epoch 3 over epoch 2 was cut after `last → .old`; an older fill was cut half-way
  copy(`.last.tmp-${TEMP_HOST}-${DEAD_PID}-1700000000003000.old`, 2)
  copy(`.last.tmp-${TEMP_HOST}-${DEAD_PID}-1700000000003000`, 3)
  copy(`.last.tmp-${TEMP_HOST}-${DEAD_PID}-1700000000004000`, null)
  assert.equal(recoverableCopy(target, complete), join(dir, `.last.tmp-${TEMP_HOST}-${DEAD_PID}-1700000000003000`))
  assert.ok(!existsSync(target), 'recoverableCopy only reads')
  recoverDir(target, complete)
  assert.equal(JSON.parse(readFileSync(join(target, 'state.json'), 'utf8')).epoch, 3)
  // with only the old copy left (the new one incomplete), the old one comes back
  rmSync(target, {recursive: true})
  assert.equal(basename(recoverDir(target, complete)!), `.last.tmp-${TEMP_HOST}-${DEAD_PID}-1700000000003000.old`)
  assert.equal(JSON.parse(readFileSync(join(target, 'state.json'), 'utf8')).epoch, 2)
  // nothing to do while the folder exists
  assert.equal(recoverDir(target, complete), undefined)
})
