/**
 * BatchMatMul for the `cpu` backend on the convolution module's wasm SIMD GEMM.
 * tfjs-backend-cpu 4.22 runs every product through a 64-blocked triple loop with index
 * arithmetic per element, 15–30 ns per multiply-add, and plain JS loops reach only 1–4 ns; the
 * products in the SIPL model are small but many (column sums as ones-vector products, the kMaX
 * attention, the prototype maps) and took a quarter of a demo training step.
 *
 * The GEMM reads its left operand through strides (so a transposed operand costs nothing) and
 * its right operand packed in panels of 8 columns. Packing is a copy, so the smaller operand is
 * the one packed: when the left operand is smaller, Cᵀ = Bᵀ·Aᵀ is computed instead and
 * transposed back.
 */
import {tf} from '../../backend/tf.js'
import type {CpuKernel} from './elementwise.js'
import {freshRuntime, type ConvRuntime} from './runtime.js'
import {copyIn, writeRows} from './conv-job.js'
import {JOB, KIND} from './job.js'
import {floats, output, outputArray, values} from './tensors.js'

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1)

/** A matrix inside a flat array: element (r, c) at offset + r·row + c·col. */
export interface View {
  values: Float32Array
  offset: number
  row: number
  col: number
}

/**
 * Products of at least this many multiply-adds, over at least PRODUCT_JOB_ROWS rows, run as a job
 * on the worker pool (rows split between threads: the same bits as on one); smaller ones (the kMaX
 * layer's query side) call the GEMM directly, where posting a job would cost more than it shares.
 */
const PRODUCT_JOB_MACS = 1 << 18
/** rows per work item: a multiple of the GEMM's 4-row tiles */
const PRODUCT_CHUNK_ROWS = 256
/** at least two work items: a job of one is never shared (runtime.ts `run`) */
const PRODUCT_JOB_ROWS = 2 * PRODUCT_CHUNK_ROWS

/** right operands of at least this many elements are packed in wasm, after a copy into the heap, instead of by a JS loop */
const WASM_PACKING = 1 << 16
/** depth of one pass of a deep product's GEMM (k ≫ m, n): its rows and panels fit in L2 */
const DEEP_BLOCK = 256

/** What the product job does to each element after the sum: + bias[column], then σ (the training loss's) */
export interface ProductEpilogue {
  bias?: Float32Array
  sigmoid?: boolean
}

/** out[M×N] (row-major, at outOffset) = left[M×K] · right[K×N], then the epilogue when given */
export function product(
  left: View,
  right: View,
  m: number,
  k: number,
  n: number,
  out: Float32Array,
  outOffset: number,
  epilogue?: ProductEpilogue,
): void {
  const rt = freshRuntime()
  // the left operand goes into the heap as it lies (rows × columns it spans), read by strides
  const leftLength = (m - 1) * left.row + (k - 1) * left.col + 1
  const a = rt.alloc(leftLength)
  rt.f32(a, leftLength).set(left.values.subarray(left.offset, left.offset + leftLength))
  const c = productAt(rt, {address: a, row: left.row, col: left.col}, right, m, k, n, epilogue)
  out.set(rt.f32(c, m * n), outOffset)
}

/** A matrix in the kernels' heap: element (r, c) at byte address + 4·(r·row + c·col). */
export interface HeapView {
  address: number
  row: number
  col: number
}

/** left[M×K] (in the heap) · right[K×N], then the epilogue when given: returns the address of the M×N result */
export function productAt(
  rt: ConvRuntime,
  left: HeapView,
  right: View,
  m: number,
  k: number,
  n: number,
  epilogue?: ProductEpilogue,
): number {
  // the right operand packed: panel p holds columns 8p…8p+7 of every row, zero beyond N
  const panels = Math.ceil(n / 8)
  const b = rt.alloc(panels * k * 8)
  if (k * n >= WASM_PACKING) {
    const span = (k - 1) * right.row + (n - 1) * right.col + 1
    const raw = rt.alloc(span)
    rt.f32(raw, span).set(right.values.subarray(right.offset, right.offset + span))
    rt.exports.packPanels(raw, right.row * 4, right.col * 4, k, n, b)
  } else {
    const packed = rt.f32(b, panels * k * 8)
    const rv = right.values
    for (let p = 0; p < panels; p++) {
      const cols = Math.min(8, n - 8 * p)
      for (let i = 0; i < k; i++) {
        const dst = (p * k + i) * 8
        const src = right.offset + i * right.row + 8 * p * right.col
        for (let j = 0; j < cols; j++) packed[dst + j] = rv[src + j * right.col]
        for (let j = cols; j < 8; j++) packed[dst + j] = 0
      }
    }
  }
  const a = left.address
  const c = rt.alloc(m * n)
  if (epilogue || (m * n * k >= PRODUCT_JOB_MACS && m >= PRODUCT_JOB_ROWS)) {
    const job = rt.job()
    job[JOB.KIND] = KIND.product
    job[JOB.X] = a
    job[JOB.A_ROW_BYTES] = left.row * 4
    job[JOB.A_COL_BYTES] = left.col * 4
    job[JOB.W] = b
    job[JOB.K] = k
    job[JOB.COUT] = n
    job[JOB.DY] = c
    // under 8 columns: rows 8 floats apart first (full tiles), then compacted
    job[JOB.ACC0] = n < 8 ? rt.alloc(m * 8) : 0
    // a thread's scratch: the GEMM's edge tile
    job[JOB.SCRATCH] = rt.alloc(64 * rt.threads)
    job[JOB.SCRATCH_STRIDE] = 256
    if (epilogue?.bias) job[JOB.BIAS] = copyIn(rt, epilogue.bias)
    if (epilogue?.sigmoid) job[JOB.SIGMOID] = 1
    writeRows(job, m, PRODUCT_CHUNK_ROWS)
    rt.run()
  } else {
    const tmp = rt.alloc(64)
    // a deep product (the head's gradient, a sum over every voxel): blocks of k accumulated one
    // after another, so that one block's rows and panels stay in cache while every tile passes;
    // each element is the same multiply-add chain as in one pass
    const block = k > 2 * DEEP_BLOCK ? DEEP_BLOCK : k
    // more row groups than panels: keep a panel in cache while the rows stream past
    const panelOuter = m > 4 * panels ? 1 : 0
    for (let k0 = 0; k0 < k; k0 += block) {
      const depth = Math.min(block, k - k0)
      const aBlock = a + k0 * left.col * 4
      rt.exports.gemm(m, n, depth, aBlock, left.row * 4, left.col * 4, b + k0 * 32, k * 32, 32, c, n * 4, k0 > 0 ? 1 : 0, panelOuter, tmp)
    }
  }
  return c
}

/**
 * out[b] = op(A[b]) · op(B[b]) for float32 operands of any rank ≥ 2, where the batch (leading)
 * axes broadcast as tfjs does (batch index modulo each operand's batch size).
 */
export function fastBatchMatMul(reference: CpuKernel): CpuKernel {
  return (args) => {
    const {a, b} = args.inputs
    const {transposeA, transposeB} = args.attrs as {transposeA: boolean; transposeB: boolean}
    const av = values(args.backend, a)
    const bv = values(args.backend, b)
    if (!(av instanceof Float32Array) || !(bv instanceof Float32Array) || a.shape.length < 2 || b.shape.length < 2) return reference(args)
    const ra = a.shape.length
    const rb = b.shape.length
    const [m, kA] = transposeA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]]
    const [kB, n] = transposeB ? [b.shape[rb - 1], b.shape[rb - 2]] : [b.shape[rb - 2], b.shape[rb - 1]]
    // a mismatch, or an empty product: the reference kernel gives tfjs's own message or result
    if (kA !== kB || m * n * kA === 0) return reference(args)
    const k = kA
    const batchShape = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2))
    const batchA = sizeOf(a.shape.slice(0, -2))
    const batchB = sizeOf(b.shape.slice(0, -2))
    const batch = Math.max(batchA, batchB)
    const [aRow, aCol] = transposeA ? [1, m] : [k, 1]
    const [bRow, bCol] = transposeB ? [1, k] : [n, 1]
    // every block of out is written: a pooled array's stale values never show
    const out = outputArray(args.backend, batch * m * n)
    const swap = m < n
    const transposed = swap ? new Float32Array(n * m) : undefined
    for (let bi = 0; bi < batch; bi++) {
      const A: View = {values: av, offset: (bi % batchA) * m * k, row: aRow, col: aCol}
      const B: View = {values: bv, offset: (bi % batchB) * k * n, row: bRow, col: bCol}
      if (!transposed) {
        product(A, B, m, k, n, out, bi * m * n)
        continue
      }
      // Cᵀ = Bᵀ·Aᵀ: Bᵀ is B read with its strides swapped, Aᵀ likewise
      product({...B, row: bCol, col: bRow}, {...A, row: aCol, col: aRow}, n, k, m, transposed, 0)
      const o = bi * m * n
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[o + i * n + j] = transposed[j * m + i]
    }
    return output(args.backend, [...batchShape, m, n], out)
  }
}

/**
 * σ(u_b · g_bᵀ + c_b) for each sample b, the IPL head's class probabilities at inference
 * (src/model/ipl.ts): u `[B, V, e]`, prototypes g `[B, K, e]`, optional shift c `[B, K]` →
 * `[B, V, K]`: prototypeProbabilitiesAt, the same bits as BatchMatMul, the bias Add and SiplSigmoid one
 * after another, without the full-size logits between.
 */
export function prototypeSigmoidKernel({inputs, backend}: {inputs: Record<string, tf.TensorInfo>; backend: unknown}): tf.TensorInfo {
  const {u, prototypes, shift} = inputs
  const [B, V, e] = u.shape
  const rt = freshRuntime()
  const shifts = shift ? floats(backend, shift) : null
  const out = prototypeProbabilitiesAt(rt, copyIn(rt, floats(backend, u)), B, V, e, floats(backend, prototypes), shifts, backend)
  return output(backend, [B, V, prototypes.shape[1]], out)
}

/**
 * σ(u_b · g_bᵀ + c_b) per sample b into an output array `[B, V, K]`, u `[B, V, e]` at heap address
 * u, prototypes g `[B, K, e]`, shifts c `[B, K]` or null: one product job per sample with the shift
 * and σ as its epilogue (the head's probabilities: prototypeSigmoidKernel, and the end of
 * src/kernels/cpu/full-resolution.ts)
 */
export function prototypeProbabilitiesAt(
  rt: ConvRuntime,
  u: number,
  B: number,
  V: number,
  e: number,
  prototypes: Float32Array,
  shifts: Float32Array | null,
  backend: unknown,
): Float32Array {
  const K = prototypes.length / (B * e)
  // every element is written: a pooled array's stale values never show
  const out = outputArray(backend, B * V * K)
  for (let b = 0; b < B; b++) {
    const bias = shifts ? shifts.subarray(b * K, (b + 1) * K) : undefined
    const left = {address: u + 4 * b * V * e, row: e, col: 1}
    const y = productAt(rt, left, {values: prototypes, offset: b * K * e, row: 1, col: e}, V, e, K, {bias, sigmoid: true})
    out.set(rt.f32(y, V * K), b * V * K)
  }
  return out
}
