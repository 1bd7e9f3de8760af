/**
 * Self-supervised Mask Generation (SIPL paper §3.4, Eq. 6–11; DESIGN §4 "SMG").
 *
 * N learnable object queries are refined by kMaX-style decoder layers over the pixel decoder's
 * multi-scale features F_d^l (coarse to fine, `smg.layersPerScale` layers per scale). One layer:
 *
 *   P′ = GELU(LN(F_d^l W_p))                                 pixel features projected to d_q
 *   F̂  = L2norm(P′ W_f)                                      pixel embeddings for similarity
 *   A   = onehot(argmax_N F̂ · kernel(Q^{l−1})ᵀ)             Eq. 6, hard, no gradient
 *   A  ← A · keep,  keep_n = [Overlap(M^{l−1}, A_n) ≥ τ]      Eq. 10–11 (training; opt. inference)
 *   Q   = Q^{l−1} + W_o·RMS(Aᵀ V) + MHSA(LN(Q^{l−1}))        Eq. 6; V = P′ W_v; kMaX order:
 *                                                            cross-attention, self-attention on
 *                                                            the *pre-update* queries
 *   Q^l = Q + FFN(LN(Q))
 *   M_pc = F̂ · kernel(Q^l)ᵀ                                 Eq. 7 (N columns)
 *   M_cc = MLP(LN(Q^l))                                       Eq. 8 (K+1 columns, 0 = background)
 *   M^l  = M_pc · M_cc / √N                                   Eq. 9; softmax over K+1 = pseudo mask
 *
 * The cross-attention aggregate goes through a shift-free RMS norm and a bias-free projection, so a
 * filtered-out query (an all-zero column of A) receives exactly zero from it: its update equals the
 * update without cross-attention (tested).
 */
import {tf} from '../backend/tf.js'
import type {SmgConfig} from '../config/schema.js'
import type {ForwardTrace} from './backbone.js'
import type {ParamStore} from './init.js'
import {kmaxLayerFused, type KmaxParameter} from '../kernels/kmax.js'
import {Dense, LayerNorm, RmsNorm} from './layers.js'
import {bmm, gelu, l2normalize, resizeGrid, wholeLayerKernelsRun} from './ops.js'

/** A = onehot(argmax over the N clusters). argMax is integer-valued, so no gradient passes. */
export function hardAssignment(logits: tf.Tensor3D, trace?: {name: string; to: ForwardTrace}): tf.Tensor3D {
  const n = logits.shape[2]
  const index = tf.argMax(logits, -1)
  trace?.to(trace.name, index)
  return tf.cast(tf.oneHot(index, n), 'float32') as tf.Tensor3D
}

/**
 * Eq. 10: for every cluster n, max over the foreground classes k of |M_k^{l−1} ∩ A_n| / |A_n|.
 * assignment `[B, P, N]` (one-hot rows), previous `[B, P, K+1]` (one-hot rows, channel 0 =
 * background) → `[B, N]`; an empty cluster gets 0.
 */
export function clusterForegroundRatio(assignment: tf.Tensor3D, previous: tf.Tensor3D): tf.Tensor2D {
  const k1 = previous.shape[2]
  const counts = bmm(assignment, previous, true) // [B, N, K+1]: voxels of cluster n in class k
  const size = tf.sum(counts, -1) // |A_n|
  const foreground = tf.max(tf.slice(counts, [0, 0, 1], [-1, -1, k1 - 1]), -1)
  return tf.div(foreground, tf.maximum(size, 1)) as tf.Tensor2D
}

/** keep_n = 1 when the cluster's foreground ratio reaches τ (Eq. 10–11), else 0 */
export function clusterKeep(assignment: tf.Tensor3D, previous: tf.Tensor3D, tau: number): tf.Tensor2D {
  return tf.cast(tf.greaterEqual(clusterForegroundRatio(assignment, previous), tau), 'float32') as tf.Tensor2D
}

export interface KmaxLayerOutput {
  queries: tf.Tensor3D
  /** M^l before the softmax, `[B, P, K+1]` */
  maskLogits: tf.Tensor3D
  /** the (filtered) hard assignment that drove the update, `[B, P, N]` */
  assignment: tf.Tensor3D
  /** which clusters took part in the update, `[B, N]` (null when no filtering ran) */
  keep: tf.Tensor2D | null
}

export interface KmaxLayerInput {
  /** F_d^l flattened, `[B, P, C_l]` */
  pixels: tf.Tensor3D
  /** Q^{l−1}, `[B, N, d_q]` */
  queries: tf.Tensor3D
  /** binarised previous pseudo mask on this layer's grid, one-hot `[B, P, K+1]`; null = no filtering */
  previous: tf.Tensor3D | null
  tau: number
  /** false drops the cross-attention update entirely (used to test the filtering's equivalence) */
  crossAttention?: boolean
  /** receives the cluster index of every voxel as `<name>.assignment` */
  trace?: {name: string; to: ForwardTrace}
}

export class KmaxLayer {
  private readonly pixelProj: Dense
  private readonly pixelNorm: LayerNorm
  private readonly pixelHead: Dense
  private readonly kernelNorm: LayerNorm
  private readonly kernelProj: Dense
  private readonly valueProj: Dense
  private readonly crossNorm: RmsNorm
  private readonly crossOut: Dense
  private readonly attnNorm: LayerNorm
  private readonly qkv: Dense
  private readonly attnOut: Dense
  private readonly ffnNorm: LayerNorm
  private readonly ffn1: Dense
  private readonly ffn2: Dense
  private readonly classNorm: LayerNorm
  private readonly class1: Dense
  private readonly class2: Dense

  constructor(
    store: ParamStore,
    name: string,
    pixelChannels: number,
    private readonly dq: number,
    private readonly heads: number,
    ffnHidden: number,
    numClasses: number,
  ) {
    this.pixelProj = new Dense(store, `${name}.pixelProj`, pixelChannels, dq)
    this.pixelNorm = new LayerNorm(store, `${name}.pixelNorm`, dq)
    this.pixelHead = new Dense(store, `${name}.pixelHead`, dq, dq)
    this.kernelNorm = new LayerNorm(store, `${name}.kernelNorm`, dq)
    this.kernelProj = new Dense(store, `${name}.kernelProj`, dq, dq)
    this.valueProj = new Dense(store, `${name}.valueProj`, dq, dq)
    this.crossNorm = new RmsNorm(store, `${name}.crossNorm`, dq)
    this.crossOut = new Dense(store, `${name}.crossOut`, dq, dq, false)
    this.attnNorm = new LayerNorm(store, `${name}.attnNorm`, dq)
    this.qkv = new Dense(store, `${name}.qkv`, dq, 3 * dq)
    this.attnOut = new Dense(store, `${name}.attnOut`, dq, dq)
    this.ffnNorm = new LayerNorm(store, `${name}.ffnNorm`, dq)
    this.ffn1 = new Dense(store, `${name}.ffn1`, dq, ffnHidden)
    this.ffn2 = new Dense(store, `${name}.ffn2`, ffnHidden, dq)
    this.classNorm = new LayerNorm(store, `${name}.classNorm`, dq)
    this.class1 = new Dense(store, `${name}.class1`, dq, dq)
    this.class2 = new Dense(store, `${name}.class2`, dq, numClasses + 1)
  }

  /** the parameters by the fused op's names (src/kernels/kmax.ts) */
  private parameters(): Record<KmaxParameter, tf.Tensor> {
    const named: Record<string, tf.Tensor> = {}
    const modules: [string, Dense | LayerNorm | RmsNorm][] = [
      ['pixelProj', this.pixelProj],
      ['pixelNorm', this.pixelNorm],
      ['pixelHead', this.pixelHead],
      ['kernelNorm', this.kernelNorm],
      ['kernelProj', this.kernelProj],
      ['valueProj', this.valueProj],
      ['crossNorm', this.crossNorm],
      ['crossOut', this.crossOut],
      ['attnNorm', this.attnNorm],
      ['qkv', this.qkv],
      ['attnOut', this.attnOut],
      ['ffnNorm', this.ffnNorm],
      ['ffn1', this.ffn1],
      ['ffn2', this.ffn2],
      ['classNorm', this.classNorm],
      ['class1', this.class1],
      ['class2', this.class2],
    ]
    for (const [name, module] of modules) {
      if (module instanceof Dense) {
        named[`${name}.kernel`] = module.kernel
        if (module.bias) named[`${name}.bias`] = module.bias
      } else {
        named[`${name}.gamma`] = module.gamma
        if (module instanceof LayerNorm) named[`${name}.beta`] = module.beta
      }
    }
    return named as Record<KmaxParameter, tf.Tensor>
  }

  private kernels(queries: tf.Tensor3D): tf.Tensor3D {
    return this.kernelProj.apply(this.kernelNorm.apply(queries)) as tf.Tensor3D
  }

  /** multi-head self-attention among the queries, `[B, N, d_q]` → `[B, N, d_q]` */
  private selfAttention(queries: tf.Tensor3D): tf.Tensor3D {
    const [b, n] = queries.shape
    const h = this.heads
    const dh = this.dq / h
    const qkv = this.qkv.apply(this.attnNorm.apply(queries))
    // [B, N, 3, h, dh] → three [B·h, N, dh]
    const split = (i: number) =>
      tf.reshape(tf.transpose(tf.reshape(tf.slice(qkv, [0, 0, i * this.dq], [-1, -1, this.dq]), [b, n, h, dh]), [0, 2, 1, 3]), [
        b * h,
        n,
        dh,
      ]) as tf.Tensor3D
    const [q, k, v] = [split(0), split(1), split(2)]
    const weights = tf.softmax(tf.mul(bmm(q, k, false, true), 1 / Math.sqrt(dh))) as tf.Tensor3D
    const mixed = tf.reshape(tf.transpose(tf.reshape(bmm(weights, v), [b, h, n, dh]), [0, 2, 1, 3]), [b, n, this.dq])
    return this.attnOut.apply(mixed) as tf.Tensor3D
  }

  apply(input: KmaxLayerInput): KmaxLayerOutput {
    const {pixels, queries, previous, tau} = input
    if (wholeLayerKernelsRun()) {
      // one kernel each way on the cpu backend with sipl's kernels; the composition below elsewhere
      const out = kmaxLayerFused(
        {pixels, queries, previous, tau, heads: this.heads, crossAttention: input.crossAttention !== false},
        this.parameters(),
      )
      input.trace?.to(`${input.trace.name}.assignment`, out.clusters)
      return {queries: out.queries, maskLogits: out.maskLogits, assignment: out.assignment, keep: previous ? out.keep : null}
    }
    const numQueries = queries.shape[1]
    const projected = gelu(this.pixelNorm.apply(this.pixelProj.apply(pixels))) as tf.Tensor3D // P′ [B, P, d_q]
    const embeddings = l2normalize(this.pixelHead.apply(projected)) as tf.Tensor3D // F̂ [B, P, d_q]

    // Eq. 6: hard pixel-to-cluster assignment from the previous queries
    const traceAs = input.trace && {name: `${input.trace.name}.assignment`, to: input.trace.to}
    let assignment = hardAssignment(bmm(embeddings, this.kernels(queries), false, true), traceAs)
    let keep: tf.Tensor2D | null = null
    if (previous) {
      // Eq. 10–11: clusters that are not mostly inside one foreground class of M^{l−1} sit out
      keep = clusterKeep(assignment, previous, tau)
      assignment = tf.mul(assignment, tf.expandDims(keep, 1)) as tf.Tensor3D
    }
    let updated = tf.add(queries, this.selfAttention(queries)) as tf.Tensor3D // MHSA(Q^{l−1})
    if (input.crossAttention !== false) {
      const values = this.valueProj.apply(projected) as tf.Tensor3D
      const aggregate = bmm(assignment, values, true) // Aᵀ V: sum over each cluster's voxels [B, N, d_q]
      updated = tf.add(updated, this.crossOut.apply(this.crossNorm.apply(aggregate))) as tf.Tensor3D
    }
    updated = tf.add(updated, this.ffn2.apply(gelu(this.ffn1.apply(this.ffnNorm.apply(updated))))) as tf.Tensor3D

    const pixelToCluster = bmm(embeddings, this.kernels(updated), false, true) // Eq. 7: M_pc [B, P, N]
    const clusterToClass = this.class2.apply(gelu(this.class1.apply(this.classNorm.apply(updated)))) as tf.Tensor3D // Eq. 8: M_cc [B, N, K+1]
    // Eq. 9: M = M_pc · M_cc; 1/√N keeps the sum over N clusters at unit scale (kMaX tames it with a 0.1-initialised BN)
    const maskLogits = tf.mul(bmm(pixelToCluster, clusterToClass), 1 / Math.sqrt(numQueries)) as tf.Tensor3D
    return {queries: updated, maskLogits, assignment, keep}
  }
}

export interface SmgOutputs {
  /** M^l logits per layer, `[B, d_l, h_l, w_l, K+1]`, channel 0 = background */
  masks: tf.Tensor5D[]
  /** per layer, which clusters took part in the update `[B, N]` (Eq. 10), null where no filtering ran */
  keep: (tf.Tensor2D | null)[]
}

export class Smg {
  readonly queries: tf.Variable
  readonly layers: {stride: number; layer: KmaxLayer}[] = []

  constructor(
    store: ParamStore,
    cfg: SmgConfig,
    numQueries: number,
    channelsAtStride: Map<number, number>,
    private readonly numClasses: number,
  ) {
    // kMaX initialises cluster centres with std 1
    this.queries = store.add('smg.queries', [numQueries, cfg.queryDim], {kind: 'normal', std: 1})
    let l = 0
    for (const stride of cfg.scales) {
      for (let j = 0; j < cfg.layersPerScale; j++, l++) {
        const layer = new KmaxLayer(
          store,
          `smg.layer.${l}`,
          channelsAtStride.get(stride)!,
          cfg.queryDim,
          cfg.heads,
          cfg.ffnHidden,
          numClasses,
        )
        this.layers.push({stride, layer})
      }
    }
  }

  /** tau = null: no filtering; `trace` sees each layer's cluster indices and binarised previous mask */
  apply(features: Map<number, tf.Tensor5D>, tau: number | null, trace?: ForwardTrace): SmgOutputs {
    const b = features.values().next().value!.shape[0]
    let queries = tf.tile(tf.expandDims(this.queries, 0), [b, 1, 1]) as tf.Tensor3D
    const masks: tf.Tensor5D[] = []
    const keep: (tf.Tensor2D | null)[] = []
    for (const [l, {stride, layer}] of this.layers.entries()) {
      const feature = features.get(stride)!
      const [, d, h, w, c] = feature.shape
      let previous: tf.Tensor3D | null = null
      if (tau !== null && masks.length > 0) {
        // binarise M^{l−1}: argmax over classes, one-hot, moved to this grid
        const last = masks[masks.length - 1]
        const source = tf.argMax(last, -1)
        trace?.(`smg.layer.${l}.source`, source)
        const labels = tf.oneHot(source, this.numClasses + 1) as tf.Tensor5D
        const onGrid = resizeGrid(tf.cast(labels, 'float32') as tf.Tensor5D, [d, h, w])
        // after block-mean shrinking, re-binarise by majority
        const classes = tf.argMax(onGrid, -1)
        trace?.(`smg.layer.${l}.previous`, classes)
        previous = tf.reshape(tf.cast(tf.oneHot(classes, this.numClasses + 1), 'float32'), [b, d * h * w, this.numClasses + 1])
      }
      const pixels = tf.reshape(feature, [b, d * h * w, c]) as tf.Tensor3D
      const out = layer.apply({pixels, queries, previous, tau: tau ?? 0, trace: trace && {name: `smg.layer.${l}`, to: trace}})
      queries = out.queries
      keep.push(out.keep)
      masks.push(tf.reshape(out.maskLogits, [b, d, h, w, this.numClasses + 1]))
    }
    return {masks, keep}
  }
}

/** Eq. 11: τ = min(epoch / ramp, 1) · (end − start) + start; a ramp of 0 means τ = end from the start */
export function tauAt(epoch: number, tau: SmgConfig['tau']): number {
  const progress = tau.rampEpochs === 0 ? 1 : Math.min(Math.max(epoch, 0) / tau.rampEpochs, 1)
  return progress * (tau.end - tau.start) + tau.start
}
