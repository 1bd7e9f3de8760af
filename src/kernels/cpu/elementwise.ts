/**
 * Replacements for `cpu` kernels that are not convolutions but took most of a unet-ref training
 * step once the convolutions were fast (profiles in docs/kernels.md): tfjs-backend-cpu 4.22 runs
 * a non-contiguous Slice (SplitV, the gradient of concat), a Sum over leading axes (bias
 * gradients) and a broadcasting binary op (bias add, Adam's scalar products) through per-element
 * index arithmetic or a full transpose, and its element-wise ops and Softmax through a closure
 * call per element and several intermediate tensors. These do the same in plain typed-array
 * loops; any case they do not cover goes to the reference kernel unchanged.
 */
import {tf} from '../../backend/tf.js'

type TensorInfo = tf.TensorInfo
type Values = Float32Array | Int32Array | Uint8Array
interface CpuBackendLike {
  data: {get(dataId: object): {values: unknown}}
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Values): TensorInfo
}
export interface KernelArgs {
  inputs: Record<string, TensorInfo>
  backend: unknown
  attrs?: Record<string, unknown>
}
export type CpuKernel = (args: KernelArgs) => TensorInfo | TensorInfo[]

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1)

function values(backend: unknown, t: TensorInfo): unknown {
  return (backend as CpuBackendLike).data.get(t.dataId).values
}

function isNumeric(v: unknown): v is Values {
  return v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array
}

/** out = x[begin : begin + size], copying the longest contiguous trailing run at once */
function sliceValues(x: Values, shape: number[], begin: number[], size: number[]): Values {
  const rank = shape.length
  const out = new (x.constructor as new (n: number) => Values)(sizeOf(size))
  // the trailing axes that are taken whole, plus the first partial one, form one contiguous run
  let run = 1
  let axis = rank - 1
  while (axis > 0 && size[axis] === shape[axis]) run *= shape[axis--]
  run *= size[axis]
  const strides = new Array<number>(rank).fill(1)
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1]
  const runStart = (idx: number[]) => idx.reduce((s, v, i) => s + (begin[i] + v) * strides[i], 0)
  const outer = size.slice(0, axis)
  const count = sizeOf(outer)
  const idx = new Array<number>(rank).fill(0)
  for (let r = 0; r < count; r++) {
    const from = runStart(idx)
    out.set(x.subarray(from, from + run), r * run)
    for (let i = axis - 1; i >= 0; i--) {
      if (++idx[i] < outer[i]) break
      idx[i] = 0
    }
  }
  return out
}

export function fastSlice(reference: CpuKernel): CpuKernel {
  return (args) => {
    const x = args.inputs.x
    const v = values(args.backend, x)
    if (!isNumeric(v) || x.shape.length === 0) return reference(args)
    const {begin, size} = args.attrs as {begin: number | number[]; size: number | number[]}
    const [b, s] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size)
    if (sizeOf(s) === 0) return reference(args)
    return (args.backend as CpuBackendLike).makeTensorInfo(s, x.dtype, sliceValues(v, x.shape, b, s))
  }
}

export function fastSplitV(reference: CpuKernel): CpuKernel {
  return (args) => {
    const x = args.inputs.x
    const v = values(args.backend, x)
    if (!isNumeric(v) || x.shape.length === 0) return reference(args)
    const {numOrSizeSplits, axis} = args.attrs as {numOrSizeSplits: number | number[]; axis: number | number[]}
    const a = tf.util.parseAxisParam(axis, x.shape)[0]
    const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, a)
    const begin = new Array<number>(x.shape.length).fill(0)
    return sizes.map((s) => {
      const size = [...x.shape]
      size[a] = s
      const out = (args.backend as CpuBackendLike).makeTensorInfo(size, x.dtype, sliceValues(v, x.shape, [...begin], size))
      begin[a] += s
      return out
    })
  }
}

function sumShape(shape: number[], axes: number[], keepDims: boolean): number[] {
  const reduced = new Set(axes)
  return keepDims ? shape.map((d, i) => (reduced.has(i) ? 1 : d)) : shape.filter((_, i) => !reduced.has(i))
}

/** Sum over a contiguous range of axes (after dropping size-1 axes) of a float32 tensor, without a transpose. */
export function fastSum(reference: CpuKernel): CpuKernel {
  return (args) => {
    const x = args.inputs.x
    const v = values(args.backend, x)
    if (x.dtype !== 'float32' || !(v instanceof Float32Array) || x.shape.length === 0) return reference(args)
    const {axis, keepDims} = args.attrs as {axis: number | number[]; keepDims: boolean}
    const axes = tf.util.parseAxisParam(axis, x.shape)
    const reduced = new Set(axes.filter((a) => x.shape[a] !== 1))
    const kept = x.shape.map((_, i) => i).filter((i) => !reduced.has(i) && x.shape[i] !== 1)
    const sorted = [...reduced].sort((p, q) => p - q)
    if (sorted.some((a, i) => i > 0 && a !== sorted[i - 1] + 1) || sorted.length === 0) return reference(args)
    // outer × R × inner, where the reduced axes (contiguous once size-1 axes are ignored) make R
    const first = sorted[0]
    const last = sorted[sorted.length - 1]
    if (kept.some((k) => k > first && k < last)) return reference(args)
    const outer = sizeOf(x.shape.slice(0, first))
    const R = sizeOf(sorted.map((a) => x.shape[a]))
    const inner = sizeOf(x.shape.slice(last + 1))
    const out = new Float32Array(outer * inner)
    if (inner === 1) {
      // per-row sums ([N, K] over K, or everything): no accumulator array
      for (let o = 0, p = 0; o < outer; o++) {
        let sum = 0
        for (let r = 0; r < R; r++) sum += v[p++]
        out[o] = sum
      }
      return (args.backend as CpuBackendLike).makeTensorInfo(sumShape(x.shape, axes, keepDims), 'float32', out)
    }
    const acc = new Float64Array(inner)
    for (let o = 0; o < outer; o++) {
      acc.fill(0)
      let p = o * R * inner
      for (let r = 0; r < R; r++, p += inner) for (let i = 0; i < inner; i++) acc[i] += v[p + i]
      for (let i = 0; i < inner; i++) out[o * inner + i] = acc[i]
    }
    return (args.backend as CpuBackendLike).makeTensorInfo(sumShape(x.shape, axes, keepDims), 'float32', out)
  }
}

type BinaryOp = (a: number, b: number) => number

/**
 * Float32 binary op where one operand is a scalar or broadcasts over the leading axes of the
 * other (its shape, leading 1s dropped, is the other's trailing shape): [1, D, H, W, C] + [C],
 * Adam's β·m; or broadcasts over the trailing axes ([N, 1] against [N, K]); or both have the
 * same shape. Other shapes go to `reference`.
 */
export function fastBinary(reference: CpuKernel, op: BinaryOp): CpuKernel {
  return (args) => {
    const {a, b} = args.inputs
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return reference(args)
    const av = values(args.backend, a)
    const bv = values(args.backend, b)
    if (!(av instanceof Float32Array) || !(bv instanceof Float32Array)) return reference(args)
    const trim = (s: number[]) => s.slice(s.findIndex((d) => d !== 1) === -1 ? s.length : s.findIndex((d) => d !== 1))
    const suffixOf = (small: number[], big: number[]) => {
      const t = trim(small)
      return small.length <= big.length && t.every((d, i) => d === big[big.length - t.length + i])
    }
    // small has big's rank and equals big on its leading axes, then only 1s: [N, 1] against [N, K]
    const prefixOf = (small: number[], big: number[]) => {
      if (small.length !== big.length) return false
      let i = 0
      while (i < big.length && small[i] === big[i]) i++
      return i > 0 && small.slice(i).every((d) => d === 1)
    }
    const sameShape = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i])
    const n = av.length
    const m = bv.length
    let out: Float32Array
    let shape: number[]
    if (sameShape) {
      out = new Float32Array(n)
      shape = a.shape
      for (let i = 0; i < n; i++) out[i] = op(av[i], bv[i])
    } else if (n >= m && suffixOf(b.shape, a.shape)) {
      out = new Float32Array(n)
      shape = a.shape
      if (m === 1) {
        const s = bv[0]
        for (let i = 0; i < n; i++) out[i] = op(av[i], s)
      } else for (let i = 0; i < n; i += m) for (let j = 0; j < m; j++) out[i + j] = op(av[i + j], bv[j])
    } else if (m > n && suffixOf(a.shape, b.shape)) {
      out = new Float32Array(m)
      shape = b.shape
      if (n === 1) {
        const s = av[0]
        for (let i = 0; i < m; i++) out[i] = op(s, bv[i])
      } else for (let i = 0; i < m; i += n) for (let j = 0; j < n; j++) out[i + j] = op(av[j], bv[i + j])
    } else if (n > m && prefixOf(b.shape, a.shape)) {
      // b = [N, 1] against a = [N, K]: log-softmax's x − logΣexp
      const inner = n / m
      out = new Float32Array(n)
      shape = a.shape
      for (let r = 0; r < m; r++) for (let j = r * inner; j < (r + 1) * inner; j++) out[j] = op(av[j], bv[r])
    } else if (m > n && prefixOf(a.shape, b.shape)) {
      const inner = m / n
      out = new Float32Array(m)
      shape = b.shape
      for (let r = 0; r < n; r++) for (let j = r * inner; j < (r + 1) * inner; j++) out[j] = op(av[r], bv[j])
    } else return reference(args)
    return (args.backend as CpuBackendLike).makeTensorInfo(shape, 'float32', out)
  }
}

export const BINARY_OPS: Record<string, BinaryOp> = {
  Add: (x, y) => x + y,
  Sub: (x, y) => x - y,
  Multiply: (x, y) => x * y,
  RealDiv: (x, y) => x / y,
}

type UnaryOp = (x: number, attrs: Record<string, unknown>) => number

/** Float32 element-wise op in one loop (tfjs calls a closure with an attrs lookup per element). */
export function fastUnary(reference: CpuKernel, op: UnaryOp): CpuKernel {
  return (args) => {
    const x = args.inputs.x
    const v = values(args.backend, x)
    if (x.dtype !== 'float32' || !(v instanceof Float32Array)) return reference(args)
    const attrs = args.attrs ?? {}
    const out = new Float32Array(v.length)
    for (let i = 0; i < v.length; i++) out[i] = op(v[i], attrs)
    return (args.backend as CpuBackendLike).makeTensorInfo(x.shape, 'float32', out)
  }
}

export const UNARY_OPS: Record<string, UnaryOp> = {
  // NaN stays NaN, as in tfjs's Math.max(0, x)
  Relu: (x) => (x > 0 ? x : x !== x ? x : 0),
  Step: (x, attrs) => (x !== x ? NaN : x > 0 ? 1 : (attrs.alpha as number)),
}

/** Softmax over the last axis, one pass per row (tfjs: max, sub, exp, sum, div as five tensors). */
export function fastSoftmax(reference: CpuKernel): CpuKernel {
  return (args) => {
    const x = args.inputs.logits
    const v = values(args.backend, x)
    const rank = x.shape.length
    const dim = (args.attrs as {dim: number}).dim
    if (x.dtype !== 'float32' || !(v instanceof Float32Array) || rank === 0 || (dim !== -1 && dim !== rank - 1)) return reference(args)
    const k = x.shape[rank - 1]
    const out = new Float32Array(v.length)
    for (let row = 0; row < v.length; row += k) {
      let max = -Infinity
      for (let j = 0; j < k; j++) max = Math.max(max, v[row + j])
      let sum = 0
      for (let j = 0; j < k; j++) {
        // rounded to float32 like tfjs's intermediate tensors, so both give the same bits
        const e = Math.fround(Math.exp(Math.fround(v[row + j] - max)))
        out[row + j] = e
        sum += e
      }
      const total = Math.fround(sum)
      for (let j = 0; j < k; j++) out[row + j] /= total
    }
    return (args.backend as CpuBackendLike).makeTensorInfo(x.shape, 'float32', out)
  }
}
