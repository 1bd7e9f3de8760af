/**
 * Gradients that tfjs 4.22 lacks and sipl needs. Imported once, from ./tf.js, so that every
 * `tf` in the project has them.
 *
 * Conv3DBackpropInputV2 is the kernel behind `tf.conv3dTranspose` (the decoder's learned
 * upsampling). tfjs-core registers gradients for Conv3D and Conv2DBackpropInput but not for it,
 * so without this `conv3dTranspose` cannot train ("gradient function not found").
 *
 * The kernel computes y = Jᵀ·dy, where J is the Jacobian of the forward convolution
 * x ↦ conv3d(x, W, strides, pad) and y has the shape of that convolution's input. Therefore
 *   ∂L/∂dy = J · ∂L/∂y = conv3d(∂L/∂y, W, strides, pad)                 (the forward convolution)
 *   ∂L/∂W  = conv3dBackpropFilter(x = ∂L/∂y, dy = dy, W.shape, strides, pad)
 * — the second because y is bilinear in (dy, W) exactly like conv3d(x, W) is in (x, W), with
 * the roles of x and dy exchanged. test/model/gradients.test.ts checks both against finite
 * differences.
 */
import * as tf from '@tensorflow/tfjs'

type Strides = [number, number, number]

interface BackpropInputAttrs {
  strides: Strides | number
  pad: 'valid' | 'same'
}

tf.registerGradient({
  kernelName: 'Conv3DBackpropInputV2',
  inputsToSave: ['dy', 'filter'],
  gradFunc: (upstream: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const g = upstream as tf.Tensor5D
    const [dy, filter] = saved as [tf.Tensor5D, tf.Tensor5D]
    const {strides, pad} = attrs as unknown as BackpropInputAttrs
    return {
      dy: () => tf.conv3d(g, filter, strides, pad),
      filter: () =>
        tf
          .engine()
          .runKernel('Conv3DBackpropFilterV2', {x: g, dy}, {strides, pad, filterShape: filter.shape} as unknown as tf.NamedAttrMap),
    }
  },
})
