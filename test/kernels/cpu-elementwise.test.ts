/**
 * The non-convolution cpu kernels sipl replaces (Slice, SplitV, Sum, Add / Sub / Multiply /
 * RealDiv with and without broadcasting, Relu, Step, Softmax) against tfjs's reference kernels, including the shapes they hand back to
 * the reference (which must still work), plus hand-computed values.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../../src/backend/tf.js'
import {withReferenceConvKernels} from '../../src/kernels/register.js'

await tf.setBackend('cpu')

const seeded = (shape: number[], seed: number) => tf.randomUniform(shape, -2, 2, 'float32', seed)

function same(run: () => tf.Tensor | tf.Tensor[], label: string): void {
  const pack = (t: tf.Tensor | tf.Tensor[]) =>
    (Array.isArray(t) ? t : [t]).map((x) => ({shape: x.shape, dtype: x.dtype, values: Array.from(x.dataSync())}))
  const fast = tf.tidy(() => pack(run()))
  const reference = tf.tidy(() => withReferenceConvKernels(() => pack(run())))
  assert.equal(fast.length, reference.length, label)
  fast.forEach((f, i) => {
    assert.deepEqual(f.shape, reference[i].shape, `${label}: shape`)
    assert.equal(f.dtype, reference[i].dtype, `${label}: dtype`)
    const ref = reference[i].values
    // NaN and ±Infinity must match exactly; finite values within 1e-6 of the largest finite magnitude
    f.values.forEach((v, j) => {
      if (!Number.isFinite(ref[j]) || !Number.isFinite(v))
        assert.ok(Object.is(v, ref[j]) || (v === ref[j] && v !== 0), `${label}[${j}]: ${v} vs ${ref[j]}`)
    })
    const finite = (k: number) => Number.isFinite(f.values[k]) && Number.isFinite(ref[k])
    const scale = Math.max(1e-30, ...ref.filter(Number.isFinite).map(Math.abs))
    const err = Math.max(0, ...f.values.map((v, j) => (finite(j) ? Math.abs(v - ref[j]) : 0))) / scale
    assert.ok(err <= 1e-6, `${label}: relative error ${err}`)
  })
}

test('slice: strided 5-D blocks, a contiguous slice, int32 and a 1-D slice', () => {
  const x = seeded([2, 3, 4, 5, 6], 1)
  same(() => tf.slice(x, [1, 0, 1, 2, 3], [1, 3, 2, 3, 2]), 'inner block')
  same(() => tf.slice(x, [0, 1, 0, 0, 0], [2, 2, 4, 5, 6]), 'whole trailing axes')
  same(() => tf.slice(x, [1, 0, 0, 0, 0], [1, 3, 4, 5, 6]), 'contiguous')
  same(() => tf.slice(tf.range(0, 60, 1, 'int32').reshape([3, 4, 5]), [1, 1, 1], [2, 2, 3]), 'int32')
  same(() => tf.slice(tf.range(0, 10), [3], [4]), '1-D')
  x.dispose()
  // hand-computed: rows 1..2, columns 2..3 of a 3×4 matrix of 0..11
  assert.deepEqual(tf.slice(tf.range(0, 12).reshape([3, 4]), [1, 2], [2, 2]).arraySync(), [
    [6, 7],
    [10, 11],
  ])
})

test('splitV: the gradient of a channel concat, uneven sizes, and the middle axis', () => {
  const x = seeded([1, 4, 3, 5, 10], 2)
  same(() => tf.split(x, [6, 4], 4), 'channels 6 + 4')
  same(() => tf.split(x, [1, 2, 1], 1), 'depth 1 + 2 + 1')
  same(() => tf.split(x, 5, 3), 'width in 5')
  x.dispose()
  const [a, b] = tf.split(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), [1, 2], 1)
  assert.deepEqual(a.arraySync(), [[1], [4]])
  assert.deepEqual(b.arraySync(), [
    [2, 3],
    [5, 6],
  ])
})

test('sum: leading axes (bias gradient), inner axes, keepDims, size-1 axes, and a strided set left to the reference', () => {
  const x = seeded([2, 3, 4, 5, 6], 3)
  same(() => tf.sum(x, [0, 1, 2, 3]), 'leading four')
  same(() => tf.sum(x, [1, 2], true), 'middle, keepDims')
  same(() => tf.sum(x, -1), 'last')
  same(() => tf.sum(x), 'all')
  same(() => tf.sum(x, [0, 2]), 'non-contiguous (reference path)')
  same(() => tf.sum(seeded([1, 4, 1, 3], 4), [0, 1, 2]), 'size-1 axes around the reduced one')
  same(() => tf.sum(tf.tensor([1, 2, 3], [3], 'int32')), 'int32 (reference path)')
  x.dispose()
  assert.deepEqual(tf.sum(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), 0).arraySync(), [5, 7, 9])
})

test('binary ops with broadcasting: bias add, scalar products, both operand orders, and shapes left to the reference', () => {
  const x = seeded([1, 3, 4, 5, 6], 5)
  const bias = seeded([6], 6)
  const s = tf.scalar(0.9)
  for (const op of [tf.add, tf.sub, tf.mul, tf.div] as ((a: tf.Tensor, b: tf.Tensor) => tf.Tensor)[]) {
    same(() => op(x, bias), `${op.name} [..., C] ∘ [C]`)
    same(() => op(bias, x), `${op.name} [C] ∘ [..., C]`)
    same(() => op(x, s), `${op.name} by scalar`)
    same(() => op(s, x), `${op.name} scalar by`)
    same(() => op(x, seeded([1, 1, 5, 6], 7)), `${op.name} with leading 1s`)
    same(() => op(seeded([7, 4], 14), seeded([7, 1], 15)), `${op.name} [N, K] ∘ [N, 1]`)
    same(() => op(seeded([2, 3, 1, 1], 16), seeded([2, 3, 4, 5], 17)), `${op.name} [2, 3, 1, 1] ∘ [2, 3, 4, 5]`)
    same(() => op(seeded([4, 1], 8), seeded([1, 3], 9)), `${op.name} outer broadcast (reference path)`)
    same(() => op(x, seeded(x.shape, 10)), `${op.name} same shape`)
  }
  same(() => tf.add(tf.tensor([1, 2], [2], 'int32'), tf.scalar(3, 'int32')), 'int32 (reference path)')
  tf.dispose([x, bias, s])
  assert.deepEqual(tf.sub(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor1d([1, 10])).arraySync(), [
    [0, -8],
    [2, -6],
  ])
  assert.deepEqual(tf.sub(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([1, 10], [2, 1])).arraySync(), [
    [0, 1],
    [-7, -6],
  ])
})

test('relu, step (the relu gradient mask, with NaN) and softmax over the last axis', () => {
  const x = tf.concat([seeded([2, 3, 4, 5, 6], 11).reshape([-1]), tf.tensor1d([0, -0, NaN, Infinity, -Infinity])])
  same(() => tf.relu(x), 'relu')
  same(() => tf.step(x), 'step')
  same(() => tf.step(x, 0.25), 'step with alpha')
  same(() => tf.softmax(seeded([7, 5, 4], 12).mul(20)), 'softmax of large logits')
  same(() => tf.softmax(seeded([9], 13)), 'softmax 1-D')
  assert.deepEqual(Array.from(tf.relu(tf.tensor1d([-1, 0, 2, NaN])).dataSync()), [0, 0, 2, NaN])
  assert.deepEqual(Array.from(tf.step(tf.tensor1d([-1, 0, 2])).dataSync()), [0, 0, 1])
  // softmax([0, ln 3]) = [1/4, 3/4]
  const p = tf.softmax(tf.tensor1d([0, Math.log(3)])).dataSync()
  assert.ok(Math.abs(p[0] - 0.25) < 1e-7 && Math.abs(p[1] - 0.75) < 1e-7)
  x.dispose()
})
