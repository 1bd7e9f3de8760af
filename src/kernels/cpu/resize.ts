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
 * Calls `visit` once per (outer index, output position) with the offsets of the output row and of
 * its two source rows (in a [outer, inSize, inner] array) and their weights.
 */
function forEachTapRow(
  outer: number,
  inSize: number,
  outSize: number,
  inner: number,
  visit: (at: number, i0: number, i1: number, w0: number, w1: number) => void,
): void {
  const {first, second, weight} = linearTaps(inSize, outSize)
  for (let a = 0; a < outer; a++) {
    const base = a * inSize * inner
    for (let o = 0; o < outSize; o++) {
      const w1 = weight[o]
      visit((a * outSize + o) * inner, base + first[o] * inner, base + second[o] * inner, 1 - w1, w1)
    }
  }
}

/** y[outer, outSize, inner] = interpolation of x[outer, inSize, inner] along the middle axis */
function interpolate(x: Float32Array, outer: number, inSize: number, outSize: number, inner: number): Float32Array {
  if (inSize === outSize) return x
  const y = new Float32Array(outer * outSize * inner)
  forEachTapRow(outer, inSize, outSize, inner, (at, i0, i1, w0, w1) => {
    for (let j = 0; j < inner; j++) y[at + j] = w0 * x[i0 + j] + w1 * x[i1 + j]
  })
  return y
}

/** the transpose of interpolate: dx[outer, inSize, inner] from dy[outer, outSize, inner] */
function interpolateBackward(dy: Float32Array, outer: number, inSize: number, outSize: number, inner: number): Float32Array {
  if (inSize === outSize) return dy
  const dx = new Float32Array(outer * inSize * inner)
  forEachTapRow(outer, inSize, outSize, inner, (at, i0, i1, w0, w1) => {
    for (let j = 0; j < inner; j++) {
      dx[i0 + j] += w0 * dy[at + j]
      dx[i1 + j] += w1 * dy[at + j]
    }
  })
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
  let y = interpolate(floats(backend, inputs.x), b * d * h, w, tw, c)
  y = interpolate(y, b * d, h, th, tw * c)
  y = interpolate(y, b, d, td, th * tw * c)
  // an all-same-size resize returns its input's own array: the output must own a copy
  if (y === floats(backend, inputs.x)) y = Float32Array.from(y)
  return output(backend, [b, td, th, tw, c], y)
}

/** dy `[B, D, H, W, C]` → dx `[B, d, h, w, C]`, d h w from the attribute inShape (the input's shape) */
export function resizeTrilinearGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const [b, d, h, w, c] = (attrs as unknown as {inShape: number[]}).inShape
  const [, td, th, tw] = inputs.dy.shape
  let dx = interpolateBackward(floats(backend, inputs.dy), b, d, td, th * tw * c)
  dx = interpolateBackward(dx, b * d, h, th, tw * c)
  dx = interpolateBackward(dx, b * d * h, w, tw, c)
  if (dx === floats(backend, inputs.dy)) dx = Float32Array.from(dx)
  return output(backend, [b, d, h, w, c], dx)
}
