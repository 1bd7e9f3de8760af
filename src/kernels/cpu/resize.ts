/**
 * Trilinear resize of `[B, D, H, W, C]` grids on the `cpu` backend (PyTorch's
 * `F.interpolate(mode='trilinear', align_corners=False)`, as src/model/layers.ts
 * `resizeTrilinear`): three separable passes of two-tap linear interpolation, and for the gradient
 * the same passes transposed (each output's gradient scattered back to its two taps). The op
 * composition does each axis as a batched product with an `[out, in]` weight matrix that is zero
 * but for two entries per row; on small innermost axes (the pseudo masks' K+1 classes) that product
 * is most of the cost of the aux losses' upsampling.
 */
import type {tf} from '../../backend/tf.js'
import type {KernelArgs} from './elementwise.js'
import {arrayPool, type ArrayPool} from './array-pool.js'
import {floats, output} from './tensors.js'

interface Taps {
  first: Int32Array
  second: Int32Array
  /** the weight of `second`; `first` gets 1 − weight */
  weight: Float32Array
}

/** output voxel o samples the input at (o + ½)·in/out − ½, clamped to the edges */
function linearTaps(inSize: number, outSize: number): Taps {
  const taps: Taps = {first: new Int32Array(outSize), second: new Int32Array(outSize), weight: new Float32Array(outSize)}
  const scale = inSize / outSize
  for (let o = 0; o < outSize; o++) {
    const source = Math.max((o + 0.5) * scale - 0.5, 0)
    const i0 = Math.min(Math.floor(source), inSize - 1)
    taps.first[o] = i0
    taps.second[o] = Math.min(i0 + 1, inSize - 1)
    taps.weight[o] = source - i0
  }
  return taps
}

/**
 * The interpolation along the middle axis (dst[outer, outSize, inner] from src[outer, inSize,
 * inner]) or, `transposed`, its transpose (each output row's gradient in src added to its two
 * source rows in dst). Plain loops: a callback per row of a few channels cost more than the
 * interpolation.
 */
function applyTaps(
  src: Float32Array,
  dst: Float32Array,
  outer: number,
  inSize: number,
  outSize: number,
  inner: number,
  transposed: boolean,
): void {
  const {first, second, weight} = linearTaps(inSize, outSize)
  for (let r = 0, o = 0; r < outer; r++) {
    const base = r * inSize * inner
    for (let t = 0; t < outSize; t++, o += inner) {
      const i0 = base + first[t] * inner
      const i1 = base + second[t] * inner
      const b = weight[t]
      const a = 1 - b
      if (transposed)
        for (let j = 0; j < inner; j++) {
          dst[i0 + j] += a * src[o + j]
          dst[i1 + j] += b * src[o + j]
        }
      else for (let j = 0; j < inner; j++) dst[o + j] = a * src[i0 + j] + b * src[i1 + j]
    }
  }
}

/**
 * One pass along the middle axis of src[outer, inSize, inner] into an array from the pool: the
 * interpolation to outSize or, `transposed`, its transpose back to inSize (outSize is then src's
 * middle size). src itself when the sizes agree. A src that is not `input` (the previous pass's
 * scratch) goes back to the pool.
 */
function pass(
  pool: ArrayPool,
  input: Float32Array,
  src: Float32Array,
  outer: number,
  inSize: number,
  outSize: number,
  inner: number,
  transposed: boolean,
): Float32Array {
  if (inSize === outSize) return src
  const length = outer * (transposed ? inSize : outSize) * inner
  // the transpose adds into its output: it starts from zeros; the interpolation writes every element
  const dst = transposed ? pool.take(length).fill(0) : pool.take(length)
  applyTaps(src, dst, outer, inSize, outSize, inner, transposed)
  if (src !== input) pool.giveBack(src)
  return dst
}

/** the last pass's array as the output tensor; a copy when no pass ran (the input's own array is not the output's) */
function resizeOutput(backend: unknown, pool: ArrayPool, input: Float32Array, result: Float32Array, shape: number[]): tf.TensorInfo {
  if (result !== input) return output(backend, shape, result)
  const copy = pool.take(input.length)
  copy.set(input)
  return output(backend, shape, copy)
}

export interface ResizeAttrs {
  /** the output grid (D, H, W) */
  size: [number, number, number]
}

/** x `[B, d, h, w, C]` → `[B, D, H, W, C]`; the innermost spatial axis first, as the composition */
export function resizeTrilinearKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const [b, d, h, w, c] = inputs.x.shape
  const [td, th, tw] = (attrs as unknown as ResizeAttrs).size
  const pool = arrayPool(backend)
  const x = floats(backend, inputs.x)
  let y = pass(pool, x, x, b * d * h, w, tw, c, false)
  y = pass(pool, x, y, b * d, h, th, tw * c, false)
  y = pass(pool, x, y, b, d, td, th * tw * c, false)
  return resizeOutput(backend, pool, x, y, [b, td, th, tw, c])
}

/** dy `[B, D, H, W, C]` → dx `[B, d, h, w, C]`, d h w from the attribute inShape (the input's shape) */
export function resizeTrilinearGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const [b, d, h, w, c] = (attrs as unknown as {inShape: number[]}).inShape
  const [, td, th, tw] = inputs.dy.shape
  const pool = arrayPool(backend)
  const dy = floats(backend, inputs.dy)
  let dx = pass(pool, dy, dy, b, d, td, th * tw * c, true)
  dx = pass(pool, dy, dx, b * d, h, th, tw * c, true)
  dx = pass(pool, dy, dx, b * d * h, w, tw, c, true)
  return resizeOutput(backend, pool, dy, dx, [b, d, h, w, c])
}
