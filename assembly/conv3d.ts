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

import {gemm} from './gemm'
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
  J_ROWS_PER_CHUNK,
  J_SLOTS,
  J_SUB_ROWS,
  J_S_D,
  J_S_H,
  J_S_W,
  J_W,
  J_X,
  clearedSlot,
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

/** dW[K, Cout] = Σ over the slots (in order) of accᵀ, each slot's acc being dWᵀ [Cout, Kp]. */
export function reduceFilterGrad(job: usize, dst: usize): void {
  const K = word(job, J_K)
  const Kp = word(job, J_KP)
  const cout = word(job, J_COUT)
  const slots = word(job, J_SLOTS)
  const acc = <usize>word(job, J_ACC)
  const stride = <usize>word(job, J_ACC_STRIDE)
  for (let k = 0; k < K; k++) {
    for (let co = 0; co < cout; co++) {
      let s: f32 = 0
      for (let t = 0; t < slots; t++) s += load<f32>(acc + <usize>t * stride + ((<usize>(co * Kp + k)) << 2))
      store<f32>(dst + ((<usize>(k * cout + co)) << 2), s)
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
