/** The fused AdamW step of src/kernels/fused.ts (`adamwUpdate`) for the `cpu` backend. */
import {tf} from '../../backend/tf.js'
import type {AdamWStep} from '../fused.js'
import type {KernelArgs} from './elementwise.js'

interface CpuBackendLike {
  data: {get(dataId: object): {values: unknown}}
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo
}

export function adamwKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const cpu = backend as CpuBackendLike
  const read = (t: tf.TensorInfo) => cpu.data.get(t.dataId).values as Float32Array
  const [p, g, m, v] = [inputs.p, inputs.g, inputs.m, inputs.v].map(read)
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
  return [cpu.makeTensorInfo(shape, 'float32', p1), cpu.makeTensorInfo(shape, 'float32', m1), cpu.makeTensorInfo(shape, 'float32', v1)]
}
