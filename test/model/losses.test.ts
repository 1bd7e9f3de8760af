// Eq. 5, 12, 13 on hand-computed cases.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {auxLoss, bceWithLogits, segLoss, siplLoss, softDiceLoss, targetsFromLabels} from '../../src/model/losses.js'
import {expectNoLeakedTensorsInTidy} from '../helpers/tensors.js'

await tf.setBackend('cpu')

const near = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`)
const lossConfig = {alpha: 0.05, diceSmooth: 0, auxTarget: 'full' as const}

test('targetsFromLabels: exclusive one-hot without background; BraTS nested regions WT ⊃ TC ⊃ ET', () => {
  const labels = tf.tensor4d([0, 1, 2, 3], [1, 1, 1, 4], 'int32')
  const exclusive = expectNoLeakedTensorsInTidy(() => targetsFromLabels(labels, 3, false), 2)
  assert.deepEqual(exclusive.regions.shape, [1, 1, 1, 4, 3])
  // voxel v, class k: 1 iff label == k
  assert.deepEqual(Array.from(exclusive.regions.dataSync()), [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1])
  const nested = expectNoLeakedTensorsInTidy(() => targetsFromLabels(labels, 3, true), 2)
  // label 1 (oedema) → WT; 2 (non-enhancing) → WT, TC; 3 (enhancing) → WT, TC, ET
  assert.deepEqual(Array.from(nested.regions.dataSync()), [0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1])
  assert.deepEqual(Array.from(nested.labels.dataSync()), [0, 1, 2, 3])
})

test('soft Dice and BCE equal their formulas', () => {
  // p = [1, 0, 0.5], y = [1, 0, 1]: Σpy = 1.5, Σp² = 1.25, Σy² = 2 → Dice = 3 / 3.25
  const p = tf.tensor3d([1, 0, 0.5], [1, 3, 1])
  const y = tf.tensor3d([1, 0, 1], [1, 3, 1])
  near(expectNoLeakedTensorsInTidy(() => softDiceLoss(p, y, 0)).dataSync()[0], 1 - 3 / 3.25)
  const x = [-3, 0, 2]
  const t = [0, 1, 1]
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))
  const expected = x.reduce((s, v, i) => s - (t[i] * Math.log(sigmoid(v)) + (1 - t[i]) * Math.log(1 - sigmoid(v))), 0) / 3
  const [logits, targets] = [tf.tensor1d(x), tf.tensor1d(t)]
  near(expectNoLeakedTensorsInTidy(() => bceWithLogits(logits, targets)).dataSync()[0], expected)
  // far from 0 the stable form must not overflow
  assert.ok(Number.isFinite(bceWithLogits(tf.tensor1d([-500, 500]), tf.tensor1d([1, 0])).dataSync()[0]))
})

test('aux loss: uniform logits give CE = log(K+1); a confident correct mask gives ~0', () => {
  const target = tf
    .oneHot(tf.tensor1d([0, 1, 2, 3], 'int32'), 4)
    .toFloat()
    .reshape([1, 1, 2, 2, 4]) as tf.Tensor5D
  const zeros = tf.zeros([1, 1, 2, 2, 4]) as tf.Tensor5D
  const uniform = expectNoLeakedTensorsInTidy(() => auxLoss(zeros, target, lossConfig)).dataSync()[0]
  // probabilities 1/4 everywhere: Dice per channel = 2·(1/4) / (4·(1/16) + 1) = 0.4, CE = log 4
  near(uniform, 1 - 0.4 + Math.log(4))
  near(auxLoss(tf.mul(target, 50) as tf.Tensor5D, target, lossConfig).dataSync()[0], 0, 1e-4)
})

test('Eq. 13: total = L_seg + α Σ_l L_aux^l, each M^l upsampled to the patch and scored against the full label (Eq. 12)', () => {
  const labels = tf.tensor4d([0, 1, 1, 2, 0, 0, 2, 2], [1, 2, 2, 2], 'int32')
  const targets = targetsFromLabels(labels, 2, false)
  const logits = tf.randomNormal([1, 2, 2, 2, 2]) as tf.Tensor5D
  const fine = tf.randomNormal([1, 2, 2, 2, 3]) as tf.Tensor5D
  const coarse = tf.randomNormal([1, 1, 1, 1, 3]) as tf.Tensor5D
  // total, seg, aux and the two layers' terms
  const {total, seg, aux, auxPerLayer} = expectNoLeakedTensorsInTidy(() => siplLoss({logits, aux: [fine, coarse]}, targets, lossConfig), 5)
  near(seg.dataSync()[0], expectNoLeakedTensorsInTidy(() => segLoss(logits, targets.regions, lossConfig)).dataSync()[0])
  const fullTarget = tf
    .oneHot(tf.reshape(labels, [-1]), 3)
    .toFloat()
    .reshape([1, 2, 2, 2, 3]) as tf.Tensor5D
  // a one-voxel grid upsampled trilinearly is that voxel's logits everywhere
  const coarseUp = tf.tile(coarse, [1, 2, 2, 2, 1]) as tf.Tensor5D
  const perLayer = [auxLoss(fine, fullTarget, lossConfig).dataSync()[0], auxLoss(coarseUp, fullTarget, lossConfig).dataSync()[0]]
  assert.equal(auxPerLayer.length, 2)
  perLayer.forEach((v, l) => near(auxPerLayer[l].dataSync()[0], v))
  near(aux.dataSync()[0], perLayer[0] + perLayer[1])
  near(total.dataSync()[0], seg.dataSync()[0] + 0.05 * (perLayer[0] + perLayer[1]))
})

test("loss.auxTarget 'coarse': M^l on its own grid against the label block-averaged to it", () => {
  const labels = tf.tensor4d([0, 1, 1, 2, 0, 0, 2, 2], [1, 2, 2, 2], 'int32')
  const targets = targetsFromLabels(labels, 2, false)
  const logits = tf.randomNormal([1, 2, 2, 2, 2]) as tf.Tensor5D
  const coarse = tf.randomNormal([1, 1, 1, 1, 3]) as tf.Tensor5D
  const {aux} = siplLoss({logits, aux: [coarse]}, targets, {...lossConfig, auxTarget: 'coarse'})
  // the coarse grid's target: class fractions over the 8 voxels = [3, 2, 3] / 8
  const coarseTarget = tf.tensor5d([3 / 8, 2 / 8, 3 / 8], [1, 1, 1, 1, 3])
  near(aux.dataSync()[0], auxLoss(coarse, coarseTarget, lossConfig).dataSync()[0])
})
