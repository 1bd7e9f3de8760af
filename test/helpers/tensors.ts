/**
 * The leak check of every layer, loss, kernel and training-step test (tfjs-layers' test_utils
 * `expectNoLeakedTensors`): what a call leaves alive is exactly what it hands back or keeps on
 * purpose; everything else it made is disposed, also when it throws a UserError.
 */
import assert from 'node:assert/strict'
import {tf} from '../../src/backend/tf.js'

/**
 * Runs `fn` and fails unless exactly `newTensors` more tensors are alive afterwards (the ones it
 * returns, or a layer's weights created on its first call). Returns what `fn` returns; a promise
 * is awaited before counting.
 */
export function expectNoLeakedTensors<T>(fn: () => Promise<T>, newTensors?: number): Promise<T>
export function expectNoLeakedTensors<T>(fn: () => T, newTensors?: number): T
export function expectNoLeakedTensors<T>(fn: () => T | Promise<T>, newTensors = 0): T | Promise<T> {
  const before = tf.memory().numTensors
  const check = (value: T): T => {
    const left = tf.memory().numTensors - before
    assert.equal(left, newTensors, `${left} new tensors left alive, expected ${newTensors}`)
    return value
  }
  const result = fn()
  return result instanceof Promise ? result.then(check) : check(result)
}
