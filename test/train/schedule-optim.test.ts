import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {learningRate} from '../../src/train/schedule.js'
import {AdamW, Sgd, clipByGlobalNorm} from '../../src/train/optimizers.js'
import {expectNoLeakedTensors, variableOf} from '../helpers/tensors.js'

const near = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`)

test('warm-up then cosine / poly / constant, as pure functions of the step', () => {
  const base = {baseLr: 0.01, warmupSteps: 4, totalSteps: 14, polyPower: 0.9}
  // warm-up: lr·(step+1)/4 → 0.0025, 0.005, 0.0075, 0.01
  for (const name of ['cosine', 'poly', 'constant'] as const)
    [0.0025, 0.005, 0.0075, 0.01].forEach((want, step) => near(learningRate(step, {...base, name}), want, 1e-12))
  // cosine over the 10 steps after warm-up: t = (step−4)/10; step 9 → t = 0.5 → lr/2; step 14 → 0
  near(learningRate(9, {...base, name: 'cosine'}), 0.005, 1e-12)
  near(learningRate(14, {...base, name: 'cosine'}), 0, 1e-12)
  // poly: step 9 → 0.01 · 0.5^0.9
  near(learningRate(9, {...base, name: 'poly'}), 0.01 * 0.5 ** 0.9, 1e-12)
  near(learningRate(100, {...base, name: 'constant'}), 0.01, 1e-12)
})

test('AdamW: two steps equal the hand-computed decoupled update', () => {
  const p = variableOf(() => tf.tensor1d([1, -2]))
  const opt = new AdamW(0.9, 0.999, 0.1)
  const vars = new Map([['w', p]])
  const g1 = tf.tensor1d([0.5, 0.25])
  // the first step creates the two moments
  expectNoLeakedTensors(() => opt.step(vars, new Map([['w', g1]]), 0.01), 2)
  // step 1: m̂ = g, v̂ = g², update = g/(|g| + 1e-8) ≈ sign(g); p ← p(1 − 0.01·0.1) − 0.01·sign(g)
  const p1 = [1 * (1 - 0.001) - 0.01 * (0.5 / (0.5 + 1e-8)), -2 * (1 - 0.001) - 0.01 * (0.25 / (0.25 + 1e-8))]
  p.dataSync().forEach((v, i) => near(v, p1[i], 1e-6))
  // step 2 with g2: m = 0.9·0.1·g1... written out: m = 0.9·(0.1 g1) + 0.1 g2, v = 0.999·(0.001 g1²) + 0.001 g2²
  const g2 = [-1, 0.25]
  const g2Tensor = tf.tensor1d(g2)
  expectNoLeakedTensors(() => opt.step(vars, new Map([['w', g2Tensor]]), 0.02))
  const want = p1.map((w, i) => {
    const gg1 = [0.5, 0.25][i]
    const m = 0.9 * 0.1 * gg1 + 0.1 * g2[i]
    const v = 0.999 * 0.001 * gg1 * gg1 + 0.001 * g2[i] * g2[i]
    const mh = m / (1 - 0.9 ** 2)
    const vh = v / (1 - 0.999 ** 2)
    return w * (1 - 0.02 * 0.1) - (0.02 * mh) / (Math.sqrt(vh) + 1e-8)
  })
  p.dataSync().forEach((v, i) => near(v, want[i], 1e-6))
  assert.equal(opt.iterations, 2)
  assert.deepEqual([...opt.stateTensors().keys()].sort(), ['w.exp_avg', 'w.exp_avg_sq'])
  expectNoLeakedTensors(() => opt.dispose(), -2)
  tf.dispose([p, g1, g2Tensor])
})

test('SGD with Nesterov momentum and L2 weight decay matches PyTorch semantics by hand', () => {
  const p = variableOf(() => tf.tensor1d([1]))
  const opt = new Sgd(0.9, true, 0.01)
  const vars = new Map([['w', p]])
  // step 1: g = 2 + 0.01·1 = 2.01; buf = 2.01; update = g + 0.9·buf = 3.819; p = 1 − 0.1·3.819 = 0.6181
  const [two, one] = [tf.tensor1d([2]), tf.tensor1d([1])]
  // the first step creates the momentum buffer
  expectNoLeakedTensors(() => opt.step(vars, new Map([['w', two]]), 0.1), 1)
  near(p.dataSync()[0], 0.6181)
  // step 2: g = 1 + 0.01·0.6181 = 1.006181; buf = 0.9·2.01 + g = 2.815181; update = g + 0.9·buf = 3.5398439
  expectNoLeakedTensors(() => opt.step(vars, new Map([['w', one]]), 0.1))
  near(p.dataSync()[0], 0.6181 - 0.35398439)
  const plain = new Sgd(0.9, false, 0)
  const q = variableOf(() => tf.tensor1d([1]))
  plain.step(new Map([['q', q]]), new Map([['q', tf.tensor1d([2])]]), 0.1)
  plain.step(new Map([['q', q]]), new Map([['q', tf.tensor1d([1])]]), 0.1)
  // buf 2 → 0.9·2 + 1 = 2.8; q = 1 − 0.2 − 0.28
  near(q.dataSync()[0], 0.52)
})

test('optimiser state round-trips: a restored optimiser continues identically', () => {
  const make = () => variableOf(() => tf.tensor1d([0.3, -0.7, 1.1]))
  const a = make()
  const optA = new AdamW(0.9, 0.999, 0.01)
  const grads = [
    [0.1, -0.2, 0.3],
    [0.4, 0.1, -0.5],
    [-0.3, 0.2, 0.1],
  ]
  for (const g of grads.slice(0, 2)) optA.step(new Map([['w', a]]), new Map([['w', tf.tensor1d(g)]]), 0.01)
  const b = variableOf(() => a.clone())
  const optB = new AdamW(0.9, 0.999, 0.01)
  expectNoLeakedTensors(() => optB.loadState(optA.stateTensors(), optA.iterations), 2)
  optA.step(new Map([['w', a]]), new Map([['w', tf.tensor1d(grads[2])]]), 0.01)
  optB.step(new Map([['w', b]]), new Map([['w', tf.tensor1d(grads[2])]]), 0.01)
  assert.deepEqual([...a.dataSync()], [...b.dataSync()])
})

test('global-norm clipping scales to the maximum and reports the norm', async () => {
  const grads = new Map([
    ['a', tf.tensor1d([3, 0])],
    ['b', tf.tensor1d([4])],
  ])
  // the clipped gradients replace the originals, which it disposes
  const {grads: clipped, norm} = await expectNoLeakedTensors(() => clipByGlobalNorm(grads, 1))
  near(norm, 5)
  near(clipped.get('a')!.dataSync()[0], 3 / (5 + 1e-6))
  near(clipped.get('b')!.dataSync()[0], 4 / (5 + 1e-6))
  const untouched = new Map([['a', tf.tensor1d([0.3])]])
  assert.equal((await expectNoLeakedTensors(() => clipByGlobalNorm(untouched, 1))).grads, untouched)
})
