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

/**
 * The resize written out plainly: separable passes (innermost spatial axis first) of two-tap
 * interpolation, products and sums in float64 and every stored value rounded to float32, the
 * gradient the transposed passes from zeros, t ascending.
 */
function plainResize(x: Float32Array, shape: number[], target: number[], transposed: boolean): Float32Array {
  const [b, d, h, w, c] = shape
  const [td, th, tw] = target
  const pass = (src: Float32Array, outer: number, inSize: number, outSize: number, inner: number): Float32Array => {
    if (inSize === outSize) return src
    const dst = new Float32Array(outer * (transposed ? inSize : outSize) * inner)
    const scale = inSize / outSize
    for (let r = 0; r < outer; r++)
      for (let t = 0; t < outSize; t++) {
        const source = Math.max((t + 0.5) * scale - 0.5, 0)
        const i0 = Math.min(Math.floor(source), inSize - 1)
        const i1 = Math.min(i0 + 1, inSize - 1)
        const weight = Math.fround(source - i0)
        const [p0, p1, o] = [(r * inSize + i0) * inner, (r * inSize + i1) * inner, (r * outSize + t) * inner]
        for (let j = 0; j < inner; j++) {
          if (transposed) {
            dst[p0 + j] += (1 - weight) * src[o + j]
            dst[p1 + j] += weight * src[o + j]
          } else dst[o + j] = (1 - weight) * src[p0 + j] + weight * src[p1 + j]
        }
      }
    return dst
  }
  if (!transposed) return pass(pass(pass(x, b * d * h, w, tw, c), b * d, h, th, tw * c), b, d, td, th * tw * c)
  return pass(pass(pass(x, b, d, td, th * tw * c), b * d, h, th, tw * c), b * d * h, w, tw, c)
}

test('fused trilinear resize: the same bits as the passes written out plainly, both ways, rows of many chunks and odd widths', () => {
  const rng = new Rng(11)
  for (const [shape, target] of [
    [
      [2, 8, 8, 8, 4],
      [32, 32, 32],
    ],
    [
      [1, 3, 4, 5, 3],
      [6, 40, 50],
    ],
    [
      [1, 8, 6, 4, 2],
      [4, 3, 4],
    ],
    [
      [1, 2, 2, 2, 5],
      [2, 2, 2],
    ],
  ] as [number[], [number, number, number]][]) {
    const x = Float32Array.from({length: shape.reduce((a, v) => a * v)}, () => rng.normal())
    const outShape = [shape[0], ...target, shape[4]]
    const dy = Float32Array.from({length: outShape.reduce((a, v) => a * v)}, () => rng.normal())
    const [y, dx] = expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const xt = tf.tensor5d(x, shape as [number, number, number, number, number])
        const value = resizeTrilinearFused(xt, target).dataSync() as Float32Array
        const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(resizeTrilinearFused(t as tf.Tensor5D, target), tf.tensor(dy, outShape))))(xt)
        return [value, grad.dataSync() as Float32Array]
      }),
    )
    assert.deepEqual([...y], [...plainResize(x, shape, target, false)], `${shape.join('×')} → ${target.join('×')}`)
    assert.deepEqual([...dx], [...plainResize(dy, shape, target, true)], `gradient ${shape.join('×')}`)
  }
})
