/**
 * The one import of TensorFlow.js for the whole project. '@tensorflow/tfjs' (the union
 * package, which tfjs-node also builds on) is used rather than tfjs-core alone because its
 * Node bundle is the only one that carries the gradient registrations; tfjs-core's own
 * `register_all_gradients` is ESM without file extensions and does not load in Node.
 * Import `tf` from here, never from a tfjs package directly, so that the gradients tfjs lacks
 * (./gradients.ts) are always in place. sipl's kernels are not installed here: selectBackend and
 * probeBackend (./select.ts) install them, so that importing `tf` changes no backend.
 */
import * as tf from '@tensorflow/tfjs'
import './gradients.js'

export {tf}
export type Tensor = tf.Tensor

// PROD silences tfjs's console.warn chatter ("install our node backend…"); sipl reports the
// backend and the reason for it in its own log.
tf.env().set('PROD', true)
