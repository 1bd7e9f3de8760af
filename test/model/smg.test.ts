// The self-supervised filtering (Eq. 10), the τ schedule (Eq. 11) and the hard assignment (Eq. 6).
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {loadConfig} from '../../src/config/load.js'
import {ParamStore} from '../../src/model/init.js'
import {SiplNet} from '../../src/model/sipl.js'
import {clusterForegroundRatio, clusterKeep, hardAssignment, KmaxLayer, tauAt, type KmaxLayerInput} from '../../src/model/smg.js'
import {Rng} from '../../src/util/rng.js'
import {expectNoLeakedTensors, expectNoLeakedTensorsInTidy} from '../helpers/tensors.js'

await tf.setBackend('cpu')

const oneHotRows = (indices: number[], depth: number) =>
  tf.oneHot(tf.tensor1d(indices, 'int32'), depth).toFloat().expandDims(0) as tf.Tensor3D

test('Eq. 11: τ = 0.1 at epoch 0, 0.3 at 25, 0.5 at 50 and after', () => {
  const tau = {start: 0.1, end: 0.5, rampEpochs: 50}
  assert.ok(Math.abs(tauAt(0, tau) - 0.1) < 1e-12)
  assert.ok(Math.abs(tauAt(25, tau) - 0.3) < 1e-12)
  assert.ok(Math.abs(tauAt(50, tau) - 0.5) < 1e-12)
  assert.ok(Math.abs(tauAt(400, tau) - 0.5) < 1e-12)
  assert.equal(tauAt(3, {start: 0.2, end: 0.6, rampEpochs: 0}), 0.6)
})

test('Eq. 10 on a hand-built example: a 30 % cluster passes τ = 0.1, fails τ = 0.5; background-only clusters fail', () => {
  // 20 voxels, 4 clusters, K = 2 (channel 0 = background of the previous pseudo mask)
  //   cluster 0: voxels 0–9,  3 in class 1, 7 background        → ratio 0.3
  //   cluster 1: voxels 10–14, all background                    → ratio 0
  //   cluster 2: voxels 15–18, 3 in class 2, 1 in class 1        → ratio 0.75
  //   cluster 3: voxel 19, class 1                               → ratio 1
  const clusters = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3]
  const classes = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 1, 1]
  const assignment = oneHotRows(clusters, 5) // a fifth, empty cluster
  const previous = oneHotRows(classes, 3)
  const ratio = Array.from(expectNoLeakedTensorsInTidy(() => clusterForegroundRatio(assignment, previous)).dataSync())
  const expected = [0.3, 0, 0.75, 1, 0]
  ratio.forEach((r, i) => assert.ok(Math.abs(r - expected[i]) < 1e-6, `cluster ${i}: ${r}`))
  assert.deepEqual(Array.from(expectNoLeakedTensorsInTidy(() => clusterKeep(assignment, previous, 0.5)).dataSync()), [0, 0, 1, 1, 0])
  assert.deepEqual(Array.from(clusterKeep(assignment, previous, 0.1).dataSync()), [1, 0, 1, 1, 0])
})

test('no gradient flows through the argmax assignment', () => {
  const logits = tf.randomNormal([1, 6, 4]) as tf.Tensor3D
  const weights = tf.randomNormal([1, 6, 4])
  const grad = expectNoLeakedTensors(() => tf.grad((l: tf.Tensor) => tf.sum(tf.mul(hardAssignment(l as tf.Tensor3D), weights)))(logits), 1)
  assert.equal(tf.max(tf.abs(grad)).dataSync()[0], 0)
})

function buildLayer(seed: number) {
  const store = new ParamStore(new Rng(seed))
  const layer = new KmaxLayer(store, 'smg.layer.0', 12, 16, 2, 32, 2)
  return {store, layer}
}

test('inside a kMaX layer: the filter follows τ, and an excluded query is updated exactly as without cross-attention', () => {
  const {store, layer} = buildLayer(4)
  const rng = new Rng(8)
  const pixels = tf.tensor3d(
    Float32Array.from({length: 60 * 12}, () => rng.normal()),
    [1, 60, 12],
  )
  const queries = tf.tensor3d(
    Float32Array.from({length: 6 * 16}, () => rng.normal()),
    [1, 6, 16],
  )
  const base: KmaxLayerInput = {pixels, queries, previous: null, tau: 0}
  // queries, mask logits and assignment (keep is null without a previous mask)
  const assigned = Array.from(tf.argMax(expectNoLeakedTensorsInTidy(() => layer.apply(base), 3).assignment, -1).dataSync())
  // the largest cluster gets ~30 % of its voxels in class 1, the rest background; all other voxels class 2
  const sizes = Array.from({length: 6}, (_, n) => assigned.filter((a) => a === n).length)
  const target = sizes.indexOf(Math.max(...sizes))
  let placed = 0
  const inClass1 = Math.round(0.3 * sizes[target])
  const classes = assigned.map((a) => (a !== target ? 2 : placed++ < inClass1 ? 1 : 0))
  const ratio = inClass1 / sizes[target]
  assert.ok(ratio > 0.1 && ratio < 0.5, `hand-built ratio ${ratio}`)
  const previous = oneHotRows(classes, 3)

  const strict = expectNoLeakedTensorsInTidy(() => layer.apply({...base, previous, tau: 0.5}), 4)
  const lenient = layer.apply({...base, previous, tau: 0.1})
  assert.equal(strict.keep!.dataSync()[target], 0, 'excluded at τ = 0.5')
  assert.equal(lenient.keep!.dataSync()[target], 1, 'included at τ = 0.1')
  // the filtered assignment has an empty column for the excluded query
  assert.equal(tf.sum(tf.slice(strict.assignment, [0, 0, target], [-1, -1, 1])).dataSync()[0], 0)

  const without = layer.apply({...base, crossAttention: false})
  const row = (t: tf.Tensor3D) => Array.from(tf.slice(t, [0, target, 0], [1, 1, -1]).dataSync())
  assert.deepEqual(row(strict.queries), row(without.queries), 'excluded query: same update as with no cross-attention')
  const moved = row(lenient.queries).some((v, i) => Math.abs(v - row(without.queries)[i]) > 1e-4)
  assert.ok(moved, 'included query: the cross-attention update changes it')
  store.dispose()
})

test('the SMG layers read τ from the current epoch on every call (the released code freezes it)', () => {
  const {config} = loadConfig('experiments/demo.yaml', [])
  const net = new SiplNet({model: config.model, smg: config.smg, inChannels: 1, numClasses: 3, seed: 1})
  const seen: number[] = []
  const original = KmaxLayer.prototype.apply
  KmaxLayer.prototype.apply = function (this: KmaxLayer, input: KmaxLayerInput) {
    if (input.previous) seen.push(input.tau)
    return original.call(this, input)
  }
  try {
    const x = tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D
    const layersWithPrevious = config.smg.scales.length * config.smg.layersPerScale - 1
    const epochs = [0, 2, 4, 40]
    for (const epoch of epochs) {
      assert.ok(Math.abs(net.filterThreshold({training: true, epoch})! - tauAt(epoch, config.smg.tau)) < 1e-12)
      expectNoLeakedTensors(() =>
        tf.tidy(() => {
          net.apply(x, {training: true, epoch})
        }),
      )
    }
    // demo ramp is 4 epochs: 0.1, 0.3, 0.5, 0.5 — each value reaches every filtering layer
    const expected = epochs.flatMap((e) => Array<number>(layersWithPrevious).fill(tauAt(e, config.smg.tau)))
    assert.deepEqual(seen, expected)
    assert.ok(Math.abs(seen[layersWithPrevious] - 0.3) < 1e-12)
    // inference filters too by default (issue 13: one rule in training and at test time), with the epoch's τ
    seen.length = 0
    assert.equal(net.filterThreshold({training: false, epoch: 40}), tauAt(40, config.smg.tau))
    tf.tidy(() => {
      net.apply(x, {training: false, epoch: 40})
    })
    assert.deepEqual(seen, Array<number>(layersWithPrevious).fill(0.5))
    // smg.filterAtInference: false turns it off at inference only
    const unfiltered = new SiplNet({
      model: config.model,
      smg: {...config.smg, filterAtInference: false},
      inChannels: 1,
      numClasses: 3,
      seed: 1,
    })
    seen.length = 0
    assert.equal(unfiltered.filterThreshold({training: false, epoch: 40}), null)
    tf.tidy(() => {
      unfiltered.apply(x, {training: false, epoch: 40})
    })
    assert.equal(seen.length, 0)
    unfiltered.dispose()
  } finally {
    KmaxLayer.prototype.apply = original
    net.dispose()
  }
})
