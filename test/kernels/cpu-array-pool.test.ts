/**
 * The recycled output arrays of the cpu kernels (src/kernels/cpu/array-pool.ts): an array goes back
 * only when no tensor views its buffer and no one was handed it, and a SIPL training run and
 * inference give the same bits with the pool as without it, even with every released array
 * overwritten by NaN (a read after release would show).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {arrayPool, ArrayPool} from '../../src/kernels/cpu/array-pool.js'
import {output, outputArray} from '../../src/kernels/cpu/tensors.js'
import {resizeTrilinearFused} from '../../src/kernels/resize.js'
import {siplNetFactory} from '../../src/bench/sipl-net.js'
import {loadConfig} from '../../src/config/load.js'

await tf.setBackend('cpu')
const backend = tf.backend()
const pool = arrayPool(backend)
/** large enough to be pooled */
const N = 8192

/** a tensor on a pooled array, as a kernel makes its output */
function pooledTensor(fill: number): {t: tf.Tensor; array: Float32Array} {
  const array = outputArray(backend, N).fill(fill)
  const t = tf.engine().makeTensorFromTensorInfo(output(backend, [N], array))
  return {t, array}
}

test('a disposed output array is handed to the next output of its length, not to another length', () => {
  pool.clear()
  const {t, array} = pooledTensor(1)
  t.dispose()
  assert.notEqual(outputArray(backend, N + 16), array)
  assert.equal(outputArray(backend, N), array)
})

test('an array read out of the backend (dataSync, data) is never reused', async () => {
  pool.clear()
  const a = pooledTensor(1)
  const read = a.t.dataSync()
  a.t.dispose()
  assert.notEqual(outputArray(backend, N), a.array)
  assert.equal(read[0], 1)
  const b = pooledTensor(2)
  await b.t.data()
  b.t.dispose()
  assert.notEqual(outputArray(backend, N), b.array)
})

test('an array stays out of the pool while a reshape or a view of its buffer is alive', () => {
  pool.clear()
  const {t, array} = pooledTensor(3)
  const reshaped = tf.reshape(t, [2, N / 2])
  t.dispose()
  assert.notEqual(outputArray(backend, N), array, 'a reshape shares the data id')
  // a slice may be a subarray of the same buffer under another data id
  const view = tf.engine().makeTensorFromTensorInfo(output(backend, [N / 2], array.subarray(0, N / 2)))
  reshaped.dispose()
  assert.notEqual(outputArray(backend, N), array, 'a view of the buffer is alive')
  assert.equal(view.dataSync()[0], 3)
  view.dispose()
  assert.notEqual(outputArray(backend, N), array, 'read through the view: escaped')
})

test('an id set again with values on the same buffer (tfjs move) keeps its array out of the pool', () => {
  pool.clear()
  const {t, array} = pooledTensor(5)
  const cpu = backend as unknown as {move(id: object, values: Float32Array, shape: number[], dtype: string, refCount: number): void}
  cpu.move(t.dataId, array.subarray(0, N / 2), [N / 2], 'float32', 1)
  assert.notEqual(outputArray(backend, N), array)
  t.dispose()
})

test('an array read out leaves the in-use count and is not reused; a resize forward and backward leave the count as they found it', () => {
  pool.clear()
  const before = pool.liveArrayBytes
  const a = pooledTensor(7)
  assert.equal(pool.liveArrayBytes, before + N * 4)
  a.t.dataSync()
  assert.equal(pool.liveArrayBytes, before, 'read out: no longer counted')
  a.t.dispose()
  assert.notEqual(outputArray(backend, N), a.array)
  const x = tf.randomUniform([1, 8, 8, 8, 4]) as tf.Tensor5D
  const settled = pool.liveArrayBytes
  const dx = tf.grad((a: tf.Tensor) => tf.sum(resizeTrilinearFused(a as tf.Tensor5D, [32, 32, 32])))(x)
  dx.dispose()
  assert.equal(pool.liveArrayBytes, settled)
  tf.dispose(x)
})

test('a disabled pool allocates every array', () => {
  pool.clear()
  pool.enabled = false
  try {
    const {t, array} = pooledTensor(4)
    t.dispose()
    assert.notEqual(outputArray(backend, N), array)
  } finally {
    pool.enabled = true
  }
})

/** a pool on a stand-in for tfjs's cpu backend: tensor data entries in a map */
function poolOnFakeBackend(bounds: {freeBytesFloor: number; staleTakes: number}) {
  const entries = new Map<object, {values?: unknown}>()
  const fake = {
    data: {
      set: (id: object, value: {values?: unknown}) => void entries.set(id, value),
      delete: (id: object) => entries.delete(id),
      has: (id: object) => entries.has(id),
      get: (id: object) => entries.get(id)!,
    },
    readSync: (id: object) => entries.get(id)!.values,
  }
  const pool = new ArrayPool(bounds)
  pool.attach(fake)
  /** an array of `length` from the pool as one tensor's data, and a function that disposes it */
  const held = (length: number) => {
    const id = {}
    const array = pool.take(length)
    fake.data.set(id, {values: array})
    return {array, dispose: () => fake.data.delete(id)}
  }
  return {pool, held}
}

test('free arrays stay within the most the pool had in use at once (or the floor)', () => {
  const {pool, held} = poolOnFakeBackend({freeBytesFloor: 0, staleTakes: 1e9})
  const bytes = (n: number, length: number) => n * length * 4
  // four arrays in use at once, all released: all four kept
  const first = [0, 1, 2, 3].map(() => held(N))
  first.forEach((t) => t.dispose())
  assert.equal(pool.freeArrayBytes, bytes(4, N))
  // then four of another length: the free arrays may not exceed the peak in use (four of the larger)
  const second = [0, 1, 2, 3].map(() => held(N + 8))
  second.forEach((t) => t.dispose())
  assert.ok(pool.freeArrayBytes <= bytes(4, N + 8), `${pool.freeArrayBytes} bytes free`)
})

test('free arrays of a length not asked for within staleTakes calls go to the GC', () => {
  const {pool, held} = poolOnFakeBackend({freeBytesFloor: 2 ** 30, staleTakes: 16})
  const old = held(N)
  old.dispose()
  for (let i = 0; i < 40; i++) held(N + 8).dispose()
  assert.equal(pool.freeArrayBytes, (N + 8) * 4)
  assert.notEqual(pool.take(N), old.array)
})

/** three AdamW steps of the demo SIPL net, then its class probabilities on the batch: every value's bits */
function demoRun(): {losses: number[]; weights: Float32Array[]; probabilities: Float32Array} {
  const {config} = loadConfig('experiments/demo.yaml')
  const net = siplNetFactory(config, 32)(5)
  const {x, target} = net.batch(32, 5)
  const optimizer = net.optimizer()
  const variables = new Map(net.variables().map((v) => [v.name, v]))
  try {
    const losses: number[] = []
    for (let i = 0; i < 3; i++) {
      const {value, grads} = tf.variableGrads(() => net.loss(x, target), net.variables())
      optimizer.step(variables, new Map(Object.entries(grads)), 1e-3)
      losses.push(value.dataSync()[0])
      tf.dispose([value, ...Object.values(grads)])
    }
    const probabilities = tf.tidy(() => net.probabilities(x))
    const result = {
      losses,
      weights: net.variables().map((v) => v.dataSync().slice() as Float32Array),
      probabilities: probabilities.dataSync().slice() as Float32Array,
    }
    probabilities.dispose()
    return result
  } finally {
    optimizer.dispose()
    tf.dispose([x, target])
    net.dispose()
  }
}

test('SIPL demo training and inference: the same bits with the pool (released arrays poisoned) as without it', () => {
  pool.clear()
  pool.enabled = false
  const without = demoRun()
  pool.enabled = true
  pool.poison = true
  const reusedBefore = pool.reused
  let withPool: ReturnType<typeof demoRun>
  try {
    withPool = demoRun()
  } finally {
    pool.poison = false
  }
  assert.ok(pool.reused - reusedBefore > 100, `only ${pool.reused - reusedBefore} arrays reused: the run did not exercise the pool`)
  assert.deepEqual(withPool.losses, without.losses)
  assert.ok(withPool.losses.every(Number.isFinite))
  withPool.weights.forEach((w, i) => assert.deepEqual(w, without.weights[i], `weight ${i}`))
  assert.deepEqual(withPool.probabilities, without.probabilities)
})
