/**
 * Soft Dice + cross-entropy on logits `[B, N, C]` (sample, voxel, channel), forward and backward,
 * for src/kernels/cpu/dice-ce.ts. The formulas are those of src/model/losses.ts; the JS kernel
 * turns the sums made here into the loss.
 *
 * The forward's exp and log run four at a time (Cephes' single-precision polynomials, within
 * 2 ulp): as JS, Math.exp alone took ~25 ms of a 64³ step's 65 ms loss. Softmax logits are
 * shifted by the row maximum and sigmoid's exp takes −|z|, so exp only ever sees x ≤ 0, and log
 * only sees softmax sums in [1, C] or 1 + e in [1, 2].
 *
 * The sums are deterministic with any thread count: voxels go in chunks of J_ROWS_PER_CHUNK
 * inside one sample, each chunk's sums are taken in float32 and added (in float64) into slot
 * chunk mod J_SLOTS in order; the caller adds the slots in order. A slot holds, in float64,
 * [cross-entropy, Σ p·y per (sample, channel), Dice denominator per (sample, channel)].
 */
import {
  clearedSlot,
  J_ACC,
  J_BATCH,
  J_CHUNKS,
  J_COUT,
  J_DY,
  J_ROWS,
  J_ROWS_PER_CHUNK,
  J_SIGMOID,
  J_SLOTS,
  J_SQUARED,
  J_W,
  J_X,
  nextChunk,
  nextSlot,
  word,
} from './job'
import {addPromoted, addPromotedScalar} from './floats'

// below this, e^x is under float32's smallest normal; exp returns 0 there
const EXP_LOWEST: f32 = -87.33654
const LN2_HIGH: f32 = 0.693359375
const LN2_LOW: f32 = -2.1219444e-4
const SQRT_HALF: f32 = 0.707106781186547524

/** e^x for x ≤ 0 (NaN stays NaN): x = n·ln 2 + r, |r| ≤ ln 2 / 2, e^r by a degree-7 polynomial, 2^n in the exponent bits. */
function expNonPositive(x: v128): v128 {
  const clamped = f32x4.max(x, f32x4.splat(EXP_LOWEST))
  const n = f32x4.nearest(f32x4.mul(clamped, f32x4.splat(1.44269504088896341)))
  const r = f32x4.sub(f32x4.sub(clamped, f32x4.mul(n, f32x4.splat(LN2_HIGH))), f32x4.mul(n, f32x4.splat(LN2_LOW)))
  let q = f32x4.splat(1.98756915e-4)
  q = f32x4.add(f32x4.mul(q, r), f32x4.splat(1.3981999507e-3))
  q = f32x4.add(f32x4.mul(q, r), f32x4.splat(8.3334519073e-3))
  q = f32x4.add(f32x4.mul(q, r), f32x4.splat(4.1665795894e-2))
  q = f32x4.add(f32x4.mul(q, r), f32x4.splat(1.6666665459e-1))
  q = f32x4.add(f32x4.mul(q, r), f32x4.splat(5.0000001201e-1))
  q = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(q, r), r), r), f32x4.splat(1))
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23)
  return v128.andnot(f32x4.mul(q, scale), f32x4.lt(x, f32x4.splat(EXP_LOWEST)))
}

/** ln x for finite x ≥ 1 (NaN stays NaN): x = m·2^e with m in [√½, √2), ln m by a degree-9 polynomial. */
function logAtLeastOne(x: v128): v128 {
  const exponent = f32x4.convert_i32x4_s(i32x4.sub(i32x4.shr_u(x, 23), i32x4.splat(126)))
  // mantissa in [½, 1)
  const m = v128.or(v128.and(x, i32x4.splat(0x807fffff)), i32x4.splat(0x3f000000))
  const small = f32x4.lt(m, f32x4.splat(SQRT_HALF))
  const e = f32x4.sub(exponent, v128.and(small, f32x4.splat(1)))
  const t = f32x4.sub(f32x4.add(m, v128.and(small, m)), f32x4.splat(1))
  const t2 = f32x4.mul(t, t)
  let q = f32x4.splat(7.0376836292e-2)
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(-1.151461031e-1))
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(1.167699874e-1))
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(-1.2420140846e-1))
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(1.4249322787e-1))
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(-1.6668057665e-1))
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(2.0000714765e-1))
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(-2.4999993993e-1))
  q = f32x4.add(f32x4.mul(q, t), f32x4.splat(3.3333331174e-1))
  q = f32x4.mul(f32x4.mul(q, t), t2)
  q = f32x4.add(q, f32x4.mul(e, f32x4.splat(LN2_LOW)))
  q = f32x4.sub(q, f32x4.mul(t2, f32x4.splat(0.5)))
  const result = f32x4.add(f32x4.add(t, q), f32x4.mul(e, f32x4.splat(LN2_HIGH)))
  return v128.bitselect(x, result, f32x4.ne(x, x))
}

/** The scalar tails go through the same polynomials, so every element is rounded alike. */
function expScalar(x: f32): f32 {
  return f32x4.extract_lane(expNonPositive(f32x4.splat(x)), 0)
}

function logScalar(x: f32): f32 {
  return f32x4.extract_lane(logAtLeastOne(f32x4.splat(x)), 0)
}

/** σ(v) = 1/(1 + e) where v ≥ 0, else e/(1 + e), from e = e^−|v| and inverse = 1/(1 + e) */
function sigmoidOf(v: v128, e: v128, inverse: v128): v128 {
  return v128.bitselect(inverse, f32x4.mul(e, inverse), f32x4.ge(v, f32x4.splat(0)))
}

/** σ(v) of four floats through the loss's exp (sigmoidChunk's p) */
export function sigmoidVector(v: v128): v128 {
  const e = expNonPositive(f32x4.neg(f32x4.abs(v)))
  return sigmoidOf(v, e, f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), e)))
}

/** p = σ(z) and the chunk's Σ BCE(z, y) = Σ max(z, 0) − z·y + log(1 + e^−|z|), over elements [e0, e1). */
function sigmoidChunk(z: usize, y: usize, p: usize, e0: i32, e1: i32): f64 {
  const zero = f32x4.splat(0)
  const one = f32x4.splat(1)
  let sum = zero
  let i = e0
  for (; i + 4 <= e1; i += 4) {
    const at = (<usize>i) << 2
    const v = v128.load(z + at)
    const e = expNonPositive(f32x4.neg(f32x4.abs(v)))
    const u = f32x4.add(one, e)
    const inverse = f32x4.div(one, u)
    v128.store(p + at, sigmoidOf(v, e, inverse))
    // log1p(e) = ln(u)·e/(u − 1), exact where 1 + e rounds to 1 (then it is e)
    const d = f32x4.sub(u, one)
    const log1p = v128.bitselect(e, f32x4.div(f32x4.mul(logAtLeastOne(u), e), d), f32x4.eq(d, zero))
    sum = f32x4.add(sum, f32x4.add(f32x4.sub(f32x4.max(v, zero), f32x4.mul(v, v128.load(y + at))), log1p))
  }
  let total: f64 =
    <f64>f32x4.extract_lane(sum, 0) + <f64>f32x4.extract_lane(sum, 1) + <f64>f32x4.extract_lane(sum, 2) + <f64>f32x4.extract_lane(sum, 3)
  for (; i < e1; i++) {
    const at = (<usize>i) << 2
    const v = load<f32>(z + at)
    const e = expScalar(-abs(v))
    const u: f32 = 1 + e
    store<f32>(p + at, v >= 0 ? 1 / u : e / u)
    const d = u - 1
    const log1p = d == 0 ? e : (logScalar(u) * e) / d
    total += <f64>(max(v, 0) - v * load<f32>(y + at) + log1p)
  }
  return total
}

/** p = softmax(z) per row and the chunk's Σ_rows −Σ_c y·log p, over rows [r0, r1); scratch holds 3 floats per row. */
function softmaxChunk(z: usize, y: usize, p: usize, r0: i32, r1: i32, C: i32, scratch: usize): f64 {
  const rows = r1 - r0
  const shiftedDot = scratch // Σ_c y·(z − max)
  const targetSum = scratch + ((<usize>rows) << 2) // Σ_c y
  const logSum = scratch + ((<usize>rows) << 3) // Σ_c e^(z − max), then its log
  const rowBytes = (<usize>C) << 2
  let at = <usize>r0 * rowBytes
  for (let r = 0; r < rows; r++) {
    let top = load<f32>(z + at)
    for (let c = 1; c < C; c++) top = max(top, load<f32>(z + at + ((<usize>c) << 2)))
    let dot: f32 = 0
    let ySum: f32 = 0
    for (let c = 0; c < C; c++) {
      const o = at + ((<usize>c) << 2)
      const shifted = load<f32>(z + o) - top
      const yc = load<f32>(y + o)
      store<f32>(p + o, shifted)
      dot += yc * shifted
      ySum += yc
    }
    store<f32>(shiftedDot + ((<usize>r) << 2), dot)
    store<f32>(targetSum + ((<usize>r) << 2), ySum)
    at += rowBytes
  }
  const e0 = r0 * C
  const e1 = r1 * C
  let i = e0
  for (; i + 4 <= e1; i += 4) v128.store(p + ((<usize>i) << 2), expNonPositive(v128.load(p + ((<usize>i) << 2))))
  for (; i < e1; i++) store<f32>(p + ((<usize>i) << 2), expScalar(load<f32>(p + ((<usize>i) << 2))))
  at = <usize>r0 * rowBytes
  for (let r = 0; r < rows; r++) {
    let sum: f32 = 0
    for (let c = 0; c < C; c++) sum += load<f32>(p + at + ((<usize>c) << 2))
    for (let c = 0; c < C; c++) {
      const o = p + at + ((<usize>c) << 2)
      store<f32>(o, load<f32>(o) / sum)
    }
    store<f32>(logSum + ((<usize>r) << 2), sum)
    at += rowBytes
  }
  let r = 0
  for (; r + 4 <= rows; r += 4) v128.store(logSum + ((<usize>r) << 2), logAtLeastOne(v128.load(logSum + ((<usize>r) << 2))))
  for (; r < rows; r++) store<f32>(logSum + ((<usize>r) << 2), logScalar(load<f32>(logSum + ((<usize>r) << 2))))
  // −Σ_c y·log p = −Σ_c y·(z − max − log Σ) = Σ y · log Σ − Σ_c y·(z − max)
  let total: f64 = 0
  for (r = 0; r < rows; r++) {
    const o = (<usize>r) << 2
    total += <f64>(load<f32>(targetSum + o) * load<f32>(logSum + o) - load<f32>(shiftedDot + o))
  }
  return total
}

/** Adds the chunk's Σ p·y and Dice denominator per channel (float32 over the chunk) into the float64 sums at `intersection` and `denominator`. */
function diceSums(p: usize, y: usize, r0: i32, r1: i32, C: i32, squared: bool, intersection: usize, denominator: usize): void {
  const rowBytes = (<usize>C) << 2
  const full = C & ~3
  for (let c = 0; c < full; c += 4) {
    let py = f32x4.splat(0)
    let den = f32x4.splat(0)
    let at = <usize>r0 * rowBytes + ((<usize>c) << 2)
    for (let r = r0; r < r1; r++) {
      const pv = v128.load(p + at)
      const yv = v128.load(y + at)
      py = f32x4.add(py, f32x4.mul(pv, yv))
      den = squared ? f32x4.add(den, f32x4.add(f32x4.mul(pv, pv), f32x4.mul(yv, yv))) : f32x4.add(den, f32x4.add(pv, yv))
      at += rowBytes
    }
    addPromoted(intersection + ((<usize>c) << 3), py)
    addPromoted(denominator + ((<usize>c) << 3), den)
  }
  for (let c = full; c < C; c++) {
    let py: f32 = 0
    let den: f32 = 0
    let at = <usize>r0 * rowBytes + ((<usize>c) << 2)
    for (let r = r0; r < r1; r++) {
      const pc = load<f32>(p + at)
      const yc = load<f32>(y + at)
      py += pc * yc
      den += squared ? pc * pc + yc * yc : pc + yc
      at += rowBytes
    }
    addPromotedScalar(intersection + ((<usize>c) << 3), py)
    addPromotedScalar(denominator + ((<usize>c) << 3), den)
  }
}

/** Chunks per sample: a chunk never spans two samples (of J_ROWS voxels), so a sample's last chunk may be short. */
function chunksPerSample(job: usize): i32 {
  const rowsPerChunk = word(job, J_ROWS_PER_CHUNK)
  return (word(job, J_ROWS) + rowsPerChunk - 1) / rowsPerChunk
}

/** The sample of chunk k. */
function sampleOf(job: usize, k: i32): i32 {
  return k / chunksPerSample(job)
}

/** The first row of chunk k, counted over all samples. */
function chunkStart(job: usize, k: i32): i32 {
  return sampleOf(job, k) * word(job, J_ROWS) + (k % chunksPerSample(job)) * word(job, J_ROWS_PER_CHUNK)
}

/** One past the last row of chunk k: at most the end of its sample. */
function chunkEnd(job: usize, k: i32): i32 {
  return min((sampleOf(job, k) + 1) * word(job, J_ROWS), chunkStart(job, k) + word(job, J_ROWS_PER_CHUNK))
}

/** forward: J_X logits z, J_W targets y, J_DY probabilities p (written); the sums go into the slots */
export function diceCe(job: usize, scratch: usize): void {
  const z = <usize>word(job, J_X)
  const y = <usize>word(job, J_W)
  const p = <usize>word(job, J_DY)
  const B = word(job, J_BATCH)
  const C = word(job, J_COUT)
  const chunks = word(job, J_CHUNKS)
  const slots = word(job, J_SLOTS)
  const sigmoid = word(job, J_SIGMOID) != 0
  const squared = word(job, J_SQUARED) != 0
  const sums = B * C
  for (let s = nextSlot(job); s >= 0; s = nextSlot(job)) {
    const slot = clearedSlot(job, s, (<usize>(1 + 2 * sums)) << 3)
    for (let k = s; k < chunks; k += slots) {
      const r0 = chunkStart(job, k)
      const r1 = chunkEnd(job, k)
      const b = sampleOf(job, k)
      const crossEntropy = sigmoid ? sigmoidChunk(z, y, p, r0 * C, r1 * C) : softmaxChunk(z, y, p, r0, r1, C, scratch)
      store<f64>(slot, load<f64>(slot) + crossEntropy)
      const first = slot + 8 + ((<usize>(b * C)) << 3)
      diceSums(p, y, r0, r1, C, squared, first, first + ((<usize>sums) << 3))
    }
  }
}

/**
 * backward: dz (J_DY) = dy · d loss / dz from p (J_X) and y (J_W). J_ACC points at float32
 * coefficients [dy, CE scale, a per (sample, channel), b per (sample, channel)], with which the
 * Dice gradient by p is g = a·y − b·(squared ? p : 1).
 */
export function diceCeGrad(job: usize, scratch: usize): void {
  const dz = <usize>word(job, J_DY)
  const p = <usize>word(job, J_X)
  const y = <usize>word(job, J_W)
  const coefficients = <usize>word(job, J_ACC)
  const B = word(job, J_BATCH)
  const C = word(job, J_COUT)
  const sigmoid = word(job, J_SIGMOID) != 0
  const squared = word(job, J_SQUARED) != 0
  const dy = load<f32>(coefficients)
  const ceScale = load<f32>(coefficients, 4)
  const rowBytes = (<usize>C) << 2
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const r0 = chunkStart(job, k)
    const r1 = chunkEnd(job, k)
    const b = sampleOf(job, k)
    const a = coefficients + 8 + ((<usize>(b * C)) << 2)
    const bb = a + ((<usize>(B * C)) << 2)
    let at = <usize>r0 * rowBytes
    for (let r = r0; r < r1; r++) {
      if (sigmoid) {
        for (let c = 0; c < C; c++) {
          const o = at + ((<usize>c) << 2)
          const pc = load<f32>(p + o)
          const yc = load<f32>(y + o)
          const g = load<f32>(a + ((<usize>c) << 2)) * yc - load<f32>(bb + ((<usize>c) << 2)) * (squared ? pc : 1)
          store<f32>(dz + o, dy * ((pc - yc) * ceScale + g * pc * (1 - pc)))
        }
      } else {
        // softmax: CE gradient (p·Σy − y)·scale, Dice through the softmax Jacobian p·(g − Σ p·g)
        let pg: f32 = 0
        let ySum: f32 = 0
        for (let c = 0; c < C; c++) {
          const o = at + ((<usize>c) << 2)
          const pc = load<f32>(p + o)
          const yc = load<f32>(y + o)
          const g = load<f32>(a + ((<usize>c) << 2)) * yc - load<f32>(bb + ((<usize>c) << 2)) * (squared ? pc : 1)
          store<f32>(scratch + ((<usize>c) << 2), g)
          pg += pc * g
          ySum += yc
        }
        for (let c = 0; c < C; c++) {
          const o = at + ((<usize>c) << 2)
          const pc = load<f32>(p + o)
          const g = load<f32>(scratch + ((<usize>c) << 2))
          store<f32>(dz + o, dy * ((pc * ySum - load<f32>(y + o)) * ceScale + pc * (g - pg)))
        }
      }
      at += rowBytes
    }
  }
}
