/**
 * Winograd F(2×2×2, 3×3×3) convolutions for stride-1, undilated 3×3×3 filters (the bulk of a
 * 3-D U-Net's arithmetic): each 2×2×2 block of outputs ("tile") takes a 4×4×4 input window, and
 * the 27 multiply-adds per output and channel pair become 8 (64 per tile), in 64 small GEMMs
 * over channels, one per frequency p. Design, the choice of F(2,3) and measurements:
 * docs/kernels.md.
 *
 * 1-D F(2, 3), applied along depth, height and width in turn:
 *   input   Bᵀd = [d0 − d2, d1 + d2, d2 − d1, d1 − d3]
 *   filter  Gg  = [g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2]
 *   output  Aᵀm = [m0 + m1 + m2, m1 − m2 − m3]
 * so y = Aᵀ[(Gg) ⊙ (Bᵀd)]. For the filter gradient, with V = Bᵀd and U = Gg, ∂L/∂U = V ⊙ (A·dy)
 * summed over tiles, A·dy = [dy0, dy0 + dy1, dy0 − dy1, −dy1], and ∂L/∂g = Gᵀ·∂L/∂U.
 *
 * Layouts (channels-last, like the tensors): a chunk of `tb` consecutive tiles keeps its
 * transformed input as V[64][tb][Cin rounded to 4] and its GEMM results as M[64][tb][Cout
 * rounded to 4]; the transformed filter U is [64][Cout/8 panels][Cin][8], the GEMM's packed
 * operand. Frequency index p = (a·4 + b)·4 + c over (depth, height, width). Transforms run on
 * f32x4 vectors of 4 channels, which channels-last makes contiguous.
 */
import {gemm} from './gemm'
import {
  J_ACC,
  J_ACC_LEN,
  J_ACC_STRIDE,
  J_BATCH,
  J_BIAS,
  J_CHUNKS,
  J_CIN,
  J_COUNTER,
  J_COUT,
  J_DY,
  J_IN_D,
  J_IN_H,
  J_IN_W,
  J_OUT_D,
  J_OUT_H,
  J_OUT_W,
  J_PAD_F,
  J_PAD_L,
  J_PAD_T,
  J_RELU,
  J_ROWS_PER_CHUNK,
  J_SLOTS,
  J_TILES_D,
  J_TILES_H,
  J_TILES_W,
  J_V_OFFSET,
  J_W,
  J_X,
  word,
} from './job'

/**
 * Bytes from frequency p to p + 1 in a block of `tb` rows of `width` floats: one cache line more
 * than the rows need, because a power-of-two stride (4 KiB for 32 tiles × 32 channels) puts all
 * 64 frequencies of one tile in the same L1 set, and the transforms write all 64 at once.
 */
function frequencyStride(tb: i32, width: i32): usize {
  return ((<usize>tb * <usize>width) << 2) + 64
}

/** The first `lanes` floats at p (lanes ≥ 4: all four), zeros in the other lanes: never reads past a row's channels. */
function loadLanes(p: usize, lanes: i32): v128 {
  if (lanes >= 4) return v128.load(p)
  let v = f32x4.splat(0)
  if (lanes > 0) v = f32x4.replace_lane(v, 0, load<f32>(p))
  if (lanes > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4))
  if (lanes > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8))
  return v
}

function storeLanes(p: usize, v: v128, lanes: i32): void {
  if (lanes >= 4) {
    v128.store(p, v)
    return
  }
  if (lanes > 0) store<f32>(p, f32x4.extract_lane(v, 0))
  if (lanes > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4)
  if (lanes > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8)
}

/** Bᵀd along one line: 4 vectors read at src + k·srcStep, written at dst + k·dstStep. */
function inputLine(src: usize, srcStep: usize, dst: usize, dstStep: usize): void {
  const d0 = v128.load(src)
  const d1 = v128.load(src + srcStep)
  const d2 = v128.load(src + 2 * srcStep)
  const d3 = v128.load(src + 3 * srcStep)
  v128.store(dst, f32x4.sub(d0, d2))
  v128.store(dst + dstStep, f32x4.add(d1, d2))
  v128.store(dst + 2 * dstStep, f32x4.sub(d2, d1))
  v128.store(dst + 3 * dstStep, f32x4.sub(d1, d3))
}

/** A·dy along one line: 2 vectors at src, src + srcStep → 4 vectors at dst + k·dstStep. */
function gradLine(src: usize, srcStep: usize, dst: usize, dstStep: usize): void {
  const u0 = v128.load(src)
  const u1 = v128.load(src + srcStep)
  v128.store(dst, u0)
  v128.store(dst + dstStep, f32x4.add(u0, u1))
  v128.store(dst + 2 * dstStep, f32x4.sub(u0, u1))
  v128.store(dst + 3 * dstStep, f32x4.neg(u1))
}

/** Aᵀm along one line: 4 vectors at src + k·srcStep → 2 vectors at dst, dst + dstStep. */
function outputLine(src: usize, srcStep: usize, dst: usize, dstStep: usize): void {
  const m0 = v128.load(src)
  const m1 = v128.load(src + srcStep)
  const m2 = v128.load(src + 2 * srcStep)
  const m3 = v128.load(src + 3 * srcStep)
  v128.store(dst, f32x4.add(f32x4.add(m0, m1), m2))
  v128.store(dst + dstStep, f32x4.sub(f32x4.sub(m1, m2), m3))
}

// The *Lines helpers apply one 1-D transform to `bytes` (a multiple of 16) of channels: channels
// innermost, so that the loop body is a handful of vector operations with fixed strides.

function inputLines(src: usize, srcStep: usize, dst: usize, dstStep: usize, bytes: usize): void {
  for (let o: usize = 0; o < bytes; o += 16) inputLine(src + o, srcStep, dst + o, dstStep)
}

function gradLines(src: usize, srcStep: usize, dst: usize, dstStep: usize, bytes: usize): void {
  for (let o: usize = 0; o < bytes; o += 16) gradLine(src + o, srcStep, dst + o, dstStep)
}

function outputLines(src: usize, srcStep: usize, dst: usize, dstStep: usize, bytes: usize): void {
  for (let o: usize = 0; o < bytes; o += 16) outputLine(src + o, srcStep, dst + o, dstStep)
}

/**
 * V[p][i][·] = (Bᵀ ⊗ Bᵀ ⊗ Bᵀ) · (the 4³ input window of tile t0 + i), for i < count; zeros
 * outside the volume (the padding). `tmp` holds one window with all its channels: entry
 * e = (depth·4 + height)·4 + width at tmp + e·cinP·4. The width pass reads whole rows of voxels
 * (all channels at once): with the channel loop outside, the 16 rows of a window, a power of two
 * apart, would fight over one L1 set for every channel vector.
 */
function inputTransform(job: usize, t0: i32, count: i32, v: usize, tb: i32, tmp: usize): void {
  const x = <usize>word(job, J_X)
  const inD = word(job, J_IN_D)
  const inH = word(job, J_IN_H)
  const inW = word(job, J_IN_W)
  const cin = word(job, J_CIN)
  const tilesD = word(job, J_TILES_D)
  const tilesH = word(job, J_TILES_H)
  const tilesW = word(job, J_TILES_W)
  const padF = word(job, J_PAD_F)
  const padT = word(job, J_PAD_T)
  const padL = word(job, J_PAD_L)
  const cinP = (cin + 3) & ~3
  const voxel = (<usize>cin) << 2
  const unit = (<usize>cinP) << 2
  // channels in whole vectors; the last cin & 3 go through loadLanes
  const full = (<usize>(cin & ~3)) << 2
  const pStride = frequencyStride(tb, cinP)
  const zero = f32x4.splat(0)
  for (let i = 0; i < count; i++) {
    const t = t0 + i
    const tw = t % tilesW
    let r = t / tilesW
    const th = r % tilesH
    r /= tilesH
    const td = r % tilesD
    const n = r / tilesD
    const d0 = 2 * td - padF
    const h0 = 2 * th - padT
    const w0 = 2 * tw - padL
    const inside = w0 >= 0 && w0 + 3 < inW
    // width: each (depth, height) line of the window, all channels
    for (let a = 0; a < 4; a++) {
      const id = d0 + a
      for (let b = 0; b < 4; b++) {
        const ih = h0 + b
        const line = tmp + <usize>((a * 4 + b) * 4) * unit
        if (id < 0 || id >= inD || ih < 0 || ih >= inH) {
          memory.fill(line, 0, 4 * unit)
          continue
        }
        const row = x + <usize>((n * inD + id) * inH + ih) * <usize>inW * voxel
        let c = 0
        if (inside) {
          inputLines(row + <usize>w0 * voxel, voxel, line, unit, full)
          c = cin & ~3
        }
        for (; c < cinP; c += 4) {
          const lanes = cin - c
          const at = row + ((<usize>c) << 2)
          let x0 = zero
          let x1 = zero
          let x2 = zero
          let x3 = zero
          if (w0 >= 0 && w0 < inW) x0 = loadLanes(at + <usize>w0 * voxel, lanes)
          if (w0 + 1 >= 0 && w0 + 1 < inW) x1 = loadLanes(at + <usize>(w0 + 1) * voxel, lanes)
          if (w0 + 2 >= 0 && w0 + 2 < inW) x2 = loadLanes(at + <usize>(w0 + 2) * voxel, lanes)
          if (w0 + 3 >= 0 && w0 + 3 < inW) x3 = loadLanes(at + <usize>(w0 + 3) * voxel, lanes)
          const out = line + ((<usize>c) << 2)
          v128.store(out, f32x4.sub(x0, x2))
          v128.store(out + unit, f32x4.add(x1, x2))
          v128.store(out + 2 * unit, f32x4.sub(x2, x1))
          v128.store(out + 3 * unit, f32x4.sub(x1, x3))
        }
      }
    }
    // height, in place
    for (let e = 0; e < 16; e++) {
      const line = tmp + <usize>(((e >> 2) << 4) + (e & 3)) * unit
      inputLines(line, 4 * unit, line, 4 * unit, unit)
    }
    // depth, into V
    const dst = v + ((<usize>i * <usize>cinP) << 2)
    for (let q = 0; q < 16; q++) inputLines(tmp + <usize>q * unit, 16 * unit, dst + <usize>q * pStride, 16 * pStride, unit)
  }
}

/**
 * dy of tile t0 + i, transformed: Y[p][i][·] = (A ⊗ A ⊗ A) · (its 2³ block of dy), zeros
 * beyond the output volume and in the channel columns from Cout up to the row width `coutP`.
 * `tmp` as in inputTransform, with coutP channels.
 */
function gradTransform(job: usize, t0: i32, count: i32, yq: usize, tb: i32, coutP: i32, tmp: usize): void {
  const dy = <usize>word(job, J_DY)
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const cout = word(job, J_COUT)
  const tilesD = word(job, J_TILES_D)
  const tilesH = word(job, J_TILES_H)
  const tilesW = word(job, J_TILES_W)
  const voxel = (<usize>cout) << 2
  const unit = (<usize>coutP) << 2
  const full = cout & ~3
  const pStride = frequencyStride(tb, coutP)
  const zero = f32x4.splat(0)
  for (let i = 0; i < count; i++) {
    const t = t0 + i
    const tw = t % tilesW
    let r = t / tilesW
    const th = r % tilesH
    r /= tilesH
    const td = r % tilesD
    const n = r / tilesD
    const od0 = 2 * td
    const oh0 = 2 * th
    const ow0 = 2 * tw
    const second = ow0 + 1 < outW
    // width: each (depth, height) pair of the block, 2 → 4, all channels
    for (let a = 0; a < 2; a++) {
      for (let b = 0; b < 2; b++) {
        const line = tmp + <usize>((a * 4 + b) * 4) * unit
        const od = od0 + a
        const oh = oh0 + b
        if (od >= outD || oh >= outH) {
          memory.fill(line, 0, 4 * unit)
          continue
        }
        const row = dy + (<usize>((n * outD + od) * outH + oh) * <usize>outW + <usize>ow0) * voxel
        let c = 0
        if (second) {
          gradLines(row, voxel, line, unit, (<usize>full) << 2)
          c = full
        }
        // the rest: the last cout & 3 channels, the zero columns up to coutP, or a block cut by the volume's end
        for (; c < coutP; c += 4) {
          const lanes = cout - c
          const y0 = loadLanes(row + ((<usize>c) << 2), lanes)
          const y1 = second ? loadLanes(row + voxel + ((<usize>c) << 2), lanes) : zero
          const out = line + ((<usize>c) << 2)
          v128.store(out, y0)
          v128.store(out + unit, f32x4.add(y0, y1))
          v128.store(out + 2 * unit, f32x4.sub(y0, y1))
          v128.store(out + 3 * unit, f32x4.neg(y1))
        }
      }
    }
    // height: rows 0 and 1 → 0..3 (gradLine reads both before writing)
    for (let e = 0; e < 8; e++) {
      const line = tmp + <usize>(((e >> 2) << 4) + (e & 3)) * unit
      gradLines(line, 4 * unit, line, 4 * unit, unit)
    }
    // depth: planes 0 and 1 → frequencies 0..3, into Y
    const dst = yq + ((<usize>i * <usize>coutP) << 2)
    for (let q = 0; q < 16; q++) gradLines(tmp + <usize>q * unit, 16 * unit, dst + <usize>q * pStride, 16 * pStride, unit)
  }
}

/**
 * y (the 2³ block of tile t0 + i) = (Aᵀ ⊗ Aᵀ ⊗ Aᵀ) · M[·][i][·], plus bias, then ReLU when asked;
 * only voxels inside the output are written, a whole row of channels at a time. `tmp` as in
 * inputTransform, with Cout rounded to 4 channels.
 */
function outputTransform(job: usize, t0: i32, count: i32, m: usize, tb: i32, tmp: usize): void {
  const y = <usize>word(job, J_DY)
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const cout = word(job, J_COUT)
  const tilesD = word(job, J_TILES_D)
  const tilesH = word(job, J_TILES_H)
  const tilesW = word(job, J_TILES_W)
  const bias = <usize>word(job, J_BIAS)
  const relu = word(job, J_RELU) != 0
  const coutP = (cout + 3) & ~3
  const voxel = (<usize>cout) << 2
  const unit = (<usize>coutP) << 2
  const pStride = frequencyStride(tb, coutP)
  const zero = f32x4.splat(0)
  for (let i = 0; i < count; i++) {
    const t = t0 + i
    const tw = t % tilesW
    let r = t / tilesW
    const th = r % tilesH
    r /= tilesH
    const td = r % tilesD
    const n = r / tilesD
    const od0 = 2 * td
    const oh0 = 2 * th
    const ow0 = 2 * tw
    // depth: 16 lines of M → planes 0, 1
    const src = m + ((<usize>i * <usize>coutP) << 2)
    for (let q = 0; q < 16; q++) outputLines(src + <usize>q * pStride, 16 * pStride, tmp + <usize>q * unit, 16 * unit, unit)
    // height, in place: rows 0..3 → 0, 1
    for (let e = 0; e < 8; e++) {
      const line = tmp + <usize>(((e >> 2) << 4) + (e & 3)) * unit
      outputLines(line, 4 * unit, line, 4 * unit, unit)
    }
    // width, bias and activation, row by row of the block
    const second = ow0 + 1 < outW
    for (let a = 0; a < 2; a++) {
      const od = od0 + a
      if (od >= outD) continue
      for (let e = 0; e < 2; e++) {
        const oh = oh0 + e
        if (oh >= outH) continue
        const line = tmp + <usize>((a * 4 + e) * 4) * unit
        const row = y + (<usize>((n * outD + od) * outH + oh) * <usize>outW + <usize>ow0) * voxel
        for (let c = 0; c < coutP; c += 4) {
          const lanes = cout - c
          const at = line + ((<usize>c) << 2)
          const m0 = v128.load(at)
          const m1 = v128.load(at + unit)
          const m2 = v128.load(at + 2 * unit)
          const m3 = v128.load(at + 3 * unit)
          const b = bias != 0 ? loadLanes(bias + ((<usize>c) << 2), lanes) : zero
          let v0 = f32x4.add(f32x4.add(f32x4.add(m0, m1), m2), b)
          let v1 = f32x4.add(f32x4.sub(f32x4.sub(m1, m2), m3), b)
          if (relu) {
            v0 = f32x4.max(v0, zero)
            v1 = f32x4.max(v1, zero)
          }
          storeLanes(row + ((<usize>c) << 2), v0, lanes)
          if (second) storeLanes(row + voxel + ((<usize>c) << 2), v1, lanes)
        }
      }
    }
  }
}

/** The forward convolution: chunks of tiles taken from the job counter; output tiles are disjoint, so threads never collide. */
export function winogradForward(job: usize, scratch: usize): void {
  const cin = word(job, J_CIN)
  const cout = word(job, J_COUT)
  const cinP = (cin + 3) & ~3
  const coutP = (cout + 3) & ~3
  const tb = word(job, J_ROWS_PER_CHUNK)
  const chunks = word(job, J_CHUNKS)
  const tiles = word(job, J_BATCH) * word(job, J_TILES_D) * word(job, J_TILES_H) * word(job, J_TILES_W)
  const u = <usize>word(job, J_W)
  const uStride = (<usize>(((cout + 7) >> 3) * cin)) << 5
  const edge = scratch
  const tmp = scratch + 256
  const v = scratch + <usize>word(job, J_V_OFFSET)
  const vStride = frequencyStride(tb, cinP)
  const m = v + 64 * vStride
  const mStride = frequencyStride(tb, coutP)
  while (true) {
    const k = atomic.add<i32>(job + (J_COUNTER << 2), 1)
    if (k >= chunks) break
    const t0 = k * tb
    const count = min(tb, tiles - t0)
    inputTransform(job, t0, count, v, tb, tmp)
    for (let p = 0; p < 64; p++) {
      // M[p] = V[p] · U[p]: tiles × Cin times Cin × Cout
      gemm(
        count,
        cout,
        cin,
        v + <usize>p * vStride,
        (<usize>cinP) << 2,
        4,
        u + <usize>p * uStride,
        (<usize>cin) << 5,
        32,
        m + <usize>p * mStride,
        (<usize>coutP) << 2,
        false,
        false,
        edge,
      )
    }
    outputTransform(job, t0, count, m, tb, tmp)
  }
}

/**
 * The filter gradient in the transformed domain, ∂L/∂U[p] = Σ_tiles V[p]ᵀ · Y[p], summed into
 * SLOTS accumulators [64][Cin][Cout] exactly like the im2col filter gradient (slot s adds chunks s,
 * s + SLOTS, … in order), so every bit is the same whatever the thread count; winogradFilterGradReduce
 * then sums the slots in order and applies Gᵀ.
 */
export function winogradFilterGrad(job: usize, scratch: usize): void {
  const cin = word(job, J_CIN)
  const cout = word(job, J_COUT)
  const cinP = (cin + 3) & ~3
  const coutP = (cout + 7) & ~7
  const tb = word(job, J_ROWS_PER_CHUNK)
  const chunks = word(job, J_CHUNKS)
  const slots = word(job, J_SLOTS)
  const accLen = word(job, J_ACC_LEN)
  const tiles = word(job, J_BATCH) * word(job, J_TILES_D) * word(job, J_TILES_H) * word(job, J_TILES_W)
  const edge = scratch
  const tmp = scratch + 256
  const v = scratch + <usize>word(job, J_V_OFFSET)
  const vStride = frequencyStride(tb, cinP)
  const yq = v + 64 * vStride
  const yStride = frequencyStride(tb, coutP)
  const accP = (<usize>(cin * cout)) << 2
  while (true) {
    const s = atomic.add<i32>(job + (J_COUNTER << 2), 1)
    if (s >= slots) break
    const acc = <usize>word(job, J_ACC) + <usize>s * <usize>word(job, J_ACC_STRIDE)
    memory.fill(acc, 0, (<usize>accLen) << 2)
    for (let k = s; k < chunks; k += slots) {
      const t0 = k * tb
      const count = min(tb, tiles - t0)
      inputTransform(job, t0, count, v, tb, tmp)
      gradTransform(job, t0, count, yq, tb, coutP, tmp)
      for (let p = 0; p < 64; p++) {
        // ∂L/∂U[p] += V[p]ᵀ · Y[p]: Cin × tiles times tiles × Cout
        gemm(
          cin,
          cout,
          count,
          v + <usize>p * vStride,
          4,
          (<usize>cinP) << 2,
          yq + <usize>p * yStride,
          32,
          (<usize>coutP) << 2,
          acc + <usize>p * accP,
          (<usize>cout) << 2,
          true,
          false,
          edge,
        )
      }
    }
  }
}

/** Gᵀ along one line of the transformed domain: 4 floats at src + k·srcStep → 3 at dst + k·dstStep. */
function filterGradLine(src: usize, srcStep: usize, dst: usize, dstStep: usize): void {
  const s0 = load<f32>(src)
  const s1 = load<f32>(src + srcStep)
  const s2 = load<f32>(src + 2 * srcStep)
  const s3 = load<f32>(src + 3 * srcStep)
  const half: f32 = 0.5
  store<f32>(dst, s0 + half * (s1 + s2))
  store<f32>(dst + dstStep, half * (s1 - s2))
  store<f32>(dst + 2 * dstStep, half * (s1 + s2) + s3)
}

/**
 * dW[kd, kh, kw, ci, co] (tfjs layout) = (Gᵀ ⊗ Gᵀ ⊗ Gᵀ) · Σ_slots ∂L/∂U[·][ci][co], slots summed
 * in order. `tmp`: 64 + 48 + 36 floats.
 */
export function winogradFilterGradReduce(job: usize, dst: usize, tmp: usize): void {
  const cin = word(job, J_CIN)
  const cout = word(job, J_COUT)
  const slots = word(job, J_SLOTS)
  const acc = <usize>word(job, J_ACC)
  const stride = <usize>word(job, J_ACC_STRIDE)
  const pairs = cin * cout
  const sums = tmp // [64]: (a·4 + b)·4 + c
  const byDepth = tmp + 256 // [3][4][4]
  const byHeight = tmp + 448 // [3][3][4]
  for (let j = 0; j < pairs; j++) {
    for (let p = 0; p < 64; p++) {
      let s: f32 = 0
      for (let t = 0; t < slots; t++) s += load<f32>(acc + <usize>t * stride + ((<usize>(p * pairs + j)) << 2))
      store<f32>(sums + ((<usize>p) << 2), s)
    }
    for (let q = 0; q < 16; q++) filterGradLine(sums + ((<usize>q) << 2), 64, byDepth + ((<usize>q) << 2), 64)
    for (let kd = 0; kd < 3; kd++) {
      for (let c = 0; c < 4; c++) filterGradLine(byDepth + ((<usize>(kd * 16 + c)) << 2), 16, byHeight + ((<usize>(kd * 12 + c)) << 2), 16)
    }
    for (let kd = 0; kd < 3; kd++) {
      for (let kh = 0; kh < 3; kh++) {
        // the 3 width taps of (kd, kh) go 1 filter row apart: Cin·Cout floats
        filterGradLine(
          byHeight + ((<usize>(kd * 12 + kh * 4)) << 2),
          4,
          dst + ((<usize>((kd * 3 + kh) * 3 * pairs + j)) << 2),
          (<usize>pairs) << 2,
        )
      }
    }
  }
}

/** G along one line of the filter: 3 floats at src + k·srcStep → 4 at dst + k·dstStep. */
function filterLine(src: usize, srcStep: usize, dst: usize, dstStep: usize): void {
  const g0 = load<f32>(src)
  const g1 = load<f32>(src + srcStep)
  const g2 = load<f32>(src + 2 * srcStep)
  const half: f32 = 0.5
  store<f32>(dst, g0)
  store<f32>(dst + dstStep, half * (g0 + g1 + g2))
  store<f32>(dst + 2 * dstStep, half * (g0 - g1 + g2))
  store<f32>(dst + 3 * dstStep, g2)
}

/**
 * U = (G ⊗ G ⊗ G) · w for the tfjs filter w [3, 3, 3, Cin, Cout], packed for the GEMM as
 * [64][Cout/8 panels][Cin][8], zero beyond Cout. `tmp`: 36 + 48 floats.
 */
export function winogradPackFilter(w: usize, cin: i32, cout: i32, dst: usize, tmp: usize): void {
  const panels = (cout + 7) >> 3
  const pStride = (<usize>(panels * cin)) << 5
  memory.fill(dst, 0, 64 * pStride)
  const pairs = cin * cout
  const byWidth = tmp // [3][3][4]: (kd·3 + kh)·4 + c
  const byHeight = tmp + 144 // [3][4][4]: (kd·4 + b)·4 + c
  for (let ci = 0; ci < cin; ci++) {
    for (let co = 0; co < cout; co++) {
      const j = ci * cout + co
      for (let r = 0; r < 9; r++)
        filterLine(w + ((<usize>(r * 3 * pairs + j)) << 2), (<usize>pairs) << 2, byWidth + ((<usize>(r * 4)) << 2), 4)
      for (let kd = 0; kd < 3; kd++) {
        for (let c = 0; c < 4; c++) filterLine(byWidth + ((<usize>(kd * 12 + c)) << 2), 16, byHeight + ((<usize>(kd * 16 + c)) << 2), 16)
      }
      const at = dst + ((<usize>(((co >> 3) * cin + ci) * 8 + (co & 7))) << 2)
      for (let q = 0; q < 16; q++) filterLine(byHeight + ((<usize>q) << 2), 64, at + <usize>q * pStride, 16 * pStride)
    }
  }
}
