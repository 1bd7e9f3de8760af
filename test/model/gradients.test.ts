// The custom gradients sipl registers or writes (src/backend/gradients.ts, src/model/layers.ts),
// checked against central finite differences and against tfjs's own broadcasting gradients.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {addBias, columnSums, scaleShift} from '../../src/model/ops.js'
import {Rng} from '../../src/util/rng.js'
import {relError} from '../../src/util/rel-error.js'
import {expectNoLeakedTensors, expectNoLeakedTensorsInTidy} from '../helpers/tensors.js'

await tf.setBackend('cpu')

function randomTensor(shape: number[], rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1)
  return tf.tensor(
    Float32Array.from({length: n}, () => rng.normal()),
    shape,
  )
}

/** central differences of f at the given entries of `at` (float32 evaluation) */
function numericGradient(f: (t: tf.Tensor) => number, at: tf.Tensor, entries: number[], eps = 1e-2): number[] {
  const base = at.dataSync().slice()
  return entries.map((i) => {
    const plus = base.slice()
    plus[i] += eps
    const minus = base.slice()
    minus[i] -= eps
    const fp = tf.tidy(() => f(tf.tensor(plus, at.shape)))
    const fm = tf.tidy(() => f(tf.tensor(minus, at.shape)))
    return (fp - fm) / (2 * eps)
  })
}

/** 16 entries spread over the tensor (every entry would cost 2 forward passes each) */
function sampleEntries(size: number, rng: Rng): number[] {
  return Array.from({length: Math.min(16, size)}, () => rng.int(size))
}

const pick = (values: ArrayLike<number>, entries: number[]) => entries.map((i) => values[i])

for (const {stride, kernel, label} of [
  {stride: 2, kernel: 2, label: 'kernel 2, stride 2 (the decoder upsampling)'},
  {stride: 1, kernel: 3, label: "kernel 3, stride 1, 'same' padding"},
  {stride: 2, kernel: 3, label: 'kernel 3, stride 2 (overlapping taps)'},
]) {
  test(`conv3dTranspose gradient matches finite differences: ${label}`, () => {
    const rng = new Rng(11)
    const x = randomTensor([1, 2, 3, 2, 3], rng) as tf.Tensor5D
    const w = randomTensor([kernel, kernel, kernel, 2, 3], rng) as tf.Tensor5D // [k, k, k, Cout, Cin]
    const outShape: [number, number, number, number, number] = [1, 2 * stride, 3 * stride, 2 * stride, 2]
    const r = randomTensor(outShape, rng)
    // a nonlinear scalar loss so that the check is not satisfied by any bilinear map
    const loss = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(r, tf.square(tf.conv3dTranspose(a as tf.Tensor5D, b as tf.Tensor5D, outShape, stride, 'same'))))
    const [dx, dw] = expectNoLeakedTensors(() => tf.grads(loss)([x, w]), 2)
    const entriesX = sampleEntries(x.size, rng)
    const entriesW = sampleEntries(w.size, rng)
    const numericX = numericGradient((t) => loss(t, w).dataSync()[0], x, entriesX)
    const numericW = numericGradient((t) => loss(x, t).dataSync()[0], w, entriesW)
    const errorX = relError(pick(dx.dataSync(), entriesX), numericX)
    const errorW = relError(pick(dw.dataSync(), entriesW), numericW)
    assert.ok(errorX < 5e-3, `input gradient rel. error ${errorX}`)
    assert.ok(errorW < 5e-3, `filter gradient rel. error ${errorW}`)
    tf.dispose([x, w, r, dx, dw])
  })
}

test('addBias and scaleShift gradients equal tfjs broadcasting gradients', () => {
  const rng = new Rng(5)
  const x = randomTensor([7, 4], rng) as tf.Tensor2D
  const a = randomTensor([4], rng) as tf.Tensor1D
  const c = randomTensor([4], rng) as tf.Tensor1D
  const r = randomTensor([7, 4], rng)
  const ours = expectNoLeakedTensors(
    () =>
      tf.grads((x1: tf.Tensor, a1: tf.Tensor, c1: tf.Tensor) =>
        tf.sum(tf.mul(r, tf.square(scaleShift(addBias(x1 as tf.Tensor2D, c1 as tf.Tensor1D), a1 as tf.Tensor1D, c1 as tf.Tensor1D)))),
      )([x, a, c]),
    3,
  )
  const reference = tf.grads((x1: tf.Tensor, a1: tf.Tensor, c1: tf.Tensor) =>
    tf.sum(tf.mul(r, tf.square(tf.add(tf.mul(tf.add(x1, c1), a1), c1)))),
  )([x, a, c])
  for (let i = 0; i < 3; i++) assert.ok(relError(ours[i].dataSync(), reference[i].dataSync()) < 1e-5, `input ${i}`)
  const m = tf.tensor2d([
    [1, 2],
    [3, 4],
    [5, 6],
  ])
  const sums = expectNoLeakedTensorsInTidy(() => columnSums(m))
  assert.deepEqual(Array.from(sums.dataSync()), [9, 12])
  tf.dispose([x, a, c, r, m, sums, ...ours, ...reference])
})
