/**
 * The fused conv3d + bias (+ ReLU) op against the plain composition of tfjs ops on the reference
 * kernels: values and the gradients of x, w and b, with and without ReLU, stride 2, valid.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {relError} from '../../src/util/rel-error.js'
import {withReferenceCpuKernels} from '../../src/kernels/register.js'
import {
  conv3dBiasAct,
  conv3dTransposeBias,
  fusedKernelsActive,
  groupNormFused,
  prototypeProbabilities,
  sigmoidProbabilities,
  type DiceCeOptions,
  type FusedConvOptions,
} from '../../src/kernels/fused.js'
import {AdamW} from '../../src/train/optimizers.js'
import {diceCrossEntropy} from '../../src/model/losses.js'
import {SpatialNorm} from '../../src/model/layers.js'
import {leakyRelu} from '../../src/model/ops.js'
import {ParamStore} from '../../src/model/init.js'
import {Rng} from '../../src/util/rng.js'
import {expectNoLeakedTensors, variableOf} from '../helpers/tensors.js'

await tf.setBackend('cpu')

const seeded = (shape: number[], seed: number) => tf.randomUniform(shape, -1, 1, 'float32', seed)

function valueAndGrads(xShape: number[], wShape: number[], o: FusedConvOptions, seed: number): Float32Array[] {
  return expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const x = seeded(xShape, seed) as tf.Tensor5D
      const w = seeded(wShape, seed + 1) as tf.Tensor5D
      const b = seeded([wShape[4]], seed + 2) as tf.Tensor1D
      const y = conv3dBiasAct(x, w, b, o)
      const dy = seeded(y.shape, seed + 3)
      const grads = tf.grads((a: tf.Tensor, k: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(conv3dBiasAct(a as tf.Tensor5D, k as tf.Tensor5D, c as tf.Tensor1D, o), dy)),
      )([x, w, b])
      return [y, ...grads].map((t) => t.dataSync() as Float32Array)
    }),
  )
}

const CASES: [string, number[], number[], FusedConvOptions][] = [
  ['relu, same, batch 2, 3→5', [2, 5, 6, 7, 3], [3, 3, 3, 3, 5], {strides: 1, pad: 'same', relu: true}],
  ['relu, stride 2, 6→10', [1, 8, 6, 10, 6], [3, 3, 3, 6, 10], {strides: 2, pad: 'same', relu: true}],
  ['no relu, valid, 1×1×1 head 7→4', [1, 4, 5, 6, 7], [1, 1, 1, 7, 4], {strides: 1, pad: 'valid', relu: false}],
  // > 8 × 256 rows: every slot of the bias gradient sums several chunks; 6 channels: a vector and a tail
  ['relu, Winograd, many row chunks, 4→6', [1, 12, 14, 16, 4], [3, 3, 3, 4, 6], {strides: 1, pad: 'same', relu: true}],
  ['no relu, many row chunks, 5→6', [1, 12, 14, 16, 5], [3, 3, 3, 5, 6], {strides: 1, pad: 'same', relu: false}],
  // one input channel into a multiple of 8 (unet-ref's first layer): the direct job, its bias and ReLU epilogue
  ['relu, one input channel (the direct job), batch 2, 1→16', [2, 5, 6, 9, 1], [3, 3, 3, 1, 16], {strides: 1, pad: 'same', relu: true}],
]

for (const [name, xs, ws, o] of CASES) {
  test(`fused conv3d + bias${o.relu ? ' + relu' : ''} equals the composition: ${name}`, () => {
    const fast = valueAndGrads(xs, ws, o, 3)
    const reference = withReferenceCpuKernels(() => valueAndGrads(xs, ws, o, 3))
    ;['y', 'dx', 'dw', 'db'].forEach((what, k) => {
      const err = relError(fast[k], reference[k])
      assert.ok(err <= 1e-4, `${what}: relative error ${err}`)
    })
    // relu: some outputs clamped to exactly 0, some positive
    if (o.relu) assert.ok(fast[0].some((v) => v === 0) && fast[0].some((v) => v > 0))
  })
}

function concatValueAndGrads(aShape: number[], skipChannels: number, wShape: number[], o: FusedConvOptions, seed: number): Float32Array[] {
  return expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const a = seeded(aShape, seed) as tf.Tensor5D
      const skip = seeded([...aShape.slice(0, 4), skipChannels], seed + 1) as tf.Tensor5D
      const w = seeded(wShape, seed + 2) as tf.Tensor5D
      const b = seeded([wShape[4]], seed + 3) as tf.Tensor1D
      const y = conv3dBiasAct([a, skip], w, b, o)
      const dy = seeded(y.shape, seed + 4)
      const grads = tf.grads((p: tf.Tensor, q: tf.Tensor, k: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(conv3dBiasAct([p as tf.Tensor5D, q as tf.Tensor5D], k as tf.Tensor5D, c as tf.Tensor1D, o), dy)),
      )([a, skip, w, b])
      return [y, ...grads].map((t) => t.dataSync() as Float32Array)
    }),
  )
}

for (const [name, aShape, skipChannels, wShape] of [
  ['3 + 5 channels, im2col (small volume)', [1, 4, 5, 6, 3], 5, [3, 3, 3, 8, 4]],
  ['4 + 6 channels, Winograd, batch 2', [2, 9, 8, 12, 4], 6, [3, 3, 3, 10, 5]],
] as [string, number[], number, number[]][]) {
  test(`fused conv over [x, skip] concatenated in the kernel equals concat + conv: ${name}`, () => {
    const o: FusedConvOptions = {strides: 1, pad: 'same', relu: true}
    const fast = concatValueAndGrads(aShape, skipChannels, wShape, o, 21)
    const reference = withReferenceCpuKernels(() => concatValueAndGrads(aShape, skipChannels, wShape, o, 21))
    ;['y', 'dx', 'dskip', 'dw', 'db'].forEach((what, k) => {
      assert.equal(fast[k].length, reference[k].length, what)
      const err = relError(fast[k], reference[k])
      assert.ok(err <= 1e-4, `${what}: relative error ${err}`)
    })
    const skipped = concatValueAndGrads(aShape, skipChannels, wShape, {...o, inputGrad: false}, 21)
    assert.ok(skipped[1].every((v) => v === 0) && skipped[2].every((v) => v === 0), 'inputGrad: false gives zero gradients for both parts')
    assert.ok(relError(skipped[3], fast[3]) <= 1e-6, 'and the same filter gradient')
  })
}

/** [y, dx, dw, db] (and dresidual, then y without the residual and dy, with `residual`) */
function transposeValueAndGrads(
  xShape: number[],
  wShape: number[],
  stride: number,
  pad: 'same' | 'valid',
  seed: number,
  residual = false,
): Float32Array[] {
  return expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const x = seeded(xShape, seed) as tf.Tensor5D
      const w = seeded(wShape, seed + 1) as tf.Tensor5D
      const b = seeded([wShape[3]], seed + 2) as tf.Tensor1D
      // 'same': n·s; 'valid': (n − 1)·s + k
      const edge = (n: number, k: number) => (pad === 'same' ? n * stride : (n - 1) * stride + k)
      const out: [number, number, number, number, number] = [
        xShape[0],
        edge(xShape[1], wShape[0]),
        edge(xShape[2], wShape[1]),
        edge(xShape[3], wShape[2]),
        wShape[3],
      ]
      const r = residual ? (seeded(out, seed + 4) as tf.Tensor5D) : undefined
      const y = conv3dTransposeBias(x, w, b, out, stride, pad, r)
      const dy = seeded(y.shape, seed + 3)
      const grads = tf.grads((a: tf.Tensor, k: tf.Tensor, c: tf.Tensor, ...rest: tf.Tensor[]) =>
        tf.sum(
          tf.mul(conv3dTransposeBias(a as tf.Tensor5D, k as tf.Tensor5D, c as tf.Tensor1D, out, stride, pad, rest[0] as tf.Tensor5D), dy),
        ),
      )(r ? [x, w, b, r] : [x, w, b])
      const extra = r ? [conv3dTransposeBias(x, w, b, out, stride, pad), dy] : []
      return [y, ...grads, ...extra].map((t) => t.dataSync() as Float32Array)
    }),
  )
}

for (const [name, xShape, wShape, stride, pad] of [
  ['k2 s2 (U-Net up-sampling), 6→5, batch 2', [2, 3, 4, 5, 6], [2, 2, 2, 5, 6], 2, 'same'],
  ['k4 s4 into 16 channels (the direct job), 8→16, batch 2', [2, 2, 3, 2, 8], [4, 4, 4, 16, 8], 4, 'same'],
  ['k3 s2 (overlapping), 5→3', [1, 4, 3, 5, 5], [3, 3, 3, 3, 5], 2, 'same'],
  ['k3 s2 valid (output 2n + 1), 3→6, batch 2', [2, 3, 4, 2, 3], [3, 3, 3, 6, 3], 2, 'valid'],
  ['k3 s1 (bias in the forward kernel, Winograd), 8→7', [1, 9, 8, 10, 8], [3, 3, 3, 7, 8], 1, 'same'],
] as [string, number[], number[], number, 'same' | 'valid'][]) {
  test(`fused conv3dTranspose + bias equals the composition: ${name}`, () => {
    const fast = transposeValueAndGrads(xShape, wShape, stride, pad, 7)
    const reference = withReferenceCpuKernels(() => transposeValueAndGrads(xShape, wShape, stride, pad, 7))
    ;['y', 'dx', 'dw', 'db'].forEach((what, k) => {
      assert.equal(fast[k].length, reference[k].length, what)
      const err = relError(fast[k], reference[k])
      assert.ok(err <= 1e-4, `${what}: relative error ${err}`)
    })
  })
}

test("fused conv3dTranspose + bias + residual (the backbone's full-resolution sum): the composition within 1e-4, y + r rounded once, dr = dy", () => {
  for (const [xShape, wShape, stride] of [
    [[2, 2, 3, 2, 8], [4, 4, 4, 6, 8], 4],
    [[1, 3, 4, 5, 6], [2, 2, 2, 5, 6], 2],
    // into a multiple of 8 channels: the direct job, the residual added in it
    [[2, 2, 3, 2, 8], [4, 4, 4, 16, 8], 4],
    [[1, 3, 4, 5, 6], [2, 2, 2, 8, 6], 2],
  ] as [number[], number[], number][]) {
    const fast = transposeValueAndGrads(xShape, wShape, stride, 'same', 11, true)
    const reference = withReferenceCpuKernels(() => transposeValueAndGrads(xShape, wShape, stride, 'same', 11, true))
    ;['y', 'dx', 'dw', 'db', 'dr'].forEach((what, k) => {
      assert.equal(fast[k].length, reference[k].length, what)
      assert.ok(relError(fast[k], reference[k]) <= 1e-4, `${what}: relative error ${relError(fast[k], reference[k])}`)
    })
    const [y, , , , dr, plain, dy] = fast
    assert.deepEqual(dr, dy, "the residual's gradient is dy")
    // the residual transposeValueAndGrads drew (seed + 4)
    const residual = tf.tidy(() =>
      seeded([xShape[0], xShape[1] * stride, xShape[2] * stride, xShape[3] * stride, wShape[3]], 15).dataSync(),
    )
    assert.deepEqual(
      y,
      plain.map((v, i) => Math.fround(v + residual[i])),
      'y = fl((conv + b) + r)',
    )
  }
})

test('a NaN in x reaches the bias gradient through the ReLU backward, as in the composition (dy · Step(NaN) = NaN)', () => {
  const run = () =>
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const values = tf.randomUniform([1, 4, 5, 6, 4], -1, 1, 'float32', 11).dataSync() as Float32Array
        values[40] = NaN
        const x = tf.tensor5d(values, [1, 4, 5, 6, 4])
        const w = seeded([3, 3, 3, 4, 5], 12) as tf.Tensor5D
        const b = seeded([5], 13) as tf.Tensor1D
        return tf
          .grad((c: tf.Tensor) => tf.sum(conv3dBiasAct(x, w, c as tf.Tensor1D, {strides: 1, pad: 'same', relu: true})))(b)
          .dataSync()
      }),
    )
  const fast = run()
  const reference = withReferenceCpuKernels(run)
  assert.ok(reference.every(Number.isNaN), 'the composition propagates the NaN')
  assert.ok(fast.every(Number.isNaN), `fused db: ${Array.from(fast)}`)
})

test('inputGrad: false gives a zero input gradient and the same weight gradients', () => {
  const o: FusedConvOptions = {strides: 1, pad: 'same', relu: true}
  const full = valueAndGrads([1, 4, 4, 4, 2], [3, 3, 3, 2, 3], o, 7)
  const skipped = valueAndGrads([1, 4, 4, 4, 2], [3, 3, 3, 2, 3], {...o, inputGrad: false}, 7)
  assert.ok(skipped[1].every((v) => v === 0))
  assert.ok(full[1].some((v) => v !== 0))
  // not bit-equal: how many threads joined decides the summation order of the filter gradient
  assert.ok(relError(skipped[2], full[2]) <= 1e-6)
  assert.ok(relError(skipped[3], full[3]) <= 1e-6)
})

test('hand-computed: ones through a 1×1×1 conv with bias −1.5 and relu', () => {
  // y = relu(Σ_c x_c · 1 − 1.5) with x = [1, 2] per voxel → relu(3 − 1.5) = 1.5; with x = [0, 1] → 0
  const x = tf.tensor5d([1, 2, 0, 1], [1, 1, 1, 2, 2])
  const [w, b] = [tf.ones([1, 1, 1, 2, 1]) as tf.Tensor5D, tf.tensor1d([-1.5])]
  const y = expectNoLeakedTensors(() => conv3dBiasAct(x, w, b, {strides: 1, pad: 'same', relu: true}), 1)
  assert.deepEqual(Array.from(y.dataSync()), [1.5, 0])
})

function sameBitsAsComposition(shape: number[]): void {
  const run = (fused: boolean) => {
    const p = variableOf(() => tf.randomUniform(shape, -1, 1, 'float32', 40), true, `adamw-p-${fused}`)
    const grads = [41, 42, 43].map((seed) => tf.randomUniform(shape, -0.1, 0.1, 'float32', seed))
    const optimizer = new AdamW(0.9, 0.999, 0.05)
    const step = () => grads.forEach((g, i) => optimizer.step(new Map([['p', p]]), new Map([['p', g]]), 0.01 * (i + 1)))
    // the steps leave only Adam's two moments behind
    expectNoLeakedTensors(() => (fused ? step() : withReferenceCpuKernels(step)), 2)
    const state = [p, ...optimizer.stateTensors().values()].map((t) => Array.from(t.dataSync()))
    tf.dispose([p, ...grads])
    optimizer.dispose()
    return state
  }
  const fused = run(true)
  const composed = run(false)
  assert.equal(fused.length, 3)
  fused.forEach((values, i) => assert.deepEqual(values, composed[i], `${shape}: tensor ${i}`))
}

test('fused AdamW step: the same bits as the op composition, over several steps with weight decay', () => {
  // 945 parameters: one work item and a 1-element scalar tail; 36 531: three items on both threads and a 3-element tail
  for (const shape of [
    [3, 3, 3, 5, 7],
    [3, 3, 3, 33, 41],
  ])
    sameBitsAsComposition(shape)
  // hand-computed first step from zero moments: m̂ = g, v̂ = g², so p₁ = p(1 − lr·λ) − lr·g/(|g| + ε)
  const p = variableOf(() => tf.tensor1d([1, -2]), true, 'adamw-hand')
  const optimizer = new AdamW(0.9, 0.999, 0.1)
  const g = tf.tensor1d([0.5, -0.25])
  expectNoLeakedTensors(() => optimizer.step(new Map([['p', p]]), new Map([['p', g]]), 0.1), 2)
  const got = Array.from(p.dataSync())
  const want = [1 * (1 - 0.01) - 0.1 * (0.5 / (0.5 + 1e-8)), -2 * (1 - 0.01) + 0.1 * (0.25 / (0.25 + 1e-8))]
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `${v} vs ${want[i]}`))
  optimizer.dispose()
  tf.dispose([p, g])
})

function diceCeLossAndGrad(logits: tf.Tensor, targets: tf.Tensor, options: DiceCeOptions): {loss: number; grad: Float32Array} {
  return expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const {value, grad} = tf.valueAndGrad((z: tf.Tensor) => diceCrossEntropy(z, targets, options))(logits)
      return {loss: value.dataSync()[0], grad: grad.dataSync() as Float32Array}
    }),
  )
}

/** The loss and logit gradient of diceCrossEntropy, fused, checked against the op composition (1e-5 relative); returns the fused ones. */
function diceCeMatchesComposition(
  logits: tf.Tensor,
  targets: tf.Tensor,
  options: DiceCeOptions,
  label: string,
): {loss: number; grad: Float32Array} {
  const run = () => diceCeLossAndGrad(logits, targets, options)
  const fused = run()
  const composed = withReferenceCpuKernels(run)
  assert.ok(Math.abs(fused.loss - composed.loss) <= 1e-5 * Math.abs(composed.loss), `${label} loss ${fused.loss} vs ${composed.loss}`)
  const err = relError(fused.grad, composed.grad)
  assert.ok(err <= 1e-5, `${label} gradient: relative error ${err}`)
  return fused
}

test('fused Dice + cross-entropy: loss and logit gradient equal the op composition (sigmoid/softmax, squared/linear, batch 2, soft targets)', () => {
  const shape: [number, number, number, number, number] = [2, 3, 4, 5, 3]
  const logits = tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 50), 3) as tf.Tensor5D
  // soft targets: rows of class fractions for softmax, independent fractions for sigmoid
  const fractions = tf.softmax(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 51), 4)) as tf.Tensor5D
  const independent = tf.randomUniform(shape, 0, 1, 'float32', 52) as tf.Tensor5D
  for (const [activation, squared, targets] of [
    ['sigmoid', true, independent],
    ['softmax', true, fractions],
    ['softmax', false, fractions],
  ] as ['sigmoid' | 'softmax', boolean, tf.Tensor5D][]) {
    diceCeMatchesComposition(logits, targets, {activation, squared, smooth: 1e-5}, `${activation}${squared ? ' squared' : ''}`)
  }
  tf.dispose([logits, fractions, independent])
  // hand-computed: logits 0 → p = ½. softmax, one-hot rows, Σp + Σy: CE = ln 2, Dice = 1/2 per class
  const zero = tf.zeros([1, 2, 2])
  const eye = tf.tensor3d([1, 0, 0, 1], [1, 2, 2])
  const softmaxLoss = diceCrossEntropy(zero, eye, {activation: 'softmax', squared: false, smooth: 0}).dataSync()[0]
  assert.ok(Math.abs(softmaxLoss - (Math.LN2 + 0.5)) < 1e-6, `softmax ${softmaxLoss}`)
  // sigmoid, Σp² + Σy²: BCE = ln 2 per element, Dice = 2·½ / (2·¼ + 1) = 2/3 per class
  const sigmoidLoss = diceCrossEntropy(zero, eye, {activation: 'sigmoid', squared: true, smooth: 0}).dataSync()[0]
  assert.ok(Math.abs(sigmoidLoss - (Math.LN2 + 1 / 3)) < 1e-6, `sigmoid ${sigmoidLoss}`)
})

test('fused Dice + cross-entropy in wasm: many chunks per sample, 1–8 channels, logits up to ±60 (exp underflow), NaN, the same bits each run', () => {
  // 2 × 9 500 voxels: > 8 chunks of 1 024 per sample, so every slot sums several, and a short last chunk
  for (const channels of [1, 3, 4, 5, 8]) {
    const shape: [number, number, number] = [2, 9500, channels]
    const logits = tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 70 + channels), 20) as tf.Tensor3D
    const independent = tf.randomUniform(shape, 0, 1, 'float32', 90 + channels) as tf.Tensor3D
    const hard = (
      channels === 1
        ? tf.round(independent)
        : tf.oneHot(tf.randomUniform([2, 9500], 0, channels, 'int32', 80 + channels), channels).toFloat()
    ) as tf.Tensor3D
    for (const [activation, squared, targets] of [
      ['sigmoid', true, independent],
      ['softmax', true, hard],
      ['softmax', false, hard],
    ] as ['sigmoid' | 'softmax', boolean, tf.Tensor3D][]) {
      const options = {activation, squared, smooth: 1e-5}
      const label = `${channels} channels, ${activation}${squared ? ' squared' : ''}`
      const fused = diceCeMatchesComposition(logits, targets, options, label)
      const again = diceCeLossAndGrad(logits, targets, options)
      assert.equal(again.loss, fused.loss, `${label}: loss bits differ between runs`)
      assert.deepEqual(again.grad, fused.grad, `${label}: gradient bits differ between runs`)
    }
    tf.dispose([logits, hard, independent])
  }
  // one NaN logit: the loss and that voxel's gradient are NaN (no polynomial turns it into a number)
  const values = new Float32Array(2 * 1500 * 4).map((_, i) => Math.sin(i))
  values[4 * 777 + 2] = NaN
  const logits = tf.tensor3d(values, [2, 1500, 4])
  const targets = tf.oneHot(tf.fill([2, 1500], 1, 'int32') as tf.Tensor2D, 4).toFloat()
  for (const activation of ['softmax', 'sigmoid'] as const) {
    const {value, grad} = tf.valueAndGrad((z: tf.Tensor) => diceCrossEntropy(z, targets, {activation, squared: true, smooth: 1e-5}))(logits)
    assert.ok(Number.isNaN(value.dataSync()[0]), `${activation}: loss ${value.dataSync()[0]}`)
    assert.ok(Number.isNaN(grad.dataSync()[4 * 777 + 2]), `${activation}: gradient of the NaN logit`)
    tf.dispose([value, grad])
  }
  tf.dispose([logits, targets])
})

test('fused Dice + cross-entropy: probabilities and loss against float64 Math.exp / Math.log, logits from −100 to 100', () => {
  const n = 4001
  const x = Float64Array.from({length: n}, (_, i) => -100 + (200 * i) / (n - 1))
  const relative = (got: number, want: number) => Math.abs(got - want) / Math.max(Math.abs(want), 1e-30)
  // sigmoid, one channel, target 1 where x > 0: p = 1/(1 + e^−x) covers e^t for t in [−100, 0]
  const y = x.map((v) => (v > 0 ? 1 : 0))
  const run = (z: Float64Array, t: Float64Array, shape: [number, number, number], activation: 'sigmoid' | 'softmax') =>
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const inputs = {logits: tf.tensor3d(Float32Array.from(z), shape), targets: tf.tensor3d(Float32Array.from(t), shape)}
        const [loss, p] = tf.engine().runKernel('SiplDiceCe', inputs, {activation, squared: false, smooth: 0}) as tf.Tensor[]
        return {loss: loss.dataSync()[0], p: p.dataSync() as Float32Array}
      }),
    )
  const sigmoid = run(x, y, [1, n, 1], 'sigmoid')
  let bce = 0
  let [intersection, denominator] = [0, 0]
  x.forEach((v, i) => {
    const p = 1 / (1 + Math.exp(-Math.fround(v)))
    const err = relative(sigmoid.p[i], p)
    // below e^−87.3 (float32's smallest normal) the kernel returns 0
    if (p > 1.2e-38) assert.ok(err < 1e-6, `σ(${v}): ${sigmoid.p[i]} vs ${p}`)
    else assert.equal(sigmoid.p[i], 0)
    bce += Math.max(v, 0) - v * y[i] + Math.log1p(Math.exp(-Math.abs(v)))
    intersection += p * y[i]
    denominator += p + y[i]
  })
  const sigmoidLoss = bce / n + 1 - (2 * intersection) / denominator
  assert.ok(relative(sigmoid.loss, sigmoidLoss) < 2e-6, `sigmoid loss ${sigmoid.loss} vs ${sigmoidLoss}`)
  // softmax over rows [0, x], target class 0: p₁ = e^x / (1 + e^x), CE = log(1 + e^x) covers log on [1, 2]
  const rows = new Float64Array(2 * n)
  const targets = new Float64Array(2 * n)
  x.forEach((v, i) => {
    rows[2 * i + 1] = v
    targets[2 * i] = 1
  })
  const softmax = run(rows, targets, [1, n, 2], 'softmax')
  let ce = 0
  const sums = [0, 0, 0, 0]
  x.forEach((v, i) => {
    const top = Math.max(0, Math.fround(v))
    const [e0, e1] = [Math.exp(-top), Math.exp(Math.fround(v) - top)]
    const p = [e0 / (e0 + e1), e1 / (e0 + e1)]
    p.forEach((pc, c) => {
      if (pc > 1.2e-38) assert.ok(relative(softmax.p[2 * i + c], pc) < 1e-6, `softmax(0, ${v})[${c}]: ${softmax.p[2 * i + c]} vs ${pc}`)
      sums[c] += pc * targets[2 * i + c]
      sums[2 + c] += pc + targets[2 * i + c]
    })
    ce -= Math.log(p[0])
  })
  const softmaxLoss = ce / n + 1 - ((2 * sums[0]) / sums[2] + (2 * sums[1]) / sums[3]) / 2
  assert.ok(relative(softmax.loss, softmaxLoss) < 2e-6, `softmax loss ${softmax.loss} vs ${softmaxLoss}`)
})

test('fused group norm: output and gradients (x, γ, β) equal the op composition within 1e-5, group and instance norm', () => {
  // 210 rows of 16 channels (one chunk of rows); 20 000 rows of 6 channels (8 chunks, every slot of the sums, and 2 channels outside the vectors)
  for (const [shape, groups] of [
    [[1, 6, 5, 7, 16], 4],
    [[1, 20, 25, 40, 6], 3],
    [[3, 4, 5, 6, 8], 2],
  ] as [number[], number][])
    normMatchesComposition(shape, groups)
})

test('group norm with its LeakyReLU in one kernel: the same bits as the norm, then the LeakyReLU kernel (values and gradients)', () => {
  const store = new ParamStore(new Rng(5))
  for (const [shape, groups] of [
    [[1, 6, 5, 7, 16], 4],
    [[2, 4, 5, 6, 8], 8],
    // 6 channels: 2 outside the vectors, done one at a time
    [[1, 5, 6, 7, 6], 3],
  ] as [[number, number, number, number, number], number][]) {
    const channels = shape[4]
    const x = tf.randomNormal(shape, 0, 1, 'float32', 68) as tf.Tensor5D
    const r = tf.randomNormal(x.shape, 0, 1, 'float32', 69)
    const layer = new SpatialNorm(store, `act.${shape.join('x')}`, channels, {norm: 'group', groups})
    layer.gamma.assign(tf.randomUniform([channels], 0.5, 1.5, 'float32', 70))
    layer.beta.assign(tf.randomUniform([channels], -1, 1, 'float32', 71))
    const run = (norm: (input: tf.Tensor5D) => tf.Tensor) =>
      expectNoLeakedTensors(() =>
        tf.tidy(() => {
          const objective = (input: tf.Tensor) => tf.sum(tf.mul(r, norm(input as tf.Tensor5D))) as tf.Scalar
          const {grads} = tf.variableGrads(() => objective(x), [layer.gamma, layer.beta])
          return [norm(x), tf.grad(objective)(x), grads[layer.gamma.name], grads[layer.beta.name]].map((t) => Array.from(t.dataSync()))
        }),
      )
    // both sides on sipl's kernels (without them both would run the same composition)
    assert.ok(fusedKernelsActive())
    const fused = run((input) => layer.applyLeakyRelu(input))
    const separate = run((input) => leakyRelu(layer.apply(input)))
    assert.ok(fused[0].some((v) => v < 0) && fused[0].some((v) => v > 0), 'both sides of the kink')
    ;['y', 'dx', 'dγ', 'dβ'].forEach((what, i) => assert.deepEqual(fused[i], separate[i], `${shape} ${what}: different bits`))
    tf.dispose([x, r])
  }
  store.dispose()
})

test('fused group norm of a batch: the same bits as one fused norm per sample (split, then concatenated)', () => {
  const store = new ParamStore(new Rng(4))
  const [b, channels, groups] = [3, 8, 2]
  const x = tf.randomNormal([b, 4, 5, 6, channels], 1, 2, 'float32', 64) as tf.Tensor5D
  const r = tf.randomNormal(x.shape, 0, 1, 'float32', 65)
  const layer = new SpatialNorm(store, 'batch.group', channels, {norm: 'group', groups})
  layer.gamma.assign(tf.randomUniform([channels], 0.5, 1.5, 'float32', 66))
  layer.beta.assign(tf.randomUniform([channels], -1, 1, 'float32', 67))
  const gamma = layer.gamma as tf.Tensor1D
  const beta = layer.beta as tf.Tensor1D
  const perSample = (input: tf.Tensor5D) =>
    tf.reshape(
      tf.concat(
        tf
          .split(tf.reshape(input, [-1, channels]), b, 0)
          .map((sample) => groupNormFused(sample as tf.Tensor2D, gamma, beta, {groups, eps: 1e-5})),
        0,
      ),
      input.shape,
    ) as tf.Tensor5D
  const run = (norm: (input: tf.Tensor5D) => tf.Tensor5D) =>
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const objective = (input: tf.Tensor) => tf.sum(tf.mul(r, tf.square(norm(input as tf.Tensor5D)))) as tf.Scalar
        const {grads} = tf.variableGrads(() => objective(x), [layer.gamma, layer.beta])
        return [norm(x), tf.grad(objective)(x), grads[layer.gamma.name], grads[layer.beta.name]].map((t) => Array.from(t.dataSync()))
      }),
    )
  const batched = run((input) => layer.apply(input))
  const split = run(perSample)
  ;['y', 'dx', 'dγ', 'dβ'].forEach((what, i) => assert.deepEqual(batched[i], split[i], `${what}: different bits`))
  tf.dispose([x, r])
  store.dispose()
})

function normMatchesComposition(shape: number[], groupCount: number): void {
  const store = new ParamStore(new Rng(3))
  const channels = shape[4]
  const x = tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 60), 2), 1) as tf.Tensor5D
  const r = tf.randomNormal(x.shape, 0, 1, 'float32', 61)
  for (const [norm, groups] of [
    ['group', groupCount],
    ['instance', channels],
  ] as const) {
    const layer = new SpatialNorm(store, `fused.${norm}`, channels, {norm, groups})
    layer.gamma.assign(tf.randomUniform([channels], 0.5, 1.5, 'float32', 62))
    layer.beta.assign(tf.randomUniform([channels], -1, 1, 'float32', 63))
    const run = () =>
      expectNoLeakedTensors(() =>
        tf.tidy(() => {
          const objective = (input: tf.Tensor) => tf.sum(tf.mul(r, tf.square(layer.apply(input as tf.Tensor5D)))) as tf.Scalar
          const {grads} = tf.variableGrads(() => objective(x), [layer.gamma, layer.beta])
          return [layer.apply(x), tf.grad(objective)(x), grads[layer.gamma.name], grads[layer.beta.name]].map(
            (t) => t.dataSync() as Float32Array,
          )
        }),
      )
    const fused = run()
    const composed = withReferenceCpuKernels(run)
    ;['y', 'dx', 'dγ', 'dβ'].forEach((what, i) => {
      const err = relError(fused[i], composed[i])
      assert.ok(err <= 1e-5, `${shape} ${norm} ${what}: relative error ${err}`)
    })
    const again = run()
    again.forEach((values, i) => assert.deepEqual(values, fused[i], `${shape} ${norm}: different bits in a second run`))
  }
  tf.dispose([x, r])
  store.dispose()
}

test("the model's LeakyReLU: the same values and gradient bits with the Step-based gradient as with tfjs's", () => {
  const x = tf.concat([tf.randomNormal([997], 0, 1, 'float32', 70), tf.tensor1d([0, -0, 1e-30, -1e-30])])
  const r = tf.randomNormal(x.shape, 0, 1, 'float32', 71)
  const run = () =>
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const {value, grad} = tf.valueAndGrad((t: tf.Tensor) => tf.sum(tf.mul(r, leakyRelu(t))) as tf.Scalar)(x)
        return [Array.from(leakyRelu(x).dataSync()), Array.from(grad.dataSync()), value.dataSync()[0]]
      }),
    )
  assert.deepEqual(run(), withReferenceCpuKernels(run))
  tf.dispose([x, r])
})

test('inference σ (SiplSigmoid): within 3 ulp of float64 σ from −100 to 100 (1 M points in −5…5), NaN and ±Inf kept, tails and chunks alike', () => {
  // float32 values as ordered integers (for positive values): their difference counts ulps
  const asInt = new Int32Array(1)
  const asFloat = new Float32Array(asInt.buffer)
  const ordinal = (v: number) => ((asFloat[0] = v), asInt[0])
  const withinUlps = (x: Float32Array, p: Float32Array) =>
    x.forEach((v, i) => {
      const want = 1 / (1 + Math.exp(-v))
      if (Number.isNaN(v)) assert.ok(Number.isNaN(p[i]), `σ(NaN) = ${p[i]}`)
      // below float32's smallest normal (e^−87.3) the loss's exp may return 0
      else if (want > 1.2e-38) assert.ok(Math.abs(ordinal(p[i]) - ordinal(want)) <= 3, `σ(${v}): ${p[i]} vs ${Math.fround(want)}`)
      else assert.ok(p[i] === 0 || Math.abs(p[i] - want) / want < 1e-6, `σ(${v}): ${p[i]} vs ${want}`)
    })
  const sigmoidOf = (x: Float32Array) =>
    expectNoLeakedTensors(() => tf.tidy(() => sigmoidProbabilities(tf.tensor1d(x)).dataSync() as Float32Array))
  // 40 003 values: several chunks of 16 384, and a length that is no multiple of 4
  const n = 40003
  const x = Float32Array.from({length: n}, (_, i) => -100 + (200 * i) / (n - 1))
  x.set([NaN, Infinity, -Infinity, 0, -0], 100)
  const p = sigmoidOf(x)
  withinUlps(x, p)
  const dense = Float32Array.from({length: 1_000_000}, (_, i) => -5 + i / 100_000)
  withinUlps(dense, sigmoidOf(dense))
  assert.deepEqual([p[101], p[102], p[103], p[104]], [1, 0, 0.5, 0.5])
  // an element's bits do not depend on its place: the same value at the end of the last chunk
  const tail = expectNoLeakedTensors(() => tf.tidy(() => sigmoidProbabilities(tf.tensor1d(x.subarray(n - 7))).dataSync()))
  assert.deepEqual([...tail], [...p.subarray(n - 7)])
})

test("inference σ equals the training loss's σ (SiplDiceCe's probabilities) bit for bit, and tf.sigmoid off the fast kernels", () => {
  const logits = seeded([1, 4096, 4], 9).mul(8) as tf.Tensor3D
  const targets = tf.zerosLike(logits) as tf.Tensor3D
  const [loss, lossP, stats] = tf
    .engine()
    .runKernel('SiplDiceCe', {logits, targets}, {activation: 'sigmoid', squared: true, smooth: 1}) as tf.Tensor[]
  const p = sigmoidProbabilities(logits)
  assert.deepEqual([...p.dataSync()], [...lossP.dataSync()])
  const reference = withReferenceCpuKernels(() => {
    const r = sigmoidProbabilities(logits)
    const s = tf.sigmoid(logits)
    const same = r.dataSync().every((v, i) => Object.is(v, s.dataSync()[i]))
    tf.dispose([r, s])
    return same
  })
  assert.ok(reference, 'with the reference kernels it is tf.sigmoid')
  tf.dispose([logits, targets, loss, lossP, stats, p])
})

test('SiplPrototypeSigmoid: the same bits as the product, the shift and SiplSigmoid one after another (1–8 195 rows, 1–16 classes, batch 1–3, with and without a shift, NaN, ±∞, ±0, ±1e30)', () => {
  const check = (B: number, V: number, e: number, K: number, withShift: boolean, special = false) =>
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        let u = tf.randomNormal([B, V, e], 0, 2, 'float32', V + K) as tf.Tensor3D
        if (special) {
          const values = u.dataSync().slice()
          const odd = [NaN, Infinity, -Infinity, 0, -0, 1e30, -1e30, 100, -100]
          for (let i = 0; i < values.length; i += 7) values[i] = odd[i % odd.length]
          u = tf.tensor3d(values, [B, V, e])
        }
        const g = tf.randomNormal([B, K, e], 0, 1, 'float32', 5) as tf.Tensor3D
        const shift = withShift ? (tf.randomNormal([B, K], 0, 3, 'float32', 6) as tf.Tensor2D) : null
        const fused = prototypeProbabilities(u, g, shift).dataSync() as Float32Array
        const logits = tf.matMul(u, g, false, true)
        const expected = sigmoidProbabilities(shift ? tf.add(logits, tf.expandDims(shift, 1)) : logits).dataSync()
        assert.equal(fused.length, expected.length)
        const differ = fused.reduce((n, v, i) => n + (Object.is(v, expected[i]) ? 0 : 1), 0)
        assert.equal(differ, 0, `B ${B}, V ${V}, e ${e}, K ${K}, shift ${withShift}, special ${special}: ${differ} values differ`)
      }),
    )
  // rows: one, a partial tile, around the 256-row chunks, a partial last chunk; classes around the 8-wide tiles
  for (const V of [1, 5, 255, 257, 8195])
    for (const K of [1, 3, 8, 13]) for (const B of [1, 2, 3]) check(B, V, 16, K, (V + K + B) % 2 === 0)
  check(2, 8195, 16, 3, true, true)
  check(2, 8195, 16, 13, true, true)
  check(1, 1000, 48, 5, false)
})
