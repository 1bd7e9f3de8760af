import {test} from 'node:test'
import assert from 'node:assert/strict'
import {
  flipBlock,
  gaussianImportance,
  mirrorMasks,
  importanceSum,
  probabilitiesToLabels,
  slidingWindow,
  slidingWindowLabels,
  slidingWindowPlanes,
  windowStarts,
} from '../../src/evaluate/sliding-window.js'
import type {MirrorAxis} from '../../src/evaluate/mirroring.js'
import type {Vec3} from '../../src/util/vec3.js'

/** A position-dependent "model": p_k(voxel) = sigmoid of a fixed function of the input and k. */
function voxelwise(C: number, K: number) {
  return async (batch: Float32Array, n: number): Promise<Float32Array> => {
    const voxels = batch.length / C
    const out = new Float32Array(voxels * K)
    for (let v = 0; v < voxels; v++)
      for (let k = 0; k < K; k++) {
        let s = 0
        for (let c = 0; c < C; c++) s += batch[v * C + c] * (k + 1 + c)
        out[v * K + k] = 1 / (1 + Math.exp(-s))
      }
    assert.equal(voxels % n, 0)
    return out
  }
}

function randomVolume(shape: Vec3, C: number, seed: number): Float32Array {
  let s = seed
  return Float32Array.from({length: shape[0] * shape[1] * shape[2] * C}, () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648 - 0.5
  })
}

test('one window covering the volume reproduces the direct whole-volume prediction', async () => {
  const shape: Vec3 = [6, 5, 4]
  const image = randomVolume(shape, 2, 3)
  const predict = voxelwise(2, 3)
  const direct = await predict(image, 1)
  const got = await slidingWindow({image, shape, channels: 2}, predict, {
    patch: shape,
    numClasses: 3,
    overlap: 0.5,
    sigmaScale: 0.125,
    mirrorAxes: [],
    batchSize: 1,
  })
  assert.equal(got.length, direct.length)
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - direct[i]) < 1e-6, `voxel ${i}`)
})

test('a voxelwise model gives the same result through overlapping windows, padding and TTA', async () => {
  // for a model whose output at a voxel depends only on that voxel, every window agrees, so the
  // Gaussian-weighted average must equal the direct prediction everywhere (weights normalise)
  const shape: Vec3 = [11, 7, 9]
  const image = randomVolume(shape, 1, 11)
  const predict = voxelwise(1, 2)
  const direct = await predict(image, 1)
  for (const mirrorAxes of [[], ['x', 'y', 'z'], ['z']] as MirrorAxis[][]) {
    const got = await slidingWindow({image, shape, channels: 1}, predict, {
      patch: [4, 8, 4],
      numClasses: 2,
      overlap: 0.5,
      sigmaScale: 0.125,
      mirrorAxes,
      batchSize: 3,
    })
    for (let i = 0; i < got.length; i++)
      assert.ok(Math.abs(got[i] - direct[i]) < 1e-5, `mirror [${mirrorAxes}] voxel ${i}: ${got[i]} vs ${direct[i]}`)
  }
})

/**
 * The accumulation as it was before it was streamed along z: whole-volume Float32Array sums
 * (K per voxel + the weights), divided at the end. The oracle for the streamed version.
 */
async function wholeVolumeReference(
  image: Float32Array,
  shape: Vec3,
  C: number,
  K: number,
  patch: Vec3,
  predict: (batch: Float32Array, n: number) => Promise<Float32Array>,
  o: {overlap: number; sigmaScale: number; tta: boolean; batchSize: number},
): Promise<Float32Array> {
  const [X, Y, Z] = shape
  const [px, py, pz] = patch
  const [PX, PY, PZ] = [Math.max(X, px), Math.max(Y, py), Math.max(Z, pz)]
  const weights = gaussianImportance(patch, o.sigmaScale)
  const acc = new Float32Array(PX * PY * PZ * K)
  const norm = new Float32Array(PX * PY * PZ)
  const starts: Vec3[] = []
  for (const z of windowStarts(PZ, pz, o.overlap))
    for (const y of windowStarts(PY, py, o.overlap)) for (const x of windowStarts(PX, px, o.overlap)) starts.push([x, y, z])
  const flips = o.tta ? [0, 1, 2, 3, 4, 5, 6, 7] : [0]
  const wv = px * py * pz
  for (let b = 0; b < starts.length; b += o.batchSize) {
    const group = starts.slice(b, b + o.batchSize)
    const blocks = group.map(([x0, y0, z0]) => {
      const block = new Float32Array(wv * C)
      for (let z = 0; z < pz; z++)
        for (let y = 0; y < py; y++)
          for (let x = 0; x < px; x++)
            for (let c = 0; c < C; c++) {
              const [vx, vy, vz] = [x0 + x, y0 + y, z0 + z]
              if (vx < X && vy < Y && vz < Z) block[c + C * (x + px * (y + py * z))] = image[c + C * (vx + X * (vy + Y * vz))]
            }
      return block
    })
    const summed = group.map(() => new Float32Array(wv * K))
    for (const flip of flips) {
      const batch = new Float32Array(group.length * wv * C)
      blocks.forEach((block, i) => batch.set(flipBlock(block, patch, C, flip), i * wv * C))
      const probs = await predict(batch, group.length)
      for (let i = 0; i < group.length; i++) {
        const back = flipBlock(probs.subarray(i * wv * K, (i + 1) * wv * K), patch, K, flip)
        for (let j = 0; j < back.length; j++) summed[i][j] += back[j]
      }
    }
    group.forEach(([x0, y0, z0], i) => {
      for (let z = 0; z < pz; z++)
        for (let y = 0; y < py; y++)
          for (let x = 0; x < px; x++) {
            const wi = x + px * (y + py * z)
            const vi = x0 + x + PX * (y0 + y + PY * (z0 + z))
            norm[vi] += weights[wi]
            for (let k = 0; k < K; k++) acc[vi * K + k] += (weights[wi] * summed[i][wi * K + k]) / flips.length
          }
    })
  }
  const out = new Float32Array(X * Y * Z * K)
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++)
        for (let k = 0; k < K; k++) out[(x + X * (y + Y * z)) * K + k] = acc[(x + PX * (y + PY * z)) * K + k] / norm[x + PX * (y + PY * z)]
  return out
}

/** A model whose output at a voxel depends on its neighbours and on where it sits in the window, so windows disagree. */
function contextual(C: number, K: number, patch: Vec3) {
  const [px, py, pz] = patch
  return async (batch: Float32Array, n: number): Promise<Float32Array> => {
    const wv = px * py * pz
    const out = new Float32Array(n * wv * K)
    for (let b = 0; b < n; b++)
      for (let v = 0; v < wv; v++) {
        const next = b * wv + ((v + 1) % wv)
        for (let k = 0; k < K; k++) {
          let s = (k - 1) * 0.3 + 0.05 * ((v % px) - px / 2)
          for (let c = 0; c < C; c++) s += batch[(b * wv + v) * C + c] * (k + 1) - batch[next * C + c] * (c + 0.5)
          out[(b * wv + v) * K + k] = 1 / (1 + Math.exp(-3 * s))
        }
      }
    return out
  }
}

test('streamed along z, the probabilities and labels equal a whole-volume accumulation bit for bit', async () => {
  // several window rows in z (patch 4 of 13 planes, with 0.5 and 0.25 overlap), batches that
  // straddle rows, padding in x (5 < 6), TTA on and off
  const shape: Vec3 = [5, 7, 13]
  const patch: Vec3 = [6, 4, 4]
  for (const [C, K, overlap, tta, batchSize] of [
    [1, 3, 0.5, false, 1],
    [2, 2, 0.25, true, 4],
    [1, 4, 0.5, true, 3],
  ] as const) {
    const image = randomVolume(shape, C, 5 + K)
    const predict = contextual(C, K, patch)
    const options = {
      patch,
      numClasses: K,
      overlap,
      sigmaScale: 0.125,
      tta,
      mirrorAxes: (tta ? ['x', 'y', 'z'] : []) as MirrorAxis[],
      batchSize,
    }
    const expected = await wholeVolumeReference(image, shape, C, K, patch, predict, options)
    const got = await slidingWindow({image, shape, channels: C}, predict, options)
    assert.equal(got.length, expected.length)
    const firstDiff = got.findIndex((v, i) => !Object.is(v, expected[i]))
    assert.equal(firstDiff, -1, `C ${C} K ${K} tta ${tta}: value ${firstDiff} ${got[firstDiff]} vs ${expected[firstDiff]}`)
    for (const overlappingRegions of [false, true]) {
      const labels = await slidingWindowLabels({image, shape, channels: C}, predict, {...options, threshold: 0.5, overlappingRegions})
      const want = probabilitiesToLabels(expected, K, 0.5, overlappingRegions)
      assert.deepEqual([...labels], [...want])
      assert.ok(new Set(want).size > 1, 'the labels are not all one class')
    }
  }
})

test('planes are handed on as soon as no later window covers them, so only one window depth is held', async () => {
  // z: 20 planes, patch 4, overlap 0.5 → window rows start at 0, 2, …, 16 (9 rows of 1 window)
  const shape: Vec3 = [4, 4, 20]
  const patch: Vec3 = [4, 4, 4]
  const starts = windowStarts(20, 4, 0.5)
  let calls = 0
  const inner = voxelwise(1, 2)
  const predict = async (batch: Float32Array, n: number) => {
    calls++
    return inner(batch, n)
  }
  const emitted: {z: number; calls: number}[] = []
  await slidingWindowPlanes(
    {image: randomVolume(shape, 1, 2), shape, channels: 1},
    predict,
    {
      patch,
      numClasses: 2,
      overlap: 0.5,
      sigmaScale: 0.125,
      mirrorAxes: [],
      batchSize: 1,
    },
    (z) => emitted.push({z, calls}),
  )
  assert.deepEqual(
    emitted.map((e) => e.z),
    Array.from({length: 20}, (_, z) => z),
  )
  // plane z is emitted when the first window starting above z is accumulated, i.e. after exactly
  // the windows that start at or below z have run (plus that one)
  for (const {z, calls: seen} of emitted) {
    const covering = starts.filter((s) => s <= z).length
    const expected = covering === starts.length ? starts.length : covering + 1
    assert.equal(seen, expected, `plane ${z}`)
  }
})

test('Gaussian weights sum correctly at overlaps', () => {
  // x axis: size 6, patch 4, overlap 0.5 → target step 2, starts [0, 2]; y, z: one window.
  assert.deepEqual(windowStarts(6, 4, 0.5), [0, 2])
  // nnU-Net steps: size 10, patch 4, overlap 0.5 → ceil(6/2)+1 = 4 windows at 0, 2, 4, 6
  assert.deepEqual(windowStarts(10, 4, 0.5), [0, 2, 4, 6])
  assert.deepEqual(windowStarts(3, 4, 0.5), [0])
  const patch: Vec3 = [4, 2, 2]
  const sigmaScale = 0.25
  const g = gaussianImportance(patch, sigmaScale)
  // 1-D profiles: σ = p/4; centre (p−1)/2
  const profile = (p: number, i: number) => Math.exp(-((i - (p - 1) / 2) ** 2) / (2 * (p * sigmaScale) ** 2))
  for (let z = 0; z < 2; z++)
    for (let y = 0; y < 2; y++)
      for (let x = 0; x < 4; x++) assert.ok(Math.abs(g[x + 4 * (y + 2 * z)] - profile(4, x) * profile(2, y) * profile(2, z)) < 1e-6)
  const sum = importanceSum([6, 2, 2], patch, 0.5, sigmaScale)
  // voxel x = 2 and 3 are covered by window 0 (its x = 2, 3) and window 1 (its x = 0, 1)
  const yz = profile(2, 0) * profile(2, 0)
  assert.ok(Math.abs(sum[0] - profile(4, 0) * yz) < 1e-6)
  assert.ok(Math.abs(sum[2] - (profile(4, 2) + profile(4, 0)) * yz) < 1e-6)
  assert.ok(Math.abs(sum[3] - (profile(4, 3) + profile(4, 1)) * yz) < 1e-6)
  assert.ok(Math.abs(sum[5] - profile(4, 3) * yz) < 1e-6)
})

test('flipBlock mirrors over the requested axes and is its own inverse', () => {
  const dims: Vec3 = [3, 2, 2]
  const src = Float32Array.from({length: 12 * 2}, (_, i) => i)
  const fx = flipBlock(src, dims, 2, 1)
  // voxel (0,0,0) takes (2,0,0): channels 4, 5
  assert.deepEqual([...fx.subarray(0, 2)], [4, 5])
  for (let f = 0; f < 8; f++) assert.deepEqual([...flipBlock(flipBlock(src, dims, 2, f), dims, 2, f)], [...src])
})

test('mirrorMasks: every combination of the given axes, identity first', () => {
  assert.deepEqual(mirrorMasks([]), [0])
  assert.deepEqual(mirrorMasks(['x']), [0, 1])
  assert.deepEqual(mirrorMasks(['z', 'x']), [0, 1, 4, 5])
  assert.deepEqual(mirrorMasks(['x', 'y', 'z']), [0, 1, 2, 3, 4, 5, 6, 7])
})

test('probabilities become labels: argmax above threshold, or nested regions', () => {
  const probs = Float32Array.from([0.2, 0.7, 0.6, 0.1, 0.3, 0.4, 0.9, 0.8, 0.6])
  assert.deepEqual([...probabilitiesToLabels(probs, 3, 0.5, false)], [2, 0, 1])
  // nested: the innermost region above threshold wins (voxel 0: ET 0.6 ≥ 0.5 → label 3)
  assert.deepEqual([...probabilitiesToLabels(probs, 3, 0.5, true)], [3, 0, 3])
})

test('largest-component post-processing keeps the biggest 26-connected blob of each class', async () => {
  const {keepLargestComponent} = await import('../../src/evaluate/postprocess.js')
  // 5×3×1 (index = x + 5y): class 1 at 0, 1, 3 and 6 = (1, 1), which touches 0 and 1, so {0, 1, 6}
  // is one blob and {3} another; class 2 at 10 = (0, 2) and {12, 13}: the larger pair stays
  const labels = Uint8Array.from([1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 2, 2, 0])
  const out = keepLargestComponent(labels, [5, 3, 1], 2)
  assert.deepEqual([...out], [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 2, 0])
})
