/** The fused AdamW step of src/kernels/fused.ts (`adamwUpdate`) for the `cpu` backend. */
import type {tf} from '../../backend/tf.js'
import type {AdamWStep} from '../fused.js'
import type {KernelArgs} from './elementwise.js'
import {floats, output} from './tensors.js'

export function adamwKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const [p, g, m, v] = [inputs.p, inputs.g, inputs.m, inputs.v].map((t) => floats(backend, t))
  const s = attrs as unknown as AdamWStep
  // every constant is a float32 scalar tensor in the op composition: round them the same way
  const f = Math.fround
  const [b1, b2, ob1, ob2] = [f(s.beta1), f(s.beta2), f(1 - s.beta1), f(1 - s.beta2)]
  const [c1, c2, eps, lr, keep] = [f(s.c1), f(s.c2), f(s.epsilon), f(s.lr), f(1 - s.lr * s.weightDecay)]
  const p1 = new Float32Array(p.length)
  const m1 = new Float32Array(p.length)
  const v1 = new Float32Array(p.length)
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]
    const mi = f(f(m[i] * b1) + f(gi * ob1))
    const vi = f(f(v[i] * b2) + f(f(gi * gi) * ob2))
    const denominator = f(f(Math.sqrt(f(vi / c2))) + eps)
    m1[i] = mi
    v1[i] = vi
    p1[i] = f(p[i] * keep) - f(f(f(mi / c1) / denominator) * lr)
  }
  const shape = inputs.p.shape
  return [output(backend, shape, p1), output(backend, shape, m1), output(backend, shape, v1)]
}
