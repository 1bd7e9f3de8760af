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

/** y[outer, outSize, inner] = interpolation of x[outer, inSize, inner] along the middle axis */
function interpolate(x: Float32Array, outer: number, inSize: number, outSize: number, inner: number): Float32Array {
  if (inSize === outSize) return x
  const y = new Float32Array(outer * outSize * inner)
  applyTaps(x, y, outer, inSize, outSize, inner, false)
  return y
}

/** the transpose of interpolate: dx[outer, inSize, inner] from dy[outer, outSize, inner] */
function interpolateBackward(dy: Float32Array, outer: number, inSize: number, outSize: number, inner: number): Float32Array {
  if (inSize === outSize) return dy
  const dx = new Float32Array(outer * inSize * inner)
  applyTaps(dy, dx, outer, inSize, outSize, inner, true)
  return dx
}

export interface ResizeAttrs {
  /** the output grid (D, H, W) */
  size: [number, number, number]
}

/** x `[B, d, h, w, C]` → `[B, D, H, W, C]`; the innermost spatial axis first, as the composition */
export function resizeTrilinearKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const [b, d, h, w, c] = inputs.x.shape
  const [td, th, tw] = (attrs as unknown as ResizeAttrs).size
  const x = floats(backend, inputs.x)
  let y = interpolate(x, b * d * h, w, tw, c)
  y = interpolate(y, b * d, h, th, tw * c)
  y = interpolate(y, b, d, td, th * tw * c)
  // an all-same-size resize returns its input's own array: the output must own a copy
  if (y === x) y = Float32Array.from(y)
  return output(backend, [b, td, th, tw, c], y)
}

/** dy `[B, D, H, W, C]` → dx `[B, d, h, w, C]`, d h w from the attribute inShape (the input's shape) */
export function resizeTrilinearGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const [b, d, h, w, c] = (attrs as unknown as {inShape: number[]}).inShape
  const [, td, th, tw] = inputs.dy.shape
  const dy = floats(backend, inputs.dy)
  let dx = interpolateBackward(dy, b, d, td, th * tw * c)
  dx = interpolateBackward(dx, b * d, h, th, tw * c)
  dx = interpolateBackward(dx, b * d * h, w, tw, c)
  if (dx === dy) dx = Float32Array.from(dx)
  return output(backend, [b, d, h, w, c], dx)
}
