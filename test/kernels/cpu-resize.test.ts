/**
 * The fused trilinear resize (src/kernels/resize.ts, one kernel each way on `cpu`) against the op
 * composition of src/model/layers.ts `resizeTrilinear` on the reference kernels, values and
 * gradients, growing, shrinking and mixed grids; and against values computed by hand.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {relError} from '../../src/util/rel-error.js'
import {withReferenceCpuKernels} from '../../src/kernels/register.js'
import {fusedKernelsActive} from '../../src/kernels/fused.js'
import {resizeTrilinearFused} from '../../src/kernels/resize.js'
import {resizeTrilinear} from '../../src/model/ops.js'
import {Rng} from '../../src/util/rng.js'
import {expectNoLeakedTensors} from '../helpers/tensors.js'

await tf.setBackend('cpu')

const CASES: {input: [number, number, number, number, number]; target: [number, number, number]}[] = [
  // an aux pseudo mask (stride 4, K+1 = 4) up to a 32³ patch, batch 2
  {input: [2, 8, 8, 8, 4], target: [32, 32, 32]},
  {input: [1, 3, 5, 2, 3], target: [6, 5, 7]},
  {input: [1, 8, 6, 4, 2], target: [4, 3, 4]},
]

function valueAndGradient(
  x: tf.Tensor5D,
  target: [number, number, number],
  weights: tf.Tensor,
  fused: boolean,
): [Float32Array, Float32Array] {
  return tf.tidy(() => {
    const resize = (t: tf.Tensor) => (fused ? resizeTrilinearFused(t as tf.Tensor5D, target) : resizeTrilinear(t as tf.Tensor5D, target))
    const y = resize(x).dataSync() as Float32Array
    const dx = tf
      .grad((t: tf.Tensor) => tf.sum(tf.mul(resize(t), weights)))(x)
      .dataSync() as Float32Array
    return [y, dx]
  })
}

for (const {input, target} of CASES) {
  test(`fused trilinear resize ${input.join('×')} → ${target.join('×')} equals the composition, with its gradient`, () => {
    assert.ok(fusedKernelsActive())
    const rng = new Rng(5)
    const x = tf.tensor5d(
      Float32Array.from({length: input.reduce((a, b) => a * b)}, () => rng.normal()),
      input,
    )
    const outShape = [input[0], ...target, input[4]]
    const weights = tf.tensor(
      Float32Array.from({length: outShape.reduce((a, b) => a * b)}, () => rng.normal()),
      outShape,
    )
    const [y, dx] = expectNoLeakedTensors(() => valueAndGradient(x, target, weights, true))
    const [ey, edx] = withReferenceCpuKernels(() => valueAndGradient(x, target, weights, false))
    assert.ok(relError(y, ey) <= 1e-6, `values: ${relError(y, ey)}`)
    assert.ok(relError(dx, edx) <= 1e-5, `gradient: ${relError(dx, edx)}`)
    tf.dispose([x, weights])
  })
}

test('fused trilinear resize by hand: 2 → 4 along one axis, and its gradient', () => {
  const x = tf.tensor5d([1, 3], [1, 1, 1, 2, 1])
  // sources −¼ (clamped), ¼, ¾, 1¼ (clamped): 1, 1.5, 2.5, 3
  assert.deepEqual(Array.from(resizeTrilinearFused(x, [1, 1, 4]).dataSync()), [1, 1.5, 2.5, 3])
  // d/dx of Σ y·[1, 2, 3, 4]: x0 gets 1 + ¾·2 + ¼·3 = 3.25, x1 gets ¼·2 + ¾·3 + 4 = 6.75
  const dx = tf.grad((t: tf.Tensor) =>
    tf.sum(tf.mul(resizeTrilinearFused(t as tf.Tensor5D, [1, 1, 4]), tf.tensor([1, 2, 3, 4], [1, 1, 1, 4, 1]))),
  )(x)
  assert.deepEqual(Array.from(dx.dataSync()), [3.25, 6.75])
  tf.dispose([x, dx])
})
