/**
 * Training augmentations on one patch (the official SIPL BTCV set: RandRotate90d p 0.1,
 * RandShiftIntensityd 0.1 p 0.2; flips and intensity scaling are options): rot90 in the axial
 * (x, y) plane, independent flips of each axis, intensity shift v + u (u ~ U(−s, s)) and scale
 * v·(1 + u). Every random number is drawn in `randomize`, always the same count in the same
 * order whatever the outcomes, so the sampling stream stays aligned across runs and resumes.
 */
import type {TrainConfig} from '../config/schema.js'
import type {Rng} from '../util/rng.js'
import type {Patch, Triple} from './sampler.js'

export type AugmentConfig = TrainConfig['augment']

export interface AugmentDraw {
  /** quarter turns in the x–y plane, 0..3 */
  rot90: number
  flips: [boolean, boolean, boolean]
  shift: number
  scale: number
}

export function randomize(config: AugmentConfig, rng: Rng, patch: Triple): AugmentDraw {
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
  return {rot90, flips, shift: doShift ? shiftValue : 0, scale: doScale ? 1 + scaleValue : 1}
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

export function applyAugment(patch: Patch, draw: AugmentDraw, dims: Triple, channels: number): Patch {
  const [px, py, pz] = dims
  const spatial = draw.rot90 !== 0 || draw.flips.some(Boolean)
  let image = patch.image
  let label = patch.label
  if (spatial) {
    image = new Float32Array(patch.image.length)
    label = new Uint8Array(patch.label.length)
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
          label[to] = patch.label[from]
          for (let c = 0; c < channels; c++) image[to * channels + c] = patch.image[from * channels + c]
        }
    }
  }
  if (draw.shift !== 0 || draw.scale !== 1) {
    if (image === patch.image) image = new Float32Array(patch.image)
    for (let i = 0; i < image.length; i++) image[i] = image[i] * draw.scale + draw.shift
  }
  return {...patch, image, label}
}

export function augment(patch: Patch, config: AugmentConfig, rng: Rng, dims: Triple, channels: number): Patch {
  return applyAugment(patch, randomize(config, rng, dims), dims, channels)
}
