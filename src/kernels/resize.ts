/**
 * The trilinear resize of src/model/layers.ts `resizeTrilinear` as one kernel each way on the
 * `cpu` backend with sipl's fast kernels (src/kernels/cpu/resize.ts). Only where
 * fusedKernelsActive(); the callers fall back to the op composition everywhere else, and the two
 * are tested against each other.
 */
import {tf} from '../backend/tf.js'

export const FUSED_RESIZE = 'SiplResizeTrilinear'
export const FUSED_RESIZE_GRAD = 'SiplResizeTrilinearGrad'

/** x `[B, d, h, w, C]` → `[B, D, H, W, C]` with (D, H, W) = target, align_corners=False */
export function resizeTrilinearFused(x: tf.Tensor5D, target: readonly number[]): tf.Tensor5D {
  const size = [target[0], target[1], target[2]]
  const fused = tf.customGrad((...args: (tf.Tensor | ((saved: tf.Tensor[]) => void))[]) => {
    const xi = args[0] as tf.Tensor5D
    const inShape = xi.shape
    const y = tf.engine().runKernel(FUSED_RESIZE, {x: xi}, {size}) as tf.Tensor5D
    return {
      value: y,
      // the gradient needs only x's shape, so nothing is saved
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.engine().runKernel(FUSED_RESIZE_GRAD, {dy: dy as tf.Tensor}, {inShape}) as tf.Tensor,
    }
  })
  return fused(x) as tf.Tensor5D
}
