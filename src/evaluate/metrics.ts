/**
 * Segmentation metrics on binary masks (Uint8Array, x-fastest, shape [X, Y, Z], spacing in mm):
 * Dice (the paper's DSC), 95 % Hausdorff distance and surface Dice (Nikolov et al. 2021) at a
 * tolerance. Distances come from an exact anisotropic Euclidean distance transform
 * (Felzenszwalb & Huttenlocher 2012, "Distance transforms of sampled functions": the squared
 * EDT separates into one lower-envelope-of-parabolas pass per axis), O(voxels), not all pairs.
 *
 * Surfaces are the mask voxels with at least one of their 6 neighbours outside the mask; the
 * outside of the volume counts as background (as MONAI and DeepMind's surface-distance pad).
 * HD95 = max(P95 of distances from pred surface to ref surface, P95 of the reverse), the
 * percentile with linear interpolation (numpy's default); this is MONAI's
 * compute_hausdorff_distance(percentile=95). Surface Dice counts surface voxels (MONAI
 * compute_surface_dice without sub-voxel areas).
 *
 * Empty masks (docs/evaluation.md): both empty → Dice 1, surface Dice 1, HD95 0 (a correct
 * "absent" answer); exactly one empty → Dice 0, surface Dice 0, HD95 undefined (null). Null
 * HD95 values are reported per case and counted in the summary, and left out of HD95 means;
 * nothing is ever a silent NaN.
 */
import {percentile} from '../util/percentile.js'
import type {Vec3} from '../util/vec3.js'

function count(mask: Uint8Array): number {
  let n = 0
  for (let i = 0; i < mask.length; i++) if (mask[i]) n++
  return n
}

function checkSizes(pred: Uint8Array, ref: Uint8Array, shape?: Vec3): void {
  if (pred.length !== ref.length) throw new Error(`mask sizes differ: prediction ${pred.length} voxels, reference ${ref.length}`)
  if (shape && shape[0] * shape[1] * shape[2] !== ref.length)
    throw new Error(`mask of ${ref.length} voxels does not match shape ${shape.join('×')}`)
}

/** Dice = 2|P∩R| / (|P|+|R|); 1 when both masks are empty. */
export function dice(pred: Uint8Array, ref: Uint8Array): number {
  checkSizes(pred, ref)
  let inter = 0
  let sum = 0
  for (let i = 0; i < ref.length; i++) {
    const p = pred[i] ? 1 : 0
    const r = ref[i] ? 1 : 0
    inter += p & r
    sum += p + r
  }
  return sum === 0 ? 1 : (2 * inter) / sum
}

/** Mask voxels with a 6-neighbour outside the mask or outside the volume. */
export function surface(mask: Uint8Array, shape: Vec3): Uint8Array {
  const [X, Y, Z] = shape
  const out = new Uint8Array(mask.length)
  const XY = X * Y
  for (let z = 0; z < Z; z++)
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const i = x + X * y + XY * z
        if (!mask[i]) continue
        if (
          x === 0 ||
          x === X - 1 ||
          y === 0 ||
          y === Y - 1 ||
          z === 0 ||
          z === Z - 1 ||
          !mask[i - 1] ||
          !mask[i + 1] ||
          !mask[i - X] ||
          !mask[i + X] ||
          !mask[i - XY] ||
          !mask[i + XY]
        )
          out[i] = 1
      }
  return out
}

/**
 * One pass of the 1-D squared distance transform along a line of n samples f[0..n), sample
 * positions q·w (w = spacing in mm). Lower envelope of parabolas (w(p−q))² + f(q).
 */
function edt1d(f: Float64Array, n: number, w: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = 0
  v[0] = 0
  z[0] = -Infinity
  z[1] = Infinity
  // skip leading infinite samples: a parabola with f = ∞ never lies on the envelope
  let first = 0
  while (first < n && f[first] === Infinity) first++
  if (first === n) {
    for (let q = 0; q < n; q++) d[q] = Infinity
    return
  }
  v[0] = first
  for (let q = first + 1; q < n; q++) {
    if (f[q] === Infinity) continue
    const pq = q * w
    let s: number
    for (;;) {
      const pv = v[k] * w
      s = (f[q] + pq * pq - (f[v[k]] + pv * pv)) / (2 * (pq - pv))
      if (s <= z[k] && k > 0) k--
      else break
    }
    k++
    v[k] = q
    z[k] = s
    z[k + 1] = Infinity
  }
  k = 0
  for (let q = 0; q < n; q++) {
    const p = q * w
    while (z[k + 1] < p) k++
    const dv = (q - v[k]) * w
    d[q] = dv * dv + f[v[k]]
  }
}

/**
 * Exact squared Euclidean distance (mm²) from every voxel to the nearest voxel where
 * `seeds` is set; Infinity everywhere when `seeds` is empty.
 */
export function squaredDistanceTransform(seeds: Uint8Array, shape: Vec3, spacing: Vec3): Float64Array {
  const [X, Y, Z] = shape
  const dist = new Float64Array(seeds.length)
  for (let i = 0; i < seeds.length; i++) dist[i] = seeds[i] ? 0 : Infinity
  const n = Math.max(X, Y, Z)
  const f = new Float64Array(n)
  const d = new Float64Array(n)
  const v = new Int32Array(n)
  const zb = new Float64Array(n + 1)
  const strides = [1, X, X * Y]
  const sizes = [X, Y, Z]
  for (let axis = 0; axis < 3; axis++) {
    const len = sizes[axis]
    const stride = strides[axis]
    const [a, b] = [0, 1, 2].filter((x) => x !== axis)
    for (let j = 0; j < sizes[b]; j++)
      for (let i = 0; i < sizes[a]; i++) {
        const base = i * strides[a] + j * strides[b]
        for (let q = 0; q < len; q++) f[q] = dist[base + q * stride]
        edt1d(f, len, spacing[axis], d, v, zb)
        for (let q = 0; q < len; q++) dist[base + q * stride] = d[q]
      }
  }
  return dist
}

/** Distances (mm) from each surface voxel of `from` to the nearest surface voxel of `to`. */
function surfaceDistances(fromSurface: Uint8Array, toDist: Float64Array): number[] {
  const out: number[] = []
  for (let i = 0; i < fromSurface.length; i++) if (fromSurface[i]) out.push(Math.sqrt(toDist[i]))
  return out
}

interface SurfacePair {
  predToRef: number[]
  refToPred: number[]
}

function surfacePair(pred: Uint8Array, ref: Uint8Array, shape: Vec3, spacing: Vec3): SurfacePair {
  const ps = surface(pred, shape)
  const rs = surface(ref, shape)
  return {
    predToRef: surfaceDistances(ps, squaredDistanceTransform(rs, shape, spacing)),
    refToPred: surfaceDistances(rs, squaredDistanceTransform(ps, shape, spacing)),
  }
}

/** 95 % Hausdorff distance in mm; 0 when both are empty, null when exactly one is. */
export function hd95(pred: Uint8Array, ref: Uint8Array, shape: Vec3, spacing: Vec3): number | null {
  checkSizes(pred, ref, shape)
  const np = count(pred)
  const nr = count(ref)
  if (np === 0 && nr === 0) return 0
  if (np === 0 || nr === 0) return null
  const {predToRef, refToPred} = surfacePair(pred, ref, shape, spacing)
  return Math.max(percentile(predToRef, 95), percentile(refToPred, 95))
}

/**
 * Surface Dice at `tolerance` mm: (surface voxels of P within tolerance of R's surface +
 * those of R within tolerance of P's) / (|∂P| + |∂R|). 1 when both are empty, 0 when one is.
 */
export function surfaceDice(pred: Uint8Array, ref: Uint8Array, shape: Vec3, spacing: Vec3, tolerance: number): number {
  checkSizes(pred, ref, shape)
  const np = count(pred)
  const nr = count(ref)
  if (np === 0 && nr === 0) return 1
  if (np === 0 || nr === 0) return 0
  const {predToRef, refToPred} = surfacePair(pred, ref, shape, spacing)
  // a small slack so that a distance equal to the tolerance up to rounding counts as inside
  const tol = tolerance + 1e-9
  const within = predToRef.filter((d) => d <= tol).length + refToPred.filter((d) => d <= tol).length
  return within / (predToRef.length + refToPred.length)
}

export interface ClassMetrics {
  dice: number
  hd95: number | null
  surfaceDice: number
  refEmpty: boolean
  predEmpty: boolean
}

/** The binary mask of class k (1..K) in a label map: exclusive labels, or nested regions (BraTS: region k = label ≥ k). */
export function classMask(labels: Uint8Array, k: number, overlappingRegions: boolean): Uint8Array {
  const out = new Uint8Array(labels.length)
  if (overlappingRegions) for (let i = 0; i < labels.length; i++) out[i] = labels[i] >= k ? 1 : 0
  else for (let i = 0; i < labels.length; i++) out[i] = labels[i] === k ? 1 : 0
  return out
}

/** All three metrics for every foreground class of a predicted against a reference label map. */
export function evaluateLabels(
  pred: Uint8Array,
  ref: Uint8Array,
  shape: Vec3,
  spacing: Vec3,
  numClasses: number,
  options: {overlappingRegions?: boolean; tolerance: number},
): ClassMetrics[] {
  checkSizes(pred, ref, shape)
  const out: ClassMetrics[] = []
  for (let k = 1; k <= numClasses; k++) {
    const p = classMask(pred, k, options.overlappingRegions ?? false)
    const r = classMask(ref, k, options.overlappingRegions ?? false)
    out.push({
      dice: dice(p, r),
      hd95: hd95(p, r, shape, spacing),
      surfaceDice: surfaceDice(p, r, shape, spacing, options.tolerance),
      refEmpty: count(r) === 0,
      predEmpty: count(p) === 0,
    })
  }
  return out
}
