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

export const FUSED_ADAMW_GROUP = 'SiplAdamWGroup'

/** parameters per grouped kernel call: bounds the heap (4 operands) and the new tensors alive at once */
const GROUP_LIMIT = 1 << 22

export interface AdamWOperands {
  p: tf.Variable
  g: tf.Tensor
  m: tf.Variable
  v: tf.Variable
}

/** True when no other tensor shares t's data on the cpu backend (a reshape or clone does): the group kernel may then write it in place */
function ownsItsData(t: tf.Tensor): boolean {
  return (tf.backend() as unknown as {refCount(dataId: object): number}).refCount(t.dataId) === 1
}

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
    // in place, unless a tensor shares a variable's data (which would change with it): 3 new
    // tensors per parameter, their copies and assignments were most of the step's optimiser time
    const inPlace = group.every(({p, m, v}) => ownsItsData(p) && ownsItsData(m) && ownsItsData(v))
    const out = tf.engine().runKernel(FUSED_ADAMW_GROUP, inputs, {...s, count: group.length, inPlace}) as unknown as tf.Tensor[]
    const n = group.length
    if (!inPlace) group.forEach((o, i) => assign(o, out[i], out[n + i], out[2 * n + i]))
    start = end
  }
}
