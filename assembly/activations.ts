/**
 * Element-wise activations on the worker pool, with the training loss's σ (assembly/dice-ce.ts:
 * the exp of Cephes' single-precision polynomial, four lanes at a time): the class probabilities at
 * inference (`sigmoid`), the kMaX layer's GELU and its gradient (`gelu`), and LeakyReLU's gradient
 * (`leakyReluGrad`). V8's Math.exp, which the JavaScript versions called per element, costs
 * 10–25 ns here.
 */
import {endRow, firstRow, J_BIAS, J_DY, J_W, J_X, nextChunk, word} from './job'
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

/**
 * dy · Step(z, slope), the sign of z read from `signs`: z itself or y = LeakyReLU(z) (y > 0 exactly
 * when z > 0, NaN exactly when z is). A float32 product rounds as tfjs's Multiply of the float32 Step
 * output does, so the same bits.
 */
function leakyReluGradVector(dy: v128, signs: v128, slopes: v128): v128 {
  const scaled = v128.bitselect(f32x4.splat(NaN), f32x4.mul(dy, slopes), f32x4.ne(signs, signs))
  return v128.bitselect(dy, scaled, f32x4.gt(signs, f32x4.splat(0)))
}

const SIGMOID = 0
const GELU = 1
const GELU_GRAD = 2
const LEAKY_RELU_GRAD = 3

/** one activation of four floats x; the gradients read their second operand (the forward's input) from `second` */
function activate(mode: i32, x: v128, second: v128, slopes: v128): v128 {
  if (mode == SIGMOID) return sigmoidVector(x)
  if (mode == GELU) return geluVector(x)
  if (mode == GELU_GRAD) return geluGradVector(x, second)
  return leakyReluGradVector(x, second, slopes)
}

/**
 * The activation `mode` element-wise over J_ROWS floats at J_X (and, for the gradients, J_W) into
 * J_DY, in chunks of J_ROWS_PER_CHUNK; LeakyReLU's float32 slope at J_BIAS. The tail goes through
 * the same vector code (its element splat to every lane), so an element's bits do not depend on
 * where the chunks end.
 */
function activationJob(job: usize, mode: i32): void {
  const x = <usize>word(job, J_X)
  const second = <usize>word(job, J_W)
  const out = <usize>word(job, J_DY)
  const slopes = mode == LEAKY_RELU_GRAD ? f32x4.splat(load<f32>(<usize>word(job, J_BIAS))) : f32x4.splat(0)
  const reads = mode == GELU_GRAD || mode == LEAKY_RELU_GRAD
  for (let k = nextChunk(job); k >= 0; k = nextChunk(job)) {
    const end = endRow(job, k)
    let i = firstRow(job, k)
    for (; i + 4 <= end; i += 4) {
      const at = (<usize>i) << 2
      v128.store(out + at, activate(mode, v128.load(x + at), reads ? v128.load(second + at) : slopes, slopes))
    }
    for (; i < end; i++) {
      const at = (<usize>i) << 2
      const y = activate(mode, f32x4.splat(load<f32>(x + at)), reads ? f32x4.splat(load<f32>(second + at)) : slopes, slopes)
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

/** dy (J_X) · Step(z, slope), the sign of z from J_W: LeakyReLU's gradient (src/model/ops.ts, and the norm's backward) */
export function leakyReluGrad(job: usize): void {
  activationJob(job, LEAKY_RELU_GRAD)
}
