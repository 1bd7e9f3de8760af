// Resampling, normalisation and MAC counting of src/model/layers.ts against plain loops.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {UserError} from '../../src/errors.js'
import {ParamStore} from '../../src/model/init.js'
import {SpatialNorm} from '../../src/model/layers.js'
import {conv3d, downsampleMean, gelu, linearResizeMatrix, resizeGrid, resizeTrilinear, upsampleNearest} from '../../src/model/ops.js'
import {metered} from '../../src/model/mac-meter.js'
import {Rng} from '../../src/util/rng.js'
import {useCpuKernels, withReferenceCpuKernels} from '../../src/kernels/register.js'
import {expectNoLeakedTensors, expectNoLeakedTensorsInTidy} from '../helpers/tensors.js'

await tf.setBackend('cpu')

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  assert.equal(actual.length, expected.length)
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] ${actual[i]} vs ${expected[i]}`)
}

const idx = (shape: number[], b: number, d: number, h: number, w: number, c: number) =>
  (((b * shape[1] + d) * shape[2] + h) * shape[3] + w) * shape[4] + c

test('downsampleMean is the block mean; upsampleNearest repeats voxels', () => {
  // [1, 2, 2, 2, 1] holding 1..8 → one voxel, mean 4.5
  close(downsampleMean(tf.tensor5d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2, 1]), [2, 2, 2]).dataSync(), [4.5])
  // [1, 1, 1, 2, 1] = [a, b] doubled along W → [a, a, b, b]
  close(upsampleNearest(tf.tensor5d([3, 7], [1, 1, 1, 2, 1]), [1, 1, 2]).dataSync(), [3, 3, 7, 7])

  // a general case against loops: B = 2, C = 2, factors differ per axis
  const shape = [2, 4, 6, 3, 2]
  const rng = new Rng(3)
  const values = Float32Array.from({length: shape.reduce((a, b) => a * b)}, () => rng.normal())
  const x = tf.tensor5d(values, shape as [number, number, number, number, number])
  const [fd, fh, fw] = [2, 3, 1]
  const down = expectNoLeakedTensorsInTidy(() => downsampleMean(x, [fd, fh, fw]))
  const dshape = [2, 2, 2, 3, 2]
  assert.deepEqual(down.shape, dshape)
  const expected: number[] = []
  for (let b = 0; b < 2; b++)
    for (let d = 0; d < 2; d++)
      for (let h = 0; h < 2; h++)
        for (let w = 0; w < 3; w++)
          for (let c = 0; c < 2; c++) {
            let sum = 0
            for (let i = 0; i < fd; i++) for (let j = 0; j < fh; j++) sum += values[idx(shape, b, d * fd + i, h * fh + j, w, c)]
            expected.push(sum / (fd * fh))
          }
  close(down.dataSync(), expected)
  const up = expectNoLeakedTensorsInTidy(() => upsampleNearest(down, [fd, fh, fw]))
  assert.deepEqual(up.shape, shape)
  const upValues = up.dataSync()
  const downValues = down.dataSync()
  for (let d = 0; d < 4; d++)
    for (let h = 0; h < 6; h++)
      assert.equal(upValues[idx(shape, 1, d, h, 2, 1)], downValues[idx(dshape, 1, Math.floor(d / fd), Math.floor(h / fh), 2, 1)])
  // resizeGrid picks the direction per axis
  assert.deepEqual(expectNoLeakedTensorsInTidy(() => resizeGrid(x, [2, 12, 3])).shape, [2, 2, 12, 3, 2])
})

test("trilinear resize = PyTorch's F.interpolate(mode='trilinear', align_corners=False), worked out by hand", () => {
  // 2 → 4: sources (o + ½)/2 − ½ = −¼ (clamped to 0), ¼, ¾, 1¼ (clamped to the last voxel)
  assert.deepEqual(linearResizeMatrix(2, 4), [
    [1, 0],
    [0.75, 0.25],
    [0.25, 0.75],
    [0, 1],
  ])
  // 3 → 6, the middle rows: o = 2 samples 0.75 → ¼·x0 + ¾·x1; o = 3 samples 1.25 → ¾·x1 + ¼·x2
  assert.deepEqual(linearResizeMatrix(3, 6)[2], [0.25, 0.75, 0])
  assert.deepEqual(linearResizeMatrix(3, 6)[3], [0, 0.75, 0.25])
  // separable: on x(d, h, w) = d + 10h + 100w (linear, so interior values interpolate exactly)
  const values = Array.from({length: 2 * 2 * 2}, (_, i) => {
    const [d, h, w] = [Math.floor(i / 4), Math.floor(i / 2) % 2, i % 2]
    return [d + 10 * h + 100 * w, -(d + 10 * h + 100 * w)]
  }).flat()
  const x = tf.tensor5d(values, [1, 2, 2, 2, 2])
  const y = resizeTrilinear(x, [4, 4, 6])
  assert.deepEqual(y.shape, [1, 4, 4, 6, 2])
  const out = y.arraySync()[0]
  const axis = (o: number, n: number, size: number) => Math.min(Math.max((o + 0.5) * (size / n) - 0.5, 0), size - 1)
  for (let d = 0; d < 4; d++)
    for (let h = 0; h < 4; h++)
      for (let w = 0; w < 6; w++) {
        const expected = axis(d, 4, 2) + 10 * axis(h, 4, 2) + 100 * axis(w, 6, 2)
        assert.ok(Math.abs(out[d][h][w][0] - expected) < 1e-4, `(${d},${h},${w}): ${out[d][h][w][0]} vs ${expected}`)
        assert.ok(Math.abs(out[d][h][w][1] + expected) < 1e-4)
      }
  // the same grid is the identity
  assert.deepEqual(resizeTrilinear(x, [2, 2, 2]).arraySync(), x.arraySync())
})

test('instance and group norm equal the textbook formulas, per sample (the fused cpu kernels and the op composition)', () => {
  const rng = new Rng(9)
  const shape: [number, number, number, number, number] = [2, 2, 3, 2, 4]
  const n = 2 * 3 * 2
  const values = Float32Array.from({length: 2 * n * 4}, () => 3 + 2 * rng.normal())
  const x = tf.tensor5d(values, shape)
  const store = new ParamStore(new Rng(1))
  for (const [norm, groups, path] of [
    ['instance', 1, 'fused'],
    ['group', 2, 'fused'],
    ['instance', 1, 'composition'],
    ['group', 2, 'composition'],
  ] as const) {
    useCpuKernels(path === 'fused' ? 'fast' : 'reference')
    const layer = new SpatialNorm(store, `n.${norm}.${path}`, 4, {norm, groups})
    layer.gamma.assign(tf.tensor1d([1, 2, 0.5, -1]))
    layer.beta.assign(tf.tensor1d([0, 1, -1, 2]))
    const perGroup = norm === 'instance' ? 1 : 2
    const expected = new Float32Array(values.length)
    for (let b = 0; b < 2; b++) {
      for (let g = 0; g < 4 / perGroup; g++) {
        const members: number[] = []
        for (let v = 0; v < n; v++) for (let c = g * perGroup; c < (g + 1) * perGroup; c++) members.push((b * n + v) * 4 + c)
        const mean = members.reduce((s, i) => s + values[i], 0) / members.length
        const variance = members.reduce((s, i) => s + (values[i] - mean) ** 2, 0) / members.length
        for (const i of members) {
          const c = i % 4
          expected[i] = ((values[i] - mean) / Math.sqrt(variance + 1e-5)) * [1, 2, 0.5, -1][c] + [0, 1, -1, 2][c]
        }
      }
    }
    close(expectNoLeakedTensorsInTidy(() => layer.apply(x)).dataSync(), expected, 1e-3)

    // the written-out backward pass against tfjs autodiff through tf.moments
    const r = tf.randomNormal(shape, 0, 1, 'float32', 2)
    const reference = (input: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => {
      const grouped = tf.reshape(input, [2, n, 4 / perGroup, perGroup])
      const {mean, variance} = tf.moments(grouped, [1, 3], true)
      const normed = tf.reshape(tf.div(tf.sub(grouped, mean), tf.sqrt(tf.add(variance, 1e-5))), shape)
      return tf.sum(tf.mul(r, tf.square(tf.add(tf.mul(normed, gamma), beta))))
    }
    const expectedGrads = tf.grads(reference)([x, layer.gamma.clone(), layer.beta.clone()])
    const ours = (input: tf.Tensor) => tf.sum(tf.mul(r, tf.square(layer.apply(input as tf.Tensor5D)))) as tf.Scalar
    // the loss value and two parameter gradients; then the input gradient
    const {grads} = expectNoLeakedTensors(() => tf.variableGrads(() => ours(x), [layer.gamma, layer.beta]), 3)
    const actualGrads = [expectNoLeakedTensors(() => tf.grad(ours)(x), 1), grads[layer.gamma.name], grads[layer.beta.name]]
    for (let i = 0; i < 3; i++) close(actualGrads[i].dataSync(), expectedGrads[i].dataSync(), 2e-3)
  }
  useCpuKernels('fast')
  store.dispose()
})

test('instance norm on a one-voxel grid is refused with a UserError naming the fix', () => {
  const store = new ParamStore(new Rng(1))
  const layer = new SpatialNorm(store, 'backbone.enc.3.down.norm', 8, {norm: 'instance', groups: 8})
  const x = tf.ones([1, 1, 1, 1, 8]) as tf.Tensor5D
  expectNoLeakedTensors(() =>
    assert.throws(
      () => layer.apply(x),
      (e: unknown) => e instanceof UserError && /backbone\.enc\.3\.down\.norm/.test(e.message) && /norm=group/.test(e.message),
    ),
  )
  store.dispose()
})

test('metered counts conv MACs as output voxels × k³ × Cin × Cout, and a dry run computes nothing', () => {
  const x = tf.ones([1, 8, 8, 4, 3]) as tf.Tensor5D
  const kernel = tf.ones([3, 3, 3, 3, 5]) as tf.Tensor5D
  // stride 2, 'same': output 4×4×2 voxels
  const real = expectNoLeakedTensors(() => metered(false, () => conv3d(x, kernel, null, 2)), 1)
  assert.equal(real.macs, 4 * 4 * 2 * 27 * 3 * 5)
  const dry = expectNoLeakedTensors(() => metered(true, () => conv3d(x, kernel, null, 2)), 1)
  assert.equal(dry.macs, real.macs)
  assert.deepEqual(dry.value.shape, real.value.shape)
  assert.equal(tf.max(dry.value).dataSync()[0], 0)
  // an interior voxel of the real convolution sums 27 × 3 ones
  assert.equal(real.value.dataSync()[((1 * 4 + 1) * 2 + 0) * 5], 27 * 3)
})

test('GELU (tanh approximation): hand-computed values and a finite-difference gradient', () => {
  const at = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))
  const xs = [-3, -1, -0.25, 0, 0.5, 1, 2.5]
  const x = tf.tensor1d(xs)
  close(expectNoLeakedTensorsInTidy(() => gelu(x)).dataSync(), xs.map(at), 1e-6)
  // GELU(1) = 0.841192 (Hendrycks & Gimpel's tanh form)
  assert.ok(Math.abs(at(1) - 0.841192) < 1e-6)
  const grad = expectNoLeakedTensors(() => tf.grad((t: tf.Tensor) => tf.sum(gelu(t)) as tf.Scalar)(x), 1).dataSync()
  close(
    grad,
    xs.map((v) => (at(v + 1e-4) - at(v - 1e-4)) / 2e-4),
    1e-4,
  )
})
