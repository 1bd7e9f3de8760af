/**
 * The SIPL backbone's full-resolution end and the IPL head's probabilities in one kernel, for
 * inference on the `cpu` backend (src/model/backbone.ts `VoxelEmbeddings.probabilities`):
 *
 *   a = LeakyReLU(norm(conv3d(x, W_full)))                 backbone.full
 *   u = LeakyReLU(norm(conv3dTranspose(h, W_up) + b + a))  backbone.out (up, norm)
 *   Ŷ_b = σ(u_b · g_bᵀ + c_b)                              the head, prototypes folded (src/model/ipl.ts)
 *
 * Each step is the job the separate kernels run (conv3d.ts, group-norm.ts, matmul.ts), so the
 * result has the same bits; what it saves is their copies: at full resolution every one of those
 * kernels copies its input into the heap and its output out of it (a, the norms' inputs and
 * outputs, u: eight volumes of B·D·H·W·e floats; docs/bench/2026-12-07-full-resolution-end.md
 * has what they cost). Here only x, h and Ŷ cross.
 * The norms run in place (an element-wise map), so the heap holds two such volumes at once.
 */
import {tf} from '../../backend/tf.js'
import {copyIn} from './conv-job.js'
import {transposeBiasAt} from './conv3d.js'
import {forwardAt} from './conv3d-heap.js'
import type {KernelArgs} from './elementwise.js'
import {groupNormAt} from './group-norm.js'
import {prototypeProbabilitiesAt} from './matmul.js'
import {freshRuntime} from './runtime.js'
import {floats, output} from './tensors.js'

type Shape5 = [number, number, number, number, number]

export interface FullResolutionAttrs {
  /** backbone.full's conv stride ('same' padding) */
  fullStride: number
  fullGroups: number
  /** backbone.out.up's stride (= its kernel size) */
  upStride: number
  outGroups: number
  eps: number
  leakySlope: number
}

/**
 * inputs: x `[B, D, H, W, Cin]`, fullFilter `[k, k, k, Cin, e]`, fullGamma/fullBeta `[e]`, decoded
 * h `[B, D/s, H/s, W/s, C0]`, upFilter `[s, s, s, e, C0]`, upBias/outGamma/outBeta `[e]`,
 * prototypes `[B, K, e]` and optional shift `[B, K]` → Ŷ `[B, D·H·W, K]`.
 */
export function fullResolutionProbabilitiesKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const {x, fullFilter, decoded, upFilter, prototypes, shift} = inputs
  const {fullStride, fullGroups, upStride, outGroups, eps, leakySlope} = attrs as unknown as FullResolutionAttrs
  const f = (name: string) => floats(backend, inputs[name])
  const fullInfo = tf.backend_util.computeConv3DInfo(x.shape as Shape5, fullFilter.shape as Shape5, fullStride, 1, 'same')
  const [B, D, H, W, e] = fullInfo.outShape
  const upInfo = tf.backend_util.computeConv3DInfo([B, D, H, W, e], upFilter.shape as Shape5, upStride, 1, 'same')
  if (upInfo.outDepth !== decoded.shape[1] || upInfo.outHeight !== decoded.shape[2] || upInfo.outWidth !== decoded.shape[3])
    throw new Error(`SiplFullResolutionProbabilities: decoded ${decoded.shape} is not x ${x.shape} at stride ${upStride}`)
  const rows = B * D * H * W
  const rt = freshRuntime()
  const a = forwardAt(rt, copyIn(rt, f('x')), f('fullFilter'), fullInfo)
  groupNormAt(rt, a, a, rows, e, f('fullGamma'), f('fullBeta'), {groups: fullGroups, eps, samples: B, leakySlope})
  const u = transposeBiasAt(rt, copyIn(rt, f('decoded')), f('upFilter'), f('upBias'), upInfo, a)
  groupNormAt(rt, u, u, rows, e, f('outGamma'), f('outBeta'), {groups: outGroups, eps, samples: B, leakySlope})
  const V = D * H * W
  const out = prototypeProbabilitiesAt(rt, u, B, V, e, f('prototypes'), shift ? f('shift') : null, backend)
  return output(backend, [B, V, prototypes.shape[1]], out)
}
