/**
 * The AdamW step of every parameter: on `cpu` with sipl's fast kernels one kernel call per group
 * of parameters (src/kernels/cpu/optimizer.ts `adamwGroupKernel`, laid end to end in one
 * worker-pool run) instead of one per parameter; elsewhere `adamwUpdate` per parameter. The
 * arithmetic is adamwUpdate's, so both give the same bits.
 */
import {tf} from '../backend/tf.js'
import type {AdamWStep} from './cpu/optimizer.js'
import {adamwUpdate, fusedKernelsActive} from './fused.js'

export const FUSED_ADAMW_GROUP = 'SiplAdamWGroup'

/** parameters per grouped kernel call: bounds the heap (4 operands) and the new tensors alive at once */
const GROUP_LIMIT = 1 << 22

export interface AdamWOperands {
  p: tf.Tensor
  g: tf.Tensor
  m: tf.Tensor
  v: tf.Tensor
}

/** Computes [p₁, m₁, v₁] for each entry of `operands` and hands them to `apply` (with the entry's index), which owns them. */
export function adamwUpdateAll(
  operands: AdamWOperands[],
  s: AdamWStep,
  apply: (i: number, p1: tf.Tensor, m1: tf.Tensor, v1: tf.Tensor) => void,
): void {
  if (!fusedKernelsActive()) {
    operands.forEach(({p, g, m, v}, i) => apply(i, ...adamwUpdate(p, g, m, v, s)))
    return
  }
  for (let start = 0; start < operands.length;) {
    let end = start + 1
    let length = operands[start].p.size
    while (end < operands.length && length + operands[end].p.size <= GROUP_LIMIT) length += operands[end++].p.size
    const group = operands.slice(start, end)
    const inputs: tf.NamedTensorMap = {}
    group.forEach(({p, g, m, v}, i) => Object.assign(inputs, {[`p${i}`]: p, [`g${i}`]: g, [`m${i}`]: m, [`v${i}`]: v}))
    const out = tf.engine().runKernel(FUSED_ADAMW_GROUP, inputs, {...s, count: group.length}) as unknown as tf.Tensor[]
    const n = group.length
    group.forEach((_, i) => apply(start + i, out[i], out[n + i], out[2 * n + i]))
    start = end
  }
}
