/**
 * Modules that own their parameters in the ParamStore (convolutions, norms, dense layers), built
 * from the plain ops of ops.ts. Everything is channels-last, `[B, D, H, W, C]`; why per-channel
 * vectors act on a rank-2 `[voxels, C]` view is said in ops.ts.
 */
import {tf} from '../backend/tf.js'
import {UserError} from '../errors.js'
import type {ParamStore} from './init.js'
import {fusedKernelsActive, groupNormFused} from '../kernels/fused.js'
import {isDryRun} from './mac-meter.js'
import {LEAKY_SLOPE, columnSums, conv3d, conv3dTranspose, dense, leakyRelu, scaleShift} from './ops.js'

export class Conv3d {
  readonly kernel: tf.Variable
  readonly bias: tf.Variable | null
  constructor(
    store: ParamStore,
    name: string,
    readonly cin: number,
    readonly cout: number,
    readonly size: number,
    readonly stride = 1,
    withBias = true,
  ) {
    this.kernel = store.add(`${name}.kernel`, [size, size, size, cin, cout], {kind: 'he', fanIn: size ** 3 * cin})
    this.bias = withBias ? store.add(`${name}.bias`, [cout], {kind: 'zeros'}) : null
  }
  apply(x: tf.Tensor5D): tf.Tensor5D {
    return conv3d(x, this.kernel as tf.Tensor5D, this.bias as tf.Tensor1D | null, this.stride)
  }
}

/** learned upsampling by `stride` (kernel = stride); weight layout `[k, k, k, Cout, Cin]` as tfjs wants */
export class ConvTranspose3d {
  readonly kernel: tf.Variable
  readonly bias: tf.Variable
  constructor(
    store: ParamStore,
    name: string,
    cin: number,
    cout: number,
    readonly stride: number,
  ) {
    // each output voxel sees exactly one input voxel through one kernel tap: fan-in = Cin
    this.kernel = store.add(`${name}.kernel`, [stride, stride, stride, cout, cin], {kind: 'he', fanIn: cin})
    this.bias = store.add(`${name}.bias`, [cout], {kind: 'zeros'})
  }
  /** the up-sampled x, plus `residual` (of the output's shape) when given */
  apply(x: tf.Tensor5D, residual?: tf.Tensor5D): tf.Tensor5D {
    return conv3dTranspose(x, this.kernel as tf.Tensor5D, this.bias as tf.Tensor1D, this.stride, residual)
  }
}

export interface NormSettings {
  norm: 'instance' | 'group'
  groups: number
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}

/**
 * Instance norm (statistics per sample and channel over space) or group norm (per sample and
 * channel group). Batch norm is out: batches are 1–4 patches.
 */
/** the norms' ε (added to the variance) */
export const NORM_EPS = 1e-5

export class SpatialNorm {
  readonly gamma: tf.Variable
  readonly beta: tf.Variable
  readonly groups: number
  constructor(
    store: ParamStore,
    readonly name: string,
    readonly channels: number,
    settings: NormSettings,
  ) {
    this.groups = settings.norm === 'instance' ? channels : gcd(channels, settings.groups)
    this.gamma = store.add(`${name}.gamma`, [channels], {kind: 'ones'})
    this.beta = store.add(`${name}.beta`, [channels], {kind: 'zeros'})
  }
  apply(x: tf.Tensor5D, eps = NORM_EPS): tf.Tensor5D {
    return this.normalize(x, eps, false)
  }

  /** LeakyReLU(apply(x)); on cpu with sipl's kernels in the norm's own kernel, with the same bits */
  applyLeakyRelu(x: tf.Tensor5D, eps = NORM_EPS): tf.Tensor5D {
    return this.normalize(x, eps, true)
  }

  private normalize(x: tf.Tensor5D, eps: number, leaky: boolean): tf.Tensor5D {
    const [b, d, h, w, c] = x.shape
    const g = this.groups
    const n = d * h * w
    if (g === c && n === 1 && !isDryRun()) {
      throw new UserError(
        `${this.name}: instance norm over a 1×1×1 grid outputs a constant (the patch is only one voxel at this stride); ` +
          `use model.backbone.norm=group, or a patch of at least twice the deepest stride per axis`,
      )
    }
    // one kernel each way on the cpu backend with sipl's kernels; the composition below elsewhere
    if (fusedKernelsActive()) {
      const rows = tf.reshape(x, [b * n, c]) as tf.Tensor2D
      const options = {groups: g, eps, samples: b, leakySlope: leaky ? LEAKY_SLOPE : undefined}
      const y = groupNormFused(rows, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D, options)
      return tf.reshape(y, [b, d, h, w, c])
    }
    // group g's statistics are the average of its channels' statistics: a [C, C] block matrix
    const groupMean =
      g === c
        ? null
        : tf.tensor2d(
            Array.from({length: c}, (_, i) =>
              Array.from({length: c}, (_, j) => (Math.floor(i / (c / g)) === Math.floor(j / (c / g)) ? g / c : 0)),
            ),
          )
    const samples = b === 1 ? [tf.reshape(x, [n, c])] : tf.split(tf.reshape(x, [b * n, c]), b, 0)
    const out = samples.map((sample) =>
      normalizeRows(sample as tf.Tensor2D, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D, groupMean, eps),
    )
    const y = tf.reshape(out.length === 1 ? out[0] : tf.concat(out, 0), [b, d, h, w, c]) as tf.Tensor5D
    return leaky ? (leakyRelu(y) as tf.Tensor5D) : y
  }
}

/**
 * y = γ·(x − μ)/σ + β over the rows of x `[n, C]`, statistics per channel or (groupMean) per
 * channel group, with the backward pass written out:
 *   dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),  ĝ = γ·dy,  dγ = Σ dy·x̂,  dβ = Σ dy
 * (means over the normalisation set). Autodiff through the statistics would run ~25 full-size ops
 * per norm at full resolution; this runs ~14.
 */
function normalizeRows(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, groupMean: tf.Tensor2D | null, eps: number): tf.Tensor2D {
  const [n, c] = x.shape
  // the gradient runs after the forward scope is gone: it gets the group matrix through `save`
  const average = (v: tf.Tensor1D, matrix: tf.Tensor | undefined) =>
    matrix ? (tf.reshape(tf.matMul(tf.reshape(v, [1, c]), matrix as tf.Tensor2D), [c]) as tf.Tensor1D) : v
  const perGroup = (v: tf.Tensor1D) => average(v, groupMean ?? undefined)
  const op = tf.customGrad((xs, gs, bs, save) => {
    const rows = xs as tf.Tensor2D
    const mean = perGroup(tf.div(columnSums(rows), n) as tf.Tensor1D)
    const meanSquare = perGroup(tf.div(columnSums(tf.square(rows) as tf.Tensor2D), n) as tf.Tensor1D)
    // var = E[x²] − E[x]² (clamped: rounding can make it slightly negative)
    const inv = tf.rsqrt(tf.add(tf.relu(tf.sub(meanSquare, tf.square(mean))), eps)) as tf.Tensor1D
    ;(save as tf.GradSaveFunc)(groupMean ? [rows, gs as tf.Tensor, mean, inv, groupMean] : [rows, gs as tf.Tensor, mean, inv])
    const scale = tf.mul(gs as tf.Tensor1D, inv)
    return {
      value: tf.add(tf.mul(rows, scale), tf.sub(bs as tf.Tensor1D, tf.mul(mean, scale))) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xr, gm, mu, iv, matrix] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor2D | undefined]
        const dyr = dy as tf.Tensor2D
        const xhat = tf.add(tf.mul(xr, iv), tf.neg(tf.mul(mu, iv))) as tf.Tensor2D
        const dBeta = columnSums(dyr)
        const dGamma = columnSums(tf.mul(dyr, xhat) as tf.Tensor2D)
        // mean(ĝ) and mean(ĝ·x̂) over each normalisation set, from the column sums already taken
        const m1 = average(tf.div(tf.mul(gm, dBeta), n) as tf.Tensor1D, matrix)
        const m2 = average(tf.div(tf.mul(gm, dGamma), n) as tf.Tensor1D, matrix)
        const dx = tf.add(tf.add(tf.mul(dyr, tf.mul(gm, iv)), tf.mul(xhat, tf.neg(tf.mul(iv, m2)))), tf.neg(tf.mul(iv, m1)))
        return [dx, dGamma, dBeta]
      },
    }
  })
  return op(x, gamma, beta) as tf.Tensor2D
}

export class Dense {
  readonly kernel: tf.Variable
  readonly bias: tf.Variable | null
  constructor(store: ParamStore, name: string, cin: number, cout: number, withBias = true) {
    this.kernel = store.add(`${name}.kernel`, [cin, cout], {kind: 'lecun', fanIn: cin})
    this.bias = withBias ? store.add(`${name}.bias`, [cout], {kind: 'zeros'}) : null
  }
  apply(x: tf.Tensor): tf.Tensor {
    return dense(x, this.kernel as tf.Tensor2D, this.bias as tf.Tensor1D | null)
  }
}

/** LayerNorm over the last axis (queries, projected pixel features) */
export class LayerNorm {
  readonly gamma: tf.Variable
  readonly beta: tf.Variable
  constructor(store: ParamStore, name: string, channels: number) {
    this.gamma = store.add(`${name}.gamma`, [channels], {kind: 'ones'})
    this.beta = store.add(`${name}.beta`, [channels], {kind: 'zeros'})
  }
  apply(x: tf.Tensor, eps = 1e-5): tf.Tensor {
    const c = x.shape[x.rank - 1]
    const rows = tf.reshape(x, [-1, c]) as tf.Tensor2D
    const {mean, variance} = tf.moments(rows, -1, true)
    const normed = tf.div(tf.sub(rows, mean), tf.sqrt(tf.add(variance, eps))) as tf.Tensor2D
    return tf.reshape(scaleShift(normed, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D), x.shape)
  }
}

/** RMS norm without a shift: maps an all-zero vector to zero (see the SMG cross-attention update) */
export class RmsNorm {
  readonly gamma: tf.Variable
  constructor(store: ParamStore, name: string, channels: number) {
    this.gamma = store.add(`${name}.gamma`, [channels], {kind: 'ones'})
  }
  apply(x: tf.Tensor, eps = 1e-6): tf.Tensor {
    const c = x.shape[x.rank - 1]
    const rows = tf.reshape(x, [-1, c])
    const rms = tf.sqrt(tf.add(tf.mean(tf.square(rows), -1, true), eps))
    return tf.reshape(tf.mul(tf.div(rows, rms), this.gamma), x.shape)
  }
}
