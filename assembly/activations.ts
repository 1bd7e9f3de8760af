/**
 * Element-wise activations on the worker pool, with the training loss's σ (assembly/dice-ce.ts:
 * the exp of Cephes' single-precision polynomial, four lanes at a time): the class probabilities at
 * inference (`sigmoid`) and the kMaX layer's GELU and its gradient (`gelu`). V8's Math.exp, which
 * the JavaScript versions called per element, costs 10–25 ns here.
 */
import {endRow, firstRow, J_DY, J_W, J_X, nextChunk, word} from './job'
import {sigmoidVector} from './dice-ce'

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

/**
 * dy · GELU′(v), GELU′ = s + 2v·s(1 − s)·√(2/π)(1 + 3·0.044715v²), s = σ(2u). The second term reads
 * v clamped to ±16: beyond it s(1 − s) is exactly 0 in float32, and v² or 2v would overflow to ∞
 * (0 · ∞ = NaN) for |v| ≥ ~1.8e19; below it the bits are v's own.
 */
function geluGradVector(dy: v128, v: v128): v128 {
  const s = geluSigmoid(v)
  const w = f32x4.max(f32x4.min(v, f32x4.splat(16)), f32x4.splat(-16))
  const slope = f32x4.mul(f32x4.splat(GELU_C), f32x4.add(f32x4.splat(1), f32x4.mul(f32x4.splat(3 * GELU_CUBIC), f32x4.mul(w, w))))
  const inner = f32x4.mul(f32x4.mul(f32x4.mul(f32x4.add(w, w), s), f32x4.sub(f32x4.splat(1), s)), slope)
  return f32x4.mul(dy, f32x4.add(s, inner))
}

const SIGMOID = 0
const GELU = 1
const GELU_GRAD = 2

/** one activation of four floats at `at`: of x, or for GELU_GRAD of dy (at x) and the GELU's input (at `second`) */
function activate(mode: i32, x: v128, second: usize, at: usize): v128 {
  if (mode == SIGMOID) return sigmoidVector(x)
  if (mode == GELU) return geluVector(x)
  return geluGradVector(x, v128.load(second + at))
}

/**
 * The activation `mode` element-wise over J_ROWS floats at J_X (and J_W) into J_DY, in chunks of
 * J_ROWS_PER_CHUNK. The tail goes through the same vector code (the lanes beyond it are copies),
 * so an element's bits do not depend on where the chunks end.
 */
function activationJob(job: usize, mode: i32): void {
  const x = <usize>word(job, J_X)
  const second = <usize>word(job, J_W)
  const out = <usize>word(job, J_DY)
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const end = endRow(job, k)
    let i = firstRow(job, k)
    for (; i + 4 <= end; i += 4) {
      const at = (<usize>i) << 2
      v128.store(out + at, activate(mode, v128.load(x + at), second, at))
    }
    for (; i < end; i++) {
      const at = (<usize>i) << 2
      // the tail's lane 0 is its element: splat it (and its second operand) to a vector
      const v = f32x4.splat(load<f32>(x + at))
      const y = mode == GELU_GRAD ? geluGradVector(v, f32x4.splat(load<f32>(second + at))) : activate(mode, v, 0, 0)
      store<f32>(out + at, f32x4.extract_lane(y, 0))
    }
  }
}

/** p = σ(z): the probabilities at inference, by the σ the loss uses in training */
export function sigmoid(job: usize): void {
  activationJob(job, SIGMOID)
}

/** The kMaX layer's GELU (src/kernels/cpu/rows.ts), or with J_W set its gradient: dy (J_X) · GELU′(J_W) */
export function gelu(job: usize): void {
  activationJob(job, word(job, J_W) != 0 ? GELU_GRAD : GELU)
}
