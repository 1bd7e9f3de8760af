/**
 * Issue 16 item 4: the SIPL demo model's training step on `cpu` is a few large kernels, not
 * thousands of small ones. Before the fused kMaX layer, trilinear resize and grouped AdamW a
 * steady-state step (forward, backward, AdamW) was 7 838 kernel calls and one inference batch of two
 * windows 1 704; the bounds below are 4× under those, and the fused kernels must be the ones
 * doing the work (one kMaX call each way per layer, one AdamW call).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {siplNetFactory} from '../../src/bench/sipl-net.js'
import {loadConfig} from '../../src/config/load.js'
import {fusedKernelsActive} from '../../src/kernels/fused.js'

await tf.setBackend('cpu')

const countByName = (kernels: {name: string}[]) => {
  const counts = new Map<string, number>()
  for (const k of kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1)
  return counts
}

test('the demo SIPL step and inference on cpu: ≥ 4× fewer kernel calls than the op composition, through the fused kernels', async () => {
  assert.ok(fusedKernelsActive())
  const {config} = loadConfig('experiments/demo.yaml')
  const net = siplNetFactory(config, 32)(1)
  const {x, target} = net.batch(32, 1)
  const variables = net.variables()
  const byName = new Map(variables.map((v) => [v.name, v]))
  const optimizer = net.optimizer()
  const layers = config.smg.scales.length * config.smg.layersPerScale
  try {
    const step = () => {
      const {value, grads} = tf.variableGrads(() => net.loss(x, target), variables)
      optimizer.step(byName, new Map(Object.entries(grads)), 1e-3)
      value.dataSync()
      tf.dispose([value, ...Object.values(grads)])
    }
    step() // creates Adam's moments
    const training = await tf.profile(step)
    const counts = countByName(training.kernels)
    assert.ok(training.kernels.length <= 7838 / 4, `${training.kernels.length} kernel calls in a training step`)
    assert.equal(counts.get('SiplKmaxLayer'), layers, 'one fused kMaX call per layer forward')
    assert.equal(counts.get('SiplKmaxLayerGrad'), layers, 'and one backward')
    assert.equal(counts.get('SiplResizeTrilinear'), layers, 'one upsampling per aux mask')
    assert.equal(counts.get('SiplAdamWGroup'), 1, 'one AdamW call for all parameters')
    assert.equal(counts.get('SiplAdamW') ?? 0, 0)

    const windows = tf.randomUniform([2, 32, 32, 32, net.channels], 0, 1, 'float32', 3) as tf.Tensor5D
    const inference = await tf.profile(() => tf.tidy(() => net.probabilities(windows).dataSync()))
    windows.dispose()
    assert.ok(inference.kernels.length <= 1704 / 4, `${inference.kernels.length} kernel calls in an inference batch`)
    assert.equal(countByName(inference.kernels).get('SiplKmaxLayer'), layers)
  } finally {
    optimizer.dispose()
    tf.dispose([x, target])
    net.dispose()
  }
})
