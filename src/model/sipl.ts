/**
 * The SIPL network (Liang et al., "Advancing Medical Image Segmentation via Self-supervised
 * Instance-adaptive Prototype Learning", IJCAI 2024, arXiv 2507.07602, §3, Eq. 1–13).
 *
 *   x ─► backbone ─► F (stride 32), F_d^l (multi-scale), F_o (full resolution)
 *   F_d^l ─► SMG (kMaX layers + self-supervised filtering) ─► pseudo masks M^l (aux outputs)
 *   F, M^L, F_o ─► IPL (IPP ⊕ CPP → MLP → prototypes g_k) ─► logits of Ŷ_k = σ(F_o · g_k + b_k)
 *
 * Ablations (DESIGN §4): `model.ipl: false` replaces IPL by plain learnable prototypes (the SMG
 * is still built and trained through its aux loss); `model.smg: false` replaces the SMG by a
 * 1×1×1 softmax head on the finest `smg.scales` decoder feature, whose output is the pseudo
 * mask (and the one aux output), so IPL keeps working.
 *
 * Parameters live in a named registry (see init.ts); `namedVariables()` gives their stable names.
 * Weights are DHWIO (`[kd, kh, kw, in, out]`, tfjs's layout); PyTorch's Conv3d is OIDHW.
 */
import {tf} from '../backend/tf.js'
import type {ModelConfig, SmgConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {Rng} from '../util/rng.js'
import {Backbone, type ForwardTrace} from './backbone.js'
import {ParamStore} from './init.js'
import {Ipl, PlainPrototypes, type HeadOutput} from './ipl.js'
import {Dense} from './layers.js'
import {isDryRun} from './mac-meter.js'
import {Smg, tauAt} from './smg.js'

export interface SiplOutputs {
  /** `[B, D, H, W, K]` main head, pre-sigmoid (Ŷ = σ(logits)) */
  logits: tf.Tensor5D
  /** one per mask-generator layer: pseudo-mask logits `[B, d_l, h_l, w_l, K+1]`, channel 0 = background */
  aux: tf.Tensor5D[]
  /** per mask-generator layer, the clusters that took part in its update `[B, N]` (Eq. 10); null where no filtering ran */
  keep: (tf.Tensor2D | null)[]
}

/** epoch drives τ (Eq. 11); it is read on every call, never cached */
export interface ForwardState {
  training: boolean
  /** 0-based index of the epoch whose τ applies */
  epoch: number
  /** sees intermediate values and discrete choices (the PyTorch twin's agreement check) */
  trace?: ForwardTrace
}

/** The epoch whose τ inference uses after `epochsDone` epochs of training: the last one trained (τ at its last value). */
export function inferenceEpoch(epochsDone: number): number {
  return Math.max(epochsDone - 1, 0)
}

export interface SiplNetArgs {
  model: ModelConfig
  smg: SmgConfig
  inChannels: number
  numClasses: number
  seed: number
  /** nested overlapping regions (BraTS): region k = label ≥ k; IPP of region k pools the pseudo-mask classes ≥ k */
  overlappingRegions?: boolean
}

/** Every config combination the network cannot be built from, as a UserError naming the key. */
export function validateModelConfig(model: ModelConfig, smg: SmgConfig, numClasses: number): void {
  const {widths, depths, patchStride} = model.backbone
  if (depths.length !== widths.length) {
    throw new UserError(`model.backbone.depths has ${depths.length} entries but widths has ${widths.length}; give one depth per stage`)
  }
  const strides = widths.map((_, i) => patchStride * 2 ** i)
  if (model.smg) {
    const bad = smg.scales.filter((s) => !strides.includes(s))
    if (bad.length > 0) {
      throw new UserError(
        `smg.scales [${smg.scales.join(', ')}]: stride ${bad.join(', ')} is not a decoder stride; choose from [${strides.join(', ')}]`,
      )
    }
    if (smg.queryDim % smg.heads !== 0) throw new UserError(`smg.heads=${smg.heads} must divide smg.queryDim=${smg.queryDim}`)
    if (model.queries < 1) throw new UserError('model.queries must be at least 1')
  } else if (!strides.includes(Math.min(...smg.scales))) {
    throw new UserError(
      `smg.scales: the -smg pseudo-mask head reads the finest scale ${Math.min(...smg.scales)}, which is not a decoder stride [${strides.join(', ')}]`,
    )
  }
  if (numClasses < 1) throw new UserError('data.classes must name at least one class')
}

export class SiplNet {
  readonly numClasses: number
  readonly inChannels: number
  /** the deepest stride: every patch axis must be a multiple of it */
  readonly maxStride: number
  private readonly store: ParamStore
  private readonly backbone: Backbone
  private readonly smg: Smg | null
  private readonly maskHead: {stride: number; dense: Dense} | null
  private readonly ipl: Ipl | null
  private readonly plain: PlainPrototypes | null

  constructor(private readonly args: SiplNetArgs) {
    const {model, smg, inChannels, numClasses} = args
    validateModelConfig(model, smg, numClasses)
    this.numClasses = numClasses
    this.inChannels = inChannels
    // initialisation is the first consumer of the seed's stream; a fork keeps it independent of sampling
    this.store = new ParamStore(new Rng(args.seed).fork())
    // a part that refuses its settings (a bad CPP file) throws after others made their variables
    try {
      this.backbone = new Backbone(this.store, model.backbone, inChannels)
      this.maxStride = this.backbone.strides.at(-1)!
      const channelsAtStride = new Map(this.backbone.strides.map((s, i) => [s, model.backbone.widths[i]]))
      if (model.smg) {
        this.smg = new Smg(this.store, smg, model.queries, channelsAtStride, numClasses)
        this.maskHead = null
      } else {
        const stride = Math.min(...smg.scales)
        this.smg = null
        this.maskHead = {stride, dense: new Dense(this.store, 'maskHead', channelsAtStride.get(stride)!, numClasses + 1)}
      }
      const featureDim = model.backbone.widths.at(-1)!
      this.ipl = model.ipl ? new Ipl(this.store, model, numClasses, featureDim, args.overlappingRegions ?? false) : null
      this.plain = model.ipl ? null : new PlainPrototypes(this.store, model, numClasses)
    } catch (error) {
      this.store.dispose()
      throw error
    }
  }

  /** Forward pass; call inside tf.tidy or optimizer.minimize. x: `[B, D, H, W, C]`. */
  apply(x: tf.Tensor5D, state: ForwardState): SiplOutputs {
    const {head, aux, keep} = this.forward(x, state, 'logits')
    return {logits: head, aux, keep}
  }

  /** Ŷ = σ(logits) of an inference pass, `[B, D, H, W, K]`; x and epoch as `apply`'s. */
  probabilities(x: tf.Tensor5D, epoch: number): tf.Tensor5D {
    return tf.tidy(() => this.forward(x, {training: false, epoch}, 'probabilities').head)
  }

  private forward(
    x: tf.Tensor5D,
    state: ForwardState,
    output: HeadOutput,
  ): {head: tf.Tensor5D; aux: tf.Tensor5D[]; keep: (tf.Tensor2D | null)[]} {
    this.checkInput(x)
    const {f, features, fo} = this.backbone.apply(x, state.trace)
    // logits (training): u now, where the forward has always made it. tfjs sums a tensor's gradients
    // in the order its uses were recorded, so making it later (in the head) changes their rounding
    if (output === 'logits') fo.unprojected()
    let aux: tf.Tensor5D[]
    let keep: (tf.Tensor2D | null)[] = []
    if (this.smg) ({masks: aux, keep} = this.smg.apply(features, this.filterThreshold(state), state.trace))
    else aux = [this.maskHead!.dense.apply(features.get(this.maskHead!.stride)!) as tf.Tensor5D]
    const head = this.ipl ? this.ipl.apply(f, aux[aux.length - 1], fo, output) : this.plain!.apply(fo, output)
    return {head, aux, keep}
  }

  /** τ of the self-supervised filtering for this call (Eq. 11, from state.epoch), or null when it does not run */
  filterThreshold(state: ForwardState): number | null {
    const filtering = state.training || this.args.smg.filterAtInference
    return this.smg && filtering ? tauAt(state.epoch, this.args.smg.tau) : null
  }

  private checkInput(x: tf.Tensor5D): void {
    if (x.rank !== 5) throw new UserError(`model input must be [B, D, H, W, C], got rank ${x.rank}`)
    if (x.shape[4] !== this.inChannels)
      throw new UserError(`model input has ${x.shape[4]} channels but the model was built for ${this.inChannels} (data.channels)`)
    const [, d, h, w] = x.shape
    if ([d, h, w].some((n) => n % this.maxStride !== 0)) {
      throw new UserError(
        `patch ${w}×${h}×${d} (x×y×z): every axis must be a multiple of ${this.maxStride} (model.backbone.patchStride · 2^(stages−1)); change preprocess.patch`,
      )
    }
    if (!isDryRun() && x.dtype !== 'float32') throw new UserError(`model input must be float32, got ${x.dtype}`)
  }

  namedVariables(): Map<string, tf.Variable> {
    return this.store.named()
  }

  trainableVariables(): tf.Variable[] {
    return [...this.store.named().values()].filter((v) => v.trainable)
  }

  /** total number of trainable scalars */
  parameterCount(): number {
    return this.trainableVariables().reduce((n, v) => n + v.size, 0)
  }

  dispose(): void {
    this.ipl?.dispose()
    this.store.dispose()
  }
}
