import {test} from 'node:test'
import assert from 'node:assert/strict'
import {dice, evaluateLabels, hd95, squaredDistanceTransform, surface, surfaceDice} from '../../src/evaluate/metrics.js'
import {percentile} from '../../src/util/percentile.js'
import type {Vec3} from '../../src/util/vec3.js'

function cube(shape: Vec3, from: Vec3, size: Vec3): Uint8Array {
  const [X, Y] = shape
  const m = new Uint8Array(shape[0] * shape[1] * shape[2])
  for (let z = from[2]; z < from[2] + size[2]; z++)
    for (let y = from[1]; y < from[1] + size[1]; y++) for (let x = from[0]; x < from[0] + size[0]; x++) m[x + X * (y + Y * z)] = 1
  return m
}

test('identical masks: Dice 1, HD95 0, surface Dice 1', () => {
  const shape: Vec3 = [12, 10, 8]
  const m = cube(shape, [2, 3, 1], [5, 4, 3])
  assert.equal(dice(m, m), 1)
  assert.equal(hd95(m, m, shape, [0.7, 1.2, 3]), 0)
  assert.equal(surfaceDice(m, m, shape, [0.7, 1.2, 3], 0), 1)
})

test('Dice of two overlapping boxes equals 2|A∩B|/(|A|+|B|) counted by hand', () => {
  const shape: Vec3 = [10, 10, 10]
  // A: 4×4×4 = 64 voxels at x 1..4; B: same box shifted 2 along x → overlap 2×4×4 = 32
  const a = cube(shape, [1, 1, 1], [4, 4, 4])
  const b = cube(shape, [3, 1, 1], [4, 4, 4])
  assert.equal(dice(a, b), (2 * 32) / 128)
})

test('two cubes shifted by k voxels with anisotropic spacing: HD95 = k × spacing along the shift', () => {
  const shape: Vec3 = [16, 14, 12]
  const spacing: Vec3 = [0.8, 1.5, 2.5]
  // why the 95th percentile equals the maximum here: every voxel of A's face opposite the
  // shift (4×4 of the 56 surface voxels, 29 %) is exactly k·s from B's surface, and no surface
  // distance is larger, so more than 5 % of the distances sit at the maximum.
  for (const [axis, k] of [
    [0, 1],
    [0, 2],
    [1, 2],
    [2, 3],
  ] as const) {
    const from: Vec3 = [3, 3, 3]
    const shifted: Vec3 = [...from] as Vec3
    shifted[axis] += k
    const a = cube(shape, from, [4, 4, 4])
    const b = cube(shape, shifted, [4, 4, 4])
    const got = hd95(a, b, shape, spacing)
    assert.ok(got !== null)
    assert.ok(Math.abs(got - k * spacing[axis]) < 1e-9, `axis ${axis} k ${k}: ${got} vs ${k * spacing[axis]}`)
    // surface Dice: with tolerance ≥ the shift everything is within tolerance; below the
    // smallest spacing only the surface voxels shared by both surfaces count
    assert.equal(surfaceDice(a, b, shape, spacing, k * spacing[axis]), 1)
  }
})

test('surface Dice below the shift counts only coincident surface voxels (hand count)', () => {
  const shape: Vec3 = [12, 12, 12]
  const spacing: Vec3 = [2, 1, 1]
  // A = 4³ at x 2..5, B = 4³ at x 3..6 (shift 1 voxel = 2 mm along x). Tolerance 1 mm < 2 mm.
  // A's surface: 56 voxels. An A surface voxel is within 1 mm of B's surface when
  //  - it lies on B's surface: the 4×4 border ring (12 voxels) at x = 3, 4, 5 → 36, or
  //  - it is one of the 4 inner voxels of A's face x = 5, which lie inside B one voxel (1 mm along
  //    y or z) from B's side faces → 4; A's face x = 2 is 2 mm from B (outside the tolerance).
  // By symmetry B → A also gives 40, so surface Dice = (40 + 40) / (56 + 56).
  const a = cube(shape, [2, 2, 2], [4, 4, 4])
  const b = cube(shape, [3, 2, 2], [4, 4, 4])
  assert.ok(Math.abs(surfaceDice(a, b, shape, spacing, 1) - 80 / 112) < 1e-12)
})

test('one empty mask: Dice 0, HD95 null, surface Dice 0; both empty: 1, 0, 1', () => {
  const shape: Vec3 = [6, 6, 6]
  const empty = new Uint8Array(216)
  const m = cube(shape, [1, 1, 1], [2, 2, 2])
  assert.equal(dice(empty, m), 0)
  assert.equal(dice(m, empty), 0)
  assert.equal(hd95(empty, m, shape, [1, 1, 1]), null)
  assert.equal(hd95(m, empty, shape, [1, 1, 1]), null)
  assert.equal(surfaceDice(m, empty, shape, [1, 1, 1], 2), 0)
  assert.equal(dice(empty, empty), 1)
  assert.equal(hd95(empty, empty, shape, [1, 1, 1]), 0)
  assert.equal(surfaceDice(empty, empty, shape, [1, 1, 1], 2), 1)
  const labels = new Uint8Array(216)
  labels.set(m.map((v) => v * 2))
  const metrics = evaluateLabels(labels, labels, shape, [1, 1, 1], 2, {tolerance: 1})
  assert.deepEqual(metrics[0], {dice: 1, hd95: 0, surfaceDice: 1, refEmpty: true, predEmpty: true})
  assert.deepEqual(metrics[1], {dice: 1, hd95: 0, surfaceDice: 1, refEmpty: false, predEmpty: false})
})

test('distance transform equals brute-force anisotropic distances', () => {
  const shape: Vec3 = [7, 5, 6]
  const spacing: Vec3 = [0.5, 1.25, 3]
  const seeds = new Uint8Array(7 * 5 * 6)
  for (const i of [3, 40, 77, 150, 209]) seeds[i] = 1
  const got = squaredDistanceTransform(seeds, shape, spacing)
  const pts = [...seeds.keys()].filter((i) => seeds[i]).map((i) => [i % 7, Math.floor(i / 7) % 5, Math.floor(i / 35)])
  for (let i = 0; i < seeds.length; i++) {
    const [x, y, z] = [i % 7, Math.floor(i / 7) % 5, Math.floor(i / 35)]
    const want = Math.min(...pts.map(([a, b, c]) => ((x - a) * 0.5) ** 2 + ((y - b) * 1.25) ** 2 + ((z - c) * 3) ** 2))
    assert.ok(Math.abs(got[i] - want) < 1e-9, `voxel ${i}: ${got[i]} vs ${want}`)
  }
})

test('surface of a solid 3³ cube is its 26 outer voxels; percentile matches numpy linear interpolation', () => {
  const shape: Vec3 = [5, 5, 5]
  const s = surface(cube(shape, [1, 1, 1], [3, 3, 3]), shape)
  assert.equal(
    s.reduce((a, b) => a + b, 0),
    26,
  )
  // numpy.percentile([1, 2, 3, 4], 95) = 3 + 0.85 · (4 − 3) = 3.85
  assert.ok(Math.abs(percentile([4, 1, 3, 2], 95) - 3.85) < 1e-12)
})
