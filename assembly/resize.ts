/**
 * One pass of the trilinear resize (src/kernels/cpu/resize.ts) along the middle axis of a
 * `[outer, size, inner]` array, in float64 pairs: the operations of the JavaScript loop it replaced
 * (products and sums in float64, each stored value rounded to float32 once), so the same bits.
 *
 * Forward (J_RELU = 0): dst[r, t, :] = a·src[r, first[t], :] + b·src[r, second[t], :], a = 1 − b.
 * Transposed (J_RELU = 1), its gradient: dst[r, first[t], :] += a·src[r, t, :], then
 * dst[r, second[t], :] += b·src[r, t, :], t ascending, from zeros.
 *
 * Words: J_X src, J_DY dst, J_W the taps (first[J_OUT_D] and second[J_OUT_D] as i32, then weight b
 * [J_OUT_D] as f32), J_IN_D and J_OUT_D the sizes, J_COUT inner, J_K the columns of a chunk, J_CHUNKS
 * outer × ⌈inner / J_K⌉. A chunk is one outer row and a block of columns: the transpose's additions into a dst
 * element all come from one chunk, in t order, whatever the thread count.
 */
import {J_COUT, J_DY, J_IN_D, J_K, J_OUT_D, J_RELU, J_W, J_X, nextChunk, word} from './job'

/** lanes 0–1 of four floats, as float64 */
function low(v: v128): v128 {
  return f64x2.promote_low_f32x4(v)
}

/** lanes 2–3 of four floats, as float64 */
function high(v: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1))
}

/** two float64 pairs rounded back to four floats */
function demote(low: v128, high: v128): v128 {
  return i32x4.shuffle(f32x4.demote_f64x2_zero(low), f32x4.demote_f64x2_zero(high), 0, 1, 4, 5)
}

export function resizePass(job: usize): void {
  const src = <usize>word(job, J_X)
  const dst = <usize>word(job, J_DY)
  const taps = <usize>word(job, J_W)
  const inSize = word(job, J_IN_D)
  const outSize = word(job, J_OUT_D)
  const inner = word(job, J_COUT)
  const cols = word(job, J_K)
  const transposed = word(job, J_RELU) != 0
  const blocks = (inner + cols - 1) / cols
  const firstTaps = taps
  const secondTaps = taps + ((<usize>outSize) << 2)
  const weights = taps + ((<usize>outSize) << 3)
  const rowBytes = (<usize>inner) << 2
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const r = k / blocks
    const j0 = (k % blocks) * cols
    const j1 = min(inner, j0 + cols)
    const vectorEnd = j0 + ((j1 - j0) & ~3)
    const inBase = dst + <usize>r * <usize>inSize * rowBytes
    if (transposed) {
      // this chunk's columns of dst row r, all inSize of them, start from zeros
      for (let i = 0; i < inSize; i++) memory.fill(inBase + <usize>i * rowBytes + ((<usize>j0) << 2), 0, (<usize>(j1 - j0)) << 2)
    }
    for (let t = 0; t < outSize; t++) {
      const b = <f64>load<f32>(weights + ((<usize>t) << 2))
      const a = 1 - b
      const av = f64x2.splat(a)
      const bv = f64x2.splat(b)
      const first = <usize>load<i32>(firstTaps + ((<usize>t) << 2))
      const second = <usize>load<i32>(secondTaps + ((<usize>t) << 2))
      if (!transposed) {
        const from = src + <usize>r * <usize>inSize * rowBytes
        const out = dst + (<usize>r * <usize>outSize + <usize>t) * rowBytes
        const p0 = from + first * rowBytes
        const p1 = from + second * rowBytes
        let j = j0
        for (; j < vectorEnd; j += 4) {
          const at = (<usize>j) << 2
          const s0 = v128.load(p0 + at)
          const s1 = v128.load(p1 + at)
          const lo = f64x2.add(f64x2.mul(av, low(s0)), f64x2.mul(bv, low(s1)))
          const hi = f64x2.add(f64x2.mul(av, high(s0)), f64x2.mul(bv, high(s1)))
          v128.store(out + at, demote(lo, hi))
        }
        for (; j < j1; j++) {
          const at = (<usize>j) << 2
          store<f32>(out + at, <f32>(a * <f64>load<f32>(p0 + at) + b * <f64>load<f32>(p1 + at)))
        }
      } else {
        const from = src + (<usize>r * <usize>outSize + <usize>t) * rowBytes
        const q0 = inBase + first * rowBytes
        const q1 = inBase + second * rowBytes
        let j = j0
        for (; j < vectorEnd; j += 4) {
          const at = (<usize>j) << 2
          const g = v128.load(from + at)
          // the a term first, stored, then the b term: where first = second both reach one element in that order
          const gLow = low(g)
          const gHigh = high(g)
          const d0 = v128.load(q0 + at)
          v128.store(q0 + at, demote(f64x2.add(low(d0), f64x2.mul(av, gLow)), f64x2.add(high(d0), f64x2.mul(av, gHigh))))
          const d1 = v128.load(q1 + at)
          v128.store(q1 + at, demote(f64x2.add(low(d1), f64x2.mul(bv, gLow)), f64x2.add(high(d1), f64x2.mul(bv, gHigh))))
        }
        for (; j < j1; j++) {
          const at = (<usize>j) << 2
          const g = <f64>load<f32>(from + at)
          store<f32>(q0 + at, <f32>(<f64>load<f32>(q0 + at) + a * g))
          store<f32>(q1 + at, <f32>(<f64>load<f32>(q1 + at) + b * g))
        }
      }
    }
  }
}
