import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {UserError} from '../../src/errors.js'
import {loadConfig} from '../../src/config/load.js'
import {foldSplits} from '../../src/experiments/folds.js'
import {ablationVariants, expandSweep, parseAxis, resolveTrials, shortKeys, sweepTrials} from '../../src/experiments/plan.js'

test('parseAxis types values like --set and keeps list values whole', () => {
  assert.deepEqual(parseAxis('model.queries=8,16,32'), {key: 'model.queries', values: [8, 16, 32]})
  assert.deepEqual(parseAxis('smg.tau.end=0.1, 0.5'), {key: 'smg.tau.end', values: [0.1, 0.5]})
  assert.deepEqual(parseAxis('model.ipl=true,false'), {key: 'model.ipl', values: [true, false]})
  assert.deepEqual(parseAxis('model.cpp.init=random,onehot'), {key: 'model.cpp.init', values: ['random', 'onehot']})
  assert.deepEqual(parseAxis('model.backbone.widths=[8,16],[16,32]'), {key: 'model.backbone.widths', values: ['[8,16]', '[16,32]']})
  assert.throws(() => parseAxis('model.queries'), UserError)
  assert.throws(() => parseAxis('model..queries=1'), UserError)
  assert.throws(() => parseAxis('model.queries='), UserError)
})

test('expandSweep: cartesian product in --grid order, --zip pairs, seeds and folds multiply', () => {
  const grid = [parseAxis('a.x=1,2'), parseAxis('b.y=10,20,30')]
  const cartesian = expandSweep({grid, zip: false, seeds: [], folds: 0}).map((c) => c.params)
  assert.equal(cartesian.length, 6)
  assert.deepEqual(cartesian[0], {'a.x': 1, 'b.y': 10})
  assert.deepEqual(cartesian[1], {'a.x': 1, 'b.y': 20})
  assert.deepEqual(cartesian[5], {'a.x': 2, 'b.y': 30})
  assert.throws(() => expandSweep({grid, zip: true, seeds: [], folds: 0}), /same number of values/)
  const zipped = expandSweep({grid: [parseAxis('a.x=1,2'), parseAxis('b.y=10,20')], zip: true, seeds: [7, 8], folds: 3})
  assert.equal(zipped.length, 2 * 2 * 3)
  assert.deepEqual(zipped[0].params, {'a.x': 1, 'b.y': 10, seed: 7, fold: 0})
  assert.deepEqual(zipped[11].params, {'a.x': 2, 'b.y': 20, seed: 8, fold: 2})
  // a fold is a splits file, not a config key
  const folded = sweepTrials({grid: [], zip: false, seeds: [], folds: 2}, (k) => `/x/folds/fold-${k}.json`)
  assert.deepEqual(
    folded.map((t) => [t.name, t.overrides]),
    [
      ['fold=0', ['data.splitsFile=/x/folds/fold-0.json']],
      ['fold=1', ['data.splitsFile=/x/folds/fold-1.json']],
    ],
  )
  assert.throws(() => expandSweep({grid: [parseAxis('a.x=1'), parseAxis('a.x=2')], zip: false, seeds: [], folds: 0}), /twice/)
})

test('trial names drop the section and parse back to the params', () => {
  assert.deepEqual(
    [...shortKeys(['model.queries', 'smg.tau.end', 'seed'])],
    [
      ['model.queries', 'queries'],
      ['smg.tau.end', 'tau.end'],
      ['seed', 'seed'],
    ],
  )
  // two keys that would shorten to the same name keep their full names
  assert.deepEqual(
    [...shortKeys(['model.lr', 'train.lr'])].map(([, v]) => v),
    ['model.lr', 'train.lr'],
  )
  const trials = sweepTrials({grid: [parseAxis('model.queries=8,16'), parseAxis('smg.tau.end=0.1,0.5')], zip: false, seeds: [1], folds: 0})
  assert.deepEqual(
    trials.map((t) => t.name),
    ['queries=8_tau.end=0.1_seed=1', 'queries=8_tau.end=0.5_seed=1', 'queries=16_tau.end=0.1_seed=1', 'queries=16_tau.end=0.5_seed=1'],
  )
  assert.deepEqual(trials[3].overrides, ['model.queries=16', 'smg.tau.end=0.5', 'seed=1'])
  assert.deepEqual(
    trials.map((t) => t.index),
    [0, 1, 2, 3],
  )
})

test('ablation variants: full first, one per removed module and CPP init; clip without a file is skipped with the fix', () => {
  const {config} = loadConfig('experiments/demo.yaml')
  const {variants, skipped} = ablationVariants(
    {remove: ['ipl', 'smg'], cppInit: ['onehot', 'clip', 'biobert'], cppFiles: {biobert: 'bb.json'}},
    config,
  )
  assert.deepEqual(
    variants.map((v) => v.name),
    ['full', 'no-ipl', 'no-smg', 'cpp-onehot', 'cpp-biobert'],
  )
  assert.deepEqual(variants[1].overrides, ['model.ipl=false'])
  assert.deepEqual(variants[4].overrides, ['model.cpp.init=biobert', 'model.cpp.file=bb.json'])
  assert.equal(skipped.length, 1)
  assert.equal(skipped[0].variant, 'cpp-clip')
  assert.match(skipped[0].reason, /--cpp-file clip=PATH/)
  assert.throws(() => ablationVariants({remove: ['ffn'], cppInit: [], cppFiles: {}}, config), /unknown module/)
  assert.throws(() => ablationVariants({remove: [], cppInit: ['bert'], cppFiles: {}}, config), /unknown initialisation/)
})

test('resolveTrials validates each trial config: a bad value marks that trial invalid, all bad is an error', () => {
  const trials = sweepTrials({grid: [parseAxis('model.queries=8,0')], zip: false, seeds: [], folds: 0})
  const resolved = resolveTrials(trials, 'experiments/demo.yaml', ['train.epochs=1'])
  assert.equal(resolved[0].trial.invalid, undefined)
  assert.equal(resolved[0].config?.model.queries, 8)
  assert.equal(resolved[0].config?.train.epochs, 1, 'base --set applies to every trial')
  assert.match(resolved[1].trial.invalid ?? '', /--set model\.queries=0 model\.queries/)
  const dir = mkdtempSync(join(tmpdir(), 'sipl-plan-'))
  writeFileSync(join(dir, 'c.yaml'), 'name: x\n')
  assert.throws(
    () => resolveTrials(sweepTrials({grid: [parseAxis('model.quereis=1,2')], zip: false, seeds: [], folds: 0}), join(dir, 'c.yaml'), []),
    /no trial has a valid config.*quereis/,
  )
})

test('foldSplits deals train ∪ val into K disjoint validation folds and keeps the test split', () => {
  const splits = {train: ['c', 'a', 'e', 'b', 'g'], val: ['d', 'f'], test: ['t1', 't2']}
  const folds = foldSplits(splits, 3, 2023)
  assert.equal(folds.length, 3)
  // 7 pool cases into 3 folds: sizes 3, 2, 2 (round-robin over the shuffled pool)
  assert.deepEqual(
    folds.map((f) => f.val.length),
    [3, 2, 2],
  )
  const allVal = folds.flatMap((f) => f.val).sort()
  assert.deepEqual(allVal, ['a', 'b', 'c', 'd', 'e', 'f', 'g'], 'every pool case validates exactly once')
  for (const f of folds) {
    assert.deepEqual([...f.train, ...f.val].sort(), allVal, 'train and val of a fold partition the pool')
    assert.deepEqual(f.train, [...f.train].sort(), 'ids are listed sorted')
    assert.deepEqual(f.test, ['t1', 't2'])
  }
  assert.deepEqual(foldSplits(splits, 3, 2023), folds, 'seeded: the same folds every time')
  assert.throws(() => foldSplits(splits, 8, 1), /at most 7 folds/)
  assert.throws(() => foldSplits(splits, 1, 1), /at least 2/)
})
