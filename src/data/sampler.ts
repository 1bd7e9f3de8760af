/**
 * Training patches (MONAI RandCropByPosNegLabeld, as the official SIPL code): pick a volume,
 * take `samplesPerVolume` crops from it; each crop is centred on a random foreground voxel with
 * probability pos/(pos+neg) (default 2:1) and on a random background voxel otherwise, and moved
 * inside the volume. Volumes smaller than the patch are zero-padded (label 0) at the far end.
 * All draws come from the one seeded Rng whose state a checkpoint saves. `mode: 'nnunet'` draws as
 * nnU-Net's DataLoader3D does instead (train.sampling; see nnunetPatch).
 *
 * Which volume comes next (`volumeOrder`):
 * - `permutation`: every training volume once per epoch, in a shuffled order, without
 *   replacement — the official SIPL loader (a shuffled PyTorch DataLoader over the 24 BTCV
 *   volumes, `num_samples` crops of each collated into one batch);
 * - `random`: each volume drawn uniformly with replacement, for epochs of a fixed number of
 *   steps (nnU-Net's 250).
 *
 * Layouts: case image c + C·(x + X·(y + Y·z)) (channels-last, x fastest), label x + X·(y + Y·z);
 * a patch has the same layout with the patch size, i.e. a row-major [pz, py, px, C] block.
 */
import type {TrainConfig} from '../config/schema.js'
import type {Rng} from '../util/rng.js'
import type {Vec3} from '../util/vec3.js'


export interface TrainCase {
  id: string
  image: Float32Array
  label: Uint8Array
  /** [X, Y, Z] */
  shape: Vec3
  channels: number
}

export interface Patch {
  caseId: string
  /** [pz, py, px, C] */
  image: Float32Array
  /** [pz, py, px] */
  label: Uint8Array
  /** crop origin in the volume (x, y, z); may be negative never, padding is at the far end */
  origin: Vec3
  positive: boolean
  /** the volume it was cropped from, so that rotation and scaling can resample from beyond the crop */
  source?: TrainCase
}

export type VolumeOrder = 'permutation' | 'random'

export interface SamplerOptions {
  patch: Vec3
  posNegRatio: [number, number]
  samplesPerVolume: number
  /** 'permutation' or 'random' (default) */
  volumeOrder?: VolumeOrder
  /** 'monai' (default): samplesPerVolume crops per drawn volume; 'nnunet': one volume per batch element (train.sampling) */
  mode?: 'monai' | 'nnunet'
  /** 'nnunet': the batch size and the share of each batch centred on foreground */
  batchSize?: number
  oversampleForeground?: number
}

/** The sampler options a training config asks for. */
export function samplerOptions(train: TrainConfig, patch: Vec3): SamplerOptions {
  return {
    patch,
    posNegRatio: train.posNegRatio,
    samplesPerVolume: train.samplesPerVolume,
    volumeOrder: train.volumeOrder,
    mode: train.sampling,
    batchSize: train.batchSize,
    oversampleForeground: train.oversampleForeground,
  }
}

/**
 * Optimiser steps in one epoch. With `permutation` an epoch is one pass over the volumes:
 * ⌈volumes · samplesPerVolume / batchSize⌉ steps, the last one smaller when the crops do not
 * fill it (a DataLoader without drop_last); with `random` it is the configured itersPerEpoch.
 */
export function stepsPerEpoch(
  train: {volumeOrder: VolumeOrder; itersPerEpoch?: number | null; samplesPerVolume: number; batchSize: number},
  volumes: number,
): number {
  if (train.volumeOrder === 'permutation') return Math.ceil((volumes * train.samplesPerVolume) / train.batchSize)
  return train.itersPerEpoch ?? DEFAULT_ITERS_PER_EPOCH
}

/** nnU-Net's epoch of 250 steps, for volumes drawn with replacement */
export const DEFAULT_ITERS_PER_EPOCH = 250

/** Patches in step `iter` of an epoch: batchSize, except a short last step of a permutation epoch. */
export function patchesInStep(
  train: {volumeOrder: VolumeOrder; samplesPerVolume: number; batchSize: number},
  volumes: number,
  iter: number,
): number {
  if (train.volumeOrder !== 'permutation') return train.batchSize
  const crops = volumes * train.samplesPerVolume
  return Math.min(train.batchSize, crops - iter * train.batchSize)
}

/** Copies the block [origin, origin + patch) out of a case, zero beyond the volume. */
export function cropCase(c: TrainCase, origin: Vec3, patch: Vec3): {image: Float32Array; label: Uint8Array} {
  const [X, Y, Z] = c.shape
  const [px, py, pz] = patch
  const C = c.channels
  const image = new Float32Array(px * py * pz * C)
  const label = new Uint8Array(px * py * pz)
  const [x0, y0, z0] = origin
  const n = Math.max(0, Math.min(px, X - x0))
  for (let z = 0; z < pz && z0 + z < Z; z++)
    for (let y = 0; y < py && y0 + y < Y; y++) {
      const from = x0 + X * (y0 + y + Y * (z0 + z))
      const to = px * (y + py * z)
      image.set(c.image.subarray(from * C, (from + n) * C), to * C)
      label.set(c.label.subarray(from, from + n), to)
    }
  return {image, label}
}

export class PatchSampler {
  private readonly foreground = new Map<string, Int32Array>()
  private readonly byClass = new Map<string, Map<number, Int32Array>>()
  private queue: Patch[] = []
  /** permutation order: the volumes of this epoch not yet visited, next last */
  private unvisited: TrainCase[] = []
  /** 'nnunet': the position of the next patch in its batch */
  private slot = 0

  constructor(
    private readonly cases: TrainCase[],
    private readonly options: SamplerOptions,
    private readonly rng: Rng,
  ) {
    if (cases.length === 0) throw new Error('the patch sampler needs at least one training case')
  }

  private foregroundOf(c: TrainCase): Int32Array {
    let fg = this.foreground.get(c.id)
    if (!fg) {
      let n = 0
      for (let i = 0; i < c.label.length; i++) if (c.label[i] > 0) n++
      fg = new Int32Array(n)
      let j = 0
      for (let i = 0; i < c.label.length; i++) if (c.label[i] > 0) fg[j++] = i
      this.foreground.set(c.id, fg)
    }
    return fg
  }

  /** A voxel index for a crop centre: foreground if `positive` and the case has any, else background (rejection sampling). */
  private centre(c: TrainCase, positive: boolean): number {
    const fg = this.foregroundOf(c)
    if (positive && fg.length > 0) return fg[this.rng.int(fg.length)]
    const total = c.label.length
    if (fg.length === total) return this.rng.int(total)
    // background is most of a volume, so a few tries find it; bounded for safety
    for (let tries = 0; tries < 1000; tries++) {
      const i = this.rng.int(total)
      if (c.label[i] === 0) return i
    }
    return this.rng.int(total)
  }

  private crops(c: TrainCase): Patch[] {
    const [X, Y] = c.shape
    const [pos, neg] = this.options.posNegRatio
    const pPositive = pos + neg > 0 ? pos / (pos + neg) : 0
    const out: Patch[] = []
    for (let s = 0; s < this.options.samplesPerVolume; s++) {
      const positive = this.rng.next() < pPositive
      const i = this.centre(c, positive)
      const at: Vec3 = [i % X, Math.floor(i / X) % Y, Math.floor(i / (X * Y))]
      // centre the patch on the voxel, then move it inside the volume
      const origin = at.map((v, axis) => {
        const p = this.options.patch[axis]
        const size = c.shape[axis]
        return Math.max(0, Math.min(v - Math.floor(p / 2), size - p))
      }) as Vec3
      out.push(this.cropAt(c, origin, positive))
    }
    return out
  }

  private nextVolume(): TrainCase {
    if (this.options.volumeOrder !== 'permutation') return this.cases[this.rng.int(this.cases.length)]
    // a permutation epoch that asks for more crops than it holds starts another pass
    if (this.unvisited.length === 0) this.unvisited = this.rng.shuffle([...this.cases])
    return this.unvisited.pop()!
  }

  /** Foreground voxel indices of each label value present in the case (nnU-Net's class_locations). */
  private classVoxels(c: TrainCase): Map<number, Int32Array> {
    let classes = this.byClass.get(c.id)
    if (!classes) {
      const counts = new Map<number, number>()
      for (let i = 0; i < c.label.length; i++) if (c.label[i] > 0) counts.set(c.label[i], (counts.get(c.label[i]) ?? 0) + 1)
      classes = new Map([...counts.keys()].sort((a, b) => a - b).map((k) => [k, new Int32Array(counts.get(k)!)]))
      const filled = new Map([...classes.keys()].map((k) => [k, 0]))
      for (let i = 0; i < c.label.length; i++) {
        const k = c.label[i]
        if (k > 0) {
          classes.get(k)![filled.get(k)!] = i
          filled.set(k, filled.get(k)! + 1)
        }
      }
      this.byClass.set(c.id, classes)
    }
    return classes
  }

  private cropAt(c: TrainCase, origin: Vec3, positive: boolean): Patch {
    return {caseId: c.id, origin, positive, source: c, ...cropCase(c, origin, this.options.patch)}
  }

  /**
   * nnU-Net DataLoader3D: a volume drawn for this batch element alone (with replacement); the
   * elements from index round(B · (1 − oversampleForeground)) on, i.e. the last
   * B − round(B · (1 − oversampleForeground)) of each batch (nnU-Net's get_do_oversample; B = 2 at
   * 0.33: one), are centred on a random voxel of a random foreground class present in the volume,
   * the others placed uniformly at random. The
   * patch stays inside the volume where it fits (nnU-Net lets it reach past the edge by the
   * rotation margin of its larger crop).
   */
  private nnunetPatch(): Patch {
    const batch = this.options.batchSize ?? 1
    const forced = this.slot >= Math.round(batch * (1 - (this.options.oversampleForeground ?? 0.33)))
    this.slot = (this.slot + 1) % batch
    const c = this.cases[this.rng.int(this.cases.length)]
    const classes = [...this.classVoxels(c).values()]
    if (forced && classes.length > 0) {
      const voxels = classes[this.rng.int(classes.length)]
      const i = voxels[this.rng.int(voxels.length)]
      const [X, Y] = c.shape
      const at: Vec3 = [i % X, Math.floor(i / X) % Y, Math.floor(i / (X * Y))]
      const origin = at.map((v, axis) => Math.max(0, Math.min(v - Math.floor(this.options.patch[axis] / 2), c.shape[axis] - this.options.patch[axis]))) as Vec3
      return this.cropAt(c, origin, true)
    }
    const origin = c.shape.map((size, axis) => this.rng.int(Math.max(0, size - this.options.patch[axis]) + 1)) as Vec3
    return this.cropAt(c, origin, false)
  }

  /** The next patch; the next volume is taken when the crops of the last one are used up ('nnunet': for every patch). */
  next(): Patch {
    if (this.options.mode === 'nnunet') return this.nnunetPatch()
    if (this.queue.length === 0) this.queue = this.crops(this.nextVolume())
    return this.queue.shift()!
  }

  /**
   * Drops crops left over from the last volume and, in permutation order, starts a new pass over
   * the volumes. The training loop calls it at every epoch start, so that the sampling stream of
   * an epoch depends only on the Rng state saved at the end of the previous epoch, which is what
   * makes a resumed run identical.
   */
  startEpoch(): void {
    this.queue = []
    this.unvisited = []
    this.slot = 0
  }
}
