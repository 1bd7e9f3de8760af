import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {configHash, configToYaml, loadConfig} from '../../src/config/load.js'
import {userErrorMessage} from '../helpers/user-error.js'

function tempYaml(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sipl-cfg-')), 'exp.yaml')
  writeFileSync(file, text)
  return file
}

const message = userErrorMessage

test('every shipped experiment config is valid and round-trips through its resolved YAML', () => {
  for (const name of ['demo', 'btcv', 'lungs', 'brats']) {
    const {config} = loadConfig(`experiments/${name}.yaml`)
    assert.equal(config.name, name)
    const again = loadConfig(tempYaml(configToYaml(config))).config
    assert.deepEqual(again, config)
    assert.equal(configHash(again), configHash(config))
  }
})

test('the paper settings reach the resolved config', () => {
  const btcv = loadConfig('experiments/btcv.yaml').config
  assert.equal(btcv.data.classes.length, 13)
  assert.deepEqual(btcv.preprocess.spacing, [1.5, 1.5, 1.5])
  assert.deepEqual(btcv.preprocess.patch, [96, 96, 96])
  assert.equal(btcv.train.optimizer.name, 'adamw')
  assert.equal(btcv.train.optimizer.lr, 4e-4)
  assert.deepEqual(btcv.smg.tau, {start: 0.1, end: 0.5, rampEpochs: 50})
  const brats = loadConfig('experiments/brats.yaml').config
  assert.equal(brats.data.channels, 4)
  assert.equal(brats.data.overlappingRegions, true)
  assert.equal(brats.train.optimizer.name, 'sgd')
  // the paper's configs score with the official SIPL protocol; BTCV's AdamW recipe does not clip
  for (const c of [btcv, brats]) assert.equal(c.eval.protocol, 'sipl')
  assert.equal(btcv.train.gradClip, 0)
  // Lungs and BraTS as UNETR++ ran them: its split, nnU-Net sampling, augmentation and clipping
  const lungs = loadConfig('experiments/lungs.yaml').config
  for (const c of [lungs, brats]) {
    assert.equal(c.eval.protocol, 'sipl')
    assert.equal(c.data.split, 'unetrpp')
    assert.deepEqual([c.train.sampling, c.train.oversampleForeground, c.train.gradClip], ['nnunet', 0.33, 12])
    const a = c.train.augment
    assert.deepEqual(
      [a.rotation.p, a.rotation.maxDegrees, a.scaling.p, a.scaling.range, a.gaussianNoise.p, a.gaussianBlur.p, a.brightness.p],
      [0.2, 30, 0.2, [0.7, 1.4], 0.1, 0.2, 0.15],
    )
    assert.deepEqual(
      [a.contrast.p, a.lowResolution.p, a.gammaInverted.p, a.gamma.p, a.flip, a.flipAxes],
      [0.15, 0.25, 0.1, 0.3, 0.5, ['x', 'y', 'z']],
    )
    assert.deepEqual([a.rot90, a.intensityShiftProb], [0, 0])
  }
})

test('--set overrides are typed: numbers, booleans, lists, strings', () => {
  const {config} = loadConfig('experiments/demo.yaml', [
    'model.queries=16',
    'train.epochs=3',
    'model.ipl=false',
    'preprocess.patch=[16, 24, 32]',
    'name=other-run',
  ])
  assert.equal(config.model.queries, 16)
  assert.equal(config.train.epochs, 3)
  assert.equal(config.model.ipl, false)
  assert.deepEqual(config.preprocess.patch, [16, 24, 32])
  assert.equal(config.name, 'other-run')
  assert.ok(Object.isFrozen(config.model), 'the resolved config is frozen')
})

test('defaults fill what a config leaves out', () => {
  const {config} = loadConfig(tempYaml('name: tiny\n'))
  assert.equal(config.model.queries, 32)
  assert.equal(config.loss.alpha, 0.05)
  assert.deepEqual(config.smg.tau, {start: 0.1, end: 0.5, rampEpochs: 50})
})

test('an unknown key is an error at its line and column', () => {
  const file = tempYaml('name: x\nmodel:\n  queries: 8\n  quereis: 16\n')
  assert.equal(
    message(() => loadConfig(file)),
    `${file}:4:3 model.quereis: unknown key 'quereis' (check the spelling; sipl never ignores a key)`,
  )
})

test('a wrong type is an error at the value', () => {
  const file = tempYaml('name: x\ntrain:\n  epochs: many\n')
  assert.equal(
    message(() => loadConfig(file)),
    `${file}:3:11 train.epochs: Expected number, received string`,
  )
})

test('an out-of-range value is an error at the value', () => {
  const file = tempYaml('smg:\n  tau:\n    end: 1.5\n')
  assert.equal(
    message(() => loadConfig(file)),
    `${file}:3:10 smg.tau.end: Number must be less than or equal to 1`,
  )
})

test('a YAML syntax error names the line and column', () => {
  const file = tempYaml('name: x\nmodel:\n  queries: [8, 16\n')
  assert.match(
    message(() => loadConfig(file)),
    new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ YAML syntax error: `),
  )
})

test('a missing file names the file, where it was looked for and the shipped configs', () => {
  assert.equal(
    message(() => loadConfig('no/such.yaml')),
    `no/such.yaml: config file not found in ${process.cwd()}; shipped configs: brats, btcv, demo, lungs (sipl config list shows them; sipl config init NAME copies one here to edit)`,
  )
})

test('a bad override names the --set argument', () => {
  assert.equal(
    message(() => loadConfig('experiments/demo.yaml', ['model.queries=abc'])),
    '--set model.queries=abc model.queries: Expected number, received string',
  )
  assert.equal(
    message(() => loadConfig('experiments/demo.yaml', ['model.nope=1'])),
    "--set model.nope=1 model.nope: unknown key 'nope' (check the spelling; sipl never ignores a key)",
  )
  assert.match(
    message(() => loadConfig(undefined, ['novalue'])),
    /^--set novalue: expected dotted.key=value/,
  )
})

test('a run name is one folder name: "..", ".", "a/b", empty and control characters are refused, naming the allowed characters', () => {
  for (const value of ['..', '.', 'a/b', '""', '"a\\tb"', '"a\\nb"', '../x']) {
    const text = message(() => loadConfig('experiments/demo.yaml', [`name=${value}`]))
    assert.match(text, /^--set name=.* name: a run name is one folder name: letters, digits, "\.", "_" or "-" \(not "\." or "\.\."\)$/)
  }
  assert.match(
    message(() => loadConfig(tempYaml('name: ..\n'))),
    /:1:7 name: a run name is one folder name/,
  )
  assert.equal(loadConfig('experiments/demo.yaml', ['name=run.2_a-b']).config.name, 'run.2_a-b')
})

test('--set keys __proto__, constructor and prototype are refused in one line, and nothing is polluted', () => {
  for (const key of ['__proto__.x', 'model.__proto__.x', 'constructor.x', 'model.constructor', 'prototype', 'train.prototype.y']) {
    const text = message(() => loadConfig('experiments/demo.yaml', [`${key}=1`]))
    assert.match(text, /^--set [\w.]+=1: '(__proto__|constructor|prototype)' is not a config key/)
    assert.doesNotMatch(text, /\n/)
  }
  assert.equal(({} as Record<string, unknown>).x, undefined, 'Object.prototype untouched')
  assert.equal(({} as Record<string, unknown>).y, undefined, 'Object.prototype untouched')
  // a YAML file's own __proto__ key is an ordinary unknown key
  assert.match(
    message(() => loadConfig(tempYaml('__proto__:\n  x: 1\n'))),
    /:1:1 \(top level\): unknown key '__proto__'|__proto__: unknown key/,
  )
  assert.equal(({} as Record<string, unknown>).x, undefined)
})
