/**
 * The whole unet-ref training step (issue 7's benchmark network) with sipl's cpu kernels agrees
 * with the same step on tfjs's reference kernels (`sipl bench` on it: unet-ref.integration.test.ts).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {withReferenceCpuKernels} from '../../src/kernels/register.js'
import {UnetRef, unetRefBatch, unetRefLoss} from '../../src/model/unet-ref.js'
import {expectNoLeakedTensors} from '../helpers/tensors.js'

await tf.setBackend('cpu')

/** loss, gradients and their norms, then the weights and the loss after two Adam steps */
function trainTwoSteps(): {loss: number; gradNorms: number[]; gradients: Float32Array[]; weights: Float32Array[]; lossAfter: number} {
  const net = new UnetRef(3)
  const {x, oneHot} = unetRefBatch(8, 3)
  const {value, grads} = tf.variableGrads(() => unetRefLoss(net.apply(x), oneHot), net.variables())
  const loss = value.dataSync()[0]
  const gradNorms = net.variables().map((v) => tf.tidy(() => tf.norm(grads[v.name]).dataSync()[0]))
  const gradients = net.variables().map((v) => grads[v.name].dataSync() as Float32Array)
  tf.dispose([value, ...Object.values(grads)])
  const optimizer = tf.train.adam(1e-3)
  for (let i = 0; i < 2; i++) optimizer.minimize(() => unetRefLoss(net.apply(x), oneHot), true, net.variables())?.dispose()
  const weights = net.variables().map((v) => v.dataSync() as Float32Array)
  const lossAfter = tf.tidy(() => unetRefLoss(net.apply(x), oneHot).dataSync()[0])
  optimizer.dispose()
  net.dispose()
  tf.dispose([x, oneHot])
  return {loss, gradNorms, gradients, weights, lossAfter}
}

test('unet-ref: loss, every gradient norm, the kernels and the loss after two Adam steps agree with the reference kernels', () => {
  // building, two training steps and dispose leave nothing behind, on either kernels
  const fast = expectNoLeakedTensors(trainTwoSteps)
  const reference = expectNoLeakedTensors(() => withReferenceCpuKernels(trainTwoSteps))
  const rel = (a: number, e: number) => Math.abs(a - e) / Math.abs(e)
  assert.ok(rel(fast.loss, reference.loss) <= 1e-4, `loss ${fast.loss} vs ${reference.loss}`)
  // a 4-class softmax at initialisation: cross-entropy near ln 4, Dice loss in (0, 1)
  assert.ok(fast.loss > 1 && fast.loss < Math.log(4) + 1.5, `loss ${fast.loss}`)
  fast.gradNorms.forEach((g, i) =>
    assert.ok(rel(g, reference.gradNorms[i]) <= 1e-4, `gradient norm ${i}: ${g} vs ${reference.gradNorms[i]}`),
  )
  assert.ok(rel(fast.lossAfter, reference.lossAfter) <= 1e-4, `loss after two steps ${fast.lossAfter} vs ${reference.lossAfter}`)
  assert.ok(fast.lossAfter < fast.loss, 'two Adam steps lower the loss')
  // every gradient element (Winograd rounds differently from the reference: ~1e-5 of the largest)
  fast.gradients.forEach((g, i) => {
    const scale = Math.max(...reference.gradients[i].map(Math.abs))
    const diff = Math.max(...g.map((v, j) => Math.abs(v - reference.gradients[i][j])))
    assert.ok(diff / scale <= 1e-4, `gradient ${i}: relative difference ${diff / scale}`)
  })
  // kernels only (even indices), and only where the gradient is not rounding noise: Adam's first steps
  // move every weight by ≈ ±lr·sign(g), so a weight whose gradient is ~1e-6 of the largest (or a bias of a
  // dead ReLU channel, g = 0) moves by ±lr on the sign of that noise; that is Adam, not the kernels
  fast.weights.forEach((w, i) => {
    if (i % 2 === 1) return
    const g = reference.gradients[i]
    const gMax = Math.max(...g.map(Math.abs))
    const scale = Math.max(...reference.weights[i].map(Math.abs))
    const diff = Math.max(...w.map((v, j) => (Math.abs(g[j]) > 1e-3 * gMax ? Math.abs(v - reference.weights[i][j]) : 0)))
    assert.ok(diff / scale <= 1e-4, `kernel ${i / 2}: relative difference ${diff / scale}`)
  })
  // 18 variables: 9 layers × (kernel, bias)
  assert.equal(fast.gradNorms.length, 18)
})
