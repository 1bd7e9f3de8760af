/**
 * Encoder ψe and pixel decoder ψd (SIPL paper §3.2; DESIGN §4 "Backbone").
 *
 * A residual 3-D conv U-Net:
 *   stem    patch embedding, kernel = stride = p (default 4: "patch resolution (4,4,4)")
 *   enc.i   stage at stride p·2^i: [3³ conv stride 2 →] depths[i] residual blocks, widths[i] channels
 *           the last stage's output is F (stride 32 by default, d_i = widths.at(-1) channels)
 *   dec.i   2× transposed conv from the coarser level, concatenated with enc.i, 3³ conv → widths[i]
 *   full    3³ conv on the input at full resolution: the last skip
 *   out     p× transposed conv of dec.0, added to `full`, norm + act, 1×1×1 projection → F_o (d channels)
 * The decoder outputs at every stride (F itself at the deepest) are the multi-scale features
 * F_d^l the mask generator reads.
 *
 * Why the full-resolution stage is a 1×1×1 fusion and not a 3³ conv block: at full resolution a
 * 3³ conv on 2d channels costs ~27·(2d)·d MACs per voxel, more than the whole rest of the network
 * (BTCV: 110 GMAC of ~150); the full-resolution branch already supplies the fine edges.
 */
import {tf} from '../backend/tf.js'
import type {ModelConfig} from '../config/schema.js'
import type {ParamStore} from './init.js'
import {fullResolutionProbabilities, prototypeProbabilities} from '../kernels/fused.js'
import {Conv3d, ConvTranspose3d, NORM_EPS, SpatialNorm, type NormSettings} from './layers.js'
import {LEAKY_SLOPE, leakyRelu} from './ops.js'

/**
 * Receives intermediate values under stable names: every LeakyReLU input
 * ('backbone.enc.1.block.0.act2') and the SMG's discrete choices ('smg.layer.3.assignment',
 * 'smg.layer.3.previous'). The PyTorch twin (src/bench/sipl_twin.py) uses them where float32 and
 * float64 may decide differently within rounding: the side of a kink, an argmax near a tie.
 */
export type ForwardTrace = (name: string, value: tf.Tensor) => void

function act(z: tf.Tensor5D, name: string, trace: ForwardTrace | undefined): tf.Tensor5D {
  trace?.(name, z)
  return leakyRelu(z) as tf.Tensor5D
}

/** act(norm(z)): one kernel each way on cpu with sipl's kernels, unless the pre-activation is traced */
function normAct(norm: SpatialNorm, z: tf.Tensor5D, name: string, trace: ForwardTrace | undefined): tf.Tensor5D {
  return trace ? act(norm.apply(z), name, trace) : norm.applyLeakyRelu(z)
}

/** channel concatenation on rank-2 views (a rank-5 concat's gradient is a rank-5 slice/pad, which webgpu cannot compile) */
function concatChannels(a: tf.Tensor5D, b: tf.Tensor5D): tf.Tensor5D {
  const [n, d, h, w, ca] = a.shape
  const cb = b.shape[4]
  return tf.reshape(tf.concat([tf.reshape(a, [-1, ca]), tf.reshape(b, [-1, cb])], 1), [n, d, h, w, ca + cb]) as tf.Tensor5D
}

class ConvNormAct {
  readonly conv: Conv3d
  readonly norm: SpatialNorm
  constructor(
    store: ParamStore,
    readonly name: string,
    cin: number,
    cout: number,
    size: number,
    stride: number,
    norm: NormSettings,
  ) {
    // the norm's shift makes a conv bias redundant
    this.conv = new Conv3d(store, `${name}.conv`, cin, cout, size, stride, false)
    this.norm = new SpatialNorm(store, `${name}.norm`, cout, norm)
  }
  apply(x: tf.Tensor5D, trace?: ForwardTrace): tf.Tensor5D {
    return normAct(this.norm, this.conv.apply(x), this.name, trace)
  }
}

/** x ↦ act(x + norm(conv(act(norm(conv(x)))))) */
class ResBlock {
  readonly conv1: Conv3d
  readonly norm1: SpatialNorm
  readonly conv2: Conv3d
  readonly norm2: SpatialNorm
  constructor(
    store: ParamStore,
    readonly name: string,
    channels: number,
    norm: NormSettings,
  ) {
    this.conv1 = new Conv3d(store, `${name}.conv1`, channels, channels, 3, 1, false)
    this.norm1 = new SpatialNorm(store, `${name}.norm1`, channels, norm)
    this.conv2 = new Conv3d(store, `${name}.conv2`, channels, channels, 3, 1, false)
    this.norm2 = new SpatialNorm(store, `${name}.norm2`, channels, norm)
  }
  apply(x: tf.Tensor5D, trace?: ForwardTrace): tf.Tensor5D {
    const h = normAct(this.norm1, this.conv1.apply(x), `${this.name}.act1`, trace)
    return act(tf.add(x, this.norm2.apply(this.conv2.apply(h))) as tf.Tensor5D, `${this.name}.act2`, trace)
  }
}

interface Stage {
  down: ConvNormAct
  blocks: ResBlock[]
}

interface DecoderLevel {
  up: ConvTranspose3d
  fuse: ConvNormAct
}

export interface BackboneOutputs {
  /** F: the deepest encoder feature `[B, D/s, H/s, W/s, d_i]` */
  f: tf.Tensor5D
  /** F_d at each decoder stride (the deepest stride holds F) */
  features: Map<number, tf.Tensor5D>
  /** F_o: per-voxel embeddings `[B, D, H, W, d]`, as the input of their 1×1×1 projection and that projection */
  fo: VoxelEmbeddings
}

/** The layers of the backbone's full-resolution end: u = act(norm(up(decoded) + full(x))) */
interface FullResolutionEnd {
  full: ConvNormAct
  up: ConvTranspose3d
  norm: SpatialNorm
}

/**
 * u, the input of F_o's 1×1×1 projection (F_o = projection.apply(u)): the head (src/model/ipl.ts)
 * folds the projection into its prototypes instead of projecting every voxel.
 */
export interface VoxelEmbeddings {
  /** u's shape `[B, D, H, W, e]` */
  readonly shape: [number, number, number, number, number]
  readonly projection: Conv3d
  unprojected(): tf.Tensor5D
  /**
   * σ(u_b · g_bᵀ + c_b) `[B, D·H·W, K]` for prototypes g `[B, K, e]` and a shift c `[B, K]` (or
   * null): the head's probabilities at inference, where wholeLayerKernelsRun() only
   */
  probabilities(prototypes: tf.Tensor3D, shift: tf.Tensor2D | null): tf.Tensor3D
}

/**
 * The backbone's u: computed from the input and the decoder's output on the first call of
 * `unprojected`; at inference `probabilities` runs that and the head's product in one kernel
 * instead, u never leaving the kernels' heap (the same bits as prototypeProbabilities of
 * unprojected(): src/kernels/cpu/full-resolution.ts has why), unless u was computed already or the
 * forward is traced.
 */
class FullResolutionEmbeddings implements VoxelEmbeddings {
  readonly shape: [number, number, number, number, number]
  private u: tf.Tensor5D | null = null

  constructor(
    private readonly x: tf.Tensor5D,
    private readonly decoded: tf.Tensor5D,
    private readonly end: FullResolutionEnd,
    readonly projection: Conv3d,
    private readonly trace: ForwardTrace | undefined,
  ) {
    const [b, d, h, w] = x.shape
    this.shape = [b, d, h, w, end.norm.channels]
  }

  unprojected(): tf.Tensor5D {
    const {full, up, norm} = this.end
    this.u ??= normAct(norm, up.apply(this.decoded, full.apply(this.x, this.trace)), 'backbone.out', this.trace)
    return this.u
  }

  probabilities(prototypes: tf.Tensor3D, shift: tf.Tensor2D | null): tf.Tensor3D {
    const [b, d, h, w, e] = this.shape
    const {full, up, norm} = this.end
    if (this.u || this.trace || full.conv.bias)
      return prototypeProbabilities(tf.reshape(this.unprojected(), [b, d * h * w, e]) as tf.Tensor3D, prototypes, shift)
    const operands = {
      x: this.x,
      fullFilter: full.conv.kernel as tf.Tensor5D,
      fullGamma: full.norm.gamma as tf.Tensor1D,
      fullBeta: full.norm.beta as tf.Tensor1D,
      decoded: this.decoded,
      upFilter: up.kernel as tf.Tensor5D,
      upBias: up.bias as tf.Tensor1D,
      outGamma: norm.gamma as tf.Tensor1D,
      outBeta: norm.beta as tf.Tensor1D,
    }
    const attrs = {
      fullStride: full.conv.stride,
      fullGroups: full.norm.groups,
      upStride: up.stride,
      outGroups: norm.groups,
      eps: NORM_EPS,
      leakySlope: LEAKY_SLOPE,
    }
    return fullResolutionProbabilities(operands, prototypes, shift, attrs)
  }
}

export class Backbone {
  /** stride of each level: p, 2p, 4p, … */
  readonly strides: number[]
  readonly widths: number[]
  readonly embedDim: number
  private readonly full: ConvNormAct
  private readonly stages: Stage[] = []
  private readonly decoder: DecoderLevel[] = []
  private readonly outUp: ConvTranspose3d
  private readonly outNorm: SpatialNorm
  private readonly outProj: Conv3d

  constructor(store: ParamStore, cfg: ModelConfig['backbone'], inChannels: number) {
    const {widths, depths, patchStride: p, embedDim} = cfg
    const norm: NormSettings = {norm: cfg.norm, groups: cfg.groups}
    this.widths = widths
    this.embedDim = embedDim
    this.strides = widths.map((_, i) => p * 2 ** i)

    this.full = new ConvNormAct(store, 'backbone.full', inChannels, embedDim, 3, 1, norm)
    for (let i = 0; i < widths.length; i++) {
      const down =
        i === 0
          ? new ConvNormAct(store, 'backbone.stem', inChannels, widths[0], p, p, norm)
          : new ConvNormAct(store, `backbone.enc.${i}.down`, widths[i - 1], widths[i], 3, 2, norm)
      const blocks = Array.from({length: depths[i]}, (_, j) => new ResBlock(store, `backbone.enc.${i}.block.${j}`, widths[i], norm))
      this.stages.push({down, blocks})
    }
    for (let i = widths.length - 2; i >= 0; i--) {
      this.decoder.push({
        up: new ConvTranspose3d(store, `backbone.dec.${i}.up`, widths[i + 1], widths[i], 2),
        fuse: new ConvNormAct(store, `backbone.dec.${i}.fuse`, 2 * widths[i], widths[i], 3, 1, norm),
      })
    }
    this.outUp = new ConvTranspose3d(store, 'backbone.out.up', widths[0], embedDim, p)
    this.outNorm = new SpatialNorm(store, 'backbone.out.norm', embedDim, norm)
    this.outProj = new Conv3d(store, 'backbone.out.proj', embedDim, embedDim, 1, 1, true)
  }

  apply(x: tf.Tensor5D, trace?: ForwardTrace): BackboneOutputs {
    const skips: tf.Tensor5D[] = []
    let h = x
    for (const stage of this.stages) {
      h = stage.down.apply(h, trace)
      for (const block of stage.blocks) h = block.apply(h, trace)
      skips.push(h)
    }
    const f = h
    const features = new Map<number, tf.Tensor5D>([[this.strides.at(-1)!, f]])
    for (const [j, level] of this.decoder.entries()) {
      const i = this.widths.length - 2 - j
      h = level.fuse.apply(concatChannels(level.up.apply(h), skips[i]), trace)
      features.set(this.strides[i], h)
    }
    const end = {full: this.full, up: this.outUp, norm: this.outNorm}
    return {f, features, fo: new FullResolutionEmbeddings(x, h, end, this.outProj, trace)}
  }
}
