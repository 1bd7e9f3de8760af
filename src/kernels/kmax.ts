/**
 * A whole kMaX decoder layer (src/model/smg.ts `KmaxLayer`) as one op: one kernel forward, one
 * backward (src/kernels/cpu/kmax.ts), on the `cpu` backend with sipl's fast kernels. Every other
 * backend runs KmaxLayer's composition of tfjs ops; the two are tested against each other.
 *
 * The op has two differentiable outputs (the updated queries and the mask logits), which
 * tf.customGrad cannot express (one output); it goes through the engine's runKernelFunc, the
 * function customGrad itself calls, which records one tape node with several outputs.
 */
import {tf} from '../backend/tf.js'
import {KMAX_PARAMETERS, type KmaxAttrs, type KmaxParameter} from './cpu/kmax.js'

export {KMAX_PARAMETERS, type KmaxParameter}

export const FUSED_KMAX = 'SiplKmaxLayer'
export const FUSED_KMAX_GRAD = 'SiplKmaxLayerGrad'

export interface KmaxFusedInput {
  pixels: tf.Tensor3D
  queries: tf.Tensor3D
  /** binarised previous pseudo mask `[B, P, K+1]`; null: no Eq. 10 filter. No gradient flows to it. */
  previous: tf.Tensor3D | null
  tau: number
  heads: number
  /** false drops the cross-attention update (KmaxLayerInput.crossAttention) */
  crossAttention: boolean
}

export interface KmaxFusedOutput {
  queries: tf.Tensor3D
  maskLogits: tf.Tensor3D
  /** the filtered one-hot assignment `[B, P, N]` */
  assignment: tf.Tensor3D
  /** the Eq. 6 cluster of every voxel `[B, P]` (int32) */
  clusters: tf.Tensor2D
  /** 1 for the clusters that took part in the update `[B, N]` (all 1 without a previous mask) */
  keep: tf.Tensor2D
}

type ForwardFunc = (backend: unknown, save: (tensors: tf.Tensor[]) => void) => tf.Tensor[]
type BackwardsFunc = (dys: tf.Tensor[], saved: tf.Tensor[]) => Record<string, () => tf.Tensor>
interface EngineWithKernelFunc {
  runKernelFunc(params: {forwardFunc: ForwardFunc; backwardsFunc: BackwardsFunc; inputs: tf.NamedTensorMap}): tf.Tensor[]
}

export function kmaxLayerFused(input: KmaxFusedInput, parameters: Record<KmaxParameter, tf.Tensor>): KmaxFusedOutput {
  const {pixels, queries, previous} = input
  const attrs: KmaxAttrs = {heads: input.heads, tau: input.tau, filter: previous !== null, cross: input.crossAttention}
  const inputs: tf.NamedTensorMap = {pixels, queries, ...parameters}
  // variables outlive the forward pass; other tensors are saved (cloned) for the backward
  const unsaved = KMAX_PARAMETERS.filter((name) => parameters[name] instanceof tf.Variable)
  const saved = KMAX_PARAMETERS.filter((name) => !(parameters[name] instanceof tf.Variable))
  const attrMap = attrs as unknown as tf.NamedAttrMap
  const forwardFunc: ForwardFunc = (_, save) => {
    const kernelInputs = previous ? {...inputs, previous} : inputs
    const outputs = tf.engine().runKernel(FUSED_KMAX, kernelInputs, attrMap) as tf.Tensor[]
    const workspace = outputs[5]
    save([pixels, queries, workspace, ...saved.map((name) => parameters[name])])
    return outputs.slice(0, 5)
  }
  const backwardsFunc: BackwardsFunc = (dys, kept) => {
    const [pixelsSaved, queriesSaved, workspace, ...rest] = kept
    const weights: tf.NamedTensorMap = {}
    for (const name of unsaved) {
      if (parameters[name].isDisposed) throw new Error(`kmaxLayerFused: parameter ${name} was disposed before the backward pass`)
      weights[name] = parameters[name]
    }
    saved.forEach((name, i) => (weights[name] = rest[i]))
    const grads = tf
      .engine()
      .runKernel(
        FUSED_KMAX_GRAD,
        {dQueries: dys[0], dMask: dys[1], pixels: pixelsSaved, queries: queriesSaved, workspace, ...weights},
        attrMap,
      ) as tf.Tensor[]
    const names = ['pixels', 'queries', ...KMAX_PARAMETERS]
    return Object.fromEntries(names.map((name, i) => [name, () => grads[i]]))
  }
  const engine = tf.engine() as unknown as EngineWithKernelFunc
  const [q1, maskLogits, assignment, clusters, keep] = engine.runKernelFunc({forwardFunc, backwardsFunc, inputs})
  return {
    queries: q1 as tf.Tensor3D,
    maskLogits: maskLogits as tf.Tensor3D,
    assignment: assignment as tf.Tensor3D,
    clusters: clusters as tf.Tensor2D,
    keep: keep as tf.Tensor2D,
  }
}
