import {test} from 'node:test'
import assert from 'node:assert/strict'
import {labelsToGrid, resampleGrid, resampleLinear, resampleNearest} from '../../src/data/resample.js'
import {Rng} from '../../src/util/rng.js'
import {matMul, type Mat4} from '../../src/io/orientation.js'
import type {Vec3} from '../../src/util/vec3.js'

const CASES: {shape: Vec3; spacing: Vec3; target: Vec3}[] = [
  {shape: [20, 17, 9], spacing: [0.8, 0.8, 2.5], target: [1.5, 1.5, 1.5]},
  {shape: [7, 11, 13], spacing: [2, 1, 1], target: [0.7, 1.3, 0.5]},
  {shape: [16, 16, 16], spacing: [1.5, 1.5, 1.5], target: [1.5, 1.5, 1.5]},
]

function apply(t: Mat4, o: number[]): number[] {
  return [0, 1, 2].map((r) => t[r][0] * o[0] + t[r][1] * o[1] + t[r][2] * o[2] + t[r][3])
}

test('a constant volume stays constant (trilinear and nearest)', () => {
  for (const {shape, spacing, target} of CASES) {
    const grid = resampleGrid(shape, spacing, target)
    const src = new Float32Array(shape[0] * shape[1] * shape[2]).fill(-123.25)
    const out = resampleLinear(src, shape, grid)
    assert.equal(out.length, grid.shape[0] * grid.shape[1] * grid.shape[2])
    assert.ok(
      out.every((v) => v === -123.25),
      `shape ${shape}`,
    )
    assert.ok(resampleNearest(src, shape, grid).every((v) => v === -123.25))
  }
})

test('trilinear reproduces a linear ramp exactly wherever the output voxel lies inside the input grid', () => {
  const f = (x: number, y: number, z: number) => 2 * x - 3 * y + 0.5 * z + 7
  for (const {shape, spacing, target} of CASES) {
    const [X, Y, Z] = shape
    const src = new Float32Array(X * Y * Z)
    for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) src[x + X * (y + Y * z)] = f(x, y, z)
    const grid = resampleGrid(shape, spacing, target)
    const out = resampleLinear(src, shape, grid)
    const [OX, OY, OZ] = grid.shape
    let checked = 0
    for (let z = 0; z < OZ; z++)
      for (let y = 0; y < OY; y++)
        for (let x = 0; x < OX; x++) {
          const c = apply(grid.voxelTransform, [x, y, z])
          if (c.some((v, a) => v < 0 || v > shape[a] - 1)) continue
          checked++
          const expected = f(c[0], c[1], c[2])
          assert.ok(Math.abs(out[x + OX * (y + OY * z)] - expected) < 1e-3, `at ${[x, y, z]}: ${out[x + OX * (y + OY * z)]} vs ${expected}`)
        }
    assert.ok(checked > 0.3 * out.length, `only ${checked} interior voxels checked`)
  }
})

test('hand-computed trilinear value: the centre of a 2×2×2 cube is the mean of its corners', () => {
  const src = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7])
  // 2 voxels of 1 mm → 3 voxels of 2/3 mm centred on the same field of view: the middle one is the cube centre
  const grid = resampleGrid([2, 2, 2], [1, 1, 1], [2 / 3, 2 / 3, 2 / 3])
  assert.deepEqual(grid.shape, [3, 3, 3])
  const out = resampleLinear(src, [2, 2, 2], grid)
  assert.ok(Math.abs(out[1 + 3 * (1 + 3 * 1)] - 3.5) < 1e-6)
})

test('nearest neighbour never invents a label value', () => {
  const rng = new Rng(5)
  const values = [0, 3, 7, 200]
  for (const {shape, spacing, target} of CASES) {
    const src = Uint8Array.from({length: shape[0] * shape[1] * shape[2]}, () => values[rng.int(values.length)])
    const out = resampleNearest(src, shape, resampleGrid(shape, spacing, target))
    assert.ok(out instanceof Uint8Array)
    assert.ok(new Set(out).size <= values.length && [...new Set(out)].every((v) => values.includes(v)))
  }
})

test('physical extent (shape × spacing) is preserved to within half a target voxel and the grid stays centred', () => {
  for (const {shape, spacing, target} of CASES) {
    const grid = resampleGrid(shape, spacing, target)
    const affine: Mat4 = [
      [spacing[0], 0, 0, 10],
      [0, spacing[1], 0, -4],
      [0, 0, spacing[2], 3],
      [0, 0, 0, 1],
    ]
    const next = matMul(affine, grid.voxelTransform)
    for (let a = 0; a < 3; a++) {
      assert.ok(Math.abs(grid.shape[a] * target[a] - shape[a] * spacing[a]) <= target[a] / 2 + 1e-9, `axis ${a}`)
      assert.ok(Math.abs(next[a][a] - target[a]) < 1e-12, 'the new affine has the target spacing')
      const oldCentre = affine[a][3] + ((shape[a] - 1) / 2) * spacing[a]
      const newCentre = next[a][3] + ((grid.shape[a] - 1) / 2) * next[a][a]
      assert.ok(Math.abs(oldCentre - newCentre) < 1e-9, 'field-of-view centre fixed')
    }
  }
})

test('labelsToGrid: identity on the same grid, shifts by whole voxels, fills outside with 0', () => {
  const shape: Vec3 = [4, 3, 2]
  const src = Uint8Array.from({length: 24}, (_, i) => i % 5)
  const a: Mat4 = [
    [2, 0, 0, 0],
    [0, 2, 0, 0],
    [0, 0, 2, 0],
    [0, 0, 0, 1],
  ]
  assert.deepEqual(Array.from(labelsToGrid(src, shape, a, shape, a)), Array.from(src))
  const shifted: Mat4 = a.map((row) => row.slice())
  shifted[0][3] = 2 // destination voxel x=0 is source voxel x=1
  const out = labelsToGrid(src, shape, a, shape, shifted)
  for (let z = 0; z < 2; z++)
    for (let y = 0; y < 3; y++)
      for (let x = 0; x < 4; x++) assert.equal(out[x + 4 * (y + 3 * z)], x === 3 ? 0 : src[x + 1 + 4 * (y + 3 * z)])
})
