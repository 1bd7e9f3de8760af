/**
 * Trilinear resize of `[B, D, H, W, C]` grids on the `cpu` backend (PyTorch's
 * `F.interpolate(mode='trilinear', align_corners=False)`, as src/model/layers.ts
 * `resizeTrilinear`): three separable passes of two-tap linear interpolation, and for the gradient
 * the same passes transposed (each output's gradient scattered back to its two taps). The op
 * composition does each axis as a batched product with an `[out, in]` weight matrix that is zero
 * but for two entries per row; on small innermost axes (the pseudo masks' K+1 classes) that product
 * is most of the cost of the aux losses' upsampling. The passes run in WebAssembly on the worker
 * pool (assembly/resize.ts) in float64 pairs, the arithmetic of the JavaScript loops they replaced
 * (those took ~4 ns an element: ~10 % of a demo training step).
 */
import type {tf} from '../../backend/tf.js'
import type {KernelArgs} from './elementwise.js'
import {copyIn} from './conv-job.js'
import {JOB, KIND} from './job.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, outputFromHeap} from './tensors.js'

/** columns of a work item: 4 KiB of a row */
const COLUMNS_PER_CHUNK = 1024

/**
 * The taps of output voxel o: it samples the input at (o + ½)·in/out − ½, clamped to the edges,
 * between `first` and `second` with weight 1 − w and w. In the heap as first[out] and second[out]
 * (i32), then w[out] (f32); returns the address.
 */
function linearTapsInHeap(rt: ConvRuntime, inSize: number, outSize: number): number {
  const at = rt.alloc(3 * outSize)
  const first = new Int32Array(rt.memory.buffer, at, outSize)
  const second = new Int32Array(rt.memory.buffer, at + 4 * outSize, outSize)
  const weight = rt.f32(at + 8 * outSize, outSize)
  const scale = inSize / outSize
  for (let o = 0; o < outSize; o++) {
    const source = Math.max((o + 0.5) * scale - 0.5, 0)
    const i0 = Math.min(Math.floor(source), inSize - 1)
    first[o] = i0
    second[o] = Math.min(i0 + 1, inSize - 1)
    weight[o] = source - i0
  }
  return at
}

/**
 * One pass along the middle axis of the heap array at `src`, [outer, inSize, inner] → [outer,
 * outSize, inner], or `transposed` its gradient [outer, outSize, inner] → [outer, inSize, inner];
 * returns the output's address (src itself when the sizes agree).
 */
function pass(rt: ConvRuntime, src: number, outer: number, inSize: number, outSize: number, inner: number, transposed: boolean): number {
  if (inSize === outSize) return src
  const taps = linearTapsInHeap(rt, inSize, outSize)
  const dst = rt.alloc(outer * (transposed ? inSize : outSize) * inner)
  const job = rt.job()
  job[JOB.KIND] = KIND.resizePass
  job[JOB.X] = src
  job[JOB.DY] = dst
  job[JOB.W] = taps
  job[JOB.IN_D] = inSize
  job[JOB.OUT_D] = outSize
  job[JOB.COUT] = inner
  job[JOB.K] = COLUMNS_PER_CHUNK
  job[JOB.RELU] = transposed ? 1 : 0
  job[JOB.CHUNKS] = outer * Math.ceil(inner / COLUMNS_PER_CHUNK)
  rt.run()
  return dst
}

export interface ResizeAttrs {
  /** the output grid (D, H, W) */
  size: [number, number, number]
}

/** x `[B, d, h, w, C]` → `[B, D, H, W, C]`; the innermost spatial axis first, as the composition */
export function resizeTrilinearKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const [b, d, h, w, c] = inputs.x.shape
  const [td, th, tw] = (attrs as unknown as ResizeAttrs).size
  const rt = freshRuntime()
  let y = copyIn(rt, floats(backend, inputs.x))
  y = pass(rt, y, b * d * h, w, tw, c, false)
  y = pass(rt, y, b * d, h, th, tw * c, false)
  y = pass(rt, y, b, d, td, th * tw * c, false)
  return outputFromHeap(backend, [b, td, th, tw, c], rt.f32(y, b * td * th * tw * c))
}

/** dy `[B, D, H, W, C]` → dx `[B, d, h, w, C]`, d h w from the attribute inShape (the input's shape) */
export function resizeTrilinearGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const [b, d, h, w, c] = (attrs as unknown as {inShape: number[]}).inShape
  const [, td, th, tw] = inputs.dy.shape
  const rt = freshRuntime()
  let dx = copyIn(rt, floats(backend, inputs.dy))
  dx = pass(rt, dx, b, d, td, th * tw * c, true)
  dx = pass(rt, dx, b * d, h, th, tw * c, true)
  dx = pass(rt, dx, b * d * h, w, tw, c, true)
  return outputFromHeap(backend, [b, d, h, w, c], rt.f32(dx, b * d * h * w * c))
}
