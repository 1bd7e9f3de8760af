// The shape logic of the tiled webgpu conv3d programs, checked without a GPU.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {chooseTiling, parityClasses, Conv3DBackpropFilterTiledProgram, type ConvGeometry} from '../../src/kernels/webgpu/programs.js'

function geometry(over: Partial<ConvGeometry>): ConvGeometry {
  return {
    ...{batch: 1, inD: 5, inH: 5, inW: 5, inC: 3, outD: 5, outH: 5, outW: 5, outC: 4},
    ...{kD: 3, kH: 3, kW: 3, sD: 1, sH: 1, sW: 1, padD: 1, padH: 1, padW: 1},
    ...over,
  }
}

test('parity classes of a k3 s2 pad-1 axis: even voxels see 1 tap, odd voxels 2, every voxel in one class', () => {
  // id = od·2 − 1 + f  ⇒  f ≡ id + 1 (mod 2): id even → f ∈ {1}; id odd → f ∈ {0, 2}
  const classes = parityClasses(geometry({sD: 2, sH: 1, sW: 1, inD: 5, outD: 3}))
  assert.equal(classes.length, 2)
  const [even, odd] = classes
  assert.deepEqual([even.rD, even.f0D, even.tD, even.nD], [0, 1, 1, 3]) // id 0, 2, 4
  assert.deepEqual([odd.rD, odd.f0D, odd.tD, odd.nD], [1, 0, 2, 2]) // id 1, 3
  // stride-1 axes: one class with all 3 taps and all 5 voxels
  for (const c of classes) assert.deepEqual([c.f0H, c.tH, c.nH, c.f0W, c.tW, c.nW], [0, 3, 5, 0, 3, 5])
})

test('parity classes of the k2 s2 transposed convolution: one tap per axis, 8 classes covering the volume', () => {
  const g = geometry({
    inD: 6,
    inH: 8,
    inW: 10,
    kD: 2,
    kH: 2,
    kW: 2,
    sD: 2,
    sH: 2,
    sW: 2,
    padD: 0,
    padH: 0,
    padW: 0,
    outD: 3,
    outH: 4,
    outW: 5,
  })
  const classes = parityClasses(g)
  assert.equal(classes.length, 8)
  for (const c of classes) {
    assert.deepEqual([c.tD, c.tH, c.tW], [1, 1, 1])
    assert.deepEqual([c.f0D, c.f0H, c.f0W], [c.rD, c.rH, c.rW]) // tap f = id mod 2
  }
  assert.equal(
    classes.reduce((s, c) => s + c.nD * c.nH * c.nW, 0),
    6 * 8 * 10,
  )
})

test('a stride larger than the kernel leaves classes with no taps (their voxels get zero gradient)', () => {
  const classes = parityClasses(geometry({kD: 1, kH: 1, kW: 1, sD: 2, sH: 1, sW: 1, padD: 0, padH: 0, padW: 0}))
  assert.deepEqual(
    classes.map((c) => c.tD),
    [1, 0],
  )
})

test('tilings fit 16 KiB of workgroup memory and divide the tile loads evenly for every channel and row count', () => {
  for (const m of [1, 5, 16, 27, 100, 432, Infinity])
    for (let n = 1; n <= 130; n++) {
      const t = chooseTiling(n, m)
      const threads = t.wm * t.wn
      const tileM = t.wm * t.tm
      const tileN = t.wn * t.tn
      const where = `N=${n} M=${m}`
      assert.ok(((tileM + 1) * t.tk + t.tk * (tileN + 1)) * 4 <= 16384, where)
      assert.ok(threads >= 16 && threads <= 256 && threads % t.tk === 0 && (tileM * t.tk) % threads === 0, where)
      assert.ok(tileN >= Math.min(n, 64), `${where}: tile narrower than needed`)
      // few rows: the tile is at most twice as tall as needed, unless the thread floor stops it
      assert.ok(tileM < 2 * m || threads < 32, `${where}: tile of ${tileM} rows`)
    }
})

test('the filter gradient splits K only when there is enough of it, and the splits cover K exactly', () => {
  const small = new Conv3DBackpropFilterTiledProgram(geometry({}))
  assert.equal(small.splits, 1)
  assert.deepEqual(small.outputShape, [3, 3, 3, 3, 4])
  const big = new Conv3DBackpropFilterTiledProgram(geometry({batch: 2, inD: 32, inH: 32, inW: 32, outD: 32, outH: 32, outW: 32}))
  assert.ok(big.splits > 1)
  const k = 2 * 32 ** 3
  const kSplit = big.uniformData()[7].data[0] // uniforms: sD, sH, sW, padD, padH, padW, K, kSplit
  assert.equal(kSplit % chooseTiling(4, 27 * 3).tk, 0)
  assert.ok(kSplit * big.splits >= k && kSplit * (big.splits - 1) < k)
  assert.deepEqual(big.outputShape, [big.splits, 27 * 3, 4])
})
