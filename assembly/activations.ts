/**
 * Element-wise activations on the worker pool, with the training loss's σ (assembly/dice-ce.ts:
 * the exp of Cephes' single-precision polynomial, four lanes at a time): the class probabilities at
 * inference (`sigmoid`) and the kMaX layer's GELU and its gradient (`gelu`). V8's Math.exp, which
 * the JavaScript versions called per element, costs 10–25 ns here.
 */
import {endRow, firstRow, J_DY, J_W, J_X, nextChunk, word} from './job'
import {sigmoidVector} from './dice-ce'

/**
 * p = σ(z) element-wise over J_ROWS floats at J_X into J_DY (chunks of J_ROWS_PER_CHUNK): the
 * probabilities at inference, by the σ the loss uses in training. The tail goes through the same
 * vector code, so an element's bits do not depend on where the chunks end.
 */
export function sigmoid(job: usize): void {
  const z = <usize>word(job, J_X)
  const p = <usize>word(job, J_DY)
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const end = endRow(job, k)
    let i = firstRow(job, k)
    for (; i + 4 <= end; i += 4) {
      const at = (<usize>i) << 2
      v128.store(p + at, sigmoidVector(v128.load(z + at)))
    }
    for (; i < end; i++) {
      const at = (<usize>i) << 2
      store<f32>(p + at, f32x4.extract_lane(sigmoidVector(f32x4.splat(load<f32>(z + at))), 0))
    }
  }
}

const GELU_C: f32 = 0.7978845608028654 // √(2/π)
const GELU_CUBIC: f32 = 0.044715

/** GELU (tanh form) as v·σ(2u), u = √(2/π)(v + 0.044715v³), with the loss's σ; s = σ(2u) too */
function geluSigmoid(v: v128): v128 {
  const cubic = f32x4.mul(f32x4.mul(f32x4.mul(v, v), v), f32x4.splat(GELU_CUBIC))
  return sigmoidVector(f32x4.mul(f32x4.add(v, cubic), f32x4.splat(2 * GELU_C)))
}

function geluVector(v: v128): v128 {
  return f32x4.mul(v, geluSigmoid(v))
}

/** dy · GELU′(v), GELU′ = s + 2v·s(1 − s)·√(2/π)(1 + 3·0.044715v²), s = σ(2u) */
function geluGradVector(dy: v128, v: v128): v128 {
  const s = geluSigmoid(v)
  const slope = f32x4.mul(f32x4.splat(GELU_C), f32x4.add(f32x4.splat(1), f32x4.mul(f32x4.splat(3 * GELU_CUBIC), f32x4.mul(v, v))))
  const inner = f32x4.mul(f32x4.mul(f32x4.mul(f32x4.add(v, v), s), f32x4.sub(f32x4.splat(1), s)), slope)
  return f32x4.mul(dy, f32x4.add(s, inner))
}

/**
 * GELU of J_ROWS floats at J_X into J_DY, or with J_W set its gradient: J_W (the GELU's input)
 * and J_X (dy) into J_DY. The kMaX layer's GELUs (src/kernels/cpu/rows.ts); tails through the
 * vector code, so an element's bits do not depend on where the chunks end.
 */
export function gelu(job: usize): void {
  const x = <usize>word(job, J_X)
  const input = <usize>word(job, J_W)
  const out = <usize>word(job, J_DY)
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const end = endRow(job, k)
    let i = firstRow(job, k)
    for (; i + 4 <= end; i += 4) {
      const at = (<usize>i) << 2
      v128.store(out + at, input ? geluGradVector(v128.load(x + at), v128.load(input + at)) : geluVector(v128.load(x + at)))
    }
    for (; i < end; i++) {
      const at = (<usize>i) << 2
      const v = f32x4.splat(load<f32>(x + at))
      store<f32>(out + at, f32x4.extract_lane(input ? geluGradVector(v, f32x4.splat(load<f32>(input + at))) : geluVector(v), 0))
    }
  }
}
