/**
 * Winograd F(4×4×4, 3×3×3) convolutions for stride-1, undilated 3×3×3 filters (the bulk of a
 * 3-D U-Net's arithmetic): each 4×4×4 block of outputs ("tile") takes a 6×6×6 input window, and
 * the 27 multiply-adds per output and channel pair become 216/64 = 3.4, in 216 small GEMMs over
 * channels, one per frequency p. Design, the choice of F(4, 3) over F(2, 3) and measurements:
 * docs/kernels.md.
 *
 * 1-D F(4, 3) (Lavin & Gray 2016, interpolation points 0, ±1, ±2, ∞), applied along depth,
 * height and width in turn, y = Aᵀ[(Gg) ⊙ (Bᵀd)]:
 *   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
 *   G  = [1/4 0 0; −1/6 −1/6 −1/6; −1/6 1/6 −1/6; 1/24 1/12 1/6; 1/24 −1/12 1/6; 0 0 1]
 *   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
 * For the filter gradient, with V = Bᵀd and U = Gg, ∂L/∂U = V ⊙ (A·dy) summed over tiles, and
 * ∂L/∂g = Gᵀ·∂L/∂U.
 *
 * Layouts (channels-last, like the tensors): a chunk of `tb` consecutive tiles keeps its
 * transformed input as V[216][tb][Cin rounded to 4] and its GEMM results as M[216][tb][Cout
 * rounded to 4] (or, for the filter gradient, its transformed dy as Y[216][tb][Cout rounded to
 * 8]); the transformed filter U is [216][Cout/8 panels][Cin][8], the GEMM's packed operand.
 * Frequency index p = (a·6 + b)·6 + c over (depth, height, width). Transforms run on f32x4
 * vectors of 4 channels, channels innermost, which channels-last makes contiguous.
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
  nextChunk,
  nextItem,
  nextSlot,
  clearedSlot,
  word,
} from './job'

/** frequencies per tile: 6³ */
const P = 216

// Where locateTile found the tile: its sample and the first output voxel of its 4³ block along
// depth, height and width. Globals belong to one module instance, so every thread has its own.
let tileN = 0
let tileD = 0
let tileH = 0
let tileW = 0

/** Sets tileN, tileD, tileH, tileW for tile t of the job's grid (width fastest, then height, depth, sample). */
function locateTile(job: usize, t: i32): void {
  const tilesW = word(job, J_TILES_W)
  const tilesH = word(job, J_TILES_H)
  const tilesD = word(job, J_TILES_D)
  tileW = 4 * (t % tilesW)
  let r = t / tilesW
  tileH = 4 * (r % tilesH)
  r /= tilesH
  tileD = 4 * (r % tilesD)
  tileN = r / tilesD
}

/**
 * Bytes from frequency p to p + 1 in a block of `tb` rows of `width` floats: one cache line more
 * than the rows need, because with a power-of-two stride the transforms' writes to all
 * frequencies of a tile land in the same L1 set.
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

/** 4·a */
function times4(a: v128): v128 {
  return f32x4.mul(a, f32x4.splat(4))
}

/** Bᵀd of 6 vectors d0…d5, stored at dst + k·dstStep. */
function inputOut(d0: v128, d1: v128, d2: v128, d3: v128, d4: v128, d5: v128, dst: usize, dstStep: usize): void {
  const five = f32x4.splat(5)
  const two = f32x4.splat(2)
  const d4m2 = f32x4.sub(d4, d2)
  const d3m1 = f32x4.mul(two, f32x4.sub(d3, d1))
  v128.store(dst, f32x4.add(f32x4.sub(times4(d0), f32x4.mul(five, d2)), d4))
  v128.store(dst + dstStep, f32x4.sub(f32x4.add(d3, d4), times4(f32x4.add(d1, d2))))
  v128.store(dst + 2 * dstStep, f32x4.add(f32x4.sub(d4, d3), times4(f32x4.sub(d1, d2))))
  v128.store(dst + 3 * dstStep, f32x4.add(d4m2, d3m1))
  v128.store(dst + 4 * dstStep, f32x4.sub(d4m2, d3m1))
  v128.store(dst + 5 * dstStep, f32x4.add(f32x4.sub(times4(d1), f32x4.mul(five, d3)), d5))
}

/** Bᵀ along `bytes` (a multiple of 16) of channels: lines of 6 vectors at src + k·srcStep → dst + k·dstStep. */
function inputLines(src: usize, srcStep: usize, dst: usize, dstStep: usize, bytes: usize): void {
  for (let o: usize = 0; o < bytes; o += 16) {
    const at = src + o
    inputOut(
      v128.load(at),
      v128.load(at + srcStep),
      v128.load(at + 2 * srcStep),
      v128.load(at + 3 * srcStep),
      v128.load(at + 4 * srcStep),
      v128.load(at + 5 * srcStep),
      dst + o,
      dstStep,
    )
  }
}

/** A·dy of 4 vectors y0…y3 → 6 vectors at dst + k·dstStep. */
function gradOut(y0: v128, y1: v128, y2: v128, y3: v128, dst: usize, dstStep: usize): void {
  const even = f32x4.add(y0, y2)
  const odd = f32x4.add(y1, y3)
  const even4 = f32x4.add(y0, times4(y2))
  const odd4 = f32x4.mul(f32x4.splat(2), f32x4.add(y1, times4(y3)))
  v128.store(dst, y0)
  v128.store(dst + dstStep, f32x4.add(even, odd))
  v128.store(dst + 2 * dstStep, f32x4.sub(even, odd))
  v128.store(dst + 3 * dstStep, f32x4.add(even4, odd4))
  v128.store(dst + 4 * dstStep, f32x4.sub(even4, odd4))
  v128.store(dst + 5 * dstStep, y3)
}

function gradLines(src: usize, srcStep: usize, dst: usize, dstStep: usize, bytes: usize): void {
  for (let o: usize = 0; o < bytes; o += 16) {
    const at = src + o
    gradOut(v128.load(at), v128.load(at + srcStep), v128.load(at + 2 * srcStep), v128.load(at + 3 * srcStep), dst + o, dstStep)
  }
}

/** Aᵀm along `bytes` of channels: lines of 6 vectors at src + k·srcStep → 4 at dst + k·dstStep. */
function outputLines(src: usize, srcStep: usize, dst: usize, dstStep: usize, bytes: usize): void {
  for (let o: usize = 0; o < bytes; o += 16) {
    const at = src + o
    const m0 = v128.load(at)
    const m1 = v128.load(at + srcStep)
    const m2 = v128.load(at + 2 * srcStep)
    const m3 = v128.load(at + 3 * srcStep)
    const m4 = v128.load(at + 4 * srcStep)
    const m5 = v128.load(at + 5 * srcStep)
    const s1 = f32x4.add(m1, m2)
    const s2 = f32x4.sub(m1, m2)
    const s3 = f32x4.add(m3, m4)
    const s4 = f32x4.sub(m3, m4)
    const out = dst + o
    v128.store(out, f32x4.add(f32x4.add(m0, s1), s3))
    v128.store(out + dstStep, f32x4.add(s2, f32x4.mul(f32x4.splat(2), s4)))
    v128.store(out + 2 * dstStep, f32x4.add(s1, times4(s3)))
    v128.store(out + 3 * dstStep, f32x4.add(f32x4.add(s2, f32x4.mul(f32x4.splat(8), s4)), m5))
  }
}

/**
 * Per-thread scratch (bytes from its start): 256 for the GEMM's edge tiles, the staged row
 * (6 voxels), one 6³ window of all channels (tmp), then the V block and the M or Y block (at
 * J_V_OFFSET, which src/kernels/cpu/winograd.ts computes the same way).
 */
function stagedBytes(cin: i32, cout: i32): usize {
  return (<usize>(6 * ((max(cin, cout) + 7) & ~7))) << 2
}

/**
 * Copies `taps` voxels of a row, columns w0…w0 + taps − 1 (4 channels from `at`, `lanes` of them
 * real), to dst + k·dstStep, with zeros outside 0 ≤ w < width: the windows that the volume's side
 * cuts, and the last channels, then go through the same transform as the rest (one copy of the
 * transform code, which the compiler inlines into its loop).
 */
function stageRow(at: usize, w0: i32, width: i32, voxel: usize, lanes: i32, taps: i32, dst: usize, dstStep: usize): void {
  for (let k = 0; k < taps; k++) {
    const w = w0 + k
    v128.store(dst + <usize>k * dstStep, w >= 0 && w < width ? loadLanes(at + <usize>w * voxel, lanes) : f32x4.splat(0))
  }
}

/**
 * V[p][i][·] = (Bᵀ ⊗ Bᵀ ⊗ Bᵀ) · (the 6³ input window of tile t0 + i), for i < count; zeros
 * outside the volume (the padding). `tmp` holds one window with all its channels: entry
 * e = (depth·6 + height)·6 + width at tmp + e·cinP·4. Every pass loops over channels innermost:
 * a handful of vector operations with fixed strides per iteration, and whole rows of voxels read
 * at once (with the channel loop outside, the window's rows, a power of two apart, would fight
 * over one L1 set for every channel vector).
 */
function inputTransform(job: usize, t0: i32, count: i32, v: usize, tb: i32, tmp: usize, staged: usize): void {
  const x = <usize>word(job, J_X)
  const inD = word(job, J_IN_D)
  const inH = word(job, J_IN_H)
  const inW = word(job, J_IN_W)
  const cin = word(job, J_CIN)
  const padF = word(job, J_PAD_F)
  const padT = word(job, J_PAD_T)
  const padL = word(job, J_PAD_L)
  const cinP = (cin + 3) & ~3
  const voxel = (<usize>cin) << 2
  const unit = (<usize>cinP) << 2
  // channels in whole vectors; the last cin & 3 go through loadLanes
  const full = cin & ~3
  const pStride = frequencyStride(tb, cinP)
  for (let i = 0; i < count; i++) {
    locateTile(job, t0 + i)
    const d0 = tileD - padF
    const h0 = tileH - padT
    const w0 = tileW - padL
    const inside = w0 >= 0 && w0 + 5 < inW
    // width: each (depth, height) line of the window, all channels
    for (let a = 0; a < 6; a++) {
      const id = d0 + a
      for (let b = 0; b < 6; b++) {
        const ih = h0 + b
        const line = tmp + <usize>((a * 6 + b) * 6) * unit
        if (id < 0 || id >= inD || ih < 0 || ih >= inH) {
          memory.fill(line, 0, 6 * unit)
          continue
        }
        const row = x + <usize>((tileN * inD + id) * inH + ih) * <usize>inW * voxel
        if (inside) {
          inputLines(row + <usize>w0 * voxel, voxel, line, unit, (<usize>full) << 2)
          if (full < cin) {
            stageRow(row + ((<usize>full) << 2), w0, inW, voxel, cin - full, 6, staged, 16)
            inputLines(staged, 16, line + ((<usize>full) << 2), unit, 16)
          }
        } else {
          // a window cut by the volume's side: its row with zeros outside, staged, then the same transform
          for (let c = 0; c < cinP; c += 4) stageRow(row + ((<usize>c) << 2), w0, inW, voxel, cin - c, 6, staged + ((<usize>c) << 2), unit)
          inputLines(staged, unit, line, unit, unit)
        }
      }
    }
    // height, in place
    for (let e = 0; e < 36; e++) {
      const line = tmp + <usize>((e / 6) * 36 + (e % 6)) * unit
      inputLines(line, 6 * unit, line, 6 * unit, unit)
    }
    // depth, into V
    const dst = v + ((<usize>i * <usize>cinP) << 2)
    for (let q = 0; q < 36; q++) inputLines(tmp + <usize>q * unit, 36 * unit, dst + <usize>q * pStride, 36 * pStride, unit)
  }
}

/**
 * dy of tile t0 + i, transformed: Y[p][i][·] = (A ⊗ A ⊗ A) · (its 4³ block of dy), zeros
 * beyond the output volume and in the channel columns from Cout up to the row width `coutP`.
 * `tmp` as in inputTransform, with coutP channels.
 */
function gradTransform(job: usize, t0: i32, count: i32, yq: usize, tb: i32, coutP: i32, tmp: usize, staged: usize): void {
  const dy = <usize>word(job, J_DY)
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const cout = word(job, J_COUT)
  const voxel = (<usize>cout) << 2
  const unit = (<usize>coutP) << 2
  const full = cout & ~3
  const pStride = frequencyStride(tb, coutP)
  for (let i = 0; i < count; i++) {
    locateTile(job, t0 + i)
    const whole = tileW + 3 < outW
    // width: each (depth, height) row of the block, 4 → 6, all channels
    for (let a = 0; a < 4; a++) {
      for (let b = 0; b < 4; b++) {
        const line = tmp + <usize>((a * 6 + b) * 6) * unit
        const od = tileD + a
        const oh = tileH + b
        if (od >= outD || oh >= outH) {
          memory.fill(line, 0, 6 * unit)
          continue
        }
        const row = dy + <usize>((tileN * outD + od) * outH + oh) * <usize>outW * voxel
        if (whole) {
          gradLines(row + <usize>tileW * voxel, voxel, line, unit, (<usize>full) << 2)
          // the last cout & 3 channels and the zero columns up to coutP
          const tail = (<usize>(coutP - full)) << 2
          for (let c = full; c < coutP; c += 4)
            stageRow(row + ((<usize>c) << 2), tileW, outW, voxel, cout - c, 4, staged + ((<usize>(c - full)) << 2), tail)
          if (tail > 0) gradLines(staged, tail, line + ((<usize>full) << 2), unit, tail)
        } else {
          // a block cut by the volume's end
          for (let c = 0; c < coutP; c += 4)
            stageRow(row + ((<usize>c) << 2), tileW, outW, voxel, cout - c, 4, staged + ((<usize>c) << 2), unit)
          gradLines(staged, unit, line, unit, unit)
        }
      }
    }
    // height: rows 0…3 → 0…5, in place (each line reads its 4 before writing its 6)
    for (let e = 0; e < 24; e++) {
      const line = tmp + <usize>((e / 6) * 36 + (e % 6)) * unit
      gradLines(line, 6 * unit, line, 6 * unit, unit)
    }
    // depth: planes 0…3 → frequencies 0…5, into Y
    const dst = yq + ((<usize>i * <usize>coutP) << 2)
    for (let q = 0; q < 36; q++) gradLines(tmp + <usize>q * unit, 36 * unit, dst + <usize>q * pStride, 36 * pStride, unit)
  }
}

/**
 * y (the 4³ block of tile t0 + i) = (Aᵀ ⊗ Aᵀ ⊗ Aᵀ) · M[·][i][·], plus bias, then ReLU when asked;
 * only voxels inside the output are written, a whole row of channels at a time. `tmp` as in
 * inputTransform, with Cout rounded to 4 channels.
 */
function outputTransform(job: usize, t0: i32, count: i32, m: usize, tb: i32, tmp: usize): void {
  const y = <usize>word(job, J_DY)
  const outD = word(job, J_OUT_D)
  const outH = word(job, J_OUT_H)
  const outW = word(job, J_OUT_W)
  const cout = word(job, J_COUT)
  const bias = <usize>word(job, J_BIAS)
  const relu = word(job, J_RELU) != 0
  const coutP = (cout + 3) & ~3
  const voxel = (<usize>cout) << 2
  const unit = (<usize>coutP) << 2
  const pStride = frequencyStride(tb, coutP)
  const zero = f32x4.splat(0)
  for (let i = 0; i < count; i++) {
    locateTile(job, t0 + i)
    // depth: 36 lines of M → planes 0…3
    const src = m + ((<usize>i * <usize>coutP) << 2)
    for (let q = 0; q < 36; q++) outputLines(src + <usize>q * pStride, 36 * pStride, tmp + <usize>q * unit, 36 * unit, unit)
    // height, in place: rows 0…5 → 0…3
    for (let e = 0; e < 24; e++) {
      const line = tmp + <usize>((e / 6) * 36 + (e % 6)) * unit
      outputLines(line, 6 * unit, line, 6 * unit, unit)
    }
    // width: rows 0…5 → 0…3 in place, then bias, activation and the store, row by row of the block
    const columns = min(4, outW - tileW)
    for (let a = 0; a < 4; a++) {
      const od = tileD + a
      if (od >= outD) break
      for (let e = 0; e < 4; e++) {
        const oh = tileH + e
        if (oh >= outH) break
        const line = tmp + <usize>((a * 6 + e) * 6) * unit
        outputLines(line, unit, line, unit, unit)
        const row = y + (<usize>((tileN * outD + od) * outH + oh) * <usize>outW + <usize>tileW) * voxel
        for (let c = 0; c < coutP; c += 4) {
          const lanes = cout - c
          const b = bias != 0 ? loadLanes(bias + ((<usize>c) << 2), lanes) : zero
          for (let w = 0; w < columns; w++) {
            let value = f32x4.add(v128.load(line + <usize>w * unit + ((<usize>c) << 2)), b)
            if (relu) value = f32x4.max(value, zero)
            storeLanes(row + <usize>w * voxel + ((<usize>c) << 2), value, lanes)
          }
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
  const tiles = word(job, J_BATCH) * word(job, J_TILES_D) * word(job, J_TILES_H) * word(job, J_TILES_W)
  const u = <usize>word(job, J_W)
  const uStride = (<usize>(((cout + 7) >> 3) * cin)) << 5
  const edge = scratch
  const staged = scratch + 256
  const tmp = staged + stagedBytes(cin, cout)
  const v = scratch + <usize>word(job, J_V_OFFSET)
  const vStride = frequencyStride(tb, cinP)
  const m = v + <usize>P * vStride
  const mStride = frequencyStride(tb, coutP)
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const t0 = k * tb
    const count = min(tb, tiles - t0)
    inputTransform(job, t0, count, v, tb, tmp, staged)
    for (let p = 0; p < P; p++) {
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
 * SLOTS accumulators [216][Cin][Cout] exactly like the im2col filter gradient (slot s adds chunks
 * s, s + SLOTS, … in order), so every bit is the same whatever the thread count;
 * winogradFilterGradReduce then sums the slots in order and applies Gᵀ.
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
  const staged = scratch + 256
  const tmp = staged + stagedBytes(cin, cout)
  const v = scratch + <usize>word(job, J_V_OFFSET)
  const vStride = frequencyStride(tb, cinP)
  const yq = v + <usize>P * vStride
  const yStride = frequencyStride(tb, coutP)
  const accP = (<usize>(cin * cout)) << 2
  for (let s = nextSlot(job); s >= 0; s = nextSlot(job)) {
    const acc = clearedSlot(job, s, (<usize>accLen) << 2)
    for (let k = s; k < chunks; k += slots) {
      const t0 = k * tb
      const count = min(tb, tiles - t0)
      inputTransform(job, t0, count, v, tb, tmp, staged)
      gradTransform(job, t0, count, yq, tb, coutP, tmp, staged)
      for (let p = 0; p < P; p++) {
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

/** Gᵀ along one line of the transformed domain, 4 (ci, co) pairs per vector: 6 vectors at src + k·srcStep → 3 at dst + k·dstStep. */
function filterGradLine(src: usize, srcStep: usize, dst: usize, dstStep: usize, lanes: i32): void {
  const s0 = v128.load(src)
  const s1 = v128.load(src + srcStep)
  const s2 = v128.load(src + 2 * srcStep)
  const s3 = v128.load(src + 3 * srcStep)
  const s4 = v128.load(src + 4 * srcStep)
  const s5 = v128.load(src + 5 * srcStep)
  const sixth = f32x4.splat(<f32>(1.0 / 6))
  const plus12 = f32x4.add(s1, s2)
  const plus34 = f32x4.add(s3, s4)
  const g0 = f32x4.add(
    f32x4.sub(f32x4.mul(s0, f32x4.splat(0.25)), f32x4.mul(plus12, sixth)),
    f32x4.mul(plus34, f32x4.splat(<f32>(1.0 / 24))),
  )
  const g1 = f32x4.add(f32x4.mul(f32x4.sub(s2, s1), sixth), f32x4.mul(f32x4.sub(s3, s4), f32x4.splat(<f32>(1.0 / 12))))
  const g2 = f32x4.add(f32x4.mul(f32x4.sub(plus34, plus12), sixth), s5)
  storeLanes(dst, g0, lanes)
  storeLanes(dst + dstStep, g1, lanes)
  storeLanes(dst + 2 * dstStep, g2, lanes)
}

/**
 * dW[kd, kh, kw, ci, co] (tfjs layout, at J_W) = (Gᵀ ⊗ Gᵀ ⊗ Gᵀ) · ∂L/∂U[·][ci][co], run as a job
 * with winogradFilterGrad's words once sumSlots has added its slots into the first: work items of
 * J_ROWS_PER_CHUNK groups of 4 (ci, co) pairs. The thread's scratch holds (216 + 108 + 54) vectors.
 */
export function winogradFilterGradReduce(job: usize, scratch: usize): void {
  const dst = <usize>word(job, J_W)
  const acc = <usize>word(job, J_ACC)
  const groupsPerItem = word(job, J_ROWS_PER_CHUNK)
  const pairs = word(job, J_CIN) * word(job, J_COUT)
  const pStride = (<usize>pairs) << 2
  const sums = scratch // [216] vectors: (a·6 + b)·6 + c
  const byDepth = scratch + 16 * P // [3][6][6]
  const byHeight = byDepth + 16 * 108 // [3][3][6]
  for (let item = nextChunk(job); item >= 0; item = nextChunk(job)) {
    const end = min(pairs, (item + 1) * groupsPerItem * 4)
    for (let j = item * groupsPerItem * 4; j < end; j += 4) {
      const lanes = pairs - j
      for (let p = 0; p < P; p++) {
        const at = <usize>p * pStride + ((<usize>j) << 2)
        v128.store(sums + ((<usize>p) << 4), loadLanes(acc + at, lanes))
      }
      for (let q = 0; q < 36; q++) filterGradLine(sums + ((<usize>q) << 4), 36 * 16, byDepth + ((<usize>q) << 4), 36 * 16, 4)
      for (let kd = 0; kd < 3; kd++) {
        for (let c = 0; c < 6; c++)
          filterGradLine(byDepth + ((<usize>(kd * 36 + c)) << 4), 6 * 16, byHeight + ((<usize>(kd * 18 + c)) << 4), 6 * 16, 4)
      }
      for (let kd = 0; kd < 3; kd++) {
        for (let kh = 0; kh < 3; kh++) {
          // the 3 width taps of (kd, kh) go 1 filter row apart: Cin·Cout floats
          filterGradLine(
            byHeight + ((<usize>(kd * 18 + kh * 6)) << 4),
            16,
            dst + ((<usize>((kd * 3 + kh) * 3 * pairs + j)) << 2),
            pStride,
            lanes,
          )
        }
      }
    }
  }
}

/** G along one line of the filter, 4 output channels per vector: 3 vectors at src + k·srcStep → 6 at dst + k·dstStep. */
function filterLine(src: usize, srcStep: usize, dst: usize, dstStep: usize): void {
  const g0 = v128.load(src)
  const g1 = v128.load(src + srcStep)
  const g2 = v128.load(src + 2 * srcStep)
  const sixth = f32x4.splat(<f32>(1.0 / 6))
  const outer = f32x4.add(g0, g2)
  const quarter = f32x4.mul(g0, f32x4.splat(0.25))
  const sum24 = f32x4.add(f32x4.mul(g0, f32x4.splat(<f32>(1.0 / 24))), f32x4.mul(g2, sixth))
  const middle12 = f32x4.mul(g1, f32x4.splat(<f32>(1.0 / 12)))
  v128.store(dst, quarter)
  v128.store(dst + dstStep, f32x4.neg(f32x4.mul(f32x4.add(outer, g1), sixth)))
  v128.store(dst + 2 * dstStep, f32x4.neg(f32x4.mul(f32x4.sub(outer, g1), sixth)))
  v128.store(dst + 3 * dstStep, f32x4.add(sum24, middle12))
  v128.store(dst + 4 * dstStep, f32x4.sub(sum24, middle12))
  v128.store(dst + 5 * dstStep, g2)
}

/**
 * U = (G ⊗ G ⊗ G) · w for the tfjs filter w [3, 3, 3, Cin, Cout] (at J_X), packed at J_W for the
 * GEMM as [216][Cout/8 panels][Cin][8], zero beyond Cout; 4 output channels per vector (a scalar
 * version made 8³ layers with 64 channels slower than im2col). A job whose work items are pairs of
 * input channels: per panel, the 216 frequencies of 2 input × 8 output channels are one 64-byte
 * line each, staged and then written whole. Written 16 bytes at a time straight into U, every line
 * was touched four times, by two threads: the pack took as long on two threads as on one. The
 * thread's scratch holds (27 + 54 + 108 + 216·4) vectors.
 */
export function winogradPackFilter(job: usize, scratch: usize): void {
  const w = <usize>word(job, J_X)
  const dst = <usize>word(job, J_W)
  const cin = word(job, J_CIN)
  const cout = word(job, J_COUT)
  const panels = (cout + 7) >> 3
  const pStride = (<usize>(panels * cin)) << 5
  const pairs = cin * cout
  const taps = scratch // [27] vectors: the filter's taps (kd·3 + kh)·3 + kw
  const byWidth = scratch + 16 * 27 // [3][3][6]: (kd·3 + kh)·6 + c
  const byHeight = byWidth + 16 * 54 // [3][6][6]: (kd·6 + b)·6 + c
  const staged = byHeight + 16 * 108 // [216] lines of [2 input channels][8 output channels]
  const items = (cin + 1) >> 1
  while (true) {
    const item = nextItem(job)
    if (item >= items) break
    const ci0 = item << 1
    const inputs = min(2, cin - ci0)
    for (let panel = 0; panel < panels; panel++) {
      for (let c = 0; c < 2; c++) {
        for (let half = 0; half < 2; half++) {
          const co = (panel << 3) + (half << 2)
          const at = staged + ((<usize>(c * 8 + half * 4)) << 2)
          if (c >= inputs || co >= cout) {
            for (let p = 0; p < P; p++) v128.store(at + ((<usize>p) << 6), f32x4.splat(0))
            continue
          }
          const lanes = cout - co
          const j = (ci0 + c) * cout + co
          for (let t = 0; t < 27; t++) v128.store(taps + ((<usize>t) << 4), loadLanes(w + ((<usize>(t * pairs + j)) << 2), lanes))
          for (let r = 0; r < 9; r++) filterLine(taps + ((<usize>(r * 3)) << 4), 16, byWidth + ((<usize>(r * 6)) << 4), 16)
          for (let kd = 0; kd < 3; kd++) {
            for (let b = 0; b < 6; b++)
              filterLine(byWidth + ((<usize>(kd * 18 + b)) << 4), 6 * 16, byHeight + ((<usize>(kd * 36 + b)) << 4), 6 * 16)
          }
          // frequency p = a·36 + q
          for (let q = 0; q < 36; q++) filterLine(byHeight + ((<usize>q) << 4), 36 * 16, at + ((<usize>q) << 6), 36 * 64)
        }
      }
      const line = dst + ((<usize>((panel * cin + ci0) * 8)) << 2)
      for (let p = 0; p < P; p++) {
        const from = staged + ((<usize>p) << 6)
        const to = line + <usize>p * pStride
        v128.store(to, v128.load(from))
        v128.store(to, v128.load(from, 16), 16)
        if (inputs == 2) {
          v128.store(to, v128.load(from, 32), 32)
          v128.store(to, v128.load(from, 48), 48)
        }
      }
    }
  }
}
