// Stands in for src/backend/tf.ts inside the GPU bundle: the same `tf`, with sipl's gradient
// registrations, but without src/kernels/register (cpu kernels: wasm + workers).
import * as tf from '@tensorflow/tfjs'
import '../../src/backend/gradients.js'

export {tf}
tf.env().set('PROD', true)
