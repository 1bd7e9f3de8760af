/**
 * Importing `tf` installs nothing (issue 17 item 1): the commands that compute nothing start without
 * loading TensorFlow.js at all, and the commands that do compute get sipl's cpu kernels because
 * selectBackend installs them, not because some module happened to import them first.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'
import {diagonal, writeVolume} from '../helpers/nifti-header.js'
import {tinyTrainArgs} from '../e2e/tiny.js'

// a loader hook that makes every import of a @tensorflow/ package fail
const FORBID_TFJS = resolve(PROJECT_ROOT, 'test/fixtures/forbid-tfjs.mjs')

function siplWithoutTfjs(args: string[]): {stdout: string; stderr: string; code: number | null} {
  const r = spawnSync(process.execPath, ['--import', FORBID_TFJS, resolve(PROJECT_ROOT, 'bin/run.js'), ...args], {
    cwd: PROJECT_ROOT,
    env: {...process.env, SIPL_LOG_LEVEL: 'warn'},
    encoding: 'utf8',
    timeout: 60_000,
  })
  return {stdout: r.stdout, stderr: r.stderr, code: r.status}
}

test('--help, inspect, sweep status and config start without loading TensorFlow.js', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-startup-'))
  const nifti = join(dir, 'a.nii')
  writeVolume(nifti, [4, 4, 4], new Uint8Array(64).fill(1), diagonal(1, 1, 1))
  const sweep = join(dir, 'sweep')
  mkdirSync(sweep)
  writeFileSync(
    join(sweep, 'experiment.json'),
    JSON.stringify({
      format: 1,
      kind: 'sweep',
      name: 's',
      createdAt: '2026-12-07T00:00:00Z',
      sipl: [],
      base: {sets: []},
      classes: ['a'],
      trials: [{index: 0, name: 't0', overrides: {}}],
    }),
  )
  const commands: [string[], string][] = [
    [['--help'], 'USAGE'],
    [['train', '--help'], 'USAGE'],
    [['inspect', nifti], 'shape 4 × 4 × 4'],
    [['sweep', 'status', sweep], "sweep 's', 1 trials"],
    [['config', 'list'], 'demo'],
    [['config', 'show', 'demo'], 'model:'],
    [['config', 'init', 'demo', join(dir, 'demo.yaml')], ''],
  ]
  for (const [args, expected] of commands) {
    const r = siplWithoutTfjs(args)
    assert.doesNotMatch(r.stderr, /TensorFlow\.js loaded/, `sipl ${args.join(' ')} loaded TensorFlow.js:\n${r.stderr}`)
    assert.equal(r.code, 0, `sipl ${args.join(' ')}: ${r.stderr}`)
    assert.ok(r.stdout.includes(expected), `sipl ${args.join(' ')} printed ${r.stdout}`)
  }
  // the hook does catch a command that computes
  const model = siplWithoutTfjs(['model', '-c', 'experiments/demo.yaml'])
  assert.notEqual(model.code, 0)
  assert.match(model.stderr, /TensorFlow\.js loaded: @tensorflow\/tfjs/)
})

test("sipl train's backend runs sipl's fast cpu kernels", () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-train-kernels-'))
  const out = join(root, 'run')
  const r = sipl([...tinyTrainArgs(out, ['train.epochs=1', 'train.itersPerEpoch=1', 'train.valEvery=0']), '--backend', 'cpu'], {
    env: {SIPL_DATA_DIR: join(root, 'data')},
  })
  assert.equal(r.code, 0, r.stderr)
  const lines = readFileSync(join(out, 'train.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as {backend?: string; reason?: string})
  const chosen = lines.find((l) => l.backend !== undefined && l.reason !== undefined)
  assert.ok(chosen, 'train.log names the backend')
  assert.equal(chosen.backend, 'cpu')
  assert.match(chosen.reason!, /with sipl's wasm-SIMD conv3d kernels/)
})
