/**
 * The AdamW step of every parameter: on `cpu` with sipl's fast kernels one kernel call per group
 * of parameters (src/kernels/cpu/optimizer.ts `adamwGroupKernel`, laid end to end in one
 * worker-pool run) instead of one per parameter, writing the new values into the variables' own
 * arrays where no other tensor shares them; elsewhere `adamwUpdate` per parameter. The arithmetic
 * is adamwUpdate's, so both give the same bits.
 */
import {tf} from '../backend/tf.js'
import type {AdamWStep} from './cpu/optimizer.js'
import {adamwUpdate, fusedKernelsActive} from './fused.js'
import {writableInPlace} from './cpu/tensors.js'

export const FUSED_ADAMW_GROUP = 'SiplAdamWGroup'

/** parameters per grouped kernel call: bounds the heap (4 operands) and the new tensors alive at once */
const GROUP_LIMIT = 1 << 22

export interface AdamWOperands {
  p: tf.Variable
  g: tf.Tensor
  m: tf.Variable
  v: tf.Variable
}

/** True when the group kernel may write t's data in place (src/kernels/cpu/tensors.ts `writableInPlace`) */
const ownsItsData = (t: tf.Tensor) => writableInPlace(tf.backend(), t)

/** One AdamW step of each entry of `operands`: p, m and v are updated. */
export function adamwStep(operands: AdamWOperands[], s: AdamWStep): void {
  const assign = ({p, m, v}: AdamWOperands, p1: tf.Tensor, m1: tf.Tensor, v1: tf.Tensor) => {
    p.assign(p1)
    m.assign(m1)
    v.assign(v1)
    tf.dispose([p1, m1, v1])
  }
  if (!fusedKernelsActive()) {
    for (const o of operands) assign(o, ...adamwUpdate(o.p, o.g, o.m, o.v, s))
    return
  }
  for (let start = 0; start < operands.length;) {
    let end = start + 1
    let length = operands[start].p.size
    while (end < operands.length && length + operands[end].p.size <= GROUP_LIMIT) length += operands[end++].p.size
    const group = operands.slice(start, end)
    const inputs: tf.NamedTensorMap = {}
    group.forEach(({p, g, m, v}, i) => Object.assign(inputs, {[`p${i}`]: p, [`g${i}`]: g, [`m${i}`]: m, [`v${i}`]: v}))
    // in place, unless another tensor shares a variable's data or someone was given its array (either
    // would see it change; tfjs's own Tile reads its input that way): 3 new tensors per parameter,
    // their copies and assignments were most of the step's optimiser time
    const inPlace = group.map(({p, m, v}) => ownsItsData(p) && ownsItsData(m) && ownsItsData(v))
    const out = tf.engine().runKernel(FUSED_ADAMW_GROUP, inputs, {...s, count: group.length, inPlace}) as unknown as tf.Tensor[]
    const copied = group.filter((_, i) => !inPlace[i])
    const n = copied.length
    copied.forEach((o, i) => assign(o, out[i], out[n + i], out[2 * n + i]))
    start = end
  }
}
