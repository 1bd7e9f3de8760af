/**
 * Voxel-to-world geometry: 4×4 affines, the closest-canonical orientation (nibabel's
 * `io_orientation` / `aff2axcodes`), and voxel-exact reorientation by axis permutation and flips.
 *
 * Conventions: an affine maps a voxel index (i, j, k, 1) to RAS+ world millimetres, as in NIfTI.
 * Volumes are stored x-fastest: index = i + X * (j + Y * k).
 */
import type {Vec3} from '../util/vec3.js'

export type Mat4 = number[][]

export function identity4(): Mat4 {
  return [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ]
}

export function matMul(a: Mat4, b: Mat4): Mat4 {
  const n = a.length
  const m = b[0].length
  const out: Mat4 = Array.from({length: n}, () => new Array<number>(m).fill(0))
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0
      for (let k = 0; k < b.length; k++) s += a[i][k] * b[k][j]
      out[i][j] = s
    }
  return out
}

/** Inverse of an affine 4×4 (last row 0 0 0 1). */
export function invertAffine(a: Mat4): Mat4 {
  const r = invert3(a.slice(0, 3).map((row) => row.slice(0, 3)))
  const t = [a[0][3], a[1][3], a[2][3]]
  const out = identity4()
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) out[i][j] = r[i][j]
    out[i][3] = -(r[i][0] * t[0] + r[i][1] * t[1] + r[i][2] * t[2])
  }
  return out
}

export function det3(m: number[][]): number {
  return (
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
  )
}

export function invert3(m: number[][]): number[][] {
  const d = det3(m)
  if (d === 0 || !Number.isFinite(d)) throw new Error('singular 3×3 matrix')
  const c = (r0: number, c0: number, r1: number, c1: number) => m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
  return [
    [c(1, 1, 2, 2) / d, -c(0, 1, 2, 2) / d, c(0, 1, 1, 2) / d],
    [-c(1, 0, 2, 2) / d, c(0, 0, 2, 2) / d, -c(0, 0, 1, 2) / d],
    [c(1, 0, 2, 1) / d, -c(0, 0, 2, 1) / d, c(0, 0, 1, 1) / d],
  ]
}

export function transpose3(m: number[][]): number[][] {
  return [0, 1, 2].map((i) => [0, 1, 2].map((j) => m[j][i]))
}

/**
 * How far apart two voxel grids may be and still count as one: the largest difference of an
 * affine element, in mm (translations) and mm per voxel (the 3×3 part). Far below a voxel, far
 * above the float32 rounding of a stored sform (~3e-5 mm at 500 mm from the origin).
 */
export const AFFINE_TOLERANCE = 1e-3

/** The largest difference between the top three rows of two affines. */
export function maxAffineDifference(a: Mat4, b: Mat4): number {
  let d = 0
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) d = Math.max(d, Math.abs(a[r][c] - b[r][c]))
  return Number.isNaN(d) ? Infinity : d
}

/** Voxel sizes: the length of each of the first three affine columns. */
export function affineSpacing(a: Mat4): Vec3 {
  return [0, 1, 2].map((j) => Math.hypot(a[0][j], a[1][j], a[2][j])) as Vec3
}

/**
 * The orthogonal matrix closest to `m` (polar decomposition, Newton iteration X ← (X + X⁻ᵀ)/2).
 * nibabel gets the same matrix from an SVD (U·Vᵀ); this avoids a 3×3 SVD routine.
 */
export function closestOrthogonal(m: number[][]): number[][] {
  let x = m.map((row) => row.slice())
  for (let iteration = 0; iteration < 100; iteration++) {
    const inverseT = transpose3(invert3(x))
    const next = x.map((row, i) => row.map((v, j) => 0.5 * (v + inverseT[i][j])))
    let change = 0
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) change = Math.max(change, Math.abs(next[i][j] - x[i][j]))
    x = next
    if (change < 1e-15) break
  }
  return x
}

/** For each voxel axis: which world axis (0 = x/R, 1 = y/A, 2 = z/S) it runs along, and whether it runs backwards. */
export type Orientation = {axis: number; flip: boolean}[]

/**
 * nibabel `io_orientation`: normalise the columns, replace by the closest orthogonal matrix,
 * then give each voxel axis (in order) the world axis with the largest remaining weight.
 */
export function ioOrientation(affine: Mat4): Orientation {
  const rs = [0, 1, 2].map((i) => [0, 1, 2].map((j) => affine[i][j]))
  const norms = affineSpacing(affine)
  for (let j = 0; j < 3; j++) for (let i = 0; i < 3; i++) rs[i][j] = norms[j] === 0 ? 0 : rs[i][j] / norms[j]
  let r: number[][]
  try {
    r = closestOrthogonal(rs)
  } catch {
    r = rs // a singular affine (a zero column): fall back to the normalised columns
  }
  const result: Orientation = []
  const used = new Set<number>()
  for (let j = 0; j < 3; j++) {
    let best = -1
    let bestValue = 0
    for (let i = 0; i < 3; i++) {
      if (used.has(i)) continue
      if (Math.abs(r[i][j]) > bestValue) {
        bestValue = Math.abs(r[i][j])
        best = i
      }
    }
    if (best < 0) {
      // degenerate column: take the first unused world axis, no flip
      best = [0, 1, 2].find((i) => !used.has(i))!
      result.push({axis: best, flip: false})
    } else result.push({axis: best, flip: r[best][j] < 0})
    used.add(best)
  }
  return result
}

const AXIS_LABELS: [string, string][] = [
  ['L', 'R'],
  ['P', 'A'],
  ['I', 'S'],
]

/** e.g. 'RAS', 'LPS', 'PSR': the world direction each voxel axis points to (nibabel `aff2axcodes`). */
export function axcodes(affine: Mat4): string {
  return ioOrientation(affine)
    .map(({axis, flip}) => AXIS_LABELS[axis][flip ? 0 : 1])
    .join('')
}

export type TypedVoxels = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array

/** The shape after `reorient` and the matrix T with input_index = T · output_index, without touching data. */
export function reorientGeometry(shape: Vec3, orientation: Orientation): {shape: Vec3; voxelTransform: Mat4} {
  const outShape: Vec3 = [0, 0, 0]
  orientation.forEach((o, j) => (outShape[o.axis] = shape[j]))
  const transform: Mat4 = [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 1],
  ]
  orientation.forEach((o, j) => {
    transform[j][o.axis] = o.flip ? -1 : 1
    transform[j][3] = o.flip ? shape[j] - 1 : 0
  })
  return {shape: outShape, voxelTransform: transform}
}

/**
 * Reorders a 3-D volume so that voxel axis `o.axis` of the output is input axis j, reversed when
 * `o.flip`. Pure index permutation: no interpolation, so it is exactly invertible.
 * Returns the new shape and the 4×4 matrix T with input_index = T · output_index (new affine = A · T).
 */
export function reorient<T extends TypedVoxels>(
  data: T,
  shape: Vec3,
  orientation: Orientation,
): {data: T; shape: Vec3; voxelTransform: Mat4} {
  const {shape: outShape, voxelTransform: transform} = reorientGeometry(shape, orientation)
  const inStride = [1, shape[0], shape[0] * shape[1]]
  // for each output axis: step in input memory per output index, and the input offset at output index 0
  const step = [0, 0, 0]
  let base = 0
  orientation.forEach((o, j) => {
    step[o.axis] = o.flip ? -inStride[j] : inStride[j]
    if (o.flip) base += (shape[j] - 1) * inStride[j]
  })
  const out = new (data.constructor as new (n: number) => T)(data.length)
  const [X, Y, Z] = outShape
  let index = 0
  for (let z = 0; z < Z; z++) {
    const bz = base + z * step[2]
    for (let y = 0; y < Y; y++) {
      let source = bz + y * step[1]
      const sx = step[0]
      for (let x = 0; x < X; x++, source += sx) out[index++] = data[source]
    }
  }
  return {data: out, shape: outShape, voxelTransform: transform}
}

/** The orientation that undoes `orientation` (apply it to the reoriented volume to get the original back). */
export function inverseOrientation(orientation: Orientation): Orientation {
  const inverse: Orientation = [
    {axis: 0, flip: false},
    {axis: 0, flip: false},
    {axis: 0, flip: false},
  ]
  orientation.forEach((o, j) => (inverse[o.axis] = {axis: j, flip: o.flip}))
  return inverse
}

export function isIdentityOrientation(orientation: Orientation): boolean {
  return orientation.every((o, j) => o.axis === j && !o.flip)
}

/**
 * NIfTI quaternion parameters for an affine (nifti1_io `nifti_mat44_to_quatern`): column norms give
 * the pixdims, a negative determinant gives qfac = -1, and a sheared matrix is replaced by the
 * closest rotation — a qform cannot hold shear, which is why the sform is kept alongside it.
 */
export function affineToQuaternion(affine: Mat4): {b: number; c: number; d: number; qfac: number; pixdim: Vec3; offset: Vec3} {
  const pixdim = affineSpacing(affine).map((v) => (v === 0 ? 1 : v)) as Vec3
  let r = [0, 1, 2].map((i) => [0, 1, 2].map((j) => affine[i][j] / pixdim[j]))
  let qfac = 1
  if (det3(r) < 0) {
    qfac = -1
    for (let i = 0; i < 3; i++) r[i][2] = -r[i][2]
  }
  try {
    r = closestOrthogonal(r)
  } catch {
    r = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]
  }
  const [r11, r12, r13] = r[0]
  const [r21, r22, r23] = r[1]
  const [r31, r32, r33] = r[2]
  let a = r11 + r22 + r33 + 1
  let b: number
  let c: number
  let d: number
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a)
    b = (0.25 * (r32 - r23)) / a
    c = (0.25 * (r13 - r31)) / a
    d = (0.25 * (r21 - r12)) / a
  } else {
    const xd = 1 + r11 - (r22 + r33)
    const yd = 1 + r22 - (r11 + r33)
    const zd = 1 + r33 - (r11 + r22)
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd)
      c = (0.25 * (r12 + r21)) / b
      d = (0.25 * (r13 + r31)) / b
      a = (0.25 * (r32 - r23)) / b
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd)
      b = (0.25 * (r12 + r21)) / c
      d = (0.25 * (r23 + r32)) / c
      a = (0.25 * (r13 - r31)) / c
    } else {
      d = 0.5 * Math.sqrt(zd)
      b = (0.25 * (r13 + r31)) / d
      c = (0.25 * (r23 + r32)) / d
      a = (0.25 * (r21 - r12)) / d
    }
    if (a < 0) {
      b = -b
      c = -c
      d = -d
    }
  }
  return {b, c, d, qfac, pixdim, offset: [affine[0][3], affine[1][3], affine[2][3]]}
}

/** nibabel `quat2mat` for the (b, c, d) quaternion with a ≥ 0 recovered from unit length. */
export function quaternionToRotation(b: number, c: number, d: number): number[][] {
  // nibabel's tolerance: a tiny negative 1 − |bcd|² from float32 rounding means a = 0
  const w2 = 1 - (b * b + c * c + d * d)
  const threshold = 3 * 1.1920928955078125e-7
  if (w2 < -threshold) throw new Error(`invalid qform quaternion (b, c, d) = (${b}, ${c}, ${d}): |bcd| > 1`)
  const a = w2 < 0 ? 0 : Math.sqrt(w2)
  const n = a * a + b * b + c * c + d * d
  if (n < 2.220446049250313e-16) return [0, 1, 2].map((i) => [0, 1, 2].map((j) => (i === j ? 1 : 0)))
  const s = 2 / n
  const X = b * s
  const Y = c * s
  const Z = d * s
  const wX = a * X
  const wY = a * Y
  const wZ = a * Z
  const xX = b * X
  const xY = b * Y
  const xZ = b * Z
  const yY = c * Y
  const yZ = c * Z
  const zZ = d * Z
  return [
    [1 - (yY + zZ), xY - wZ, xZ + wY],
    [xY + wZ, 1 - (xX + zZ), yZ - wX],
    [xZ - wY, yZ + wX, 1 - (xX + yY)],
  ]
}

export function formatAffine(a: Mat4, digits = 4): string {
  return a
    .slice(0, 3)
    .map((row) => `[${row.map((v) => +v.toFixed(digits)).join(', ')}]`)
    .join(' ')
}

/** Reorients a 3-D volume so that its voxel axes run R, A, S (nibabel `as_closest_canonical`). */
export function reorientToRAS<T extends TypedVoxels>(
  data: T,
  shape: Vec3,
  affine: Mat4,
): {data: T; shape: Vec3; affine: Mat4; orientation: Orientation} {
  const orientation = ioOrientation(affine)
  const r = reorient(data, shape, orientation)
  return {data: r.data, shape: r.shape, affine: matMul(affine, r.voxelTransform), orientation}
}
