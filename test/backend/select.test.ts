import {test} from 'node:test'
import assert from 'node:assert/strict'
import {selectBackend} from '../../src/backend/select.js'
import {relError} from '../../src/util/rel-error.js'
import {tf} from '../helpers/tf.js'
import {UserError} from '../../src/errors.js'

test('auto never picks wasm 4.22 (its conv3d gradients are wrong) and says why it chose what it chose', async () => {
  const choice = await selectBackend('auto')
  assert.notEqual(choice.name, 'wasm')
  assert.equal(tf.getBackend(), choice.name)
  assert.ok(choice.reason.startsWith('auto: '))
  const wasm = choice.probes.find((p) => p.name === 'wasm')
  if (wasm?.loadable) assert.match(choice.reason, /wasm: conv3d check failed/)
})

test('asking for a backend that fails its check is a user error naming the fix', async () => {
  await assert.rejects(selectBackend('wasm'), (error: unknown) => error instanceof UserError && /--backend cpu/.test(error.message))
  await assert.rejects(
    selectBackend('nonsense' as 'cpu'),
    (error: unknown) => error instanceof UserError && /unknown backend/.test(error.message),
  )
  const cpu = await selectBackend('cpu')
  assert.equal(cpu.name, 'cpu')
  assert.equal(tf.getBackend(), 'cpu')
})

test('relError is max |a-e| / max |e|, and infinite on a length mismatch or NaN', () => {
  assert.equal(relError([1, 2, 3], [1, 2, 4]), 0.25)
  assert.equal(relError([1, 2], [1, 2, 3]), Infinity)
  assert.equal(relError([NaN, 2], [1, 2]), Infinity)
  assert.equal(relError([0, 0], [0, 0]), 0)
})
