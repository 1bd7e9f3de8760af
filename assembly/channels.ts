/**
 * Per-channel passes over row-major `[rows, C]` arrays: for the group / instance norm of
 * src/kernels/cpu/group-norm.ts, column sums (Σ a and Σ a·b per channel) and a per-channel
 * affine map of one or two arrays; for a decoder convolution over `[x, skip]`
 * (src/kernels/cpu/conv3d.ts), the channel concatenation and its inverse. Channels go 4 to a
 * vector, the last C mod 4 one at a time.
 *
 * The sums are deterministic with any thread count: rows go in chunks of J_ROWS_PER_CHUNK, each
 * summed in float32 and added (in float64) into slot chunk mod J_SLOTS in order; the caller adds
 * the slots in order.
 */
import {clearedSlot, endRow, firstRow, J_BIAS, J_CHUNKS, J_COUT, J_DY, J_RELU, J_SLOTS, J_W, J_X, nextChunk, nextSlot, word} from './job'
import {addPromoted, addPromotedScalar, copyFloats} from './floats'

/** Slots of float64 [Σ a per channel, Σ a·b per channel] over the rows of a (J_X) and b (J_W). */
export function columnSums(job: usize): void {
  const a = <usize>word(job, J_X)
  const b = <usize>word(job, J_W)
  const C = word(job, J_COUT)
  const chunks = word(job, J_CHUNKS)
  const slots = word(job, J_SLOTS)
  const rowBytes = (<usize>C) << 2
  const full = C & ~3
  for (let s = nextSlot(job); s >= 0; s = nextSlot(job)) {
    const slot = clearedSlot(job, s, (<usize>C) << 4)
    const products = slot + ((<usize>C) << 3)
    for (let k = s; k < chunks; k += slots) {
      const r0 = firstRow(job, k)
      const r1 = endRow(job, k)
      for (let c = 0; c < full; c += 4) {
        let sum = f32x4.splat(0)
        let product = f32x4.splat(0)
        let at = <usize>r0 * rowBytes + ((<usize>c) << 2)
        for (let r = r0; r < r1; r++) {
          const av = v128.load(a + at)
          sum = f32x4.add(sum, av)
          product = f32x4.add(product, f32x4.mul(av, v128.load(b + at)))
          at += rowBytes
        }
        addPromoted(slot + ((<usize>c) << 3), sum)
        addPromoted(products + ((<usize>c) << 3), product)
      }
      for (let c = full; c < C; c++) {
        let sum: f32 = 0
        let product: f32 = 0
        let at = <usize>r0 * rowBytes + ((<usize>c) << 2)
        for (let r = r0; r < r1; r++) {
          const av = load<f32>(a + at)
          sum += av
          product += av * load<f32>(b + at)
          at += rowBytes
        }
        addPromotedScalar(slot + ((<usize>c) << 3), sum)
        addPromotedScalar(products + ((<usize>c) << 3), product)
      }
    }
  }
}

/**
 * out (J_DY) = a·s + b·t + u per channel, a at J_X, b at J_W (0: no b term), float32 coefficients
 * [s, t, u] (C each) at J_BIAS; work items are chunks of J_ROWS_PER_CHUNK rows. With J_RELU ≠ 0,
 * LeakyReLU of the result with the float64 slope after the coefficients (at float 3C rounded up
 * to even): a negative y becomes y·slope computed in float64 and rounded to float32, as sipl's
 * JavaScript LeakyRelu kernel does (the same bits).
 */
export function channelAffine(job: usize): void {
  const a = <usize>word(job, J_X)
  const b = <usize>word(job, J_W)
  const out = <usize>word(job, J_DY)
  const coefficients = <usize>word(job, J_BIAS)
  const C = word(job, J_COUT)
  const leaky = word(job, J_RELU) != 0
  const slope: f64 = leaky ? load<f64>(coefficients + (((<usize>(3 * C + 1)) & ~1) << 2)) : 1
  const slopes = f64x2.splat(slope)
  const zero = f32x4.splat(0)
  const rowBytes = (<usize>C) << 2
  const full = C & ~3
  const s = coefficients
  const t = s + rowBytes
  const u = t + rowBytes
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const r0 = firstRow(job, k)
    const r1 = endRow(job, k)
    let row = <usize>r0 * rowBytes
    for (let r = r0; r < r1; r++) {
      for (let c = 0; c < full; c += 4) {
        const o = (<usize>c) << 2
        let v = f32x4.add(f32x4.mul(v128.load(a + row + o), v128.load(s + o)), v128.load(u + o))
        if (b) v = f32x4.add(v, f32x4.mul(v128.load(b + row + o), v128.load(t + o)))
        if (leaky) {
          const low = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v), slopes))
          const high = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)), slopes))
          v = v128.bitselect(i32x4.shuffle(low, high, 0, 1, 4, 5), v, f32x4.lt(v, zero))
        }
        v128.store(out + row + o, v)
      }
      for (let c = full; c < C; c++) {
        const o = (<usize>c) << 2
        let v = load<f32>(a + row + o) * load<f32>(s + o) + load<f32>(u + o)
        if (b) v += load<f32>(b + row + o) * load<f32>(t + o)
        if (leaky && v < 0) v = <f32>(<f64>v * slope)
        store<f32>(out + row + o, v)
      }
      row += rowBytes
    }
  }
}

/**
 * dst = the channel concatenation of a [voxels, ca] and b [voxels, cb]: the input of a decoder
 * convolution built in the heap, instead of a concat tensor in JS that is then copied in.
 */
export function concatChannels(dst: usize, a: usize, ca: i32, b: usize, cb: i32, voxels: i32): void {
  const aBytes = (<usize>ca) << 2
  const bBytes = (<usize>cb) << 2
  for (let v = 0; v < voxels; v++) {
    copyFloats(dst, a + <usize>v * aBytes, ca)
    copyFloats(dst + aBytes, b + <usize>v * bBytes, cb)
    dst += aBytes + bBytes
  }
}

/** The inverse of concatChannels: src [voxels, ca + cb] → a [voxels, ca], b [voxels, cb] (the gradient of the concatenation). */
export function splitChannels(src: usize, a: usize, ca: i32, b: usize, cb: i32, voxels: i32): void {
  const aBytes = (<usize>ca) << 2
  const bBytes = (<usize>cb) << 2
  for (let v = 0; v < voxels; v++) {
    copyFloats(a + <usize>v * aBytes, src, ca)
    copyFloats(b + <usize>v * bBytes, src + aBytes, cb)
    src += aBytes + bBytes
  }
}
