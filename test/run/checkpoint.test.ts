import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {tf} from '../helpers/tf.js'
import {hasCheckpoint, loadOptimizer, loadWeights, readLoopState, saveCheckpoint, type LoopState} from '../../src/run/checkpoint.js'
import {AdamW} from '../../src/train/optimizers.js'
import {readSafetensors} from '../../src/io/safetensors.js'
import {expectNoLeakedTensors, variableOf} from '../helpers/tensors.js'

const state: LoopState = {
  epoch: 3,
  step: 30,
  rng: [1, 2, 3, 4],
  tau: 0.2,
  lr: 0.001,
  bestDice: null,
  bestEpoch: null,
  configHash: 'abc',
  optimizer: {name: 'adamw', iterations: 1},
  valSource: null,
  savedAt: 'now',
}

test('a checkpoint round-trips weights, optimiser state and loop state; mismatches are user errors', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-ckpt-'))
  try {
    const weights = new Map<string, tf.Variable>([
      [
        'backbone.stem.kernel',
        variableOf(() =>
          tf.tensor5d(
            Float32Array.from({length: 16}, (_, i) => i / 3),
            [2, 2, 2, 1, 2],
          ),
        ),
      ],
      ['head.bias', variableOf(() => tf.tensor1d([0.5, -0.25]))],
    ])
    const optimizer = new AdamW(0.9, 0.999, 0)
    optimizer.step(weights, new Map([...weights].map(([k, v]) => [k, tf.onesLike(v)])), 0.1)
    const dir = join(root, 'checkpoints', 'last')
    await expectNoLeakedTensors(() => saveCheckpoint(dir, {weights, optimizer, state}))
    assert.ok(hasCheckpoint(dir))
    assert.deepEqual(readdirSync(join(root, 'checkpoints')), ['last'], 'no temporary folders left')
    assert.equal(readSafetensors(join(dir, 'model.safetensors')).tensors.get('backbone.stem.kernel')!.shape.join(), '2,2,2,1,2')
    assert.deepEqual(readLoopState(dir), state)

    const fresh = new Map<string, tf.Variable>([
      ['backbone.stem.kernel', variableOf(() => tf.zeros([2, 2, 2, 1, 2]))],
      ['head.bias', variableOf(() => tf.zeros([2]))],
    ])
    expectNoLeakedTensors(() => loadWeights(dir, fresh))
    for (const [k, v] of weights) assert.deepEqual([...fresh.get(k)!.dataSync()], [...v.dataSync()])
    const restored = new AdamW(0.9, 0.999, 0)
    // two moments per variable
    expectNoLeakedTensors(() => loadOptimizer(dir, restored, 1), 4)
    for (const [k, t] of optimizer.stateTensors()) assert.deepEqual([...restored.stateTensors().get(k)!.dataSync()], [...t.dataSync()])

    const partial = new Map([['head.bias', variableOf(() => tf.zeros([3]))]])
    const misshapen = new Map([
      ['backbone.stem.kernel', variableOf(() => tf.zeros([2, 2, 2, 1, 2]))],
      ['head.bias', variableOf(() => tf.zeros([3]))],
    ])
    // a refused load leaves nothing behind
    expectNoLeakedTensors(() => assert.throws(() => loadWeights(dir, partial), /does not fit this model/))
    expectNoLeakedTensors(() => assert.throws(() => loadWeights(dir, misshapen), /head\.bias has shape \[2\] but the model needs \[3\]/))
    assert.throws(() => readLoopState(join(root, 'nothing')), /no checkpoint here/)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
