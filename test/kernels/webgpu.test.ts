// sipl's webgpu kernels against the cpu backend (tfjs's reference kernels). Needs a WebGPU
// adapter: a GPU, or Mesa ≥ 25 lavapipe on a CPU-only machine (docs/gpu.md); without one every
// test here is skipped with the reason, except under CI=true, where .ci/run installs lavapipe.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {probeBackend} from '../../src/backend/select.js'
import {relError} from '../../src/util/rel-error.js'
import {installWebgpuKernels, setWebgpuConv3dKernels} from '../../src/kernels/webgpu/index.js'
import {Conv3DBackpropFilterTiledProgram} from '../../src/kernels/webgpu/programs.js'
import {skipUnless} from '../helpers/needs.js'
import {expectNoLeakedTensors} from '../helpers/tensors.js'

const probe = await probeBackend('webgpu', false)
const skip = skipUnless('webgpu kernel tests', probe.loadable ? undefined : `no WebGPU adapter here (${probe.detail})`)
if (!skip) installWebgpuKernels()
await tf.setBackend('cpu')

const TOLERANCE = 1e-4

function values(n: number, seed: number): Float32Array {
  let a = seed >>> 0
  return Float32Array.from({length: n}, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0
    return a / 2 ** 32 - 0.5
  })
}

type Shape5 = [number, number, number, number, number]
type Triple = [number, number, number]
interface ConvCase {
  name: string
  x: Shape5
  w: Shape5
  strides: Triple
  pad: 'same' | 'valid'
}

/** forward, input gradient (conv3dTranspose) and filter gradient on the current backend, leak-checked there */
function convAll(c: ConvCase): Promise<Float32Array[]> {
  return expectNoLeakedTensors(() => convAllOnce(c))
}

async function convAllOnce(c: ConvCase): Promise<Float32Array[]> {
  const x = tf.tensor5d(
    values(
      c.x.reduce((a, b) => a * b),
      1,
    ),
    c.x,
  )
  const w = tf.tensor5d(
    values(
      c.w.reduce((a, b) => a * b),
      2,
    ),
    c.w,
  )
  const y = tf.conv3d(x, w, c.strides, c.pad)
  const dy = tf.tensor5d(values(y.size, 3), y.shape as Shape5)
  const dx = tf.conv3dTranspose(dy, w, c.x, c.strides, c.pad)
  const dw = tf.engine().runKernel('Conv3DBackpropFilterV2', {x, dy}, {strides: c.strides, pad: c.pad, filterShape: c.w}) as tf.Tensor
  const out = (await Promise.all([y, dx, dw].map((t) => t.data()))) as Float32Array[]
  tf.dispose([x, w, y, dy, dx, dw])
  return out
}

async function on<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  await tf.setBackend(backend)
  try {
    return await fn()
  } finally {
    await tf.setBackend('cpu')
  }
}

// Strides and padding are uniforms, channels and kernel size are compiled in: the first three
// cases share their shaders, which keeps this file's shader compilation (seconds each on lavapipe) short.
const CASES: ConvCase[] = [
  {name: 'batch 2, non-cubic, stride 2, same, 3→5 channels', x: [2, 5, 6, 7, 3], w: [3, 3, 3, 3, 5], strides: [2, 2, 2], pad: 'same'},
  {name: 'anisotropic stride, valid', x: [2, 7, 6, 5, 3], w: [3, 3, 3, 3, 5], strides: [2, 1, 2], pad: 'valid'},
  {name: 'K large enough for a split filter gradient', x: [2, 8, 8, 9, 3], w: [3, 3, 3, 3, 5], strides: [1, 1, 1], pad: 'same'},
  {
    name: 'anisotropic kernel 3×2×1 at stride 2 (k2 s2 as in up-sampling; k1 s2 leaves voxels no tap reaches), 5→70 (two N tiles)',
    x: [1, 4, 5, 6, 5],
    w: [3, 2, 1, 5, 70],
    strides: [2, 2, 2],
    pad: 'valid',
  },
]

for (const c of CASES) {
  test(`tiled conv3d, input and filter gradients match cpu within 1e-4: ${c.name}`, {skip}, async () => {
    const expected = await convAll(c)
    const actual = await on('webgpu', () => convAll(c))
    const names = ['conv3d', 'input gradient', 'filter gradient']
    for (let i = 0; i < 3; i++) {
      assert.equal(actual[i].length, expected[i].length)
      const err = relError(actual[i], expected[i])
      assert.ok(err <= TOLERANCE, `${names[i]}: max relative error ${err.toExponential(2)}`)
    }
  })
}

test('the tiled programs are the ones that ran, and the filter-gradient case above used split K', {skip}, async () => {
  const g = {batch: 2, inD: 8, inH: 8, inW: 9, inC: 3, outD: 8, outH: 8, outW: 9, outC: 5, kD: 3, kH: 3, kW: 3}
  const program = new Conv3DBackpropFilterTiledProgram({...g, sD: 1, sH: 1, sW: 1, padD: 1, padH: 1, padW: 1})
  assert.ok(program.splits > 1)
  await on('webgpu', async () => {
    const keys = Object.keys((tf.backend() as unknown as {pipelineCache: Record<string, unknown>}).pipelineCache)
    for (const op of ['fwd', 'dx', 'dw', 'dw_sum'])
      assert.ok(
        keys.some((k) => k.startsWith(`sipl_conv3d_${op}`)),
        `no ${op} pipeline`,
      )
  })
})

test('stock kernels on request, and the stock fallback for dilation 2, agree with cpu', {skip}, async () => {
  const c = CASES[0]
  const expected = await convAll(c)
  setWebgpuConv3dKernels('stock')
  try {
    const actual = await on('webgpu', () => convAll(c))
    for (let i = 0; i < 3; i++) assert.ok(relError(actual[i], expected[i]) <= TOLERANCE)
  } finally {
    setWebgpuConv3dKernels('tiled')
  }
  const dilated = () => expectNoLeakedTensors(dilatedOnce)
  const dilatedOnce = async () => {
    const x = tf.tensor5d(values(2 * 7 * 7 * 7 * 3, 4), [2, 7, 7, 7, 3])
    const w = tf.tensor5d(values(3 * 3 * 3 * 3 * 4, 5), [3, 3, 3, 3, 4])
    const y = tf.conv3d(x, w, 1, 'same', 'NDHWC', 2)
    const out = await y.data()
    tf.dispose([x, w, y])
    return out
  }
  assert.ok(relError(await on('webgpu', dilated), await dilated()) <= TOLERANCE)
})

test('a rank-1 bias on a rank-5 tensor adds (stock webgpu 4.22 returns zeros) and rank-5 where works', {skip}, async () => {
  const ops = async () => {
    const x = tf.tensor5d(values(2 * 8 * 8 * 8 * 16, 6), [2, 8, 8, 8, 16])
    const bias = tf.tensor1d(values(16, 7))
    const sum = tf.add(x, bias)
    const product = tf.mul(bias, x)
    const picked = tf.tidy(() => tf.where(tf.greater(x, 0), x, tf.mul(x, 0.1)))
    // tf.leakyRelu's gradient is a rank-5 where
    const grad = tf.grad((t: tf.Tensor) => tf.leakyRelu(t, 0.2).sum())(x)
    const out = (await Promise.all([sum, product, picked, grad].map((t) => t.data()))) as Float32Array[]
    tf.dispose([x, bias, sum, product, picked, grad])
    return out
  }
  const expected = await expectNoLeakedTensors(ops)
  const actual = await on('webgpu', () => expectNoLeakedTensors(ops))
  for (let i = 0; i < expected.length; i++) assert.ok(relError(actual[i], expected[i]) <= 1e-6, `op ${i}`)
})
