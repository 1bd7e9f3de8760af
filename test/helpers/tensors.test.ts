// The leak check itself: it must fail on a leak, count what is returned, and await promises.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from './tf.js'
import {expectNoLeakedTensors, expectNoLeakedTensorsInTidy} from './tensors.js'

await tf.setBackend('cpu')

test('expectNoLeakedTensors: passes a call that disposes what it made, fails one that leaks, counts returned tensors', async () => {
  const x = tf.ones([4])
  assert.equal(
    expectNoLeakedTensors(() => tf.tidy(() => tf.sum(tf.mul(x, 2)).dataSync()[0])),
    8,
  )
  assert.throws(() => expectNoLeakedTensors(() => tf.sum(tf.mul(x, 2)).dataSync()[0]), /2 new tensors left alive, expected 0/)
  const y = expectNoLeakedTensors(() => tf.tidy(() => tf.add(tf.mul(x, 2), 1)), 1)
  assert.deepEqual(Array.from(y.dataSync()), [3, 3, 3, 3])
  await expectNoLeakedTensors(async () => {
    const t = tf.mul(x, 3)
    const values = await t.data()
    t.dispose()
    return values
  })
  await assert.rejects(
    expectNoLeakedTensors(async () => tf.mul(x, 3).data()),
    /1 new tensors left alive, expected 0/,
  )
  tf.dispose([x, y])
})

test('expectNoLeakedTensors: a backend buffer that no tensor owns is a leak too', () => {
  const backend = tf.backend()
  assert.throws(
    () => expectNoLeakedTensors(() => backend.write(new Float32Array(4), [4], 'float32')),
    /1 new backend buffers left alive, for 0 new tensors/,
  )
})

test('expectNoLeakedTensorsInTidy: only what the op returns survives; a tensor kept past the tidy is a leak', () => {
  const x = tf.ones([2])
  const {a, b} = expectNoLeakedTensorsInTidy(() => ({a: tf.add(tf.mul(x, 2), 1), b: tf.sub(x, 1)}), 2)
  assert.deepEqual([...a.dataSync(), ...b.dataSync()], [3, 3, 0, 0])
  assert.throws(() => expectNoLeakedTensorsInTidy(() => tf.keep(tf.mul(x, 2)) && tf.add(x, 1)), /2 new tensors left alive, expected 1/)
  tf.dispose([x, a, b])
})
