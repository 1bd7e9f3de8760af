/**
 * One AdamW step over a parameter, in place on its copies in the heap (src/kernels/cpu/optimizer.ts):
 *   m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  p ← p·(1 − lr·λ) − lr·(m/c1)/(√(v/c2) + ε)
 * Every operation rounds to float32 in the order of the op composition in src/kernels/fused.ts
 * (`adamwUpdate`), so both give the same bits; float32 vector arithmetic does exactly that.
 */
import {endRow, firstRow, J_ACC, J_BIAS, J_DY, J_W, J_X, nextChunk, word} from './job'

/** J_X p, J_W g, J_DY m, J_ACC v; J_BIAS: float32 [β₁, β₂, 1 − β₁, 1 − β₂, c1, c2, ε, lr, 1 − lr·λ] */
export function adamw(job: usize): void {
  const p = <usize>word(job, J_X)
  const g = <usize>word(job, J_W)
  const m = <usize>word(job, J_DY)
  const v = <usize>word(job, J_ACC)
  const constants = <usize>word(job, J_BIAS)
  const b1 = load<f32>(constants)
  const b2 = load<f32>(constants, 4)
  const ob1 = load<f32>(constants, 8)
  const ob2 = load<f32>(constants, 12)
  const c1 = load<f32>(constants, 16)
  const c2 = load<f32>(constants, 20)
  const eps = load<f32>(constants, 24)
  const lr = load<f32>(constants, 28)
  const keep = load<f32>(constants, 32)
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const end = endRow(job, k)
    let i = firstRow(job, k)
    for (; i + 4 <= end; i += 4) {
      const at = (<usize>i) << 2
      const gi = v128.load(g + at)
      const mi = f32x4.add(f32x4.mul(v128.load(m + at), f32x4.splat(b1)), f32x4.mul(gi, f32x4.splat(ob1)))
      const vi = f32x4.add(f32x4.mul(v128.load(v + at), f32x4.splat(b2)), f32x4.mul(f32x4.mul(gi, gi), f32x4.splat(ob2)))
      const denominator = f32x4.add(f32x4.sqrt(f32x4.div(vi, f32x4.splat(c2))), f32x4.splat(eps))
      const step = f32x4.mul(f32x4.div(f32x4.div(mi, f32x4.splat(c1)), denominator), f32x4.splat(lr))
      v128.store(m + at, mi)
      v128.store(v + at, vi)
      v128.store(p + at, f32x4.sub(f32x4.mul(v128.load(p + at), f32x4.splat(keep)), step))
    }
    // the last 1–3 elements: float32 scalars round exactly as the vector lanes
    for (; i < end; i++) {
      const at = (<usize>i) << 2
      const gi = load<f32>(g + at)
      const mi = load<f32>(m + at) * b1 + gi * ob1
      const vi = load<f32>(v + at) * b2 + gi * gi * ob2
      const denominator = sqrt<f32>(vi / c2) + eps
      store<f32>(m + at, mi)
      store<f32>(v + at, vi)
      store<f32>(p + at, load<f32>(p + at) * keep - (mi / c1 / denominator) * lr)
    }
  }
}
