/**
 * Conv3D, Conv3DBackpropFilterV2 and Conv3DBackpropInputV2 for tfjs's `cpu` backend, and sipl's
 * fused convolution kernels (conv + bias + ReLU over [x, skip], conv3dTranspose + bias, and their
 * backwards): each reads its tensors and attributes, runs the jobs of conv3d-heap.ts on one fresh
 * heap, and wraps the results as tensors. Design and measurements: docs/kernels.md.
 */
import {tf} from '../../backend/tf.js'
import type {Vec3} from '../../util/vec3.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {floats, output, outputFromHeap} from './tensors.js'
import {copyIn, type ConvInfo} from './conv-job.js'
import {channelAffine} from './channel-affine.js'
import {
  biasActGradAt,
  conv3dFilterGrad,
  conv3dForward,
  conv3dInputGrad,
  directTransposed,
  directTransposedApplies,
  filterGradAt,
  forwardAt,
  inputGradAt,
  inputLength,
  outputLength,
} from './conv3d-heap.js'

type TensorInfo = tf.TensorInfo
interface KernelArgs {
  inputs: Record<string, TensorInfo>
  backend: unknown
  attrs?: Record<string, unknown>
}

/** tfjs's strides and dilations attributes: one number for every axis, or one per axis */
type Strides = Vec3 | number
type Pad = 'valid' | 'same' | number

export function conv3dKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {x, filter} = inputs
  const {strides, pad, dilations} = attrs as {strides: Strides; pad: Pad; dilations: Strides}
  const info = tf.backend_util.computeConv3DInfo(
    x.shape as [number, number, number, number, number],
    filter.shape as [number, number, number, number, number],
    strides,
    dilations,
    pad as 'valid' | 'same',
  )
  return outputFromHeap(backend, info.outShape, conv3dForward(floats(backend, x), floats(backend, filter), info))
}

export function conv3dBackpropFilterKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {x, dy} = inputs
  const {strides, pad, filterShape} = attrs as {strides: Strides; pad: Pad; filterShape: number[]}
  const info = tf.backend_util.computeConv3DInfo(
    x.shape as [number, number, number, number, number],
    filterShape as [number, number, number, number, number],
    strides,
    1,
    pad as 'valid' | 'same',
  )
  return output(backend, filterShape, conv3dFilterGrad(floats(backend, x), floats(backend, dy), info))
}

export function conv3dBackpropInputKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {dy, filter} = inputs
  const {strides, pad, inputShape} = attrs as {strides: Strides; pad: Pad; inputShape: number[]}
  const info = tf.backend_util.computeConv3DInfo(
    inputShape as [number, number, number, number, number],
    filter.shape as [number, number, number, number, number],
    strides,
    1,
    pad as 'valid' | 'same',
  )
  return outputFromHeap(backend, inputShape, conv3dInputGrad(floats(backend, dy), floats(backend, filter), info))
}

type Shape5 = [number, number, number, number, number]

/** The shape of the convolution's input: x, or x and skip concatenated along channels. */
function inputShape(x: TensorInfo, skip: TensorInfo | undefined): Shape5 {
  const shape = [...x.shape] as Shape5
  if (skip) shape[4] += skip.shape[4]
  return shape
}

/** The convolution's input into the heap: x, or [x, skip] concatenated along channels there (no concat tensor in JS). */
function copyInInput(rt: ConvRuntime, backend: unknown, x: TensorInfo, skip: TensorInfo | undefined): number {
  if (!skip) return copyIn(rt, floats(backend, x))
  const [ca, cb] = [x.shape[4], skip.shape[4]]
  const voxels = tf.util.sizeFromShape(x.shape) / ca
  const a = copyIn(rt, floats(backend, x))
  const b = copyIn(rt, floats(backend, skip))
  const both = rt.alloc(voxels * (ca + cb))
  rt.exports.concatChannels(both, a, ca, b, cb, voxels)
  return both
}

/**
 * Conv3D + bias (+ ReLU) in one pass: the epilogue runs on each row chunk while it is in cache.
 * With a `skip` input, the convolution's input is [x, skip] concatenated along channels (a U-Net
 * decoder's up-sampled features and skip connection).
 */
export function conv3dBiasActKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {x, skip, filter, bias} = inputs
  const {strides, pad, relu} = attrs as {strides: Strides; pad: Pad; relu: boolean}
  const info = tf.backend_util.computeConv3DInfo(inputShape(x, skip), filter.shape as Shape5, strides, 1, pad as 'valid' | 'same')
  const rt = freshRuntime()
  const epilogue = {bias: floats(backend, bias), relu}
  const y = forwardAt(rt, copyInInput(rt, backend, x, skip), floats(backend, filter), info, epilogue)
  return outputFromHeap(backend, info.outShape, rt.f32(y, outputLength(info)))
}

/**
 * The whole backward of relu?(conv3d(x, W) + b) in one kernel call: dz = dy · step(y) and the
 * bias gradient, then the filter and input gradients, with dz kept in the heap throughout (one copy
 * in instead of two, and no dz array in JS). Returns [dx, dW, db], or [dx, dskip, dW, db] with a
 * `skip` input (the input gradient split along channels in the heap: no SplitV); dx is zeros when
 * the input gradient is not wanted (the first layer, whose x is data).
 */
export function conv3dBiasActGradKernel({inputs, backend, attrs}: KernelArgs): TensorInfo[] {
  const {dy, y, x, skip, filter} = inputs
  const {strides, pad, relu, inputGrad} = attrs as {strides: Strides; pad: Pad; relu: boolean; inputGrad: boolean}
  const info = tf.backend_util.computeConv3DInfo(inputShape(x, skip), filter.shape as Shape5, strides, 1, pad as 'valid' | 'same')
  const rt = freshRuntime()
  const channels = info.outChannels
  const dyValues = floats(backend, dy)
  const dz = copyIn(rt, dyValues)
  const db = biasActGradAt(rt, dz, relu ? copyIn(rt, floats(backend, y)) : 0, dyValues.length / channels, channels, relu)
  const dw = filterGradAt(rt, copyInInput(rt, backend, x, skip), dz, info)
  const grads = [output(backend, filter.shape, dw), output(backend, [channels], db)]
  if (!inputGrad) {
    const zeros = [x, ...(skip ? [skip] : [])].map((t) => output(backend, t.shape, new Float32Array(tf.util.sizeFromShape(t.shape))))
    return [...zeros, ...grads]
  }
  const dx = inputGradAt(rt, dz, floats(backend, filter), info)
  if (!skip) return [outputFromHeap(backend, x.shape, rt.f32(dx, inputLength(info))), ...grads]
  const [ca, cb] = [x.shape[4], skip.shape[4]]
  const voxels = inputLength(info) / (ca + cb)
  const dxa = rt.alloc(voxels * ca)
  const dxb = rt.alloc(voxels * cb)
  rt.exports.splitChannels(dx, dxa, ca, dxb, cb, voxels)
  return [
    outputFromHeap(backend, x.shape, rt.f32(dxa, voxels * ca)),
    outputFromHeap(backend, skip.shape, rt.f32(dxb, voxels * cb)),
    ...grads,
  ]
}

/**
 * conv3dTranspose(x, W) + b (+ residual): Conv3DBackpropInputV2 with x as its dy, the output
 * starting from the bias (no Add over the up-sampled volume: docs/bench/2026-11-26-cpu-kernels.md).
 * filter [kD, kH, kW, Cout, Cin], attrs as tf.conv3dTranspose's (outShape, strides, pad). An
 * optional `residual` of the output's shape is added last in the heap, y + r rounded once as tfjs's
 * Add rounds it (but for the sign of a zero sum: y·1 + 0 is +0 for y = −0), instead of a separate
 * JavaScript Add over the full-resolution volume.
 */
export function conv3dTransposeBiasKernel({inputs, backend, attrs}: KernelArgs): TensorInfo {
  const {x, filter, bias, residual} = inputs
  const {strides, pad, outShape} = attrs as {strides: Strides; pad: Pad; outShape: Shape5}
  const info = tf.backend_util.computeConv3DInfo(outShape, filter.shape as Shape5, strides, 1, pad as 'valid' | 'same')
  const rt = freshRuntime()
  const residualAt = residual ? copyIn(rt, floats(backend, residual)) : 0
  const y = transposeBiasAt(rt, copyIn(rt, floats(backend, x)), floats(backend, filter), floats(backend, bias), info, residualAt)
  return outputFromHeap(backend, outShape, rt.f32(y, inputLength(info)))
}

/**
 * conv3dTransposeBiasKernel's y with x (and the residual, unless 0) at heap addresses: returns the
 * address of y (inputLength(info) floats)
 */
export function transposeBiasAt(
  rt: ConvRuntime,
  x: number,
  filter: Float32Array,
  bias: Float32Array,
  info: ConvInfo,
  residual: number,
): number {
  // stride = kernel: one job, the residual included (the same bits as the residual's pass below)
  if (directTransposedApplies(info)) return directTransposed(rt, x, filter, info, bias, residual)
  const y = inputGradAt(rt, x, filter, info, bias)
  if (residual) {
    const channels = info.inChannels
    const ones = new Float32Array(channels).fill(1)
    channelAffine(rt, y, residual, y, inputLength(info) / channels, channels, ones, ones, new Float32Array(channels))
  }
  return y
}

/**
 * The backward of conv3dTranspose(x, W) + b in one call, with dy copied into the heap once:
 * db = Σ_rows dy, dx = conv3d(dy, W) and dW = the filter gradient of that convolution with dy as
 * its input and x as its output gradient. Returns [dx, dW, db].
 */
export function conv3dTransposeBiasGradKernel({inputs, backend, attrs}: KernelArgs): TensorInfo[] {
  const {dy, x, filter} = inputs
  const {strides, pad} = attrs as {strides: Strides; pad: Pad}
  const info = tf.backend_util.computeConv3DInfo(dy.shape as Shape5, filter.shape as Shape5, strides, 1, pad as 'valid' | 'same')
  const rt = freshRuntime()
  const channels = dy.shape[4]
  const dyValues = floats(backend, dy)
  const dyAt = copyIn(rt, dyValues)
  const db = biasActGradAt(rt, dyAt, 0, dyValues.length / channels, channels, false)
  const dw = filterGradAt(rt, dyAt, copyIn(rt, floats(backend, x)), info)
  const dx = forwardAt(rt, dyAt, floats(backend, filter), info)
  return [
    outputFromHeap(backend, x.shape, rt.f32(dx, outputLength(info))),
    output(backend, filter.shape, dw),
    output(backend, [channels], db),
  ]
}
