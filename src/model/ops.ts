/**
 * Plain tensor ops of the network, functions of tf.Tensors with no parameters of their own;
 * everything is channels-last, `[B, D, H, W, C]`. Convolutions and matrix products report their
 * multiply-accumulates to the active MAC meter (mac-meter.ts).
 *
 * Backend notes (why some code looks roundabout):
 * - Per-channel vectors (biases, norm affines) are applied to a rank-2 `[voxels, C]` view with a
 *   rank-1 `[C]` operand: the webgpu backend fails to compile a rank-1 + rank-5 broadcast, and the
 *   cpu backend has a fast path only for a trailing operand without size-1 axes (a `[1, C]` or
 *   `[1, 1, 1, 1, C]` broadcast is an order of magnitude slower there).
 * - Sums over voxels are products with a ones vector (`columnSums`), and the gradients of the
 *   bias/affine ops are written out (`addBias`, `scaleShift`): tfjs's own broadcast gradients
 *   reduce over a leading axis, which the cpu backend does by transposing, far slower).
 * - Resampling works axis by axis with rank-3 products (tfjs has no 3-D resize, and avgPool3d /
 *   rank-8 reshapes are missing or slow on some backends).
 */
import {tf} from '../backend/tf.js'
import {FUSED_LEAKY_RELU_GRAD, conv3dBiasAct, conv3dTransposeBias, fusedKernelsActive} from '../kernels/fused.js'
import {countMacs, isMetered} from './mac-meter.js'

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1)

/** Σ over rows of x `[n, C]` → `[C]`, as a product with a ones vector */
export function columnSums(x: tf.Tensor2D): tf.Tensor1D {
  const [n, c] = x.shape
  return tf.reshape(tf.matMul(tf.ones([1, 1, n]), tf.reshape(x, [1, n, c])), [c]) as tf.Tensor1D
}

/** x `[n, C]` + b `[C]`, with the bias gradient as a column sum */
export const addBias = tf.customGrad((x, b, save) => {
  ;(save as tf.GradSaveFunc)([])
  return {
    value: tf.add(x as tf.Tensor2D, b as tf.Tensor1D),
    gradFunc: (dy: tf.Tensor) => [dy, columnSums(dy as tf.Tensor2D)],
  }
}) as (x: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D

/** x `[n, C]` · a `[C]` + c `[C]` (a per-channel affine map), with its gradients written out */
export const scaleShift = tf.customGrad((x, a, c, save) => {
  ;(save as tf.GradSaveFunc)([x as tf.Tensor, a as tf.Tensor])
  return {
    value: tf.add(tf.mul(x as tf.Tensor2D, a as tf.Tensor1D), c as tf.Tensor1D),
    gradFunc: (dy: tf.Tensor, [xs, as]: tf.Tensor[]) => [
      tf.mul(dy, as),
      columnSums(tf.mul(dy, xs) as tf.Tensor2D),
      columnSums(dy as tf.Tensor2D),
    ],
  }
}) as (x: tf.Tensor2D, a: tf.Tensor1D, c: tf.Tensor1D) => tf.Tensor2D

/** mean over axis 1 of x `[M, f, R]` → `[M, R]` (a batched product with ones) */
function meanAxis1(x: tf.Tensor3D): tf.Tensor2D {
  const [m, f, r] = x.shape
  return tf.reshape(tf.matMul(tf.fill([m, 1, f], 1 / f), x), [m, r]) as tf.Tensor2D
}

/** repeats x `[M, R]` f times along a new axis 1 → `[M, f, R]` (a batched outer product) */
function repeatAxis1(x: tf.Tensor2D, f: number): tf.Tensor3D {
  const [m, r] = x.shape
  return tf.matMul(tf.ones([m, f, 1]), tf.reshape(x, [m, 1, r])) as tf.Tensor3D
}

/**
 * Whether sipl's whole-layer cpu kernels (a kMaX layer, the head's probabilities) run: the fused
 * kernels are active and no MAC meter is counting. Those kernels report no multiply-adds, so a
 * counted pass (`sipl model`) takes the op composition, whose products report theirs.
 */
export function wholeLayerKernelsRun(): boolean {
  return fusedKernelsActive() && !isMetered()
}

/** 'same' convolution; output grid = ceil(input / stride). kernel: DHWIO `[k, k, k, Cin, Cout]`. */
export function conv3d(x: tf.Tensor5D, kernel: tf.Tensor5D, bias: tf.Tensor1D | null, stride: number): tf.Tensor5D {
  const [b, d, h, w] = x.shape
  const [kd, kh, kw, cin, cout] = kernel.shape
  const out: [number, number, number, number, number] = [b, Math.ceil(d / stride), Math.ceil(h / stride), Math.ceil(w / stride), cout]
  const dry = countMacs(prod(out) * kd * kh * kw * cin)
  // on cpu with sipl's kernels the bias is the GEMM's epilogue and its gradient a sum in the same pass
  if (!dry && bias && fusedKernelsActive()) return conv3dBiasAct(x, kernel, bias, {strides: stride, pad: 'same', relu: false})
  const y = dry ? tf.zeros(out) : tf.conv3d(x, kernel, stride, 'same')
  return (bias ? tf.reshape(addBias(tf.reshape(y, [-1, cout]) as tf.Tensor2D, bias), out) : y) as tf.Tensor5D
}

/**
 * Transposed convolution with kernel = stride (non-overlapping learned upsampling), plus `residual`
 * (of the output's shape) when given: one kernel on cpu with sipl's kernels. kernel `[k, k, k, Cout, Cin]`.
 */
export function conv3dTranspose(
  x: tf.Tensor5D,
  kernel: tf.Tensor5D,
  bias: tf.Tensor1D | null,
  stride: number,
  residual?: tf.Tensor5D,
): tf.Tensor5D {
  const [b, d, h, w, cin] = x.shape
  const [kd, kh, kw, cout] = kernel.shape
  const out: [number, number, number, number, number] = [b, d * stride, h * stride, w * stride, cout]
  const dry = countMacs(b * d * h * w * kd * kh * kw * cin * cout)
  if (!dry && bias && fusedKernelsActive()) return conv3dTransposeBias(x, kernel, bias, out, stride, 'same', residual)
  const y = dry ? tf.zeros(out) : tf.conv3dTranspose(x, kernel, out, stride, 'same')
  const biased = (bias ? tf.reshape(addBias(tf.reshape(y, [-1, cout]) as tf.Tensor2D, bias), out) : y) as tf.Tensor5D
  return residual ? (tf.add(biased, residual) as tf.Tensor5D) : biased
}

/** x `[..., Cin]` · kernel `[Cin, Cout]` (+ bias) */
export function dense(x: tf.Tensor, kernel: tf.Tensor2D, bias: tf.Tensor1D | null): tf.Tensor {
  const [cin, cout] = kernel.shape
  const rows = x.size / cin
  const dry = countMacs(rows * cin * cout)
  const flat = tf.reshape(x, [rows, cin])
  let y: tf.Tensor2D = dry ? tf.zeros([rows, cout]) : tf.matMul(flat, kernel)
  if (bias) y = addBias(y, bias)
  return tf.reshape(y, [...x.shape.slice(0, -1), cout])
}

/** batched matrix product of rank-3 tensors, with the same transpose flags as tf.matMul */
export function bmm(a: tf.Tensor3D, b: tf.Tensor3D, transposeA = false, transposeB = false): tf.Tensor3D {
  const [batch, a1, a2] = a.shape
  const [m, k] = transposeA ? [a2, a1] : [a1, a2]
  const n = transposeB ? b.shape[1] : b.shape[2]
  const dry = countMacs(batch * m * k * n)
  return dry ? tf.zeros([batch, m, n]) : tf.matMul(a, b, transposeA, transposeB)
}

export const LEAKY_SLOPE = 0.01

/**
 * LeakyReLU whose gradient is dy · Step(x, slope), one pass (SiplLeakyReluGrad) where tfjs's
 * gradient takes three (Greater, Multiply, then a Select that branches on every element). Same
 * values, except where x is NaN (NaN here, dy·slope in tfjs). On the cpu backend with sipl's
 * kernels; tf.leakyRelu elsewhere.
 */
const leakyReluStepGrad = tf.customGrad((x, save) => {
  ;(save as tf.GradSaveFunc)([x as tf.Tensor])
  return {
    value: tf.leakyRelu(x as tf.Tensor, LEAKY_SLOPE),
    gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) =>
      tf.engine().runKernel(FUSED_LEAKY_RELU_GRAD, {dy, x: xs}, {alpha: LEAKY_SLOPE}) as tf.Tensor,
  }
}) as (x: tf.Tensor) => tf.Tensor

export function leakyRelu(x: tf.Tensor): tf.Tensor {
  return fusedKernelsActive() ? leakyReluStepGrad(x) : tf.leakyRelu(x, LEAKY_SLOPE)
}

/** GELU, tanh approximation, from basic ops (tfjs has no gelu); x³ as x·x², since tf.pow's gradient also differentiates the exponent */
export function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.mul(x, tf.square(x)))))
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)))
}

/** softmax over the last axis, computed on a rank-2 view (any rank in, same shape out) */
export function softmaxLast<T extends tf.Tensor>(x: T): T {
  const c = x.shape[x.rank - 1]
  return tf.reshape(tf.softmax(tf.reshape(x, [-1, c])), x.shape) as T
}

/** x / max(‖x‖₂, ε) along the last axis */
export function l2normalize(x: tf.Tensor, eps = 1e-6): tf.Tensor {
  const norm = tf.sqrt(tf.add(tf.sum(tf.square(x), -1, true), eps * eps))
  return tf.div(x, norm)
}

/** block mean by an integer factor per spatial axis (area downsampling) */
export function downsampleMean(x: tf.Tensor5D, factor: [number, number, number]): tf.Tensor5D {
  const [b, d, h, w, c] = x.shape
  const [fd, fh, fw] = factor
  let y: tf.Tensor = x
  if (fd > 1) y = meanAxis1(tf.reshape(y, [b * (d / fd), fd, h * w * c]))
  if (fh > 1) y = meanAxis1(tf.reshape(y, [b * (d / fd) * (h / fh), fh, w * c]))
  if (fw > 1) y = meanAxis1(tf.reshape(y, [b * (d / fd) * (h / fh) * (w / fw), fw, c]))
  return tf.reshape(y, [b, d / fd, h / fh, w / fw, c])
}

/** nearest-neighbour upsampling by an integer factor per spatial axis */
export function upsampleNearest(x: tf.Tensor5D, factor: [number, number, number]): tf.Tensor5D {
  const [b, d, h, w, c] = x.shape
  const [fd, fh, fw] = factor
  let y: tf.Tensor = x
  if (fw > 1) y = repeatAxis1(tf.reshape(y, [b * d * h * w, c]) as tf.Tensor2D, fw)
  if (fh > 1) y = repeatAxis1(tf.reshape(y, [b * d * h, w * fw * c]) as tf.Tensor2D, fh)
  if (fd > 1) y = repeatAxis1(tf.reshape(y, [b * d, h * fh * w * fw * c]) as tf.Tensor2D, fd)
  return tf.reshape(y, [b, d * fd, h * fh, w * fw, c])
}

/**
 * Linear-interpolation weights of one axis, `[out, in]`, as PyTorch's `F.interpolate(mode='trilinear',
 * align_corners=False)`: output voxel o samples the input at (o + ½)·in/out − ½, clamped to the edges.
 */
export function linearResizeMatrix(inSize: number, outSize: number): number[][] {
  const scale = inSize / outSize
  return Array.from({length: outSize}, (_, o) => {
    const row = new Array<number>(inSize).fill(0)
    const source = Math.max((o + 0.5) * scale - 0.5, 0)
    const i0 = Math.min(Math.floor(source), inSize - 1)
    const i1 = Math.min(i0 + 1, inSize - 1)
    const w1 = source - i0
    row[i0] += 1 - w1
    row[i1] += w1
    return row
  })
}

/**
 * Trilinear resize of x `[B, D, H, W, C]` to `target` (D, H, W), PyTorch's
 * `F.interpolate(x, size, mode='trilinear', align_corners=False)`: one batched product with a
 * small `[out, in]` weight matrix per axis, innermost axis first so the larger products come last.
 */
export function resizeTrilinear(x: tf.Tensor5D, target: readonly number[]): tf.Tensor5D {
  const [b, d, h, w, c] = x.shape
  const [td, th, tw] = target
  const along = (y: tf.Tensor, rows: number, inSize: number, outSize: number, inner: number): tf.Tensor => {
    if (inSize === outSize) return y
    const m = tf.tensor3d([linearResizeMatrix(inSize, outSize)]) // [1, out, in], broadcast over the rows
    return tf.matMul(m, tf.reshape(y, [rows, inSize, inner]))
  }
  let y: tf.Tensor = along(x, b * d * h, w, tw, c)
  y = along(y, b * d, h, th, tw * c)
  y = along(y, b, d, td, th * tw * c)
  return tf.reshape(y, [b, td, th, tw, c])
}

/** resizes a grid to `target` (D, H, W) by integer factors: block mean when shrinking, nearest when growing */
export function resizeGrid(x: tf.Tensor5D, target: readonly number[]): tf.Tensor5D {
  const src = x.shape.slice(1, 4)
  const ratio = src.map((s, i) => s / target[i])
  const down = ratio.map((r) => (r > 1 ? r : 1)) as [number, number, number]
  const up = ratio.map((r) => (r < 1 ? 1 / r : 1)) as [number, number, number]
  if ([...down, ...up].some((f) => !Number.isInteger(f))) {
    throw new Error(`resizeGrid: ${src.join('×')} → ${target.join('×')} is not an integer factor per axis`)
  }
  return upsampleNearest(downsampleMean(x, down), up)
}
