/**
 * End to end: train the demo-size model for a few iterations on a tiny phantom set (with a
 * validation case, so validation and `best` selection run), evaluate it, and check that every
 * output file exists and parses.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {loadConfig} from '../../src/config/load.js'
import {readSafetensors} from '../../src/io/safetensors.js'
import {readNifti} from '../../src/io/nifti.js'
import {sipl} from '../helpers/cli.js'
import {TINY} from './tiny.js'

test('train a few iterations, eval, every output exists and parses', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-e2e-train-'))
  const env = {SIPL_DATA_DIR: join(root, 'data')}
  const run = join(root, 'run')
  try {
    const t = sipl(
      [
        'train',
        '-c',
        'experiments/demo.yaml',
        ...TINY,
        '--set',
        'train.epochs=2',
        '--set',
        'train.itersPerEpoch=2',
        '--set',
        'eval.overlap=0',
        '--out',
        run,
        '--json',
      ],
      {env},
    )
    assert.equal(t.code, 0, t.stderr)
    const result = JSON.parse(t.stdout) as {epochs: number; steps: number; bestEpoch: number; valSource: string; backend: {name: string}}
    assert.deepEqual([result.epochs, result.steps, result.valSource], [2, 4, 'val'])

    // run directory
    const config = loadConfig(join(run, 'config.yaml')).config
    assert.equal(config.train.itersPerEpoch, 2)
    const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8')) as Record<string, unknown>
    for (const key of ['sipl', 'git', 'backend', 'seed', 'configHash', 'node', 'start', 'end'])
      assert.ok(key in manifest, `manifest.${key}`)
    assert.equal(manifest.node, process.version)
    assert.ok(manifest.end !== null)
    const logLines = readFileSync(join(run, 'train.log'), 'utf8').trim().split('\n')
    assert.ok(logLines.every((l) => typeof JSON.parse(l).msg === 'string'))
    const rows = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as {epoch: number; valDice: number})
    assert.deepEqual(
      rows.map((r) => r.epoch),
      [1, 2],
    )
    assert.ok(rows.every((r) => r.valDice >= 0 && r.valDice <= 1))
    const csv = readFileSync(join(run, 'metrics.csv'), 'utf8').trim().split('\n')
    assert.equal(csv[0], 'epoch,step,lr,tau,loss,segLoss,auxLoss,gradNorm,valDice,seconds')
    assert.equal(csv.length, 3)
    for (const svg of ['training-curve.svg', 'validation-dice.svg'])
      assert.match(readFileSync(join(run, svg), 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/)
    for (const cp of ['last', 'best', 'epoch-1', 'epoch-2']) {
      const weights = readSafetensors(join(run, 'checkpoints', cp, 'model.safetensors'))
      assert.ok(weights.tensors.size > 10, `${cp} has the model's tensors`)
      assert.ok([...weights.tensors.keys()].some((k) => k.startsWith('backbone.')))
      readSafetensors(join(run, 'checkpoints', cp, 'optimizer.safetensors'))
      const state = JSON.parse(readFileSync(join(run, 'checkpoints', cp, 'state.json'), 'utf8')) as {epoch: number; rng: number[]}
      assert.equal(state.rng.length, 4)
    }

    // evaluation
    const e = sipl(['eval', '--run', run, '--json'], {env})
    assert.equal(e.code, 0, e.stderr)
    const ev = JSON.parse(e.stdout) as {methods: {main: {meanDice: number; perCase: Record<string, number>}}; tests: unknown[]}
    assert.deepEqual(ev.tests, [])
    const ids = Object.keys(ev.methods.main.perCase)
    assert.equal(ids.length, 1, 'one test case')
    const out = join(run, 'eval')
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
      meanDice: number
      perClass: Record<string, {dice: number}>
      cases: string[]
    }
    assert.deepEqual(summary.cases, ids)
    assert.deepEqual(Object.keys(summary.perClass), ['liver', 'spleen', 'kidney'])
    assert.equal(summary.meanDice, ev.methods.main.meanDice)
    assert.equal(readFileSync(join(out, 'per-case.csv'), 'utf8').trim().split('\n').length, 1 + 3)
    for (const ext of ['md', 'csv', 'tex']) assert.ok(readFileSync(join(out, `table1.${ext}`), 'utf8').includes('liver'))
    // the prediction is written in the original geometry of the phantom (32×32×24)
    const pred = readNifti(join(out, 'predictions', `${ids[0]}.nii.gz`))
    assert.deepEqual(pred.header.shape, [32, 32, 24])
    const png = readFileSync(join(out, 'figures', readdirSync(join(out, 'figures'))[0]))
    assert.equal(png.toString('latin1', 1, 4), 'PNG')
    assert.ok(existsSync(join(out, 'eval.log')))
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
