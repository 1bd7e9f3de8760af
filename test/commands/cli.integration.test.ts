import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'

const STAGES = ['preprocess', 'train', 'eval', 'ablate', 'sweep']

test('sipl --help lists the five stages, doctor and predict', () => {
  const {stdout, code} = sipl(['--help'])
  assert.equal(code, 0)
  for (const id of [...STAGES, 'doctor', 'predict']) assert.match(stdout, new RegExp(`^  ${id}\\s`, 'm'), `${id} missing from --help`)
})

test('every command has working --help', () => {
  for (const id of [...STAGES, 'doctor', 'predict']) {
    const {stdout, code} = sipl([id, '--help'])
    assert.equal(code, 0, `${id} --help exit code`)
    assert.match(stdout, new RegExp(`\\$ sipl ${id}`), `${id} --help shows usage`)
  }
})

test('a config error exits 2 with file:line:col and no stack trace', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'sipl-cli-')), 'bad.yaml')
  writeFileSync(file, 'name: x\nmodel:\n  quereis: 16\n')
  const {stderr, code} = sipl(['train', '--config', file])
  assert.equal(code, 2)
  assert.equal(stderr.trim(), `Error: ${file}:3:3 model.quereis: unknown key 'quereis' (check the spelling; sipl never ignores a key)`)
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace without --verbose')
  const verbose = sipl(['train', '--config', file, '--verbose'])
  assert.equal(verbose.code, 2)
  assert.match(verbose.stderr, /\n\s+at /, '--verbose shows the stack')
})

test('a missing config file exits 2 with one line', () => {
  const {stderr, code} = sipl(['train', '--config', 'nope.yaml'])
  assert.equal(code, 2)
  assert.equal(stderr.trim().split('\n').length, 1)
  assert.match(stderr, /nope\.yaml: config file not found/)
})

test('errors under --json are one JSON document on stdout', () => {
  const {stdout, code} = sipl(['train', '--config', 'nope.yaml', '--json'])
  assert.equal(code, 2)
  const doc = JSON.parse(stdout) as {error: {message: string; exitCode: number}}
  assert.equal(doc.error.exitCode, 2)
  assert.match(doc.error.message, /config file not found/)
})

test('sipl doctor --json reports cpu loadable with a passing conv3d check, and wasm 4.22 failing it', () => {
  const {stdout, code} = sipl(['doctor', '--json'])
  assert.equal(code, 0)
  const report = JSON.parse(stdout) as {
    node: string
    backends: {name: string; loadable: boolean; check?: {pass: boolean; maxRelError: number}}[]
    autoChoice: string
  }
  assert.equal(report.node, process.version)
  const cpu = report.backends.find((b) => b.name === 'cpu')
  assert.ok(cpu?.loadable)
  assert.equal(cpu?.check?.pass, true)
  // sipl's fast cpu kernels against tfjs's reference kernels: float32 rounding only
  assert.ok((cpu?.check?.maxRelError ?? 1) < 1e-5, `cpu fast kernels vs reference: ${cpu?.check?.maxRelError}`)
  assert.deepEqual(
    report.backends.map((b) => b.name),
    ['tensorflow', 'webgpu', 'wasm', 'cpu'],
  )
  const wasm = report.backends.find((b) => b.name === 'wasm')
  if (wasm?.loadable) assert.equal(wasm.check?.pass, false, 'tfjs-backend-wasm 4.22 gets conv3d gradients wrong; the check must catch it')
  assert.notEqual(report.autoChoice, 'wasm')
})

test('a .env in the working directory is read, and the real environment wins over it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-env-'))
  writeFileSync(join(dir, '.env'), 'SIPL_RUNS_DIR=from-dotenv\nSIPL_THREADS=3\n')
  const {stdout, code} = sipl(['doctor', '--json', '--skip-check'], {cwd: dir, env: {SIPL_THREADS: '1'}})
  assert.equal(code, 0)
  const report = JSON.parse(stdout) as {environment: {runsDir: string; threads: number; backend: string}}
  assert.equal(report.environment.runsDir, join(dir, 'from-dotenv'))
  assert.equal(report.environment.threads, 1)
  assert.equal(report.environment.backend, 'auto')
})
