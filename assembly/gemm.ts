import {
  J_A_COL_BYTES,
  J_A_ROW_BYTES,
  J_ACC0,
  J_BIAS,
  J_COUT,
  J_DY,
  J_K,
  J_SIGMOID,
  J_W,
  J_X,
  endRow,
  firstRow,
  nextChunk,
  word,
} from './job'
import {sigmoidVector} from './dice-ce'

/**
 * The GEMM of sipl's cpu kernels: a 4×8 register-tiled micro-kernel in WebAssembly SIMD (relaxed
 * SIMD multiply-add in the relaxed build), used by the im2col convolutions (conv3d.ts), the Winograd
 * convolutions (winograd.ts) and BatchMatMul (src/kernels/cpu/matmul.ts). Design: docs/kernels.md.
 */

export function fma(a: v128, b: v128, c: v128): v128 {
  // compile-time constant: true in the build with `--enable relaxed-simd`
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c)
  return f32x4.add(f32x4.mul(a, b), c)
}

/**
 * C[4×8] (+)= A[4×k] · B[k×8]. A element (r, i) at a_r + i·aKS; B row i at b + i·bKS (8 floats);
 * C row r at c_r. 4×8 is the largest tile that fits V8's ~15 usable xmm registers
 * (8 accumulators + 2 B vectors + 1 broadcast).
 */
function tile4x8(
  a0: usize,
  a1: usize,
  a2: usize,
  a3: usize,
  aKS: usize,
  b: usize,
  bKS: usize,
  k: i32,
  c0: usize,
  c1: usize,
  c2: usize,
  c3: usize,
  accumulate: bool,
): void {
  let s00 = f32x4.splat(0)
  let s01 = f32x4.splat(0)
  let s10 = f32x4.splat(0)
  let s11 = f32x4.splat(0)
  let s20 = f32x4.splat(0)
  let s21 = f32x4.splat(0)
  let s30 = f32x4.splat(0)
  let s31 = f32x4.splat(0)
  if (accumulate) {
    s00 = v128.load(c0)
    s01 = v128.load(c0, 16)
    s10 = v128.load(c1)
    s11 = v128.load(c1, 16)
    s20 = v128.load(c2)
    s21 = v128.load(c2, 16)
    s30 = v128.load(c3)
    s31 = v128.load(c3, 16)
  }
  let off: usize = 0
  for (let i = 0; i < k; i++) {
    const b0 = v128.load(b)
    const b1 = v128.load(b, 16)
    let a = v128.load32_splat(a0 + off)
    s00 = fma(a, b0, s00)
    s01 = fma(a, b1, s01)
    a = v128.load32_splat(a1 + off)
    s10 = fma(a, b0, s10)
    s11 = fma(a, b1, s11)
    a = v128.load32_splat(a2 + off)
    s20 = fma(a, b0, s20)
    s21 = fma(a, b1, s21)
    a = v128.load32_splat(a3 + off)
    s30 = fma(a, b0, s30)
    s31 = fma(a, b1, s31)
    off += aKS
    b += bKS
  }
  v128.store(c0, s00)
  v128.store(c0, s01, 16)
  v128.store(c1, s10)
  v128.store(c1, s11, 16)
  v128.store(c2, s20)
  v128.store(c2, s21, 16)
  v128.store(c3, s30)
  v128.store(c3, s31, 16)
}

/**
 * C[M×N] (+)= A[M×K] · B[K×N] with B in panels of 8 columns (panel p at b + p·pS, its row i at
 * + i·bKS). Rows of A: a + r·aRS, elements + i·aKS. C rows at c + r·cRS. Edge tiles go through
 * `tmp` (≥ 256 bytes). panelOuter: loop panels outside row groups (when B panels are the
 * bigger, streamed operand).
 */
export function gemm(
  M: i32,
  N: i32,
  K: i32,
  a: usize,
  aRS: usize,
  aKS: usize,
  b: usize,
  pS: usize,
  bKS: usize,
  c: usize,
  cRS: usize,
  accumulate: bool,
  panelOuter: bool,
  tmp: usize,
): void {
  const panels = (N + 7) >> 3
  const groups = (M + 3) >> 2
  const outer = panelOuter ? panels : groups
  const inner = panelOuter ? groups : panels
  for (let o = 0; o < outer; o++) {
    for (let n = 0; n < inner; n++) {
      const g = panelOuter ? n : o
      const p = panelOuter ? o : n
      const r0 = g << 2
      const rows = min(4, M - r0)
      const cols = min(8, N - (p << 3))
      const full = rows == 4 && cols == 8
      const aBase = a + <usize>r0 * aRS
      const lastA = a + <usize>(M - 1) * aRS
      const a1 = rows > 1 ? aBase + aRS : lastA
      const a2 = rows > 2 ? aBase + 2 * aRS : lastA
      const a3 = rows > 3 ? aBase + 3 * aRS : lastA
      const cBase = c + <usize>r0 * cRS + ((<usize>p) << 5)
      if (full) {
        tile4x8(aBase, a1, a2, a3, aKS, b + <usize>p * pS, bKS, K, cBase, cBase + cRS, cBase + 2 * cRS, cBase + 3 * cRS, accumulate)
        continue
      }
      // edge tile: compute into tmp (4 rows × 8), then copy the valid part
      for (let r = 0; r < 4; r++) {
        for (let j = 0; j < 8; j++) {
          const inside = r < rows && j < cols
          store<f32>(tmp + ((<usize>(r * 8 + j)) << 2), accumulate && inside ? load<f32>(cBase + <usize>r * cRS + ((<usize>j) << 2)) : 0)
        }
      }
      tile4x8(aBase, a1, a2, a3, aKS, b + <usize>p * pS, bKS, K, tmp, tmp + 32, tmp + 64, tmp + 96, true)
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) {
          store<f32>(cBase + <usize>r * cRS + ((<usize>j) << 2), load<f32>(tmp + ((<usize>(r * 8 + j)) << 2)))
        }
      }
    }
  }
}

/**
 * The product job: C (J_DY, rows × J_COUT, row-major) = A · B for the rows of each chunk, A at J_X
 * read through J_A_ROW_BYTES / J_A_COL_BYTES, B packed in panels of 8 columns at J_W (J_K rows).
 * With fewer than 8 columns every tile would be an edge tile (through `tmp`, scalar copies): the
 * rows then go into J_ACC0 eight floats apart, full tiles over B's zero columns, and are compacted
 * into C. Each element is the same multiply-add chain whichever way its rows are split. Then, when
 * given, a float32 bias per column (J_BIAS) and σ of every element (J_SIGMOID = 1, the loss's σ).
 */
export function product(job: usize, tmp: usize): void {
  const n = word(job, J_COUT)
  const k = word(job, J_K)
  const a = <usize>word(job, J_X)
  const aRS = <usize>word(job, J_A_ROW_BYTES)
  const aKS = <usize>word(job, J_A_COL_BYTES)
  const b = <usize>word(job, J_W)
  const c = <usize>word(job, J_DY)
  const padded = <usize>word(job, J_ACC0)
  const bias = <usize>word(job, J_BIAS)
  const sigmoid = word(job, J_SIGMOID) != 0
  const panels = (n + 7) >> 3
  for (let chunk = nextChunk(job); chunk >= 0; chunk = nextChunk(job)) {
    const r0 = firstRow(job, chunk)
    const rows = endRow(job, chunk) - r0
    const aRows = a + <usize>r0 * aRS
    const cRows = c + ((<usize>r0 * <usize>n) << 2)
    if (padded == 0) {
      gemm(rows, n, k, aRows, aRS, aKS, b, (<usize>k) << 5, 32, cRows, (<usize>n) << 2, false, rows > 4 * panels, tmp)
    } else {
      const wide = padded + ((<usize>r0) << 5)
      gemm(rows, 8, k, aRows, aRS, aKS, b, (<usize>k) << 5, 32, wide, 32, false, false, tmp)
      let dst = cRows
      for (let r = 0; r < rows; r++) {
        const src = wide + ((<usize>r) << 5)
        for (let j = 0; j < n; j++) store<f32>(dst + ((<usize>j) << 2), load<f32>(src + ((<usize>j) << 2)))
        dst += (<usize>n) << 2
      }
    }
    if (bias != 0) {
      let at = cRows
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < n; j++)
          store<f32>(at + ((<usize>j) << 2), load<f32>(at + ((<usize>j) << 2)) + load<f32>(bias + ((<usize>j) << 2)))
        at += (<usize>n) << 2
      }
    }
    if (sigmoid) {
      // element-wise: four at a time, the tail splat to every lane (the same bits either way)
      const count = rows * n
      let i = 0
      for (; i + 4 <= count; i += 4) v128.store(cRows + ((<usize>i) << 2), sigmoidVector(v128.load(cRows + ((<usize>i) << 2))))
      for (; i < count; i++) {
        const at = cRows + ((<usize>i) << 2)
        store<f32>(at, f32x4.extract_lane(sigmoidVector(f32x4.splat(load<f32>(at))), 0))
      }
    }
  }
}

/**
 * B[k × n] (element (i, j) at src + i·rowBytes + j·colBytes) packed for the GEMM: panel p holds
 * columns 8p … 8p + 7 of every row (zeros beyond n), panel p at dst + p·k·32. What
 * src/kernels/cpu/matmul.ts packs in JavaScript, for operands large enough that a loop there cost
 * more than their copy into the heap (the btcv head gradient's 884 736 × 13).
 */
export function packPanels(src: usize, rowBytes: usize, colBytes: usize, k: i32, n: i32, dst: usize): void {
  const panels = (n + 7) >> 3
  for (let p = 0; p < panels; p++) {
    const cols = min(8, n - (p << 3))
    let out = dst + ((<usize>p * <usize>k) << 5)
    let row = src + <usize>(p << 3) * colBytes
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < cols; j++) store<f32>(out + ((<usize>j) << 2), load<f32>(row + <usize>j * colBytes))
      for (let j = cols; j < 8; j++) store<f32>(out + ((<usize>j) << 2), 0)
      out += 32
      row += rowBytes
    }
  }
}
