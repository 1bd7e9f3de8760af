/**
 * A disk that fills up while training: `sipl train --resume` on a real tmpfs that has room for
 * the run and its small files but not for the next checkpoint. It exits 2 with one line saying
 * the disk is full and that checkpoints/last is intact; last is byte for byte the one it started
 * from, no temporary is left; resumed on a disk with room, the run ends bit for bit where an
 * uninterrupted one ends. A read-only file system is one line too.
 *
 * The tmpfs is mounted in a private mount namespace (unshare --mount, as root, or in a user
 * namespace otherwise), so nothing outside the test sees it. Where neither is permitted, the same
 * test runs with ENOSPC raised by the file-system calls themselves (a --import hook that fails
 * every write of model.safetensors), and says so in one line.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {sameTensors} from '../helpers/checkpoints.js'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'
import {referenceRun} from '../helpers/reference-run.js'
import {TINY} from '../e2e/tiny.js'

const ARGS = (out: string) => [
  'train',
  '-c',
  'experiments/demo.yaml',
  ...TINY,
  ...['--set', 'train.epochs=2', '--set', 'train.itersPerEpoch=1', '--set', 'train.valEvery=0'],
  '--backend',
  'cpu',
  '--out',
  out,
]

/** Bytes a tmpfs needs for the files under `dir` (whole 4 KiB pages). */
function pagesOf(dir: string): number {
  let total = 0
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    const s = statSync(p)
    total += s.isDirectory() ? pagesOf(p) : Math.ceil(s.size / 4096) * 4096
  }
  return total
}

function namespaceRunner(): string[] | undefined {
  for (const prefix of [
    ['unshare', '--mount', '--propagation', 'private'],
    ['unshare', '--user', '--map-root-user', '--mount'],
  ]) {
    const probe = spawnSync(prefix[0], [...prefix.slice(1), 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d"'], {
      encoding: 'utf8',
    })
    if (probe.status === 0) return prefix
  }
  return undefined
}

const INJECT_ENOSPC = `
import fs from 'node:fs'
import {syncBuiltinESMExports} from 'node:module'
const write = fs.writeFileSync
fs.writeFileSync = function (path, ...rest) {
  if (String(path).includes('/checkpoints/.') && String(path).includes('model.safetensors'))
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), {errno: -28, code: 'ENOSPC', syscall: 'write'})
  return write.call(this, path, ...rest)
}
syncBuiltinESMExports()
`

test('a full disk while training: exit 2 in one line, checkpoints/last intact, resume elsewhere ends bit for bit; a read-only disk is one line too', (t) => {
  const {root, env, whole} = referenceRun(t, 'sipl-full-disk-', ARGS)

  // the run as a kill after epoch 1 leaves it: last = epoch-1
  const seed = join(root, 'seed')
  cpSync(whole, seed, {recursive: true})
  for (const name of ['last', 'best', 'epoch-2']) rmSync(join(seed, 'checkpoints', name), {recursive: true})
  cpSync(join(seed, 'checkpoints', 'epoch-1'), join(seed, 'checkpoints', 'last'), {recursive: true})
  const lastBefore = Object.fromEntries(
    readdirSync(join(seed, 'checkpoints', 'last')).map((f) => [f, readFileSync(join(seed, 'checkpoints', 'last', f))]),
  )

  const after = join(root, 'after')
  mkdirSync(after)
  const runner = namespaceRunner()
  let code: number
  let stderr: string
  let readOnly: {code: number; stderr: string} | undefined
  if (runner) {
    // room for the run, its config, manifest, metrics and log lines, not for a checkpoint
    const size = Math.ceil((pagesOf(seed) + 256 * 1024) / 1024)
    const script = `
      set -u
      mnt=$(mktemp -d)
      mount -t tmpfs -o size=${size}k tmpfs "$mnt"
      cp -a "$SEED" "$mnt/run"
      "$NODE" "$SIPL" train --out "$mnt/run" --resume --backend cpu 2>"$AFTER/stderr"
      echo $? >"$AFTER/code"
      cp -a "$mnt/run" "$AFTER/run"
      mount -o remount,ro "$mnt"
      "$NODE" "$SIPL" train --out "$mnt/run" --resume --backend cpu 2>"$AFTER/ro-stderr"
      echo $? >"$AFTER/ro-code"
    `
    const r = spawnSync(runner[0], [...runner.slice(1), 'sh', '-c', script], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        ...env,
        SIPL_LOG_LEVEL: 'warn',
        SEED: seed,
        AFTER: after,
        NODE: process.execPath,
        SIPL: resolve(PROJECT_ROOT, 'bin/run.js'),
      },
      encoding: 'utf8',
      timeout: 600_000,
    })
    assert.equal(r.status, 0, r.stderr)
    code = Number(readFileSync(join(after, 'code'), 'utf8'))
    stderr = readFileSync(join(after, 'stderr'), 'utf8')
    readOnly = {code: Number(readFileSync(join(after, 'ro-code'), 'utf8')), stderr: readFileSync(join(after, 'ro-stderr'), 'utf8')}
  } else {
    console.log('# no mount namespace here (unshare refused): ENOSPC is raised by a hook on writeFileSync instead of a full tmpfs')
    const hook = join(root, 'enospc.mjs')
    writeFileSync(hook, INJECT_ENOSPC)
    cpSync(seed, join(after, 'run'), {recursive: true})
    const r = spawnSync(
      process.execPath,
      ['--import', hook, resolve(PROJECT_ROOT, 'bin/run.js'), 'train', '--out', join(after, 'run'), '--resume', '--backend', 'cpu'],
      {cwd: PROJECT_ROOT, env: {...process.env, ...env, SIPL_LOG_LEVEL: 'warn'}, encoding: 'utf8'},
    )
    code = r.status ?? -1
    stderr = r.stderr
  }

  const run = join(after, 'run')
  assert.equal(code, 2, stderr)
  const line = stderr.trim()
  assert.equal(line.split('\n').length, 1, line)
  assert.match(
    line,
    /^Error: no space left on the device that holds \S+\/run\/checkpoints\/last; free space there \(df -h\) or write elsewhere .*\(ENOSPC in write\); checkpoints\/last \(epoch 1\) is intact: once that is fixed, continue with 'sipl train --out \S+\/run --resume'$/,
  )
  for (const [file, bytes] of Object.entries(lastBefore))
    assert.ok(readFileSync(join(run, 'checkpoints', 'last', file)).equals(bytes), `last/${file} unchanged`)
  assert.deepEqual(
    readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.')),
    [],
    'the half-written checkpoint was removed',
  )
  if (readOnly) {
    assert.equal(readOnly.code, 2, readOnly.stderr)
    assert.match(readOnly.stderr.trim(), /^Error: \S+ is on a read-only file system; write elsewhere .*\(EROFS in open\)$/)
  }

  // on a disk with room, the same run continues from last and ends where the uninterrupted one did
  const resumed = sipl(['train', '--out', run, '--resume', '--backend', 'cpu'], {env})
  assert.equal(resumed.code, 0, resumed.stderr)
  for (const file of ['model.safetensors', 'optimizer.safetensors'])
    sameTensors(join(whole, 'checkpoints', 'last', file), join(run, 'checkpoints', 'last', file))
})
