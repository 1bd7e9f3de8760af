/**
 * The non-convolution cpu kernels sipl replaces (Slice, SplitV, Sum, the binary ops with and
 * without broadcasting, comparisons, Select, the unary ops, Softmax, BatchMatMul) against tfjs's
 * reference kernels, including the shapes they hand back to the reference (which must still
 * work), plus hand-computed values.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {withReferenceCpuKernels} from '../../src/kernels/register.js'
import {product} from '../../src/kernels/cpu/matmul.js'
import {existingRuntime} from '../../src/kernels/cpu/runtime.js'
import {expectNoLeakedTensors} from '../helpers/tensors.js'

await tf.setBackend('cpu')

const seeded = (shape: number[], seed: number) => tf.randomUniform(shape, -2, 2, 'float32', seed)

function same(run: () => tf.Tensor | tf.Tensor[], label: string, tolerance = 1e-6): void {
  const pack = (t: tf.Tensor | tf.Tensor[]) =>
    (Array.isArray(t) ? t : [t]).map((x) => ({shape: x.shape, dtype: x.dtype, values: Array.from(x.dataSync())}))
  // each kernel, fast and reference, leaves nothing behind (tensors, or buffers no tensor owns)
  const fast = expectNoLeakedTensors(() => tf.tidy(() => pack(run())))
  const reference = expectNoLeakedTensors(() => tf.tidy(() => withReferenceCpuKernels(() => pack(run()))))
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
    assert.ok(err <= tolerance, `${label}: relative error ${err}`)
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
  same(() => tf.sum(seeded([300, 5], 35), 0), 'rows of 5 (four columns at a time, then one)')
  same(() => tf.sum(seeded([30, 70], 36), 0), 'rows of 70 (accumulator path)')
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

test('the other binary ops and the comparisons (bool output) in every layout, with NaN and ±Infinity', () => {
  const special = tf.tensor1d([0, -0, NaN, Infinity, -Infinity, 1, -1, 2])
  const x = tf.concat([seeded([40], 20), special]).reshape([2, 3, 8])
  const y = tf.concat([seeded([40], 21), special.reverse()]).reshape([2, 3, 8])
  const row = seeded([8], 22)
  const s = tf.scalar(0.5)
  for (const name of [
    'maximum',
    'minimum',
    'squaredDifference',
    'greater',
    'greaterEqual',
    'less',
    'lessEqual',
    'equal',
    'notEqual',
  ] as const) {
    const op: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor = tf[name]
    same(() => op(x, y), `${name} same shape`)
    same(() => op(x, row), `${name} [..., C] ∘ [C]`)
    same(() => op(row, x), `${name} [C] ∘ [..., C]`)
    same(() => op(x, s), `${name} by scalar`)
    same(() => op(s, x), `${name} scalar by`)
    same(() => op(x, seeded([2, 3, 1], 23)), `${name} [N, K] ∘ [N, 1]`)
  }
  tf.dispose([special, x, y, row, s])
  assert.deepEqual(Array.from(tf.greater(tf.tensor1d([1, 2, NaN]), tf.scalar(1.5)).dataSync()), [0, 1, 0])
  assert.equal(tf.greater(tf.tensor1d([1]), tf.scalar(0)).dtype, 'bool')
})

test('unary ops against the reference, NaN and ±Infinity included, and hand-computed values', () => {
  const x = tf.concat([seeded([2, 3, 4, 5], 24).reshape([-1]), tf.tensor1d([0, -0, NaN, Infinity, -Infinity, 1e-30, -1e30])])
  const positive = tf.abs(x)
  same(() => tf.leakyRelu(x, 0.01), 'leakyRelu')
  same(() => tf.leakyRelu(x, 1.5), 'leakyRelu with alpha > 1')
  for (const name of ['exp', 'neg', 'abs', 'square', 'reciprocal', 'sigmoid', 'tanh'] as const) same(() => tf[name](x), name)
  for (const name of ['log', 'log1p', 'sqrt', 'rsqrt'] as const) same(() => tf[name](positive), `${name} of |x|`)
  tf.dispose([x, positive])
  assert.deepEqual(Array.from(tf.leakyRelu(tf.tensor1d([-2, 3]), 0.5).dataSync()), [-1, 3])
  assert.deepEqual(Array.from(tf.rsqrt(tf.tensor1d([4, 0.25])).dataSync()), [0.5, 2])
  assert.ok(Math.abs(tf.sigmoid(tf.scalar(Math.log(3))).dataSync()[0] - 0.75) < 1e-7)
})

test('select (where): elementwise and with a condition that tf.where broadcasts first', () => {
  const t = seeded([3, 4, 5], 25)
  const e = seeded([3, 4, 5], 26)
  same(() => tf.where(tf.greater(t, e), t, e), 'elementwise max via where')
  same(() => tf.where(tf.tensor1d([1, 0, 1, 1, 0], 'bool'), t, e), 'condition [5] against [3, 4, 5]')
  tf.dispose([t, e])
  assert.deepEqual(Array.from(tf.where(tf.tensor1d([1, 0], 'bool'), tf.tensor1d([1, 2]), tf.tensor1d([3, 4])).dataSync()), [1, 4])
})

test('batchMatMul: every transpose combination, batch broadcast, both packing orders, long sums and a hand-computed product', () => {
  for (const [ta, tb] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ]) {
    // m > n packs the right operand; m < n computes the transposed product
    for (const [m, k, n] of [
      [13, 7, 5],
      [3, 9, 17],
      [1, 300, 12],
      [40, 3, 1],
    ]) {
      const a = seeded(ta ? [2, k, m] : [2, m, k], m + k)
      const b = seeded(tb ? [2, n, k] : [2, k, n], k + n)
      same(() => tf.matMul(a, b, ta, tb), `[2, ${m}, ${k}] · [2, ${k}, ${n}] ${ta} ${tb}`)
      tf.dispose([a, b])
    }
  }
  same(() => tf.matMul(seeded([1, 6, 4], 30), seeded([3, 4, 2], 31)), 'batch 1 broadcast against 3')
  same(() => tf.matMul(seeded([2, 3, 6, 4], 32), seeded([2, 3, 4, 5], 33)), 'rank 4')
  // column sums of 32768 rows (the model's ones-vector products): float32 sums, within 1e-5 of tfjs's
  same(() => tf.matMul(tf.ones([1, 1, 32768]), seeded([1, 32768, 16], 34)), 'ones · x over 32768 rows', 1e-5)
  // deep products (the head's gradient, a sum over every voxel): the GEMM in blocks of k; the second
  // with its packed operand (20 000 × 13) packed in wasm
  same(() => tf.matMul(seeded([1, 3000, 5], 35), seeded([1, 3000, 7], 36), true, false), '[1, 3000, 5]ᵀ · [1, 3000, 7]', 1e-5)
  same(() => tf.matMul(seeded([1, 20000, 13], 37), seeded([1, 20000, 48], 38), true, false), '[1, 20000, 13]ᵀ · [1, 20000, 48]', 1e-5)
  assert.deepEqual(tf.matMul(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), tf.tensor2d([1, 0, 0, 1, 1, 1], [3, 2])).arraySync(), [
    [4, 5],
    [10, 11],
  ])
})

test('batchMatMul on the worker pool (products of ≥ 2¹⁸ multiply-adds): the reference within 1e-6, the same bits as row blocks on one thread when workers take part', (t) => {
  // under 8 columns (rows 8 apart, then compacted), a partial last chunk; ≥ 8 columns with an edge panel; transposed operands
  same(() => tf.matMul(seeded([2, 8195, 16], 40), seeded([2, 3, 16], 41), false, true), 'IPL logits shape: [2, 8195, 16] · [2, 3, 16]ᵀ')
  same(() => tf.matMul(seeded([1, 24, 2051], 42), seeded([1, 24, 20], 43), true, false), '[1, 24, 2051]ᵀ · [1, 24, 20]')
  // the same rows 64 at a time (each under the job threshold: the GEMM called on this thread)
  const [m, k, n] = [8195, 16, 3]
  const a = Float32Array.from({length: m * k}, (_, i) => Math.sin(i) * 3)
  const b = Float32Array.from({length: k * n}, (_, i) => Math.cos(i))
  const whole = new Float32Array(m * n)
  // workers join a job only when they wake up in time: repeat until one has done a share
  const rt = existingRuntime()!
  if (rt.threads < 2) {
    t.skip('one kernel thread (SIPL_THREADS=1 or one core): no worker to take part')
    return
  }
  const start = rt.workerJobs()
  const deadline = Date.now() + 20_000
  do product({values: a, offset: 0, row: k, col: 1}, {values: b, offset: 0, row: n, col: 1}, m, k, n, whole, 0)
  while (rt.workerJobs() === start && Date.now() < deadline)
  assert.ok(rt.workerJobs() > start, 'no worker ever joined the product job')
  const blocks = new Float32Array(m * n)
  for (let r = 0; r < m; r += 64) {
    const rows = Math.min(64, m - r)
    product({values: a, offset: r * k, row: k, col: 1}, {values: b, offset: 0, row: n, col: 1}, rows, k, n, blocks, r * n)
  }
  assert.deepEqual(whole, blocks)
})

test('batchMatMul packs large operands in wasm: the same bits as 8-column slices packed in JavaScript', () => {
  // k·n = 72 000 ≥ 2¹⁶ packs in wasm; each 8-column slice (24 000) in JS; every element is one chain either way
  const [m, k, n] = [100, 3000, 24]
  const a = Float32Array.from({length: m * k}, (_, i) => Math.sin(i))
  const b = Float32Array.from({length: k * n}, (_, i) => Math.cos(i * 0.7))
  const whole = new Float32Array(m * n)
  product({values: a, offset: 0, row: k, col: 1}, {values: b, offset: 0, row: n, col: 1}, m, k, n, whole, 0)
  const sliced = new Float32Array(m * n)
  for (let j = 0; j < n; j += 8) {
    const part = new Float32Array(m * 8)
    product({values: a, offset: 0, row: k, col: 1}, {values: b, offset: j, row: n, col: 1}, m, k, 8, part, 0)
    for (let r = 0; r < m; r++) sliced.set(part.subarray(r * 8, r * 8 + 8), r * n + j)
  }
  assert.deepEqual(whole, sliced)
})

test('oneHot: float32 and int32, indices outside [0, depth) all off, other on and off values', () => {
  const indices = tf.tensor1d([0, 3, 2, -1, 4, 1, 3], 'int32')
  for (const dtype of ['float32', 'int32'] as const) {
    same(() => tf.oneHot(indices, 4, 1, 0, dtype), `oneHot ${dtype}`)
    same(() => tf.oneHot(indices, 4, 2, -1, dtype), `oneHot ${dtype}, on 2, off −1`)
  }
  same(() => tf.oneHot(tf.reshape(indices, [7, 1]), 5), 'oneHot of a rank-2 tensor (the default int32)')
  indices.dispose()
})

test('concat: the channel concat of a U-Net, the middle axis, three parts, int32, and one part left to the reference', () => {
  const a = seeded([1, 3, 4, 5, 6], 37)
  const b = seeded([1, 3, 4, 5, 10], 38)
  same(() => tf.concat([a, b], 4), 'channels 6 + 10')
  same(() => tf.concat([a, seeded([1, 3, 2, 5, 6], 39), a], 2), 'height 4 + 2 + 4')
  same(() => tf.concat([a, a], 0), 'batch (contiguous)')
  same(() => tf.concat([tf.range(0, 6, 1, 'int32').reshape([2, 3]), tf.range(6, 10, 1, 'int32').reshape([2, 2])], 1), 'int32')
  same(() => tf.concat([a], 4), 'one part (reference path)')
  tf.dispose([a, b])
  assert.deepEqual(tf.concat([tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6], [2, 1])], 1).arraySync(), [
    [1, 2, 5],
    [3, 4, 6],
  ])
})
