/**
 * Benchmark (not a test): one unet-ref training step with the fused conv + bias + ReLU op
 * (src/kernels/fused.ts) against the same network written as plain tfjs ops, alternating step by
 * step in one process so that both see the same machine load (docs/kernels.md).
 *
 *   node dist/src/bench/fused-vs-composite.js [size=32] [steps=7]     (after `npm run build`)
 */
import {startCpuBackend} from '../backend/select.js'
import {tf} from '../backend/tf.js'
import {UnetRef, unetRefBatch, unetRefLoss} from '../model/unet-ref.js'

const size = Number(process.argv[2] ?? 32)
const steps = Number(process.argv[3] ?? 7)
await startCpuBackend()
const net = new UnetRef(1)
const {x, oneHot} = unetRefBatch(size, 1)
const vars = net.variables()
const param = new Map<string, [tf.Variable, tf.Variable]>()
for (let i = 0; i < vars.length; i += 2) param.set(vars[i].name.split('.')[0], [vars[i], vars[i + 1]])

// the same network as UnetRef.apply, with conv3d + add + relu as separate tfjs ops
function composite(input: tf.Tensor5D): tf.Tensor5D {
  const conv = (name: string, h: tf.Tensor5D, stride: number, relu: boolean) => {
    const [k, b] = param.get(name)!
    const y = tf.add(tf.conv3d(h, k as tf.Tensor5D, stride, 'same'), b) as tf.Tensor5D
    return relu ? tf.relu(y) : y
  }
  const up = (name: string, h: tf.Tensor5D) => {
    const [k, b] = param.get(name)!
    const [n, d, hh, w] = h.shape
    return tf.add(tf.conv3dTranspose(h, k as tf.Tensor5D, [n, 2 * d, 2 * hh, 2 * w, k.shape[3] as number], 2, 'same'), b) as tf.Tensor5D
  }
  const e1 = conv('e1', input, 1, true)
  const e2 = conv('e2', e1, 2, true)
  const b = conv('b', conv('e3', e2, 2, true), 1, true)
  const d2 = conv('d2', tf.concat([up('up2', b), e2], 4), 1, true)
  const d1 = conv('d1', tf.concat([up('up1', d2), e1], 4), 1, true)
  return conv('head', d1, 1, false)
}

// lr 0: both variants see the same weights in every step
const optimizer = tf.train.sgd(0)
const time = (forward: (t: tf.Tensor5D) => tf.Tensor5D) => {
  const start = performance.now()
  optimizer.minimize(() => unetRefLoss(forward(x), oneHot), true, vars)?.dispose()
  return performance.now() - start
}
const fused: number[] = []
const plain: number[] = []
for (let i = 0; i <= steps; i++) {
  const f = time((t) => net.apply(t))
  const p = time(composite)
  if (i > 0) (fused.push(f), plain.push(p))
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]
const row = (a: number[]) => ({median: Math.round(median(a)), min: Math.round(Math.min(...a))})
process.stdout.write(JSON.stringify({size, steps, fused: row(fused), composite: row(plain)}) + '\n')
