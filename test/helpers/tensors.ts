/**
 * The leak check of every layer, loss, kernel and training-step test (tfjs-layers' test_utils
 * `expectNoLeakedTensors`): what a call leaves alive is exactly what it hands back or keeps on
 * purpose. The model's ops leave their intermediates to the caller's tf.tidy (a forward pass runs
 * in one), so their checks call them inside tf.tidy; what escapes it (a kept tensor, a variable,
 * a kernel's backend buffer that no tensor owns) is still counted.
 */
import assert from 'node:assert/strict'
import {tf} from './tf.js'

/**
 * Runs `fn` and fails unless exactly `newTensors` more tensors are alive afterwards (the ones it
 * returns, or a layer's weights created on its first call), held in at most as many new backend
 * buffers. Returns what `fn` returns; a promise is awaited before counting.
 */
export function expectNoLeakedTensors<T>(fn: () => Promise<T>, newTensors?: number): Promise<T>
export function expectNoLeakedTensors<T>(fn: () => T, newTensors?: number): T
export function expectNoLeakedTensors<T>(fn: () => T | Promise<T>, newTensors = 0): T | Promise<T> {
  const tensorsBefore = tf.memory().numTensors
  // the backend's own count: a buffer a kernel made and never handed to a tensor is not in tf.memory()
  const buffersBefore = tf.backend().numDataIds()
  const check = (value: T): T => {
    const tensors = tf.memory().numTensors - tensorsBefore
    const buffers = tf.backend().numDataIds() - buffersBefore
    assert.equal(tensors, newTensors, `${tensors} new tensors left alive, expected ${newTensors}`)
    assert.ok(buffers <= newTensors, `${buffers} new backend buffers left alive, for ${newTensors} new tensors`)
    return value
  }
  const result = fn()
  return result instanceof Promise ? result.then(check) : check(result)
}

/**
 * The check for a model op (a layer's apply, a loss): runs `fn` inside tf.tidy, as a forward pass
 * does, and fails unless only the `newTensors` tensors it returns (a tensor, or an object or array
 * of them) survive.
 */
export function expectNoLeakedTensorsInTidy<T>(fn: () => T, newTensors = 1): T {
  return expectNoLeakedTensors(() => tf.tidy(() => fn() as unknown as tf.TensorContainer) as unknown as T, newTensors)
}

/**
 * A variable made as src/model/init.ts makes them: the tensor it starts from is disposed, so the
 * variable alone holds that buffer and an assign frees it (a live initial tensor would keep it,
 * which the buffer count above reports).
 */
export function variableOf(initial: () => tf.Tensor, trainable = true, name?: string): tf.Variable {
  return tf.tidy(() => tf.variable(initial(), trainable, name))
}
