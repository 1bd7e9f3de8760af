/**
 * 3-D convolution by im2col + GEMM for sipl's `cpu` tfjs backend: the forward, filter-gradient
 * and input-gradient jobs (run through runJob in ./index.ts) and the filter packing and reduction
 * that src/kernels/cpu/conv3d.ts calls directly. Design and measurements: docs/kernels.md.
 *
 * Everything is raw pointer arithmetic on one shared memory that all threads import; nothing is
 * allocated here (stub runtime, no static data), so every thread can run the same functions at
 * once. The job descriptor (./job.ts) says what to compute; threads take row chunks from an
 * atomic counter, so a thread slowed down by the shared machine simply takes fewer chunks.
 */

import {fma, gemm} from './gemm'
import {
  J_ACC,
  J_ACC0,
  J_ACC_LEN,
  J_ACC_STRIDE,
  J_BATCH,
  J_BIAS,
  J_CHUNKS,
  J_CHUNK_FIRST,
  J_CHUNK_STEP,
  J_CIN,
  J_COUT,
  J_DIL_D,
  J_DIL_H,
  J_DIL_W,
  J_DY,
  J_IN_D,
  J_IN_H,
  J_IN_W,
  J_K,
  J_KP,
  J_K_D,
  J_K_H,
  J_K_W,
  J_OUT_D,
  J_OUT_H,
  J_OUT_W,
  J_PAD_F,
  J_PAD_L,
  J_PAD_T,
  J_RELU,
  J_RESIDUAL,
  J_ROWS_PER_CHUNK,
  J_SLOTS,
  J_SUB_ROWS,
  J_S_D,
  J_S_H,
  J_S_W,
  J_W,
  J_X,
  clearedSlot,
  endRow,
  firstRow,
  nextChunk,
  nextSlot,
  word,
} from './job'
import {copyFloats} from './floats'

function addFloats(dst: usize, src: usize, n: i32): void {
  let i = 0
  for (; i + 4 <= n; i += 4) {
    const p = dst + ((<usize>i) << 2)
    v128.store(p, f32x4.add(v128.load(p), v128.load(src + ((<usize>i) << 2))))
  }
  for (; i < n; i++) {
    const p = dst + ((<usize>i) << 2)
    store<f32>(p, load<f32>(p) + load<f32>(src + ((<usize>i) << 2)))
  }
}

/**
 * im2col for output rows m0..m1 (row m = output voxel, NDHWC order): each row holds the
 * receptive field (kd, kh, kw, cin) — the same order as the tfjs filter [kD, kH, kW, Cin, Cout]
 * — zero outside the volume and in the Kp − K tail.
 */
function im2col(job: usize, m0: i32, m1: i32, dst: usize): void {
  const x = <usize>word(job, J_X)
  const inD = word(job, J_IN_D)
  const inH = word(job, J_IN_H)
  const inW = word(job, J_IN_W)
  const cin = word(job, J_CIN)
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const kD = word(job, J_K_D)
  const kH = word(job, J_K_H)
  const kW = word(job, J_K_W)
  const sD = word(job, J_S_D)
  const sH = word(job, J_S_H)
  const sW = word(job, J_S_W)
  const dD = word(job, J_DIL_D)
  const dH = word(job, J_DIL_H)
  const dW = word(job, J_DIL_W)
  const pF = word(job, J_PAD_F)
  const pT = word(job, J_PAD_T)
  const pL = word(job, J_PAD_L)
  const K = word(job, J_K)
  const Kp = word(job, J_KP)
  const tapBytes = (<usize>cin) << 2
  // the voxel of row m0; later rows step along width and carry (a division per row cost ~5 cycles per element at Cin = 1)
  let ow = m0 % outW
  let t = m0 / outW
  let oh = t % outH
  t /= outH
  let od = t % outD
  let bi = t / outD
  const planeStep = (<usize>(dD * inH * inW) * <usize>cin) << 2
  const rowStep = (<usize>(dH * inW) * <usize>cin) << 2
  const colStep = (<usize>(dW * cin)) << 2
  // a 3×3×3 stride-1 first layer: rows go 4 at a time where they can (blockOf4 below)
  const dense3 = cin == 1 && kD == 3 && kH == 3 && kW == 3 && dD == 1 && dH == 1 && dW == 1 && sW == 1 && Kp == 32
  for (let m = m0; m < m1; m++) {
    let row = dst + ((<usize>(m - m0) * <usize>Kp) << 2)
    const id0 = od * sD - pF
    const ih0 = oh * sH - pT
    const iw0 = ow * sW - pL
    const interior = id0 >= 0 && id0 + (kD - 1) * dD < inD && ih0 >= 0 && ih0 + (kH - 1) * dH < inH && iw0 >= 0 && iw0 + (kW - 1) * dW < inW
    const block = interior && dense3 && m + 4 <= m1 && ow + 4 <= outW && iw0 + 5 < inW
    if (block) {
      blockOf4(x + ((<usize>(((bi * inD + id0) * inH + ih0) * inW + iw0)) << 2), planeStep, rowStep, row)
      // rows m … m + 3 are done, the Kp − K tail included; the 4th row's step is the loop's own
      m += 3
      ow += 3
    } else if (interior && cin == 1) {
      // the first layer inside the volume: one load and one store per tap, no bounds
      const base = x + ((<usize>(((bi * inD + id0) * inH + ih0) * inW + iw0)) << 2)
      for (let kd = 0; kd < kD; kd++) {
        for (let kh = 0; kh < kH; kh++) {
          const src = base + <usize>kd * planeStep + <usize>kh * rowStep
          for (let kw = 0; kw < kW; kw++) {
            store<f32>(row, load<f32>(src + <usize>kw * colStep))
            row += 4
          }
        }
      }
    } else {
      for (let kd = 0; kd < kD; kd++) {
        const id = id0 + kd * dD
        const inDepth = id >= 0 && id < inD
        for (let kh = 0; kh < kH; kh++) {
          const ih = ih0 + kh * dH
          const inRows = inDepth && ih >= 0 && ih < inH
          for (let kw = 0; kw < kW; kw++) {
            const iw = iw0 + kw * dW
            const inside = inRows && iw >= 0 && iw < inW
            const src = x + ((<usize>(((bi * inD + id) * inH + ih) * inW + iw) * <usize>cin) << 2)
            if (!inside) {
              if (cin == 1) store<f32>(row, 0)
              else memory.fill(row, 0, tapBytes)
            } else if (cin == 1) {
              store<f32>(row, load<f32>(src))
            } else {
              copyFloats(row, src, cin)
            }
            row += tapBytes
          }
        }
      }
    }
    if (!block && Kp > K) memory.fill(row, 0, (<usize>(Kp - K)) << 2)
    if (++ow == outW) {
      ow = 0
      if (++oh == outH) {
        oh = 0
        if (++od == outD) {
          od = 0
          bi++
        }
      }
    }
  }
}

/** The input at tap t = (kd·3 + kh)·3 + kw for 4 consecutive outputs along width (taps past 26: zeros, the Kp − K tail). */
function tap4(base: usize, t: i32, planeStep: usize, rowStep: usize): v128 {
  if (t >= 27) return f32x4.splat(0)
  return v128.load(base + <usize>(t / 9) * planeStep + <usize>((t / 3) % 3) * rowStep + ((<usize>(t % 3)) << 2))
}

/**
 * im2col rows of 4 consecutive outputs along width of a 3×3×3 stride-1 convolution of one
 * channel (Kp = 32): per group of 4 taps, 4 vectors of 4 outputs, transposed into 4 vectors of
 * 4 taps, one per row. Row by row it was one scalar load and store per tap: 2.5× the time.
 */
function blockOf4(base: usize, planeStep: usize, rowStep: usize, dst: usize): void {
  for (let g = 0; g < 32; g += 4) {
    const a = tap4(base, g, planeStep, rowStep)
    const b = tap4(base, g + 1, planeStep, rowStep)
    const c = tap4(base, g + 2, planeStep, rowStep)
    const d = tap4(base, g + 3, planeStep, rowStep)
    const ab01 = i32x4.shuffle(a, b, 0, 4, 1, 5)
    const cd01 = i32x4.shuffle(c, d, 0, 4, 1, 5)
    const ab23 = i32x4.shuffle(a, b, 2, 6, 3, 7)
    const cd23 = i32x4.shuffle(c, d, 2, 6, 3, 7)
    const at = dst + ((<usize>g) << 2)
    v128.store(at, i32x4.shuffle(ab01, cd01, 0, 1, 4, 5))
    v128.store(at + 128, i32x4.shuffle(ab01, cd01, 2, 3, 6, 7))
    v128.store(at + 256, i32x4.shuffle(ab23, cd23, 0, 1, 4, 5))
    v128.store(at + 384, i32x4.shuffle(ab23, cd23, 2, 3, 6, 7))
  }
}

/** Scatter-adds column rows m0..m1 (layout of im2col) into the NDHWC volume `acc` (the input gradient). */
function col2imAdd(job: usize, m0: i32, m1: i32, src: usize, acc: usize): void {
  const inD = word(job, J_IN_D)
  const inH = word(job, J_IN_H)
  const inW = word(job, J_IN_W)
  const cin = word(job, J_CIN)
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const kD = word(job, J_K_D)
  const kH = word(job, J_K_H)
  const kW = word(job, J_K_W)
  const sD = word(job, J_S_D)
  const sH = word(job, J_S_H)
  const sW = word(job, J_S_W)
  const pF = word(job, J_PAD_F)
  const pT = word(job, J_PAD_T)
  const pL = word(job, J_PAD_L)
  const Kp = word(job, J_KP)
  const tapBytes = (<usize>cin) << 2
  for (let m = m0; m < m1; m++) {
    const ow = m % outW
    let t = m / outW
    const oh = t % outH
    t /= outH
    const od = t % outD
    const bi = t / outD
    let row = src + ((<usize>(m - m0) * <usize>Kp) << 2)
    for (let kd = 0; kd < kD; kd++) {
      const id = od * sD - pF + kd
      const inDepth = id >= 0 && id < inD
      for (let kh = 0; kh < kH; kh++) {
        const ih = oh * sH - pT + kh
        const inRows = inDepth && ih >= 0 && ih < inH
        for (let kw = 0; kw < kW; kw++) {
          const iw = ow * sW - pL + kw
          if (inRows && iw >= 0 && iw < inW) {
            addFloats(acc + ((<usize>(((bi * inD + id) * inH + ih) * inW + iw) * <usize>cin) << 2), row, cin)
          }
          row += tapBytes
        }
      }
    }
  }
}

/** y[r, c] = y[r, c] + bias[c], then max(·, 0) when relu: the epilogue of a fused conv, on rows still in cache. */
function biasActivation(y: usize, rows: i32, cout: i32, bias: usize, relu: bool): void {
  const zero = f32x4.splat(0)
  for (let r = 0; r < rows; r++) {
    const row = y + ((<usize>(r * cout)) << 2)
    let c = 0
    for (; c + 4 <= cout; c += 4) {
      const p = row + ((<usize>c) << 2)
      let v = f32x4.add(v128.load(p), v128.load(bias + ((<usize>c) << 2)))
      if (relu) v = f32x4.max(v, zero)
      v128.store(p, v)
    }
    for (; c < cout; c++) {
      const p = row + ((<usize>c) << 2)
      let v = load<f32>(p) + load<f32>(bias + ((<usize>c) << 2))
      if (relu && v < 0) v = 0
      store<f32>(p, v)
    }
  }
}

/** Packs the filter [K, Cout] (row-major) into panels of 8 output channels: [ceil(Cout/8)][Kp][8], zero padded. */
export function packFilter(w: usize, K: i32, cout: i32, Kp: i32, dst: usize): void {
  const panels = (cout + 7) >> 3
  for (let p = 0; p < panels; p++) {
    for (let k = 0; k < Kp; k++) {
      for (let j = 0; j < 8; j++) {
        const co = (p << 3) + j
        const v: f32 = k < K && co < cout ? load<f32>(w + ((<usize>(k * cout + co)) << 2)) : 0
        store<f32>(dst + ((<usize>(((p * Kp + k) << 3) + j)) << 2), v)
      }
    }
  }
}

/** Packs the transposed filter Wᵀ [Cout, K] into panels of 8 columns of K: [Kp/8][Cout][8], zero padded. */
export function packFilterTransposed(w: usize, K: i32, cout: i32, Kp: i32, dst: usize): void {
  const panels = Kp >> 3
  for (let p = 0; p < panels; p++) {
    for (let co = 0; co < cout; co++) {
      for (let j = 0; j < 8; j++) {
        const k = (p << 3) + j
        const v: f32 = k < K ? load<f32>(w + ((<usize>(k * cout + co)) << 2)) : 0
        store<f32>(dst + ((<usize>(((p * cout + co) << 3) + j)) << 2), v)
      }
    }
  }
}

/**
 * dW[K, Cout] = srcᵀ for the filter gradient's summed slot src = dWᵀ [Cout, Kp] (the slots are first
 * added into the first one, in order, by the sum-slots job), in 32 × 32 blocks so that both sides
 * stay in cache: read in the slot's order, Kp·4 bytes apart for one k, the reads missed the cache on
 * the coarse grids' wide layers (docs/bench/2026-12-07-full-resolution-end.md).
 */
export function transposeFilterGrad(src: usize, K: i32, cout: i32, Kp: i32, dst: usize): void {
  for (let k0 = 0; k0 < K; k0 += 32) {
    const k1 = min(K, k0 + 32)
    for (let c0 = 0; c0 < cout; c0 += 32) {
      const c1 = min(cout, c0 + 32)
      for (let co = c0; co < c1; co++) {
        const from = src + ((<usize>co * <usize>Kp) << 2)
        // + 0: the sum of the slots started from +0, which turns a −0 into +0
        for (let k = k0; k < k1; k++) store<f32>(dst + ((<usize>(k * cout + co)) << 2), load<f32>(from + ((<usize>k) << 2)) + 0)
      }
    }
  }
}

/**
 * Filter gradient, deterministic: SLOTS accumulators (a fixed number, not one per thread); a
 * thread takes a whole slot and adds its chunks s, s + SLOTS, s + 2·SLOTS, … in order, so every
 * partial sum is the same whichever thread computed it, and the slots are reduced in order.
 */
function filterGradSlots(job: usize, cols: usize, tmp: usize): void {
  const chunks = word(job, J_CHUNKS)
  const rowsPerChunk = word(job, J_ROWS_PER_CHUNK)
  const M = word(job, J_BATCH) * word(job, J_OUT_D) * word(job, J_OUT_H) * word(job, J_OUT_W)
  const Kp = word(job, J_KP)
  const cout = word(job, J_COUT)
  const slots = word(job, J_SLOTS)
  const accLen = word(job, J_ACC_LEN)
  const dy = <usize>word(job, J_DY)
  for (let s = nextSlot(job); s >= 0; s = nextSlot(job)) {
    const acc = clearedSlot(job, s, (<usize>accLen) << 2)
    for (let c = s; c < chunks; c += slots) {
      const m0 = c * rowsPerChunk
      const m1 = min(M, m0 + rowsPerChunk)
      // dWᵀ += dy[m0:m1, :]ᵀ · im2col(x)[m0:m1, :]
      im2col(job, m0, m1, cols)
      gemm(
        cout,
        Kp,
        m1 - m0,
        dy + ((<usize>m0 * <usize>cout) << 2),
        4,
        (<usize>cout) << 2,
        cols,
        32,
        (<usize>Kp) << 2,
        acc,
        (<usize>Kp) << 2,
        true,
        true,
        tmp,
      )
    }
  }
}

/** The filter gradient job (KIND_FILTER_GRAD): this thread's slots, in its `scratch`. */
export function convFilterGrad(job: usize, scratch: usize): void {
  filterGradSlots(job, scratch + 256, scratch)
}

/** The forward job (KIND_FORWARD): y = im2col(x) · W (+ bias, ReLU) over this thread's row chunks. */
export function convForward(job: usize, scratch: usize): void {
  convRows(job, scratch, true)
}

/** The input gradient job (KIND_INPUT_GRAD): dx += col2im(dy · Wᵀ) over this thread's row chunks. */
export function convInputGrad(job: usize, scratch: usize): void {
  convRows(job, scratch, false)
}

/** The forward or the input gradient over the job's row chunks that this thread takes. */
function convRows(job: usize, scratch: usize, forward: bool): void {
  const tmp = scratch // 256 bytes for edge tiles
  const cols = scratch + 256
  const rowsPerChunk = word(job, J_ROWS_PER_CHUNK)
  const M = word(job, J_BATCH) * word(job, J_OUT_D) * word(job, J_OUT_H) * word(job, J_OUT_W)
  const Kp = word(job, J_KP)
  const cout = word(job, J_COUT)
  const first = word(job, J_CHUNK_FIRST)
  const step = max(1, word(job, J_CHUNK_STEP))
  const sub = word(job, J_SUB_ROWS) > 0 ? word(job, J_SUB_ROWS) : rowsPerChunk
  // input grad: every thread scatters into the one zeroed dx; the caller orders the chunks so that
  // chunks running at the same time touch disjoint voxels
  const acc = <usize>word(job, J_ACC0)
  const w = <usize>word(job, J_W)
  const dy = <usize>word(job, J_DY)
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const c = first + k * step
    const end = min(M, (c + 1) * rowsPerChunk)
    for (let m0 = c * rowsPerChunk; m0 < end; m0 += sub) {
      const m1 = min(end, m0 + sub)
      const rows = m1 - m0
      if (forward) {
        // y[m0:m1, :] = im2col(x)[m0:m1, :] · W
        im2col(job, m0, m1, cols)
        gemm(
          rows,
          cout,
          Kp,
          cols,
          (<usize>Kp) << 2,
          4,
          w,
          (<usize>Kp) << 5,
          32,
          dy + ((<usize>m0 * <usize>cout) << 2),
          (<usize>cout) << 2,
          false,
          false,
          tmp,
        )
        const bias = <usize>word(job, J_BIAS)
        if (bias != 0) biasActivation(dy + ((<usize>m0 * <usize>cout) << 2), rows, cout, bias, word(job, J_RELU) != 0)
      } else {
        // cols = dy[m0:m1, :] · Wᵀ, then scattered back onto the input grid
        gemm(
          rows,
          Kp,
          cout,
          dy + ((<usize>m0 * <usize>cout) << 2),
          (<usize>cout) << 2,
          4,
          w,
          (<usize>cout) << 5,
          32,
          cols,
          (<usize>Kp) << 2,
          false,
          false,
          tmp,
        )
        col2imAdd(job, m0, m1, cols, acc)
      }
    }
  }
}

/**
 * x (one channel, [B, inD, inH, inW]) copied into dst with `front`/`top`/`left` zeros before and
 * zeros after, to [B, Dp, Hp, Wp]: the input of the direct convolution below, where every tap of
 * every output is then inside.
 */
export function padVolume(
  x: usize,
  B: i32,
  inD: i32,
  inH: i32,
  inW: i32,
  front: i32,
  top: i32,
  left: i32,
  Dp: i32,
  Hp: i32,
  Wp: i32,
  dst: usize,
): void {
  memory.fill(dst, 0, (<usize>B * <usize>Dp * <usize>Hp * <usize>Wp) << 2)
  for (let b = 0; b < B; b++)
    for (let d = 0; d < inD; d++)
      for (let h = 0; h < inH; h++) {
        const from = x + ((<usize>(((b * inD + d) * inH + h) * inW)) << 2)
        const to = dst + ((<usize>(((b * Dp + d + front) * Hp + h + top) * Wp + left)) << 2)
        copyFloats(to, from, inW)
      }
}

/**
 * The direct forward job (KIND_DIRECT_FORWARD) of a stride-1 convolution of one input channel
 * (the first layer: im2col rows of one float per tap, a third of them copies of the row before):
 * rows are output rows (b, od, oh); 4 outputs along width × 8 output channels at a time, each
 * element the multiply-add chain over the taps in im2col's order (kd, kh, kw) that the GEMM runs
 * on the im2col rows, from the zero-padded input at J_X (padVolume), so the same bits. The GEMM
 * also runs Kp − K padding taps, fma(0, 0, s): each is s + 0, which is s except that it turns a −0
 * into +0 (a chain from +0 can end at −0 where a fused multiply-add underflows), so a sum here gets
 * one + 0 when Kp > K. Then the bias / ReLU epilogue. J_W: the filter packed as for the GEMM
 * (packFilter, Kp rows per panel of 8).
 */
export function convDirect(job: usize): void {
  const x = <usize>word(job, J_X)
  const w = <usize>word(job, J_W)
  const y = <usize>word(job, J_DY)
  const bias = <usize>word(job, J_BIAS)
  const relu = word(job, J_RELU) != 0
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const cout = word(job, J_COUT)
  const kD = word(job, J_K_D)
  const kH = word(job, J_K_H)
  const kW = word(job, J_K_W)
  const Kp = word(job, J_KP)
  const Hp = outH + kH - 1
  const Wp = outW + kW - 1
  const Dp = outD + kD - 1
  const panels = cout >> 3
  const rowBytes = (<usize>Wp) << 2
  const planeBytes = <usize>Hp * rowBytes
  const panelBytes = (<usize>Kp) << 5
  // + 0 where the GEMM has padding taps, − 0 (which adds nothing, even to −0) where it has none
  const padding = f32x4.splat(Kp > kD * kH * kW ? <f32>0 : <f32>-0.0)
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const r1 = endRow(job, k)
    for (let r = firstRow(job, k); r < r1; r++) {
      const oh = r % outH
      const od = (r / outH) % outD
      const b = r / (outH * outD)
      const base = x + ((<usize>(((b * Dp + od) * Hp + oh) * Wp)) << 2)
      const yRow = y + ((<usize>r * <usize>outW * <usize>cout) << 2)
      for (let p = 0; p < panels; p++) {
        const wp = w + <usize>p * panelBytes
        let ow = 0
        for (; ow + 4 <= outW; ow += 4) {
          let s00 = f32x4.splat(0)
          let s01 = f32x4.splat(0)
          let s10 = f32x4.splat(0)
          let s11 = f32x4.splat(0)
          let s20 = f32x4.splat(0)
          let s21 = f32x4.splat(0)
          let s30 = f32x4.splat(0)
          let s31 = f32x4.splat(0)
          let tap = wp
          for (let kd = 0; kd < kD; kd++) {
            for (let kh = 0; kh < kH; kh++) {
              let src = base + <usize>kd * planeBytes + <usize>kh * rowBytes + ((<usize>ow) << 2)
              for (let kw = 0; kw < kW; kw++) {
                const b0 = v128.load(tap)
                const b1 = v128.load(tap, 16)
                let a = v128.load32_splat(src)
                s00 = fma(a, b0, s00)
                s01 = fma(a, b1, s01)
                a = v128.load32_splat(src, 4)
                s10 = fma(a, b0, s10)
                s11 = fma(a, b1, s11)
                a = v128.load32_splat(src, 8)
                s20 = fma(a, b0, s20)
                s21 = fma(a, b1, s21)
                a = v128.load32_splat(src, 12)
                s30 = fma(a, b0, s30)
                s31 = fma(a, b1, s31)
                tap += 32
                src += 4
              }
            }
          }
          const out = yRow + ((<usize>(ow * cout + (p << 3))) << 2)
          const step = (<usize>cout) << 2
          v128.store(out, f32x4.add(s00, padding))
          v128.store(out, f32x4.add(s01, padding), 16)
          v128.store(out + step, f32x4.add(s10, padding))
          v128.store(out + step, f32x4.add(s11, padding), 16)
          v128.store(out + 2 * step, f32x4.add(s20, padding))
          v128.store(out + 2 * step, f32x4.add(s21, padding), 16)
          v128.store(out + 3 * step, f32x4.add(s30, padding))
          v128.store(out + 3 * step, f32x4.add(s31, padding), 16)
        }
        for (; ow < outW; ow++) {
          let s0 = f32x4.splat(0)
          let s1 = f32x4.splat(0)
          let tap = wp
          for (let kd = 0; kd < kD; kd++) {
            for (let kh = 0; kh < kH; kh++) {
              let src = base + <usize>kd * planeBytes + <usize>kh * rowBytes + ((<usize>ow) << 2)
              for (let kw = 0; kw < kW; kw++) {
                const a = v128.load32_splat(src)
                s0 = fma(a, v128.load(tap), s0)
                s1 = fma(a, v128.load(tap, 16), s1)
                tap += 32
                src += 4
              }
            }
          }
          const out = yRow + ((<usize>(ow * cout + (p << 3))) << 2)
          v128.store(out, f32x4.add(s0, padding))
          v128.store(out, f32x4.add(s1, padding), 16)
        }
      }
      if (bias != 0) biasActivation(yRow, outW, cout, bias, relu)
    }
  }
}

/**
 * The direct job of a transposed convolution whose stride is its kernel (KIND_DIRECT_TRANSPOSED:
 * the SIPL and U-Net up-sampling, 2³ and 4³ kernels, pad 0), where every output voxel receives one
 * input voxel through one tap: dx[v] = b + dy[v / k] · W[v mod k], the chain over dy's channels
 * that the input-gradient GEMM runs, from +0, added to the bias (or +0) once as col2imAdd adds it
 * to the bias-filled dx: the same bits, without the im2col-shaped rows and the filled dx between.
 * With a residual r, then + r with channelAffine's operations (finishUp). In the
 * job's words (the input gradient's geometry): IN_* is dx (the up-sampled volume, CIN channels),
 * OUT_* and COUT are dy, X is dy, ACC0 is dx, BIAS the bias or 0, RESIDUAL r or 0, W the filter as
 * [tap][COUT][CIN]. Rows are dx rows (b, id, ih); 8 channels of 4 voxels with the same tap (kW apart) at a time.
 */
export function convDirectTransposed(job: usize): void {
  const dy = <usize>word(job, J_X)
  const w = <usize>word(job, J_W)
  const dx = <usize>word(job, J_ACC0)
  const bias = <usize>word(job, J_BIAS)
  const residual = <usize>word(job, J_RESIDUAL)
  const inD = word(job, J_IN_D)
  const inH = word(job, J_IN_H)
  const inW = word(job, J_IN_W)
  const cin = word(job, J_CIN)
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const cout = word(job, J_COUT)
  const kD = word(job, J_K_D)
  const kH = word(job, J_K_H)
  const kW = word(job, J_K_W)
  const panels = cin >> 3
  const tapBytes = <usize>cout * <usize>cin * 4
  // one dx voxel (cin floats) is also the step between one dy channel's weights and the next's
  const voxelBytes = (<usize>cin) << 2
  const sourceBytes = (<usize>cout) << 2
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const r1 = endRow(job, k)
    for (let r = firstRow(job, k); r < r1; r++) {
      const ih = r % inH
      const id = (r / inH) % inD
      const b = r / (inH * inD)
      const src = dy + ((<usize>(((b * outD + id / kD) * outH + ih / kH) * outW) * <usize>cout) << 2)
      const rowOffset = (<usize>r * <usize>inW * <usize>cin) << 2
      const taps = w + <usize>(((id % kD) * kH + (ih % kH)) * kW) * tapBytes
      for (let p = 0; p < panels; p++) {
        const panel = (<usize>p) << 5
        const b0 = bias != 0 ? v128.load(bias + panel) : f32x4.splat(0)
        const b1 = bias != 0 ? v128.load(bias + panel, 16) : f32x4.splat(0)
        // 4 outputs with the same tap at a time: 4 source voxels j … j + 3, one weight pair per channel of dy
        for (let kw = 0; kw < kW; kw++) {
          const wTap = taps + <usize>kw * tapBytes + panel
          let j = 0
          for (; j + 4 <= outW; j += 4) {
            const a0 = src + ((<usize>j * <usize>cout) << 2)
            let wc = wTap
            let s00 = f32x4.splat(0)
            let s01 = f32x4.splat(0)
            let s10 = f32x4.splat(0)
            let s11 = f32x4.splat(0)
            let s20 = f32x4.splat(0)
            let s21 = f32x4.splat(0)
            let s30 = f32x4.splat(0)
            let s31 = f32x4.splat(0)
            for (let c = 0; c < cout; c++) {
              const off = (<usize>c) << 2
              const w0 = v128.load(wc)
              const w1 = v128.load(wc, 16)
              let a = v128.load32_splat(a0 + off)
              s00 = fma(a, w0, s00)
              s01 = fma(a, w1, s01)
              a = v128.load32_splat(a0 + sourceBytes + off)
              s10 = fma(a, w0, s10)
              s11 = fma(a, w1, s11)
              a = v128.load32_splat(a0 + 2 * sourceBytes + off)
              s20 = fma(a, w0, s20)
              s21 = fma(a, w1, s21)
              a = v128.load32_splat(a0 + 3 * sourceBytes + off)
              s30 = fma(a, w0, s30)
              s31 = fma(a, w1, s31)
              wc += voxelBytes
            }
            const at = rowOffset + <usize>(j * kW + kw) * voxelBytes + panel
            const apart = <usize>kW * voxelBytes
            finishUp(dx + at, residual != 0 ? residual + at : 0, b0, b1, s00, s01)
            finishUp(dx + at + apart, residual != 0 ? residual + at + apart : 0, b0, b1, s10, s11)
            finishUp(dx + at + 2 * apart, residual != 0 ? residual + at + 2 * apart : 0, b0, b1, s20, s21)
            finishUp(dx + at + 3 * apart, residual != 0 ? residual + at + 3 * apart : 0, b0, b1, s30, s31)
          }
          for (; j < outW; j++) {
            const a0 = src + ((<usize>j * <usize>cout) << 2)
            let wc = wTap
            let s0 = f32x4.splat(0)
            let s1 = f32x4.splat(0)
            for (let c = 0; c < cout; c++) {
              const a = v128.load32_splat(a0 + ((<usize>c) << 2))
              s0 = fma(a, v128.load(wc), s0)
              s1 = fma(a, v128.load(wc, 16), s1)
              wc += voxelBytes
            }
            const at = rowOffset + <usize>(j * kW + kw) * voxelBytes + panel
            finishUp(dx + at, residual != 0 ? residual + at : 0, b0, b1, s0, s1)
          }
        }
      }
    }
  }
}

/**
 * 8 channels of a direct transposed output: b + s, then with a residual r channelAffine's
 * operations, (v·1 + 0) + r·1: v·1 + 0 is v but for a −0 (b = −0 and s = −0: an underflowing fused
 * multiply-add can end a chain at −0), which it turns into +0.
 */
function finishUp(out: usize, r: usize, b0: v128, b1: v128, s0: v128, s1: v128): void {
  let v0 = f32x4.add(b0, s0)
  let v1 = f32x4.add(b1, s1)
  if (r != 0) {
    const one = f32x4.splat(1)
    const zero = f32x4.splat(0)
    v0 = f32x4.add(f32x4.add(f32x4.mul(v0, one), zero), f32x4.mul(v128.load(r), one))
    v1 = f32x4.add(f32x4.add(f32x4.mul(v1, one), zero), f32x4.mul(v128.load(r, 16), one))
  }
  v128.store(out, v0)
  v128.store(out, v1, 16)
}
