/**
 * `sipl eval --run` under faults, on a tiny trained run with two test cases:
 *  - a --labels folder whose case set differs is refused before any case is predicted;
 *  - a re-evaluation killed half-way leaves the old eval/ exactly as it was (no new predictions
 *    beside the old summary.json); the next evaluation removes the killed one's folder and
 *    replaces eval/ whole;
 *  - a second evaluation of the same folder while one runs exits 2 naming it.
 */
import {after, before, test} from 'node:test'
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {readNifti} from '../../src/io/nifti.js'
import {writeNifti, geometryOf} from '../../src/io/nifti-writer.js'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'
import {TINY} from '../e2e/tiny.js'

const root = mkdtempSync(join(tmpdir(), 'sipl-eval-faults-'))
const env = {SIPL_DATA_DIR: join(root, 'data'), SIPL_THREADS: '2'}
const run = join(root, 'run')
const evalDir = join(run, 'eval')

/** path → inode and mtime of every file under `dir` */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      const s = statSync(p)
      if (s.isDirectory()) walk(p)
      else out.set(p.slice(dir.length), `${s.ino}:${s.mtimeMs}:${s.size}`)
    }
  }
  walk(dir)
  return out
}

const stagingFolders = () => readdirSync(run).filter((n) => n.startsWith('.eval.tmp-'))

before(() => {
  const t = sipl(
    [
      'train',
      '-c',
      'experiments/demo.yaml',
      ...TINY,
      ...['--set', 'data.synthetic.cases=8', '--set', 'train.epochs=1', '--set', 'train.itersPerEpoch=1', '--set', 'train.valEvery=0'],
      '--backend',
      'cpu',
      '--out',
      run,
    ],
    {env},
  )
  assert.equal(t.code, 0, t.stderr)
  const e = sipl(['eval', '--run', run, '--backend', 'cpu', '--figures', '0'], {env})
  assert.equal(e.code, 0, e.stderr)
  assert.equal(readdirSync(join(evalDir, 'predictions')).length, 2, 'two test cases')
})

after(() => rmSync(root, {recursive: true, force: true}))

test('eval --run --labels with a case set that differs is refused before any case is predicted', () => {
  // the references: the run's own predictions, one of them missing and an extra case added
  const labels = join(root, 'labels-mismatch')
  mkdirSync(labels)
  const preds = readdirSync(join(evalDir, 'predictions')).sort()
  const first = readNifti(join(evalDir, 'predictions', preds[0]))
  writeNifti(join(labels, preds[0]), {shape: first.header.shape, data: first.data, geometry: geometryOf(first.header)})
  writeNifti(join(labels, 'extra_999.nii.gz'), {shape: first.header.shape, data: first.data, geometry: geometryOf(first.header)})
  const before = snapshot(evalDir)
  const r = sipl(['eval', '--run', run, '--labels', labels, '--backend', 'cpu'], {env: {...env, SIPL_LOG_LEVEL: 'info'}})
  assert.equal(r.code, 2, r.stderr)
  const missing = preds[1].replace(/\.nii\.gz$/, '')
  assert.match(r.stderr, new RegExp(`case sets differ \\(no prediction for extra_999; no reference for ${missing}\\)`))
  assert.doesNotMatch(r.stderr, /evaluating|backend/, 'stopped before the backend, the model and the first prediction')
  assert.deepEqual(snapshot(evalDir), before, 'eval/ untouched')
  assert.deepEqual(stagingFolders(), [])
})

test('a re-evaluation killed after its first prediction leaves the old eval/ as it was; the next one replaces it whole', async () => {
  const before = snapshot(evalDir)
  const summary = readFileSync(join(evalDir, 'summary.json'), 'utf8')
  const started = Date.now()
  const child = spawn(
    process.execPath,
    [resolve(PROJECT_ROOT, 'bin/run.js'), 'eval', '--run', run, '--checkpoint', 'last', '--set', 'eval.overlap=0.25', '--backend', 'cpu'],
    {cwd: PROJECT_ROOT, env: {...process.env, SIPL_LOG_LEVEL: 'warn', ...env}, stdio: 'ignore'},
  )
  const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)))
  // the first new prediction, wherever this version of sipl writes it
  const newPrediction = () =>
    [evalDir, ...stagingFolders().map((n) => join(run, n))].some((dir) => {
      const p = join(dir, 'predictions')
      return existsSync(p) && readdirSync(p).some((f) => f.endsWith('.nii.gz') && statSync(join(p, f)).mtimeMs > started)
    })
  while (!newPrediction() && child.exitCode === null) await new Promise((r) => setTimeout(r, 5))
  child.kill('SIGKILL')
  assert.equal(await exited, 'SIGKILL', 'killed before it finished')
  assert.deepEqual(snapshot(evalDir), before, 'no new file beside the old summary.json')
  assert.equal(readFileSync(join(evalDir, 'summary.json'), 'utf8'), summary)
  assert.equal(stagingFolders().length, 1, 'the killed evaluation left its unfinished folder')

  const again = sipl(['eval', '--run', run, '--checkpoint', 'last', '--backend', 'cpu', '--figures', '0', '--json'], {env})
  assert.equal(again.code, 0, again.stderr)
  assert.equal((JSON.parse(again.stdout) as {outDir: string}).outDir, evalDir)
  assert.deepEqual(stagingFolders(), [], 'the killed one’s folder is removed')
  const now = snapshot(evalDir)
  for (const [file, id] of now) assert.notEqual(before.get(file), id, `${file} is new`)
  assert.equal(JSON.parse(readFileSync(join(evalDir, 'summary.json'), 'utf8')).checkpoint, 'last')
})

test('a second evaluation into the same folder while one runs exits 2 naming it', async () => {
  const child = spawn(process.execPath, [resolve(PROJECT_ROOT, 'bin/run.js'), 'eval', '--run', run, '--backend', 'cpu'], {
    cwd: PROJECT_ROOT,
    env: {...process.env, SIPL_LOG_LEVEL: 'warn', ...env},
    stdio: 'ignore',
  })
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)))
  const lock = join(run, '.eval.sipl-lock')
  while (!existsSync(lock) && child.exitCode === null) await new Promise((r) => setTimeout(r, 5))
  const second = sipl(['eval', '--run', run, '--backend', 'cpu'], {env})
  assert.equal(second.code, 2, second.stderr)
  assert.match(
    second.stderr,
    new RegExp(`^Error: eval folder ${evalDir} is being written by another sipl: pid ${child.pid} on \\S+ \\(sipl eval --run `),
  )
  assert.equal(await exited, 0)
  assert.ok(!existsSync(lock))
})
