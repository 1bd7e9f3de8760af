/**
 * Faults that are the user's to fix exit 2 with one line, through the real CLI: a run name that
 * would leave the runs folder, an --out that is a file, a full disk (the kernel's ENOSPC from
 * /dev/full), and an eval folder locked by a sipl on another host.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import {sipl} from '../helpers/cli.js'
import {tempDir} from '../helpers/temp-dir.js'
import {TINY} from '../e2e/tiny.js'

const QUICK = [...TINY, '--set', 'train.epochs=1', '--set', 'train.itersPerEpoch=1', '--set', 'train.valEvery=0', '--backend', 'cpu']

/** A folder with one 4³ label map, to evaluate against itself. */
function oneMaskFolder(dir: string): string {
  const identity = [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ]
  writeNifti(join(dir, 'case_1.nii.gz'), {
    shape: [4, 4, 4],
    data: new Uint8Array(64).fill(1),
    geometry: geometryFromAffine(identity as never),
  })
  return dir
}

/** The lock record (src/util/lock.ts) of a sipl, pid 4242, running `command` on another host since 2026-12-06T08:00:00.000Z. */
function writeForeignLock(lockFile: string, host: string, command: string): void {
  const record = {pid: 4242, host, machine: `${host}|other|pid:[1]`, command, started: '2026-12-06T08:00:00.000Z', token: 't'}
  writeFileSync(lockFile, JSON.stringify(record))
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line: ${stderr}`)
  assert.doesNotMatch(stderr, /Internal error|\n\s+at /)
  return lines[0]
}

test('a run named "..", "a/b" or empty is refused (exit 2, the allowed characters); nothing is written beside SIPL_RUNS_DIR', (t) => {
  const root = tempDir(t, 'sipl-names-')
  const env = {SIPL_RUNS_DIR: join(root, 'runs'), SIPL_DATA_DIR: join(root, 'data')}
  for (const name of ['..', 'a/b', '""']) {
    const r = sipl(['train', '-c', 'experiments/demo.yaml', ...QUICK, '--set', `name=${name}`], {env, timeoutMs: 120_000})
    assert.equal(r.code, 2, r.stderr)
    assert.match(oneLine(r.stderr), /name: a run name is one folder name: letters, digits, "\.", "_" or "-" \(not "\." or "\.\."\)$/)
  }
  assert.deepEqual(readdirSync(root), [], 'no run folder, config or log anywhere')
  const proto = sipl(['train', '-c', 'experiments/demo.yaml', '--set', '__proto__.polluted=1'])
  assert.equal(proto.code, 2)
  assert.equal(
    oneLine(proto.stderr),
    "Error: --set __proto__.polluted=1: '__proto__' is not a config key (no section or key has that name)",
  )
})

test('--out naming a file: train and eval exit 2 with one line saying what is in the way', (t) => {
  const root = tempDir(t, 'sipl-outfile-')
  const file = join(root, 'not-a-folder')
  writeFileSync(file, 'x')
  const train = sipl(['train', '-c', 'experiments/demo.yaml', ...QUICK, '--out', file], {env: {SIPL_DATA_DIR: join(root, 'data')}})
  assert.equal(train.code, 2, train.stderr)
  assert.equal(
    oneLine(train.stderr),
    `Error: ${file} is in the way: it is a file where sipl needs a folder; give a folder path (e.g. --out) or move the file (EEXIST in mkdir)`,
  )
  const below = sipl(['train', '-c', 'experiments/demo.yaml', ...QUICK, '--out', join(file, 'run')], {
    env: {SIPL_DATA_DIR: join(root, 'data')},
  })
  assert.equal(below.code, 2, below.stderr)
  assert.match(oneLine(below.stderr), /part of this path is a file, not a folder/)

  const masks = oneMaskFolder(join(root, 'masks'))
  const e = sipl(['eval', '--pred', masks, '--labels', masks, '--out', file])
  assert.equal(e.code, 2, e.stderr)
  assert.equal(
    oneLine(e.stderr),
    `Error: --out ${file} is a file, not a folder; give a folder for the evaluation's outputs (it is replaced when complete)`,
  )
})

test('a full disk (ENOSPC from the kernel: the run log is /dev/full) exits 2 with one line naming the file', (t) => {
  const root = tempDir(t, 'sipl-enospc-')
  const run = join(root, 'run')
  mkdirSync(run)
  symlinkSync('/dev/full', join(run, 'train.log'))
  const r = sipl(['train', '-c', 'experiments/demo.yaml', ...QUICK, '--out', run], {env: {SIPL_DATA_DIR: join(root, 'data')}})
  assert.equal(r.code, 2, r.stderr)
  assert.match(
    oneLine(r.stderr),
    new RegExp(
      `^Error: no space left on the device that holds ${run}/train.log; free space there \\(df -h\\) or write elsewhere .* \\(ENOSPC in write\\)$`,
    ),
  )
  assert.ok(!existsSync(join(root, '.run.sipl-lock')), 'the run folder is unlocked again')
})

test('an eval folder locked by a sipl on another host: exit 2 naming it, --break-lock takes it over with a warning', (t) => {
  const root = tempDir(t, 'sipl-evallock-')
  const masks = oneMaskFolder(join(root, 'masks'))
  const out = join(root, 'eval')
  const lock = join(root, '.eval.sipl-lock')
  writeForeignLock(lock, 'gpu-node-7', 'sipl eval --pred x')
  const refused = sipl(['eval', '--pred', masks, '--labels', masks, '--out', out])
  assert.equal(refused.code, 2, refused.stderr)
  assert.match(
    oneLine(refused.stderr),
    new RegExp(
      `^Error: eval folder ${out} is being written by another sipl: pid 4242 on gpu-node-7 \\(sipl eval --pred x\\), since 2026-12-06T08:00:00.000Z, .*add --break-lock`,
    ),
  )
  assert.ok(!existsSync(out), 'nothing written')
  const taken = sipl(['eval', '--pred', masks, '--labels', masks, '--out', out, '--break-lock'])
  assert.equal(taken.code, 0, taken.stderr)
  assert.match(taken.stderr, /took over the lock of .*eval: --break-lock/)
  assert.ok(existsSync(join(out, 'summary.json')))
  assert.ok(!existsSync(lock))
})

test('an experiment folder locked by another sipl: sweep and sweep collect exit 2 naming it and write nothing', (t) => {
  const root = tempDir(t, 'sipl-sweeplock-')
  const dir = join(root, 'demo-sweep')
  writeForeignLock(join(root, '.demo-sweep.sipl-lock'), 'login-2', 'sipl sweep --out demo-sweep')
  const sweep = sipl(['sweep', '-c', 'experiments/demo.yaml', '--grid', 'model.queries=4,8', '--out', dir, '--trial-command', '/bin/false'])
  assert.equal(sweep.code, 2, sweep.stderr)
  assert.match(
    oneLine(sweep.stderr),
    /^Error: experiment folder \S+demo-sweep is being written by another sipl: pid 4242 on login-2 \(sipl sweep --out demo-sweep\)/,
  )
  assert.ok(!existsSync(dir), 'nothing written')
  mkdirSync(dir)
  const collect = sipl(['sweep', 'collect', dir])
  assert.equal(collect.code, 2, collect.stderr)
  assert.match(oneLine(collect.stderr), /is being written by another sipl: pid 4242 on login-2/)
})
