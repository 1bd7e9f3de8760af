/**
 * Sliding-window inference over a whole volume (DESIGN §5, nnU-Net's scheme): windows of the
 * training patch size, neighbours sharing `overlap` of the window, each window's class
 * probabilities weighted by a Gaussian importance map (σ = patch · sigmaScale, nnU-Net: 1/8)
 * that trusts the centre of a window more than its border, optional mirror test-time
 * augmentation over every combination of flips along the given axes (only the axes the training
 * mirrored: src/evaluate/mirroring.ts). The accumulation buffers are plain
 * Float32Arrays on the CPU, so device memory is bounded by one batch of windows, whatever the
 * volume size. They hold one window's depth of z planes, not the volume: windows run in z order,
 * and a plane is finished (and handed on) once no window still to come covers it, so host
 * memory for the K class sums does not grow with the volume's depth either.
 *
 * Layouts: a volume's image is channels-last x-fastest, index c + C·(x + X·(y + Y·z)), which is
 * the memory of a row-major [Z, Y, X, C] array; a window batch is [n, pz, py, px, C] (NDHWC) and
 * the predictor returns [n, pz, py, px, K] probabilities. The result is [Z, Y, X, K].
 */

import type {MirrorAxis} from './mirroring.js'
import type {Vec3} from '../util/vec3.js'

export interface VolumeInput {
  image: Float32Array
  /** [X, Y, Z] */
  shape: Vec3
  channels: number
}

/** Class probabilities for a batch of n windows: input [n, pz, py, px, C], output [n, pz, py, px, K]. */
export type WindowPredictor = (batch: Float32Array, n: number) => Promise<Float32Array>

export interface SlidingWindowOptions {
  /** window in voxels, (x, y, z) */
  patch: Vec3
  numClasses: number
  overlap: number
  sigmaScale: number
  /** test-time mirroring: every combination of flips along these axes is predicted and averaged ([] = none) */
  mirrorAxes: MirrorAxis[]
  batchSize: number
  /** called after each batch with (windows done, windows total) */
  onProgress?: (done: number, total: number) => void
}

/** Window start offsets along one axis (nnU-Net compute_steps_for_sliding_window). */
export function windowStarts(size: number, patch: number, overlap: number): number[] {
  if (size <= patch) return [0]
  const target = patch * (1 - overlap)
  const steps = Math.ceil((size - patch) / target) + 1
  const actual = (size - patch) / (steps - 1)
  return Array.from({length: steps}, (_, i) => Math.round(actual * i))
}

/**
 * The importance map of one window, [pz, py, px] x-fastest: a separable Gaussian centred on the
 * window centre, σ = patch · sigmaScale per axis, scaled to a maximum of 1. It is evaluated
 * analytically, so it has no zeros (nnU-Net has to patch the zeros of its filtered map).
 */
export function gaussianImportance(patch: Vec3, sigmaScale: number): Float32Array {
  const axes = patch.map((p) => {
    const sigma = p * sigmaScale
    const centre = (p - 1) / 2
    return Float64Array.from({length: p}, (_, i) => Math.exp(-((i - centre) ** 2) / (2 * sigma * sigma)))
  })
  const [px, py, pz] = patch
  const out = new Float32Array(px * py * pz)
  for (let z = 0; z < pz; z++)
    for (let y = 0; y < py; y++) for (let x = 0; x < px; x++) out[x + px * (y + py * z)] = axes[0][x] * axes[1][y] * axes[2][z]
  return out
}

/** The flipBlock masks (bit 0 = x, 1 = y, 2 = z) of every combination of mirrors along `axes`, identity first. */
export function mirrorMasks(axes: MirrorAxis[]): number[] {
  const bits = axes.reduce((m, a) => m | (a === 'x' ? 1 : a === 'y' ? 2 : 4), 0)
  return [0, 1, 2, 3, 4, 5, 6, 7].filter((mask) => (mask & ~bits) === 0)
}

/** Mirrors a [pz, py, px, C] block (channels-last, x fastest after C) over the axes in `flip` (bit 0 = x, 1 = y, 2 = z). */
export function flipBlock(src: Float32Array, dims: Vec3, channels: number, flip: number): Float32Array {
  if (flip === 0) return src
  const [px, py, pz] = dims
  const out = new Float32Array(src.length)
  for (let z = 0; z < pz; z++) {
    const sz = flip & 4 ? pz - 1 - z : z
    for (let y = 0; y < py; y++) {
      const sy = flip & 2 ? py - 1 - y : y
      for (let x = 0; x < px; x++) {
        const sx = flip & 1 ? px - 1 - x : x
        const from = channels * (sx + px * (sy + py * sz))
        const to = channels * (x + px * (y + py * z))
        for (let c = 0; c < channels; c++) out[to + c] = src[from + c]
      }
    }
  }
  return out
}

interface Window {
  start: Vec3
}

/** The volume's class probabilities, [Z, Y, X, K] (index k + K·(x + X·(y + Y·z))). */
export async function slidingWindow(volume: VolumeInput, predict: WindowPredictor, options: SlidingWindowOptions): Promise<Float32Array> {
  const [X, Y, Z] = volume.shape
  const planeValues = X * Y * options.numClasses
  const out = new Float32Array(planeValues * Z)
  await slidingWindowPlanes(volume, predict, options, (z, plane) => out.set(plane, z * planeValues))
  return out
}

/**
 * The volume's label map (x-fastest, probabilitiesToLabels of each plane), without ever holding
 * the whole volume's class probabilities.
 */
export async function slidingWindowLabels(
  volume: VolumeInput,
  predict: WindowPredictor,
  options: SlidingWindowOptions & {threshold: number; overlappingRegions: boolean},
): Promise<Uint8Array> {
  const [X, Y, Z] = volume.shape
  const labels = new Uint8Array(X * Y * Z)
  await slidingWindowPlanes(volume, predict, options, (z, plane) =>
    labels.set(probabilitiesToLabels(plane, options.numClasses, options.threshold, options.overlappingRegions), z * X * Y),
  )
  return labels
}

/**
 * Sliding-window inference streamed along z: `emit(z, plane)` receives the class probabilities of
 * plane z ([Y, X, K], index k + K·(x + X·y)) in z order, as soon as no window still to come
 * covers it. `plane` is reused for the next plane: copy what you keep. Every voxel sees the same
 * float32 operations in the same order as a whole-volume accumulation would do.
 */
export async function slidingWindowPlanes(
  volume: VolumeInput,
  predict: WindowPredictor,
  options: SlidingWindowOptions,
  emit: (z: number, plane: Float32Array) => void,
): Promise<void> {
  const C = volume.channels
  const K = options.numClasses
  const [X, Y, Z] = volume.shape
  const [px, py, pz] = options.patch
  // a volume smaller than the window is padded with zeros at its far end and cropped back after
  const [PX, PY, PZ] = [Math.max(X, px), Math.max(Y, py), Math.max(Z, pz)]
  const weights = gaussianImportance(options.patch, options.sigmaScale)
  // planes [held, held + pz) of the padded volume: one window's depth
  const planeVoxels = PX * PY
  const acc = new Float32Array(pz * planeVoxels * K)
  const norm = new Float32Array(pz * planeVoxels)
  let held = 0
  const plane = new Float32Array(X * Y * K)
  /** planes below `z` are complete (windows come in z order): hand them on and slide the buffers up */
  const finishBelow = (z: number) => {
    const n = Math.min(z, PZ) - held
    for (let p = 0; p < n && held + p < Z; p++) {
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++) {
          const vi = x + PX * (y + PY * p)
          const oi = x + X * y
          for (let k = 0; k < K; k++) plane[oi * K + k] = acc[vi * K + k] / norm[vi]
        }
      emit(held + p, plane)
    }
    acc.copyWithin(0, n * planeVoxels * K)
    acc.fill(0, (pz - n) * planeVoxels * K)
    norm.copyWithin(0, n * planeVoxels)
    norm.fill(0, (pz - n) * planeVoxels)
    held += n
  }
  const windows: Window[] = []
  for (const z of windowStarts(PZ, pz, options.overlap))
    for (const y of windowStarts(PY, py, options.overlap))
      for (const x of windowStarts(PX, px, options.overlap)) windows.push({start: [x, y, z]})
  const flips = mirrorMasks(options.mirrorAxes)
  const windowVoxels = px * py * pz
  const batchSize = Math.max(1, options.batchSize)

  const image = volume.image
  const readWindow = (w: Window): Float32Array => {
    const block = new Float32Array(windowVoxels * C)
    const [x0, y0, z0] = w.start
    for (let z = 0; z < pz; z++) {
      const vz = z0 + z
      if (vz >= Z) continue
      for (let y = 0; y < py; y++) {
        const vy = y0 + y
        if (vy >= Y) continue
        const rowFrom = C * X * (vy + Y * vz)
        const rowTo = C * px * (y + py * z)
        // a plain loop: a subarray and set per row of 32 values cost more than the copy
        const end = rowFrom + C * Math.min(x0 + px, X)
        for (let from = rowFrom + C * x0, to = rowTo; from < end; from++, to++) block[to] = image[from]
      }
    }
    return block
  }

  let done = 0
  for (let b = 0; b < windows.length; b += batchSize) {
    const group = windows.slice(b, b + batchSize)
    const blocks = group.map(readWindow)
    // without mirroring a window's probabilities are used as the predictor returned them (0 + p is p)
    const summed: Float32Array[] = flips.length === 1 ? [] : group.map(() => new Float32Array(windowVoxels * K))
    for (const flip of flips) {
      const batch = new Float32Array(group.length * windowVoxels * C)
      blocks.forEach((block, i) => batch.set(flipBlock(block, options.patch, C, flip), i * windowVoxels * C))
      const probs = await predict(batch, group.length)
      if (probs.length !== group.length * windowVoxels * K)
        throw new Error(`window predictor returned ${probs.length} values, expected ${group.length}×${pz}×${py}×${px}×${K}`)
      for (let i = 0; i < group.length; i++) {
        const back = flipBlock(probs.subarray(i * windowVoxels * K, (i + 1) * windowVoxels * K), options.patch, K, flip)
        if (flips.length === 1) {
          summed.push(back)
          continue
        }
        const sum = summed[i]
        for (let j = 0; j < sum.length; j++) sum[j] += back[j]
      }
    }
    // 1, 2, 4 or 8 mirrorings: multiplying by a power of two's inverse is dividing by it, bit for bit
    const share = 1 / flips.length
    group.forEach((w, i) => {
      const [x0, y0, z0] = w.start
      if (z0 > held) finishBelow(z0)
      addWindow(acc, norm, summed[i], weights, share, w.start, options.patch, PX, PY, K)
    })
    done += group.length
    options.onProgress?.(done, windows.length)
  }
  finishBelow(PZ)
}

/**
 * Adds one window's probabilities, weighted by the importance map and divided among the
 * mirrorings, into the accumulators at the window's place (planes counted from the buffers' first).
 * `share` is 1, 1/2, 1/4 or 1/8: g·share is exact, so g·share·p is (g·p)·share bit for bit.
 */
function addWindow(
  acc: Float32Array,
  norm: Float32Array,
  probs: Float32Array,
  weights: Float32Array,
  share: number,
  start: Vec3,
  patch: Vec3,
  PX: number,
  PY: number,
  K: number,
): void {
  const [x0, y0] = start
  const [px, py, pz] = patch
  for (let z = 0; z < pz; z++)
    for (let y = 0; y < py; y++) {
      let wi = px * (y + py * z)
      let vi = x0 + PX * (y0 + y + PY * z)
      for (let x = 0; x < px; x++, wi++, vi++) {
        const g = weights[wi]
        const gs = g * share
        norm[vi] += g
        for (let k = 0, a = vi * K, p = wi * K; k < K; k++) acc[a + k] += gs * probs[p + k]
      }
    }
}

/** Summed importance of every window at each voxel of a padded [X, Y, Z] grid (for tests and diagnostics). */
export function importanceSum(shape: Vec3, patch: Vec3, overlap: number, sigmaScale: number): Float32Array {
  const [X, Y, Z] = shape.map((s, i) => Math.max(s, patch[i])) as Vec3
  const [px, py, pz] = patch
  const weights = gaussianImportance(patch, sigmaScale)
  const norm = new Float32Array(X * Y * Z)
  for (const z0 of windowStarts(Z, pz, overlap))
    for (const y0 of windowStarts(Y, py, overlap))
      for (const x0 of windowStarts(X, px, overlap))
        for (let z = 0; z < pz; z++)
          for (let y = 0; y < py; y++)
            for (let x = 0; x < px; x++) norm[x0 + x + X * (y0 + y + Y * (z0 + z))] += weights[x + px * (y + py * z)]
  return norm
}

/**
 * Class probabilities [voxels, K] → a label map (Uint8, x-fastest). Exclusive classes: the most
 * probable class whose probability reaches `threshold`, else background. Nested regions
 * (BraTS WT ⊃ TC ⊃ ET): the largest k whose region probability reaches the threshold, which is
 * how the exclusive MSD labels encode the regions.
 */
export function probabilitiesToLabels(probs: Float32Array, numClasses: number, threshold: number, overlappingRegions: boolean): Uint8Array {
  const n = probs.length / numClasses
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    let label = 0
    if (overlappingRegions) {
      for (let k = 0; k < numClasses; k++) if (probs[i * numClasses + k] >= threshold) label = k + 1
    } else {
      let best = threshold
      for (let k = 0; k < numClasses; k++) {
        const p = probs[i * numClasses + k]
        if (p >= best && (label === 0 || p > best)) {
          best = p
          label = k + 1
        }
      }
    }
    out[i] = label
  }
  return out
}
