/**
 * The backward of a convolution's bias + ReLU epilogue, in place on the convolution's gradient in
 * the shared heap: dz = dy · step(y) (dz = dy without ReLU), db = Σ_rows dz. It runs inside the
 * fused convolution backward (src/kernels/cpu/conv3d.ts), so that dz stays in the heap for the
 * filter and input gradients that follow.
 *
 * db is deterministic with any thread count: rows go in chunks of ROWS_PER_CHUNK, each summed in
 * float32 vectors, and chunk k is added (in float64) into slot k mod SLOTS in order; the caller
 * sums the slots in order.
 */
import {addPromoted, addPromotedScalar} from './floats'
import {clearedSlot, endRow, firstRow, J_CHUNKS, J_COUT, J_DY, J_RELU, J_SLOTS, J_X, nextSlot, word} from './job'

/** 1 where y > 0, NaN where y is NaN (so that NaN propagates as in dy · Step(y)), else 0 */
function step(y: v128): v128 {
  const one = f32x4.splat(1)
  const nan = f32x4.splat(NaN)
  return v128.or(v128.and(f32x4.gt(y, f32x4.splat(0)), one), v128.and(f32x4.ne(y, y), nan))
}

function stepScalar(y: f32): f32 {
  return y > 0 ? 1 : y != y ? NaN : 0
}

export function biasActGrad(job: usize): void {
  const dz = <usize>word(job, J_DY)
  const y = <usize>word(job, J_X)
  const relu = word(job, J_RELU) != 0
  const cout = word(job, J_COUT)
  const chunks = word(job, J_CHUNKS)
  const slots = word(job, J_SLOTS)
  const full = cout & ~3
  const rowBytes = (<usize>cout) << 2
  for (let s = nextSlot(job); s >= 0; s = nextSlot(job)) {
    // slot s: cout float64 sums
    const slot = clearedSlot(job, s, (<usize>cout) << 3)
    for (let k = s; k < chunks; k += slots) {
      const r0 = firstRow(job, k)
      const r1 = endRow(job, k)
      // column vectors: all rows of the chunk for 4 channels, then the next 4
      for (let c = 0; c < full; c += 4) {
        let sum = f32x4.splat(0)
        let at = dz + <usize>r0 * rowBytes + ((<usize>c) << 2)
        let yAt = y + <usize>r0 * rowBytes + ((<usize>c) << 2)
        for (let r = r0; r < r1; r++) {
          let d = v128.load(at)
          if (relu) {
            d = f32x4.mul(d, step(v128.load(yAt)))
            v128.store(at, d)
          }
          sum = f32x4.add(sum, d)
          at += rowBytes
          yAt += rowBytes
        }
        addPromoted(slot + ((<usize>c) << 3), sum)
      }
      for (let c = full; c < cout; c++) {
        let sum: f32 = 0
        for (let r = r0; r < r1; r++) {
          const at = dz + <usize>r * rowBytes + ((<usize>c) << 2)
          let d = load<f32>(at)
          if (relu) {
            d *= stepScalar(load<f32>(y + <usize>r * rowBytes + ((<usize>c) << 2)))
            store<f32>(at, d)
          }
          sum += d
        }
        addPromotedScalar(slot + ((<usize>c) << 3), sum)
      }
    }
  }
}
