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
import {output, outputArray, values} from './tensors.js'

type TensorInfo = tf.TensorInfo
type Values = Float32Array | Int32Array | Uint8Array
export interface KernelArgs {
  inputs: Record<string, TensorInfo>
  backend: unknown
  attrs?: Record<string, unknown>
}
export type CpuKernel = (args: KernelArgs) => TensorInfo | TensorInfo[]

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1)

function isNumeric(v: unknown): v is Values {
  return v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array
}

/**
 * Copies `rows` runs of `run` elements: run r from src[from + r·srcStride] to dst[to + r·dstStride].
 * Short runs (a channel split of 16) are copied by a loop in one call, float32 in its own loop:
 * a subarray view per run, or one element loop shared by every dtype, costs 4–8 ns per element.
 */
function copyRows(
  src: Values,
  from: number,
  srcStride: number,
  dst: Values,
  to: number,
  dstStride: number,
  run: number,
  rows: number,
): void {
  if (run >= 256) {
    for (let r = 0; r < rows; r++) dst.set(src.subarray(from + r * srcStride, from + r * srcStride + run), to + r * dstStride)
  } else if (src instanceof Float32Array && dst instanceof Float32Array) {
    copyRowsF32(src, from, srcStride, dst, to, dstStride, run, rows)
  } else {
    for (let r = 0; r < rows; r++) for (let j = 0; j < run; j++) dst[to + r * dstStride + j] = src[from + r * srcStride + j]
  }
}

function copyRowsF32(
  src: Float32Array,
  from: number,
  srcStride: number,
  dst: Float32Array,
  to: number,
  dstStride: number,
  run: number,
  rows: number,
): void {
  for (let r = 0; r < rows; r++) {
    const s = from + r * srcStride
    const d = to + r * dstStride
    for (let j = 0; j < run; j++) dst[d + j] = src[s + j]
  }
}

/**
 * A new output array of x's type: float32 ones from the backend's array pool (src/kernels/cpu/array-pool.ts),
 * to be written whole; a fresh array of the btcv config's activation size was mostly page faults
 */
function outputLike(backend: unknown, x: Values, length: number): Values {
  return x instanceof Float32Array ? outputArray(backend, length) : new (x.constructor as new (n: number) => Values)(length)
}

/** out = x[begin : begin + size]: the trailing whole axes plus the first partial one are one contiguous run */
function sliceValues(backend: unknown, x: Values, shape: number[], begin: number[], size: number[]): Values {
  const rank = shape.length
  const out = outputLike(backend, x, sizeOf(size))
  let run = 1
  let axis = rank - 1
  while (axis > 0 && size[axis] === shape[axis]) run *= shape[axis--]
  run *= size[axis]
  const strides = new Array<number>(rank).fill(1)
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1]
  if (axis === 0) {
    copyRows(x, begin[0] * strides[0], 0, out, 0, 0, run, 1)
    return out
  }
  // runs along axis − 1 are one strided copy; the axes before it are walked with an odometer
  const rowsAxis = axis - 1
  const rows = size[rowsAxis]
  const outerAxes = size.slice(0, rowsAxis)
  const blocks = sizeOf(outerAxes)
  const idx = new Array<number>(rowsAxis).fill(0)
  let base = begin.reduce((sum, b, i) => sum + b * strides[i], 0)
  for (let block = 0; block < blocks; block++) {
    copyRows(x, base, strides[rowsAxis], out, block * rows * run, run, run, rows)
    for (let i = rowsAxis - 1; i >= 0; i--) {
      base += strides[i]
      if (++idx[i] < outerAxes[i]) break
      base -= idx[i] * strides[i]
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
    return output(args.backend, s, sliceValues(args.backend, v, x.shape, b, s), x.dtype)
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
      const out = output(args.backend, size, sliceValues(args.backend, v, x.shape, [...begin], size), x.dtype)
      begin[a] += s
      return out
    })
  }
}

/** OneHot of int32 indices into float32 or int32 (off everywhere, on at each index in [0, depth)) */
export function fastOneHot(reference: CpuKernel): CpuKernel {
  return (args) => {
    const {indices} = args.inputs
    const v = values(args.backend, indices)
    const {depth, onValue, offValue, dtype} = args.attrs as {depth: number; onValue: number; offValue: number; dtype: tf.DataType}
    if (!(v instanceof Int32Array) || (dtype !== 'float32' && dtype !== 'int32')) return reference(args)
    const out = dtype === 'float32' ? outputArray(args.backend, v.length * depth) : new Int32Array(v.length * depth)
    out.fill(offValue)
    for (let i = 0; i < v.length; i++) {
      const k = v[i]
      if (k >= 0 && k < depth) out[i * depth + k] = onValue
    }
    return output(args.backend, [...indices.shape, depth], out, dtype)
  }
}

/** Concat of numeric tensors of one dtype: each input contributes one contiguous run per outer index. */
export function fastConcat(reference: CpuKernel): CpuKernel {
  return (args) => {
    const parts = args.inputs as unknown as TensorInfo[]
    const dtype = parts[0]?.dtype
    const all = parts.map((t) => values(args.backend, t))
    if (parts.length < 2 || !all.every(isNumeric) || parts.some((t) => t.dtype !== dtype || t.shape.length === 0)) return reference(args)
    const axis = tf.util.parseAxisParam((args.attrs as {axis: number | number[]}).axis, parts[0].shape)[0]
    const shapes = parts.map((t) => t.shape)
    tf.backend_util.assertParamsConsistent(shapes, axis)
    const outShape = tf.backend_util.computeOutShape(shapes, axis)
    const outer = sizeOf(outShape.slice(0, axis))
    const runs = shapes.map((shape) => sizeOf(shape.slice(axis)))
    const row = runs.reduce((a, b) => a + b, 0)
    if (outer * row === 0) return reference(args)
    const out = outputLike(args.backend, all[0] as Values, outer * row)
    let column = 0
    parts.forEach((_, k) => {
      copyRows(all[k] as Values, 0, runs[k], out, column, row, runs[k], outer)
      column += runs[k]
    })
    return output(args.backend, outShape, out, dtype)
  }
}

function sumShape(shape: number[], axes: number[], keepDims: boolean): number[] {
  const reduced = new Set(axes)
  return keepDims ? shape.map((d, i) => (reduced.has(i) ? 1 : d)) : shape.filter((_, i) => !reduced.has(i))
}

/**
 * out[outOffset + i] = Σ_r v[offset + r·inner + i] for i < inner, summed in float64. Narrow rows
 * (bias gradients: 4–64 channels) go column by column, four columns at a time in registers: a
 * row-by-row loop over an accumulator array spends its time on loop overhead at such widths.
 */
export function sumRows(v: Float32Array, offset: number, rows: number, inner: number, out: Float32Array, outOffset: number): void {
  const end = offset + rows * inner
  if (inner <= 64) {
    let i = 0
    for (; i + 4 <= inner; i += 4) {
      let s0 = 0
      let s1 = 0
      let s2 = 0
      let s3 = 0
      for (let p = offset + i; p < end; p += inner) {
        s0 += v[p]
        s1 += v[p + 1]
        s2 += v[p + 2]
        s3 += v[p + 3]
      }
      out[outOffset + i] = s0
      out[outOffset + i + 1] = s1
      out[outOffset + i + 2] = s2
      out[outOffset + i + 3] = s3
    }
    for (; i < inner; i++) {
      let sum = 0
      for (let p = offset + i; p < end; p += inner) sum += v[p]
      out[outOffset + i] = sum
    }
    return
  }
  const acc = new Float64Array(inner)
  for (let p = offset; p < end; p += inner) for (let i = 0; i < inner; i++) acc[i] += v[p + i]
  for (let i = 0; i < inner; i++) out[outOffset + i] = acc[i]
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
      return output(args.backend, sumShape(x.shape, axes, keepDims), out)
    }
    for (let o = 0; o < outer; o++) sumRows(v, o * R * inner, R, inner, out, o * inner)
    return output(args.backend, sumShape(x.shape, axes, keepDims), out)
  }
}

/**
 * How the two operands of a binary op line up, once the smaller one's leading 1s are dropped:
 * same shape; one is a scalar; one is the other's trailing shape (`[..., C] ∘ [C]`, bias add);
 * or one equals the other on its leading axes and is 1 after them (`[N, K] ∘ [N, 1]`).
 */
const enum Layout {
  Same = 0,
  ScalarB = 1,
  ScalarA = 2,
  SuffixB = 3,
  SuffixA = 4,
  PrefixB = 5,
  PrefixA = 6,
}

function layoutOf(a: number[], b: number[]): {layout: Layout; shape: number[]} | undefined {
  const n = sizeOf(a)
  const m = sizeOf(b)
  const trim = (s: number[]) => {
    const first = s.findIndex((d) => d !== 1)
    return first === -1 ? [] : s.slice(first)
  }
  const suffixOf = (small: number[], big: number[]) => {
    const t = trim(small)
    return small.length <= big.length && t.every((d, i) => d === big[big.length - t.length + i])
  }
  const prefixOf = (small: number[], big: number[]) => {
    if (small.length !== big.length) return false
    let i = 0
    while (i < big.length && small[i] === big[i]) i++
    return i > 0 && small.slice(i).every((d) => d === 1)
  }
  if (a.length === b.length && a.every((d, i) => d === b[i])) return {layout: Layout.Same, shape: a}
  if (n >= m && suffixOf(b, a)) return {layout: m === 1 ? Layout.ScalarB : Layout.SuffixB, shape: a}
  if (m > n && suffixOf(a, b)) return {layout: n === 1 ? Layout.ScalarA : Layout.SuffixA, shape: b}
  if (n > m && prefixOf(b, a)) return {layout: Layout.PrefixB, shape: a}
  if (m > n && prefixOf(a, b)) return {layout: Layout.PrefixA, shape: b}
  return undefined
}

type BinaryLoop = (layout: Layout, a: Float32Array, b: Float32Array, out: Float32Array | Uint8Array) => void

/**
 * One loop per op and layout, generated from the op's expression in `a` and `b`: a loop that
 * calls an op closure per element runs at 15–40 ns per element once V8 has seen several ops at
 * that call site (tfjs's own kernels, and a shared loop here), a loop with the expression
 * written in stays near 1 ns. The expressions are the fixed strings of BINARY_OPS below.
 */
function binaryLoop(expression: string): BinaryLoop {
  const body = `
    const n = a.length, m = b.length
    switch (layout) {
      case ${Layout.Same}: for (let i = 0; i < n; i++) { const x = a[i], y = b[i]; out[i] = ${expression} } break
      case ${Layout.ScalarB}: { const y = b[0]; for (let i = 0; i < n; i++) { const x = a[i]; out[i] = ${expression} } break }
      case ${Layout.ScalarA}: { const x = a[0]; for (let i = 0; i < m; i++) { const y = b[i]; out[i] = ${expression} } break }
      case ${Layout.SuffixB}: for (let i = 0; i < n; i += m) for (let j = 0; j < m; j++) { const x = a[i + j], y = b[j]; out[i + j] = ${expression} } break
      case ${Layout.SuffixA}: for (let i = 0; i < m; i += n) for (let j = 0; j < n; j++) { const x = a[j], y = b[i + j]; out[i + j] = ${expression} } break
      case ${Layout.PrefixB}: { const inner = n / m; for (let r = 0, i = 0; r < m; r++) { const y = b[r]; for (let j = 0; j < inner; j++, i++) { const x = a[i]; out[i] = ${expression} } } break }
      case ${Layout.PrefixA}: { const inner = m / n; for (let r = 0, i = 0; r < n; r++) { const x = a[r]; for (let j = 0; j < inner; j++, i++) { const y = b[i]; out[i] = ${expression} } } break }
    }`
  return new Function('layout', 'a', 'b', 'out', body) as BinaryLoop
}

/** A binary op: its expression in `x` (left) and `y` (right), as tfjs-backend-cpu computes it, and its output dtype. */
interface BinaryOp {
  expression: string
  dtype: 'float32' | 'bool'
}

/**
 * Float32 binary ops in the layouts of `layoutOf` (bias add, Adam's β·m, log-softmax's
 * x − logΣexp, masks against a scalar); other shapes and dtypes go to `reference`.
 */
export function fastBinary(reference: CpuKernel, op: BinaryOp): CpuKernel {
  const loop = binaryLoop(op.expression)
  return (args) => {
    const {a, b} = args.inputs
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return reference(args)
    const av = values(args.backend, a)
    const bv = values(args.backend, b)
    if (!(av instanceof Float32Array) || !(bv instanceof Float32Array)) return reference(args)
    const plan = layoutOf(a.shape, b.shape)
    if (!plan || sizeOf(plan.shape) === 0) return reference(args)
    const size = sizeOf(plan.shape)
    const out = op.dtype === 'bool' ? new Uint8Array(size) : outputArray(args.backend, size)
    loop(plan.layout, av, bv, out)
    return output(args.backend, plan.shape, out, op.dtype)
  }
}

/** tfjs-backend-cpu 4.22's element formulas, so that the fast kernels give the same bits */
export const BINARY_OPS: Record<string, BinaryOp> = {
  Add: {expression: 'x + y', dtype: 'float32'},
  Sub: {expression: 'x - y', dtype: 'float32'},
  Multiply: {expression: 'x * y', dtype: 'float32'},
  RealDiv: {expression: 'x / y', dtype: 'float32'},
  Maximum: {expression: 'Math.max(x, y)', dtype: 'float32'},
  Minimum: {expression: 'Math.min(x, y)', dtype: 'float32'},
  SquaredDifference: {expression: '(x - y) * (x - y)', dtype: 'float32'},
  // +(boolean) instead of a ternary: no branch, which on activations (half positive, half
  // negative) mispredicts every other element and costs more than the whole loop
  Greater: {expression: '+(x > y)', dtype: 'bool'},
  GreaterEqual: {expression: '+(x >= y)', dtype: 'bool'},
  Less: {expression: '+(x < y)', dtype: 'bool'},
  LessEqual: {expression: '+(x <= y)', dtype: 'bool'},
  Equal: {expression: '+(x === y)', dtype: 'bool'},
  NotEqual: {expression: '+(x !== y)', dtype: 'bool'},
}

/** A unary op: its expression in `x` (and the attribute `alpha` where it has one). */
type UnaryLoop = (x: Float32Array, out: Float32Array, alpha: number) => void

function unaryLoop(expression: string): UnaryLoop {
  // pick / scale: small tables indexed by +(comparison), so that Step and LeakyRelu do not branch
  // (a branch on activations mispredicts every other element; so does a NaN test written as a ternary)
  const body = `const pick = [alpha, 1, NaN], scale = [1, alpha]
    for (let i = 0; i < x.length; i++) { const v = x[i]; out[i] = ${expression} }`
  return new Function('x', 'out', 'alpha', body) as UnaryLoop
}

/** Float32 element-wise op in one loop with the formula written in (see binaryLoop). */
export function fastUnary(reference: CpuKernel, expression: string): CpuKernel {
  const loop = unaryLoop(expression)
  return (args) => {
    const x = args.inputs.x
    const v = values(args.backend, x)
    if (x.dtype !== 'float32' || !(v instanceof Float32Array)) return reference(args)
    const alpha = (args.attrs?.alpha as number | undefined) ?? 0
    const out = outputArray(args.backend, v.length)
    loop(v, out, alpha)
    return output(args.backend, x.shape, out)
  }
}

/** tfjs-backend-cpu 4.22's formulas, NaN handling included */
export const UNARY_OPS: Record<string, string> = {
  Relu: 'v > 0 ? v : v !== v ? v : 0',
  Step: 'pick[+(v > 0) + 2 * +(v !== v)]',
  LeakyRelu: 'v * scale[+(v < 0)]',
  Exp: 'Math.exp(v)',
  Log: 'Math.log(v)',
  Log1p: 'Math.log1p(v)',
  Neg: '-v',
  Abs: 'Math.abs(v)',
  Sqrt: 'Math.sqrt(v)',
  Rsqrt: '1 / Math.sqrt(v)',
  Square: 'v * v',
  Reciprocal: '1 / v',
  Sigmoid: '1 / (1 + Math.exp(-v))',
  Tanh: 'Math.tanh(v)',
}

/** Select (where) with the condition, `t` and `e` all of one shape. */
export function fastSelect(reference: CpuKernel): CpuKernel {
  return (args) => {
    const {condition, t, e} = args.inputs
    const c = values(args.backend, condition)
    const tv = values(args.backend, t)
    const ev = values(args.backend, e)
    const sameShape = (p: number[], q: number[]) => p.length === q.length && p.every((d, i) => d === q[i])
    if (!(c instanceof Uint8Array) || !(tv instanceof Float32Array) || !(ev instanceof Float32Array)) return reference(args)
    if (!sameShape(condition.shape, t.shape) || !sameShape(t.shape, e.shape)) return reference(args)
    const out = outputArray(args.backend, tv.length)
    for (let i = 0; i < out.length; i++) out[i] = c[i] === 1 ? tv[i] : ev[i]
    return output(args.backend, t.shape, out)
  }
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
    const out = outputArray(args.backend, v.length)
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
    return output(args.backend, x.shape, out)
  }
}
