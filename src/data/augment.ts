/**
 * Training augmentations on one patch.
 *
 * The official SIPL BTCV set (RandRotate90d p 0.1, RandShiftIntensityd 0.1 p 0.2; flips and
 * intensity scaling are options): rot90 in the axial (x, y) plane, independent flips of each of
 * `flipAxes`, intensity shift v + u (u ~ U(−s, s)) and scale v·(1 + u).
 *
 * nnU-Net's default set (batchgenerators, as nnU-Net v1 "moreDA" runs it for UNETR++ —
 * unetr_pp/training/data_augmentation/data_augmentation_moreDA.py @ Amshaker/unetr_plus_plus
 * dcba1c6e — with the parameters of nnU-Net v2 nnUNetTrainer.get_training_transforms @
 * MIC-DKFZ/nnUNet 0e495086; batchgenerators @ 9dc3d49b for each transform's arithmetic), in
 * nnU-Net's order: rotation and scaling (one affine resampling, from the whole volume when the
 * patch knows it, so that a turned patch has no empty corners where the volume has data),
 * Gaussian noise, Gaussian blur, multiplicative brightness, contrast, low-resolution simulation,
 * gamma of the inverted image, gamma; mirroring is `flip`. Where this differs from batchgenerators:
 * images are resampled trilinearly (nnU-Net: cubic spline, order 3) and low-resolution
 * simulation up-samples linearly (order 3 there); labels are resampled per label, linearly, kept
 * at ≥ 0.5, as batchgenerators' order_seg = 1 does.
 *
 * Every random number is drawn in `randomize`, always the same count in the same order whatever
 * the outcomes, so the sampling stream stays aligned across runs and resumes. A transform whose
 * probability is 0 draws nothing, so switching the nnU-Net set off leaves the BTCV stream as it was.
 */
import type {TrainConfig} from '../config/schema.js'
import {Rng} from '../util/rng.js'
import type {Patch, TrainCase} from './sampler.js'
import type {Vec3} from '../util/vec3.js'

export type AugmentConfig = TrainConfig['augment']

export interface AugmentDraw {
  /** quarter turns in the x–y plane, 0..3 */
  rot90: number
  flips: [boolean, boolean, boolean]
  shift: number
  scale: number
  /**
   * Rotation and scaling: the 3×3 matrix (row-major, x, y, z) that maps an output voxel's
   * offset from the patch centre to its source offset in the volume; null when neither applies.
   */
  affine?: number[] | null
  /** sd of the additive Gaussian noise and the seed of its per-voxel generator */
  noise?: {sd: number; seed: number} | null
  /** per channel: blur σ in voxels, or null for a channel left sharp */
  blur?: (number | null)[] | null
  brightness?: number[] | null
  contrast?: number[] | null
  /** per channel: the zoom of the low-resolution simulation, or null */
  lowResolution?: (number | null)[] | null
  gammaInverted?: number[] | null
  gamma?: number[] | null
}

/**
 * batchgenerators' rule for a factor range that spans 1: half the draws uniform in [low, 1), half
 * in [1, high], so that shrinking and growing are equally likely; a range on one side of 1 is
 * plain uniform. Always two draws.
 */
export function aroundOne(rng: Rng, [low, high]: [number, number]): number {
  const below = rng.next() < 0.5
  const u = rng.next()
  if (!(low < 1 && high > 1)) return low + (high - low) * u
  return below ? low + (1 - low) * u : 1 + (high - 1) * u
}

/** Rotation matrices about array axes as batchgenerators builds them (create_matrix_rotation_{x,y,z}_3d). */
function matmul(a: number[], b: number[]): number[] {
  const out = new Array<number>(9).fill(0)
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) out[3 * i + j] += a[3 * i + k] * b[3 * k + j]
  return out
}

/**
 * The (x, y, z) matrix of batchgenerators' rotate_coords_3d + scale_coords. batchgenerators
 * works in nnU-Net's array order (z, y, x) with coordinates as row vectors: source = d · Rx·Ry·Rz · s
 * where Rx keeps axis 0 (z), Ry axis 1 (y), Rz axis 2 (x).
 */
export function affineMatrix(angles: [number, number, number], zoom: number): number[] {
  const [a0, a1, a2] = angles
  const c = Math.cos
  const s = Math.sin
  const r0 = [1, 0, 0, 0, c(a0), -s(a0), 0, s(a0), c(a0)]
  const r1 = [c(a1), 0, s(a1), 0, 1, 0, -s(a1), 0, c(a1)]
  const r2 = [c(a2), -s(a2), 0, s(a2), c(a2), 0, 0, 0, 1]
  const m = matmul(matmul(r0, r1), r2) // array order (z, y, x); row vector d_zyx · m
  // src_xyz[i] = Σ_j d_xyz[j] · out[3j + i]; array index of x, y, z is 2, 1, 0
  const out = new Array<number>(9)
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) out[3 * j + i] = m[3 * (2 - j) + (2 - i)] * zoom
  return out
}

export function randomize(config: AugmentConfig, rng: Rng, patch: Vec3, channels = 1): AugmentDraw {
  const rotate = rng.next() < config.rot90
  // a non-square x–y patch can only turn by 180° and keep its shape
  const quarter = 1 + rng.int(3)
  const rot90 = !rotate ? 0 : patch[0] === patch[1] ? quarter : 2
  // three draws whatever flipAxes says, so that restricting the axes leaves the rest of the stream alone
  const flips = (['x', 'y', 'z'] as const).map((axis) => rng.next() < config.flip && config.flipAxes.includes(axis)) as [
    boolean,
    boolean,
    boolean,
  ]
  const doShift = rng.next() < config.intensityShiftProb
  const shiftValue = rng.uniform(-config.intensityShift, config.intensityShift)
  const doScale = rng.next() < config.intensityScaleProb
  const scaleValue = rng.uniform(-config.intensityScale, config.intensityScale)
  const draw: AugmentDraw = {rot90, flips, shift: doShift ? shiftValue : 0, scale: doScale ? 1 + scaleValue : 1}

  // nnU-Net's set; each block draws only when its probability is above 0
  const perChannel = <T>(f: () => T): T[] => Array.from({length: channels}, f)
  // a channel takes part with probability pPerChannel; both numbers are drawn either way, so the stream does not depend on the outcome
  const somePerChannel = (pPerChannel: number, range: readonly [number, number]): (number | null)[] =>
    perChannel(() => {
      const applied = rng.next() < pPerChannel
      const value = rng.uniform(...range)
      return applied ? value : null
    })
  const {rotation, scaling} = config
  let angles: [number, number, number] | null = null
  let zoom: number | null = null
  if (rotation.p > 0) {
    const on = rng.next() < rotation.p
    const max = (rotation.maxDegrees * Math.PI) / 180
    const a: [number, number, number] = [rng.uniform(-max, max), rng.uniform(-max, max), rng.uniform(-max, max)]
    if (on) angles = a
  }
  if (scaling.p > 0) {
    const on = rng.next() < scaling.p
    const factor = aroundOne(rng, scaling.range)
    if (on) zoom = factor
  }
  draw.affine = angles || zoom !== null ? affineMatrix(angles ?? [0, 0, 0], zoom ?? 1) : null
  if (config.gaussianNoise.p > 0) {
    const on = rng.next() < config.gaussianNoise.p
    const sd = rng.uniform(0, config.gaussianNoise.maxSd)
    const seed = rng.nextUint32()
    draw.noise = on ? {sd, seed} : null
  }
  if (config.gaussianBlur.p > 0) {
    const on = rng.next() < config.gaussianBlur.p
    const sigmas = somePerChannel(config.gaussianBlur.pPerChannel, config.gaussianBlur.sigma)
    draw.blur = on ? sigmas : null
  }
  if (config.brightness.p > 0) {
    const on = rng.next() < config.brightness.p
    const factors = perChannel(() => rng.uniform(...config.brightness.range))
    draw.brightness = on ? factors : null
  }
  if (config.contrast.p > 0) {
    const on = rng.next() < config.contrast.p
    const factors = perChannel(() => aroundOne(rng, config.contrast.range))
    draw.contrast = on ? factors : null
  }
  if (config.lowResolution.p > 0) {
    const on = rng.next() < config.lowResolution.p
    const zooms = somePerChannel(config.lowResolution.pPerChannel, config.lowResolution.zoom)
    draw.lowResolution = on ? zooms : null
  }
  for (const key of ['gammaInverted', 'gamma'] as const) {
    if (config[key].p <= 0) continue
    const on = rng.next() < config[key].p
    const gammas = perChannel(() => aroundOne(rng, config[key].range))
    draw[key] = on ? gammas : null
  }
  return draw
}

/** Where output voxel (x, y) reads from after k quarter turns (counter-clockwise from x towards y) in an n×n plane. */
function rotateSource(x: number, y: number, k: number, px: number, py: number): [number, number] {
  switch (k) {
    case 1:
      return [y, px - 1 - x]
    case 2:
      return [px - 1 - x, py - 1 - y]
    case 3:
      return [py - 1 - y, x]
    default:
      return [x, y]
  }
}

/**
 * The patch resampled through `affine` about its centre, from `source` (the whole volume, with
 * the patch at `origin`) when given, else from the patch itself. Outside the volume the image is
 * 0 and the label background (batchgenerators: border_mode 'constant', cval 0; labels −1, then 0).
 */
export function resampleAffine(
  patch: Patch,
  affine: number[],
  dims: Vec3,
  channels: number,
  source?: TrainCase,
): {image: Float32Array; label: Uint8Array} {
  const [px, py, pz] = dims
  const volume = source ?? {image: patch.image, label: patch.label, shape: dims, channels}
  const origin = source ? patch.origin : ([0, 0, 0] as Vec3)
  const [X, Y, Z] = volume.shape
  const C = channels
  const centre = [origin[0] + (px - 1) / 2, origin[1] + (py - 1) / 2, origin[2] + (pz - 1) / 2]
  const image = new Float32Array(px * py * pz * C)
  const label = new Uint8Array(px * py * pz)
  const corner = new Int32Array(8)
  const weight = new Float64Array(8)
  const labels = new Int32Array(8)
  for (let z = 0; z < pz; z++)
    for (let y = 0; y < py; y++)
      for (let x = 0; x < px; x++) {
        const dx = x - (px - 1) / 2
        const dy = y - (py - 1) / 2
        const dz = z - (pz - 1) / 2
        const sx = centre[0] + dx * affine[0] + dy * affine[3] + dz * affine[6]
        const sy = centre[1] + dx * affine[1] + dy * affine[4] + dz * affine[7]
        const sz = centre[2] + dx * affine[2] + dy * affine[5] + dz * affine[8]
        const x0 = Math.floor(sx)
        const y0 = Math.floor(sy)
        const z0 = Math.floor(sz)
        const fx = sx - x0
        const fy = sy - y0
        const fz = sz - z0
        const out = x + px * (y + py * z)
        // 8 neighbours: inside ones carry their index, outside ones −1
        let outside = 0
        for (let n = 0; n < 8; n++) {
          const ix = x0 + (n & 1)
          const iy = y0 + ((n >> 1) & 1)
          const iz = z0 + ((n >> 2) & 1)
          const w = (n & 1 ? fx : 1 - fx) * ((n >> 1) & 1 ? fy : 1 - fy) * ((n >> 2) & 1 ? fz : 1 - fz)
          weight[n] = w
          if (ix < 0 || iy < 0 || iz < 0 || ix >= X || iy >= Y || iz >= Z) {
            corner[n] = -1
            outside += w
          } else {
            corner[n] = ix + X * (iy + Y * iz)
            labels[n] = volume.label[corner[n]]
          }
        }
        for (let c = 0; c < C; c++) {
          let v = 0
          for (let n = 0; n < 8; n++) if (corner[n] >= 0) v += weight[n] * volume.image[corner[n] * C + c]
          image[out * C + c] = v
        }
        // per label: its interpolated indicator, with −1 outside the volume; the highest label ≥ 0.5 wins
        let best = 0
        for (let n = 0; n < 8; n++) {
          if (corner[n] < 0) continue
          const l = labels[n]
          if (l <= best) continue
          let indicator = -outside
          for (let m = 0; m < 8; m++) if (corner[m] >= 0 && labels[m] === l) indicator += weight[m]
          if (indicator >= 0.5) best = l
        }
        label[out] = best
      }
  return {image, label}
}

/** scipy.ndimage.gaussian_filter1d's kernel: radius round(4σ), normalised, mode 'reflect' at the ends. */
export function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.floor(4 * sigma + 0.5)
  const k = Float64Array.from({length: 2 * radius + 1}, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)))
  const sum = k.reduce((a, b) => a + b, 0)
  return k.map((v) => v / sum)
}

/** Index i of a line of n samples reflected at the ends the way scipy's 'reflect' mode does (d c b a | a b c d | d c b a). */
function reflect(i: number, n: number): number {
  const period = 2 * n
  let j = ((i % period) + period) % period
  if (j >= n) j = period - 1 - j
  return j
}

/** Gaussian blur of channel c of a [pz, py, px, C] block in place, separably along x, y and z. */
export function blurChannel(image: Float32Array, dims: Vec3, channels: number, c: number, sigma: number): void {
  const kernel = gaussianKernel(sigma)
  const radius = (kernel.length - 1) / 2
  const [px, py] = dims
  const strides = [1, px, px * py]
  for (let axis = 0; axis < 3; axis++) {
    const n = dims[axis]
    const stride = strides[axis]
    const line = new Float64Array(n)
    const [a, b] = [0, 1, 2].filter((d) => d !== axis)
    for (let j = 0; j < dims[b]; j++)
      for (let i = 0; i < dims[a]; i++) {
        const base = i * strides[a] + j * strides[b]
        for (let q = 0; q < n; q++) line[q] = image[(base + q * stride) * channels + c]
        for (let q = 0; q < n; q++) {
          let v = 0
          for (let t = -radius; t <= radius; t++) v += kernel[t + radius] * line[reflect(q + t, n)]
          image[(base + q * stride) * channels + c] = v
        }
      }
  }
}

/**
 * Low-resolution simulation of channel c: resize to round(size · zoom) per axis with nearest
 * neighbours and back with linear interpolation, skimage.transform.resize's sampling positions
 * ((i + 0.5) · in/out − 0.5, clamped at the edges).
 */
export function simulateLowResolution(image: Float32Array, dims: Vec3, channels: number, c: number, zoom: number): void {
  const small = dims.map((d) => Math.max(1, Math.round(d * zoom))) as Vec3
  const position = (i: number, from: number, to: number) => Math.min(from - 1, Math.max(0, (i + 0.5) * (from / to) - 0.5))
  const [px, py, pz] = dims
  const [sx, sy, sz] = small
  const low = new Float32Array(sx * sy * sz)
  for (let z = 0; z < sz; z++)
    for (let y = 0; y < sy; y++)
      for (let x = 0; x < sx; x++) {
        const ix = Math.round(position(x, px, sx))
        const iy = Math.round(position(y, py, sy))
        const iz = Math.round(position(z, pz, sz))
        low[x + sx * (y + sy * z)] = image[(ix + px * (iy + py * iz)) * channels + c]
      }
  const axis = (i: number, from: number, to: number): [number, number, number] => {
    const p = position(i, from, to)
    const i0 = Math.floor(p)
    return [i0, Math.min(from - 1, i0 + 1), p - i0]
  }
  for (let z = 0; z < pz; z++) {
    const [z0, z1, fz] = axis(z, sz, pz)
    for (let y = 0; y < py; y++) {
      const [y0, y1, fy] = axis(y, sy, py)
      for (let x = 0; x < px; x++) {
        const [x0, x1, fx] = axis(x, sx, px)
        const at = (xx: number, yy: number, zz: number) => low[xx + sx * (yy + sy * zz)]
        const v =
          (1 - fz) * ((1 - fy) * ((1 - fx) * at(x0, y0, z0) + fx * at(x1, y0, z0)) + fy * ((1 - fx) * at(x0, y1, z0) + fx * at(x1, y1, z0))) +
          fz * ((1 - fy) * ((1 - fx) * at(x0, y0, z1) + fx * at(x1, y0, z1)) + fy * ((1 - fx) * at(x0, y1, z1) + fx * at(x1, y1, z1)))
        image[(x + px * (y + py * z)) * channels + c] = v
      }
    }
  }
}

function channelStats(image: Float32Array, channels: number, c: number): {mean: number; sd: number; min: number; max: number} {
  let sum = 0
  let min = Infinity
  let max = -Infinity
  const n = image.length / channels
  for (let i = c; i < image.length; i += channels) {
    const v = image[i]
    sum += v
    if (v < min) min = v
    if (v > max) max = v
  }
  const mean = sum / n
  let sq = 0
  for (let i = c; i < image.length; i += channels) sq += (image[i] - mean) ** 2
  return {mean, sd: Math.sqrt(sq / n), min, max}
}

/** batchgenerators augment_contrast (preserve_range): (v − mean)·f + mean, clipped to the channel's old range. */
export function contrastChannel(image: Float32Array, channels: number, c: number, factor: number): void {
  const {mean, min, max} = channelStats(image, channels, c)
  for (let i = c; i < image.length; i += channels) image[i] = Math.min(max, Math.max(min, (image[i] - mean) * factor + mean))
}

/**
 * batchgenerators augment_gamma (retain_stats): v ← ((v − min)/(range + ε))^γ · (range + ε) + min,
 * then shifted and scaled back to the channel's old mean and sd; `inverted` applies it to −v.
 */
export function gammaChannel(image: Float32Array, channels: number, c: number, gamma: number, inverted: boolean): void {
  const sign = inverted ? -1 : 1
  if (inverted) for (let i = c; i < image.length; i += channels) image[i] = -image[i]
  const before = channelStats(image, channels, c)
  const range = before.max - before.min + 1e-7
  for (let i = c; i < image.length; i += channels) image[i] = ((image[i] - before.min) / range) ** gamma * range + before.min
  const after = channelStats(image, channels, c)
  for (let i = c; i < image.length; i += channels)
    image[i] = sign * (((image[i] - after.mean) / (after.sd + 1e-8)) * before.sd + before.mean)
}

export function applyAugment(patch: Patch, draw: AugmentDraw, dims: Vec3, channels: number): Patch {
  const [px, py, pz] = dims
  let image = patch.image
  let label = patch.label
  if (draw.affine) ({image, label} = resampleAffine(patch, draw.affine, dims, channels, patch.source))
  const spatial = draw.rot90 !== 0 || draw.flips.some(Boolean)
  if (spatial) {
    const fromImage = image
    const fromLabel = label
    image = new Float32Array(fromImage.length)
    label = new Uint8Array(fromLabel.length)
    for (let z = 0; z < pz; z++) {
      const fz = draw.flips[2] ? pz - 1 - z : z
      for (let y = 0; y < py; y++)
        for (let x = 0; x < px; x++) {
          // flip after rotating: output (x, y) ← rotated (fx, fy) ← source rotateSource(fx, fy)
          const fx = draw.flips[0] ? px - 1 - x : x
          const fy = draw.flips[1] ? py - 1 - y : y
          const [sx, sy] = rotateSource(fx, fy, draw.rot90, px, py)
          const to = x + px * (y + py * z)
          const from = sx + px * (sy + py * fz)
          label[to] = fromLabel[from]
          for (let c = 0; c < channels; c++) image[to * channels + c] = fromImage[from * channels + c]
        }
    }
  }
  const own = () => {
    if (image === patch.image) image = new Float32Array(patch.image)
  }
  if (draw.shift !== 0 || draw.scale !== 1) {
    own()
    for (let i = 0; i < image.length; i++) image[i] = image[i] * draw.scale + draw.shift
  }
  if (draw.noise) {
    own()
    const rng = new Rng(draw.noise.seed)
    for (let i = 0; i < image.length; i++) image[i] += draw.noise.sd * rng.normal()
  }
  if (draw.blur) {
    own()
    draw.blur.forEach((sigma, c) => sigma !== null && blurChannel(image, dims, channels, c, sigma))
  }
  if (draw.brightness) {
    own()
    for (let i = 0; i < image.length; i++) image[i] *= draw.brightness[i % channels]
  }
  if (draw.contrast) {
    own()
    draw.contrast.forEach((f, c) => contrastChannel(image, channels, c, f))
  }
  if (draw.lowResolution) {
    own()
    draw.lowResolution.forEach((zoom, c) => zoom !== null && simulateLowResolution(image, dims, channels, c, zoom))
  }
  if (draw.gammaInverted) {
    own()
    draw.gammaInverted.forEach((g, c) => gammaChannel(image, channels, c, g, true))
  }
  if (draw.gamma) {
    own()
    draw.gamma.forEach((g, c) => gammaChannel(image, channels, c, g, false))
  }
  return {...patch, image, label}
}

export function augment(patch: Patch, config: AugmentConfig, rng: Rng, dims: Vec3, channels: number): Patch {
  return applyAugment(patch, randomize(config, rng, dims, channels), dims, channels)
}
