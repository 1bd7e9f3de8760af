/**
 * sipl's cpu conv3d kernels (src/kernels/cpu) against tfjs's reference cpu kernels on odd
 * shapes: non-cubic volumes, stride 2, `same` / `valid`, channel counts that are not multiples
 * of 4 or 8, batch > 1, dilation, and the conv3dTranspose that the U-Net decoders use. Plus one
 * hand-computed case, so that the kernels are not only checked against another implementation.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {relError} from '../../src/util/rel-error.js'
import {activeCpuKernels, withReferenceCpuKernels} from '../../src/kernels/register.js'
import {existingRuntime, freshRuntime} from '../../src/kernels/cpu/runtime.js'
import {directTransposedApplies} from '../../src/kernels/cpu/conv3d-heap.js'
import {product} from '../../src/kernels/cpu/matmul.js'
import {conv3dTransposeBias} from '../../src/kernels/fused.js'
import {setWinograd, winogradApplies, winogradFilterGradApplies} from '../../src/kernels/cpu/winograd.js'
import {environment} from '../../src/paths.js'
import {availableParallelism} from 'node:os'
import {expectNoLeakedTensors} from '../helpers/tensors.js'

await tf.setBackend('cpu')

function seeded(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed)
}

type Triple = [number, number, number]
type Shape5 = [number, number, number, number, number]
interface Case {
  name: string
  x: number[]
  w: number[]
  strides: number | Triple
  pad: 'same' | 'valid'
  dilations?: number | Triple
}

const CASES: Case[] = [
  {name: 'batch 2, non-cubic, stride [2,1,1], same, 3→5 channels', x: [2, 5, 6, 7, 3], w: [3, 3, 3, 3, 5], strides: [2, 1, 1], pad: 'same'},
  {name: 'valid, kernel 3×2×3, stride [2,2,1], 5→6 channels', x: [1, 9, 8, 7, 5], w: [3, 2, 3, 5, 6], strides: [2, 2, 1], pad: 'valid'},
  {name: 'stride 2 same on even sizes, batch 2, 6→10 channels', x: [2, 8, 6, 10, 6], w: [3, 3, 3, 6, 10], strides: 2, pad: 'same'},
  {name: '1×1×1 head, 7→4 channels', x: [1, 4, 5, 6, 7], w: [1, 1, 1, 7, 4], strides: 1, pad: 'same'},
  {name: 'single input channel (first U-Net layer), 1→9', x: [1, 7, 5, 6, 1], w: [3, 3, 3, 1, 9], strides: 1, pad: 'same'},
  // rows of 15 outputs: blocks of 4 rows inside, single rows at the sides and where a block would leave the row
  {name: 'single input channel, batch 2, wide rows, 1→5', x: [2, 5, 6, 15, 1], w: [3, 3, 3, 1, 5], strides: 1, pad: 'same'},
  {name: 'single input channel, valid, 1→4', x: [1, 6, 5, 14, 1], w: [3, 3, 3, 1, 4], strides: 1, pad: 'valid'},
  // one input channel into a multiple of 8 at stride 1: the direct kernel (rows of 15 and 13 outputs: groups of 4 and single ones)
  {name: 'direct: single input channel, batch 2, 1→16', x: [2, 5, 6, 15, 1], w: [3, 3, 3, 1, 16], strides: 1, pad: 'same'},
  {name: 'direct: valid, kernel 2×3×4, 1→8', x: [1, 6, 5, 16, 1], w: [2, 3, 4, 1, 8], strides: 1, pad: 'valid'},
  {name: 'direct: even kernel 2×2×2 (uneven same padding), 1→24', x: [2, 4, 7, 13, 1], w: [2, 2, 2, 1, 24], strides: 1, pad: 'same'},
  {
    name: 'many row chunks on every thread, kernel 3×2×3, 16→24 channels',
    x: [1, 12, 10, 14, 16],
    w: [3, 2, 3, 16, 24],
    strides: 1,
    pad: 'same',
  },
  {name: 'stride 1, even kernel 2×3×4 (uneven same padding), 4→3', x: [2, 7, 6, 5, 4], w: [2, 3, 4, 4, 3], strides: 1, pad: 'same'},
  {name: 'stride 1 valid, 5→7', x: [1, 6, 7, 5, 5], w: [3, 2, 3, 5, 7], strides: 1, pad: 'valid'},
  {name: 'kernel 2 stride 2 valid, 13→11 channels', x: [1, 6, 8, 4, 13], w: [2, 2, 2, 13, 11], strides: 2, pad: 'valid'},
  // stride = kernel into 8 input channels, but an odd size: the last plane along it gets no tap, so the
  // input gradient is not the direct up-sampling job's (directTransposedApplies must refuse it)
  {name: 'kernel 2 stride 2 valid, odd depth, 8→3 channels', x: [1, 5, 4, 6, 8], w: [2, 2, 2, 8, 3], strides: 2, pad: 'valid'},
  {name: 'kernel 2 stride 2 valid, odd height, 8→3 channels', x: [1, 4, 5, 6, 8], w: [2, 2, 2, 8, 3], strides: 2, pad: 'valid'},
  {name: 'kernel 2 stride 2 valid, odd width, 8→3 channels', x: [1, 4, 4, 7, 8], w: [2, 2, 2, 8, 3], strides: 2, pad: 'valid'},
  // 3×3×3 stride 1 with ≥ 4 input channels on volumes of ≥ 8 tiles: the Winograd kernels (sizes that
  // are not multiples of 4 leave tiles cut by the volume's sides)
  {name: 'Winograd: batch 2, odd non-cubic, same, 5→7', x: [2, 7, 9, 11, 5], w: [3, 3, 3, 5, 7], strides: 1, pad: 'same'},
  {name: 'Winograd: valid, odd outputs, 6→3', x: [1, 11, 10, 13, 6], w: [3, 3, 3, 6, 3], strides: 1, pad: 'valid'},
  {name: 'Winograd: one tile thick, 4→4', x: [1, 4, 13, 9, 4], w: [3, 3, 3, 4, 4], strides: 1, pad: 'same'},
  {name: 'Winograd: many chunks per thread, 32→16', x: [1, 10, 12, 14, 32], w: [3, 3, 3, 32, 16], strides: 1, pad: 'same'},
]

/** forward, input and filter gradients; every call is leak-checked (tensors, and the kernels' buffers) */
function convAndGrads(c: Case, seed: number): Float32Array[] {
  return expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const x = seeded(c.x, seed) as tf.Tensor5D
      const w = seeded(c.w, seed + 1) as tf.Tensor5D
      const y = tf.conv3d(x, w, c.strides, c.pad)
      const dy = seeded(y.shape, seed + 2)
      // Σ y·dy has gradient dy w.r.t. y: exercises both backprop kernels with a random dy
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, c.strides, c.pad), dy)),
      )([x, w])
      return [y, dx, dw].map((t) => t.dataSync() as Float32Array)
    }),
  )
}

test('the fast kernels are the ones registered on cpu', () => {
  assert.equal(activeCpuKernels(), 'fast')
})

for (const [i, c] of CASES.entries()) {
  test(`conv3d forward, filter and input gradients match the reference: ${c.name}`, () => {
    const info = tf.backend_util.computeConv3DInfo(c.x as Shape5, c.w as Shape5, c.strides, c.dilations ?? 1, c.pad)
    assert.equal(winogradApplies(info), c.name.startsWith('Winograd'), 'the case runs on the kernels its name says')
    const fast = convAndGrads(c, 10 * i)
    const reference = withReferenceCpuKernels(() => convAndGrads(c, 10 * i))
    for (const [k, what] of ['y', 'dx', 'dw'].entries()) {
      assert.equal(fast[k].length, reference[k].length, what)
      const err = relError(fast[k], reference[k])
      assert.ok(err <= 1e-4, `${what}: relative error ${err.toExponential(2)} > 1e-4`)
    }
  })
}

test('the direct single-channel convolution has the bits of im2col + GEMM: the same multiply-add chains, padding and all', () => {
  for (const [x, w, pad] of [
    [[2, 5, 6, 15, 1], [3, 3, 3, 1, 16], 'same'],
    [[1, 6, 5, 9, 1], [3, 3, 3, 1, 8], 'valid'],
    [[1, 4, 7, 13, 1], [2, 3, 4, 1, 24], 'same'],
  ] as [Shape5, Shape5, 'same' | 'valid'][]) {
    const info = tf.backend_util.computeConv3DInfo(x, w, 1, 1, pad)
    const [xs, ws, direct] = expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const xt = seeded(x, 5) as tf.Tensor5D
        const wt = seeded(w, 6) as tf.Tensor5D
        return [xt, wt, tf.conv3d(xt, wt, 1, pad)].map((t) => t.dataSync() as Float32Array)
      }),
    )
    // im2col in JS: one row per output voxel, its taps in (kd, kh, kw) order, zeros outside
    const {batchSize: B, inDepth: D, inHeight: H, inWidth: W, outDepth, outHeight, outWidth, outChannels: cout} = info
    const {filterDepth: kD, filterHeight: kH, filterWidth: kW} = info
    const {front, top, left} = info.padInfo
    const K = kD * kH * kW
    const M = B * outDepth * outHeight * outWidth
    const cols = new Float32Array(M * K)
    for (let m = 0; m < M; m++) {
      const ow = m % outWidth
      const oh = Math.floor(m / outWidth) % outHeight
      const od = Math.floor(m / (outWidth * outHeight)) % outDepth
      const b = Math.floor(m / (outWidth * outHeight * outDepth))
      for (let t = 0; t < K; t++) {
        const [d, h, v] = [od + Math.floor(t / (kH * kW)) - front, oh + (Math.floor(t / kW) % kH) - top, ow + (t % kW) - left]
        const inside = d >= 0 && d < D && h >= 0 && h < H && v >= 0 && v < W
        cols[m * K + t] = inside ? xs[((b * D + d) * H + h) * W + v] : 0
      }
    }
    const gemm = new Float32Array(M * cout)
    product({values: cols, offset: 0, row: K, col: 1}, {values: ws, offset: 0, row: cout, col: 1}, M, K, cout, gemm, 0)
    assert.ok(
      direct.every((v, i) => Object.is(v, gemm[i])),
      `${x} * ${w} ${pad}: the same bits`,
    )
  }
})

test('a transposed convolution whose stride is its kernel runs directly, with the bits of the GEMM and scatter: the chain over dy channels, then + bias', () => {
  for (const [dyShape, k, cin] of [
    [[2, 3, 2, 3, 5], [2, 2, 2], 8],
    [[1, 2, 2, 2, 8], [4, 4, 4], 16],
    [[1, 2, 3, 3, 3], [1, 2, 2], 24],
    // rows of 6 dy voxels: a group of 4 with the same tap, then 2 single ones
    [[2, 1, 2, 6, 5], [2, 1, 2], 8],
  ] as [Shape5, Triple, number][]) {
    const [B, d, h, w, cout] = dyShape
    const out: Shape5 = [B, d * k[0], h * k[1], w * k[2], cin]
    const filter: Shape5 = [...k, cin, cout]
    assert.ok(directTransposedApplies(tf.backend_util.computeConv3DInfo(out, filter, k, 1, 'valid')), `${dyShape} k ${k}: the direct job`)
    const [dys, ws, bs, plain, biased] = expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const dy = seeded(dyShape, 7) as tf.Tensor5D
        const wt = seeded(filter, 8) as tf.Tensor5D
        const bias = seeded([cin], 9) as tf.Tensor1D
        const y = tf.conv3dTranspose(dy, wt, out, k, 'valid')
        const yb = conv3dTransposeBias(dy, wt, bias, out, k, 'valid')
        return [dy, wt, bias, y, yb].map((t) => t.dataSync() as Float32Array)
      }),
    )
    // per tap t: dy · W_tᵀ (the product's chain over dy's channels), then into its voxels
    const taps = k[0] * k[1] * k[2]
    const rows = B * d * h * w
    const expected = new Float32Array(plain.length)
    for (let t = 0; t < taps; t++) {
      const part = new Float32Array(rows * cin)
      product(
        {values: dys, offset: 0, row: cout, col: 1},
        {values: ws, offset: t * cin * cout, row: 1, col: cout},
        rows,
        cout,
        cin,
        part,
        0,
      )
      const [kd, kh, kw] = [Math.floor(t / (k[1] * k[2])), Math.floor(t / k[2]) % k[1], t % k[2]]
      for (let r = 0; r < rows; r++) {
        const [iw, ih, id, b] = [r % w, Math.floor(r / w) % h, Math.floor(r / (w * h)) % d, Math.floor(r / (w * h * d))]
        const v = (((b * out[1] + id * k[0] + kd) * out[2] + ih * k[1] + kh) * out[3] + iw * k[2] + kw) * cin
        expected.set(part.subarray(r * cin, (r + 1) * cin), v)
      }
    }
    const withBias = expected.map((v, i) => Math.fround(bs[i % cin] + v))
    assert.ok(
      plain.every((v, i) => Object.is(v, expected[i])),
      `${dyShape} k ${k}: the same bits`,
    )
    assert.ok(
      biased.every((v, i) => Object.is(v, withBias[i])),
      `${dyShape} k ${k} + bias: the same bits`,
    )
  }
})

test('hand-computed: the filter gradient on a one-voxel grid (one chunk, one accumulator slot) is x ⊗ dy at the centre tap, zero elsewhere', () => {
  // 1×1×1 volume, 3³ same: only the centre tap sees the voxel; integers, so every sum is exact
  const x = tf.tensor5d([1, -2, 3, 4, -5], [1, 1, 1, 1, 5])
  const dy = tf.tensor5d([2, -1, 3], [1, 1, 1, 1, 3])
  const dw = expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const w = tf.zeros([3, 3, 3, 5, 3])
      return tf
        .grad((k: tf.Tensor) => tf.sum(tf.mul(tf.conv3d(x, k as tf.Tensor5D, 1, 'same'), dy)))(w)
        .dataSync()
    }),
  )
  const centre = 13
  for (let t = 0; t < 27; t++)
    for (let ci = 0; ci < 5; ci++)
      for (let co = 0; co < 3; co++) {
        const expected = t === centre ? [1, -2, 3, 4, -5][ci] * [2, -1, 3][co] : 0
        assert.ok(Object.is(dw[(t * 5 + ci) * 3 + co], expected), `tap ${t}, ${ci} → ${co}: ${dw[(t * 5 + ci) * 3 + co]} ≠ ${expected}`)
      }
  tf.dispose([x, dy])
})

test('the filter gradient of an empty batch is zeros, not the stale values of the heap', () => {
  // values left in the kernels' heap where the gradient's accumulator and dW are allocated
  const rt = freshRuntime()
  rt.f32(rt.alloc(1 << 20), 1 << 20).fill(5)
  const dw = expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const x = tf.zeros([0, 4, 4, 4, 2])
      return tf
        .grad((k: tf.Tensor) => tf.sum(tf.conv3d(x as tf.Tensor5D, k as tf.Tensor5D, 1, 'same')))(tf.ones([3, 3, 3, 2, 8]))
        .dataSync()
    }),
  )
  assert.equal(dw.length, 27 * 2 * 8)
  assert.ok(
    dw.every((v) => v === 0),
    `${dw.filter((v) => v !== 0).length} non-zero`,
  )
})

test('signs of zero sums where every product underflows (a fused multiply-add can end a chain at −0): the direct jobs give the bits of im2col and the scatter, the filter gradient +0', () => {
  // x = 0 but one voxel of 1e-23, weights −1e-23: each product is −1e-46, below float32's smallest
  const tiny = (shape: number[], value: number, at = -1) =>
    tf.tensor(
      Float32Array.from({length: shape.reduce((a, b) => a * b, 1)}, (_, i) => (at < 0 || i === at ? value : 0)),
      shape,
    )
  const [direct, im2col, dw] = expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const x = tiny([1, 4, 5, 6, 1], 1e-23, 37) as tf.Tensor5D
      const w9 = tiny([3, 3, 3, 1, 9], -1e-23) as tf.Tensor5D
      // 1 → 8 runs the direct job, 1 → 9 im2col; their first 8 channels are the same chains
      const y8 = tf.conv3d(x, tf.slice(w9, [0, 0, 0, 0, 0], [3, 3, 3, 1, 8]) as tf.Tensor5D, 1, 'same')
      const y9 = tf.slice(tf.conv3d(x, w9, 1, 'same'), [0, 0, 0, 0, 0], [1, 4, 5, 6, 8])
      const dy = tiny([1, 4, 5, 6, 9], -1e-23)
      const grad = tf.grad((k: tf.Tensor) => tf.sum(tf.mul(tf.conv3d(x, k as tf.Tensor5D, 1, 'same'), dy)))(w9)
      return [y8, y9, grad].map((t) => t.dataSync() as Float32Array)
    }),
  )
  assert.ok(
    direct.every((v, i) => Object.is(v, im2col[i])),
    'the direct job: the same signed zeros as im2col + GEMM',
  )
  assert.ok(
    dw.every((v) => Object.is(v, 0)),
    'the filter gradient: +0 everywhere, as the sum of the slots from +0 gave',
  )
  // the transposed conv with a −0 bias and a −0 residual: the direct job (into 8 channels) against the scatter (into 9)
  const [up8, up9] = expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const dy = tiny([1, 2, 2, 3, 4], 1e-23)
      const w = tiny([2, 2, 2, 9, 4], -1e-23) as tf.Tensor5D
      const bias = tf.fill([9], -0) as tf.Tensor1D
      const residual = tf.fill([1, 4, 4, 6, 9], -0) as tf.Tensor5D
      const out8 = conv3dTransposeBias(
        dy as tf.Tensor5D,
        tf.slice(w, [0, 0, 0, 0, 0], [2, 2, 2, 8, 4]) as tf.Tensor5D,
        tf.slice(bias, [0], [8]) as tf.Tensor1D,
        [1, 4, 4, 6, 8],
        2,
        'valid',
        tf.slice(residual, [0, 0, 0, 0, 0], [1, 4, 4, 6, 8]) as tf.Tensor5D,
      )
      const out9 = tf.slice(
        conv3dTransposeBias(dy as tf.Tensor5D, w, bias, [1, 4, 4, 6, 9], 2, 'valid', residual),
        [0, 0, 0, 0, 0],
        [1, 4, 4, 6, 8],
      )
      return [out8, out9].map((t) => t.dataSync() as Float32Array)
    }),
  )
  assert.ok(
    up8.every((v, i) => Object.is(v, up9[i])),
    'the direct transposed job with bias and residual: the same signed zeros as the scatter and the residual pass',
  )
})

test('dilated forward conv matches the reference (dilation 2, and [1,2,3] valid)', () => {
  for (const [dilations, pad] of [
    [2, 'same'],
    [[1, 2, 3], 'valid'],
  ] as [number | Triple, 'same' | 'valid'][]) {
    const run = () =>
      expectNoLeakedTensors(() =>
        tf.tidy(() =>
          tf
            .conv3d(seeded([2, 9, 10, 11, 3], 5) as tf.Tensor5D, seeded([3, 3, 3, 3, 5], 6) as tf.Tensor5D, 1, pad, 'NDHWC', dilations)
            .dataSync(),
        ),
      )
    const err = relError(run(), withReferenceCpuKernels(run))
    assert.ok(err <= 1e-4, `dilation ${JSON.stringify(dilations)}: relative error ${err}`)
  }
})

test('conv3dTranspose (k2 s2, the U-Net up-sampling) and its gradients match the reference', () => {
  const run = () =>
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const x = seeded([2, 3, 4, 5, 6], 21) as tf.Tensor5D
        const w = seeded([2, 2, 2, 5, 6], 22) as tf.Tensor5D
        const f = (a: tf.Tensor, b: tf.Tensor) => tf.conv3dTranspose(a as tf.Tensor5D, b as tf.Tensor5D, [2, 6, 8, 10, 5], 2, 'same')
        const y = f(x, w)
        const dy = seeded(y.shape, 23)
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), dy)))([x, w])
        return [y, dx, dw].map((t) => t.dataSync() as Float32Array)
      }),
    )
  const fast = run()
  const reference = withReferenceCpuKernels(run)
  for (let k = 0; k < 3; k++) assert.ok(relError(fast[k], reference[k]) <= 1e-4, `output ${k}: ${relError(fast[k], reference[k])}`)
})

test('hand-computed: all-ones 3×3×3 conv counts the taps inside the volume', () => {
  // x = 1 on a 3×4×5 grid with 2 channels, w = 1 (3×3×3, 2→3): y at (d,h,w) = 2 · (taps inside),
  // taps inside = n(d)·n(h)·n(w) with n = 2 at a border and 3 inside (same padding, stride 1).
  const y = expectNoLeakedTensors(() =>
    tf.tidy(() => tf.conv3d(tf.ones([1, 3, 4, 5, 2]) as tf.Tensor5D, tf.ones([3, 3, 3, 2, 3]) as tf.Tensor5D, 1, 'same').arraySync()),
  ) as number[][][][][]
  const n = (i: number, size: number) => (i === 0 || i === size - 1 ? 2 : 3)
  for (let d = 0; d < 3; d++)
    for (let h = 0; h < 4; h++)
      for (let w = 0; w < 5; w++) for (let c = 0; c < 3; c++) assert.equal(y[0][d][h][w][c], 2 * n(d, 3) * n(h, 4) * n(w, 5))
  // stride 2, valid, 2×2×2 kernel of ones on x = voxel index: each output sums a 2×2×2 block
  const x = tf.tensor5d(
    Float32Array.from({length: 4 * 4 * 4}, (_, i) => i),
    [1, 4, 4, 4, 1],
  )
  const z = expectNoLeakedTensors(() => tf.tidy(() => tf.conv3d(x, tf.ones([2, 2, 2, 1, 1]) as tf.Tensor5D, 2, 'valid').dataSync()))
  // block at (0,0,0): indices {0,1,4,5,16,17,20,21} sum to 84; every step along w adds 2·8, along h 8·8, along d 32·8
  assert.deepEqual(
    Array.from(z),
    [0, 1, 2, 3, 4, 5, 6, 7].map((b) => 84 + 16 * (b & 1) + 64 * ((b >> 1) & 1) + 256 * (b >> 2)),
  )
  x.dispose()
})

test('hand-computed through Winograd F(4,3): all-ones conv and filter gradient on a grid of several cut tiles', () => {
  // 4 → 5 channels on 7×9×10: stride-1 3×3×3 with ≥ 4 channels runs as Winograd, tiles of 4³ outputs
  // cut by every side. y = 4 · (taps inside); with dy = 1, dW[tap] = number of outputs whose tap lies
  // inside = m(kd, 7)·m(kh, 9)·m(kw, 10), m(k, size) = size for the centre tap, size − 1 otherwise.
  const [D, H, W] = [7, 9, 10]
  assert.ok(winogradApplies(tf.backend_util.computeConv3DInfo([1, D, H, W, 4], [3, 3, 3, 4, 5], 1, 1, 'same')))
  const {y, dw} = expectNoLeakedTensors(() =>
    tf.tidy(() => {
      const x = tf.ones([1, D, H, W, 4]) as tf.Tensor5D
      const w = tf.ones([3, 3, 3, 4, 5]) as tf.Tensor5D
      const grad = tf.grad((filter: tf.Tensor) => tf.sum(tf.conv3d(x, filter as tf.Tensor5D, 1, 'same')))(w)
      return {y: tf.conv3d(x, w, 1, 'same').arraySync() as number[][][][][], dw: grad.arraySync() as number[][][][][]}
    }),
  )
  const n = (i: number, size: number) => (i === 0 || i === size - 1 ? 2 : 3)
  const close = (actual: number, expected: number, what: string) =>
    assert.ok(Math.abs(actual - expected) <= 1e-4 * expected, `${what}: ${actual} vs ${expected}`)
  for (let d = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++)
        for (let c = 0; c < 5; c++) close(y[0][d][h][w][c], 4 * n(d, D) * n(h, H) * n(w, W), `y[${d},${h},${w},${c}]`)
  const m = (k: number, size: number) => (k === 1 ? size : size - 1)
  for (let kd = 0; kd < 3; kd++)
    for (let kh = 0; kh < 3; kh++)
      for (let kw = 0; kw < 3; kw++)
        for (let ci = 0; ci < 4; ci++)
          for (let co = 0; co < 5; co++) close(dw[kd][kh][kw][ci][co], m(kd, D) * m(kh, H) * m(kw, W), `dW[${kd},${kh},${kw},${ci},${co}]`)
})

test('which kernels run: Winograd needs ≥ 8 tiles, half of them inside, ≥ 4 input channels; its filter gradient also ≤ 16 MiB slots', () => {
  const info = (size: number, cin: number, cout: number) =>
    tf.backend_util.computeConv3DInfo([1, size, size, size, cin], [3, 3, 3, cin, cout], 1, 1, 'same')
  assert.ok(winogradApplies(info(8, 4, 4)), '8³: 8 whole tiles')
  assert.ok(!winogradApplies(info(4, 64, 64)), '4³: one tile')
  assert.ok(!winogradApplies(info(6, 64, 64)), '6³: 8 tiles, 42 % of their outputs inside')
  assert.ok(!winogradApplies(info(16, 3, 8)), '3 input channels')
  assert.ok(winogradFilterGradApplies(info(12, 128, 128)), '128 → 128: 14 MiB slots')
  assert.ok(winogradApplies(info(12, 192, 192)) && !winogradFilterGradApplies(info(12, 192, 192)), '192 → 192: forward only')
})

test('SIPL_WINOGRAD=0 computes stride-1 3×3×3 convolutions by im2col; by default they run as Winograd', () => {
  const c = CASES.find((k) => k.name.startsWith('Winograd: many chunks'))!
  const bits = (a: Float32Array) => Buffer.from(a.buffer)
  const byDefault = convAndGrads(c, 5)
  setWinograd(false)
  const im2col = convAndGrads(c, 5)
  setWinograd(true)
  process.env.SIPL_WINOGRAD = '0'
  try {
    const switchedOff = convAndGrads(c, 5)
    for (const [k, what] of ['y', 'dx', 'dw'].entries()) {
      assert.ok(bits(switchedOff[k]).equals(bits(im2col[k])), `${what}: SIPL_WINOGRAD=0 is not the im2col path`)
      // a different algorithm rounds differently: equal bits would mean Winograd never ran
      assert.ok(!bits(byDefault[k]).equals(bits(im2col[k])), `${what}: the default path gave im2col's bits`)
    }
  } finally {
    delete process.env.SIPL_WINOGRAD
  }
})

test('the worker pool uses every core (or SIPL_THREADS) and the kernels leave no tensors behind', () => {
  // convAndGrads checks that nothing is left behind
  convAndGrads(CASES[5], 99)
  const rt = existingRuntime()
  assert.ok(rt, 'the runtime starts on first use')
  const configured = environment().threads
  assert.equal(rt.info.threads, configured > 0 ? configured : availableParallelism())
})

test('with worker threads, results are the same when the workers do take part', {skip: availableParallelism() < 2 && 'one core'}, () => {
  const rt = existingRuntime()!
  const c = CASES[5]
  const reference = withReferenceCpuKernels(() => convAndGrads(c, 42))
  // workers join a job only when they wake up in time; repeat until they have done a share
  const start = rt.workerJobs()
  const deadline = Date.now() + 20_000
  let fast = convAndGrads(c, 42)
  while (rt.workerJobs() === start && Date.now() < deadline) fast = convAndGrads(c, 42)
  assert.ok(rt.workerJobs() > start, 'no worker ever joined a job')
  for (const [k, what] of ['y', 'dx', 'dw'].entries()) assert.ok(relError(fast[k], reference[k]) <= 1e-4, what)
})

test(
  'gradients are the same bits in every call, however many threads join (fixed summation order)',
  {skip: availableParallelism() < 2 && 'one core'},
  () => {
    const rt = existingRuntime()!
    const pause = new Int32Array(new SharedArrayBuffer(4))
    // stride 2 with overlapping taps (slabbed input gradient, slotted filter gradient), stride 1, and Winograd (slotted)
    for (const c of [CASES[2], CASES[5], CASES.find((k) => k.name.startsWith('Winograd: many chunks'))!]) {
      const first = convAndGrads(c, 7)
      const start = rt.workerJobs()
      for (let i = 0; i < 12; i++) {
        // every other call after a pause, so that the workers have gone to sleep and may join late or not at all
        if (i % 2) Atomics.wait(pause, 0, 0, 3)
        const again = convAndGrads(c, 7)
        for (const [k, what] of ['y', 'dx', 'dw'].entries())
          assert.ok(Buffer.from(again[k].buffer).equals(Buffer.from(first[k].buffer)), `${c.name}: ${what} differs in call ${i + 1}`)
      }
      assert.ok(rt.workerJobs() > start, 'no worker took part: the check proved nothing')
    }
  },
)
