import {test} from 'node:test'
import assert from 'node:assert/strict'
import {Rng} from '../../src/util/rng.js'

test('the same seed gives the same stream; a saved state continues it exactly', () => {
  const a = new Rng(42)
  const b = new Rng(42)
  const first = Array.from({length: 5}, () => a.next())
  assert.deepEqual(
    first,
    Array.from({length: 5}, () => b.next()),
  )
  const resumed = new Rng(a.getState())
  assert.deepEqual(
    Array.from({length: 100}, () => resumed.next()),
    Array.from({length: 100}, () => a.next()),
  )
  assert.notDeepEqual(
    first,
    Array.from({length: 5}, () => new Rng(43).next()),
  )
})

test('uniform draws have the moments of U(0,1) and normals of N(0,1)', () => {
  const rng = new Rng(1)
  const n = 200_000
  let sum = 0
  let sq = 0
  let nsum = 0
  let nsq = 0
  for (let i = 0; i < n; i++) {
    const u = rng.next()
    assert.ok(u >= 0 && u < 1)
    sum += u
    sq += u * u
    const z = rng.normal()
    nsum += z
    nsq += z * z
  }
  // U(0,1): mean 1/2, variance 1/12; standard errors ~ 6e-4 and 2e-4
  assert.ok(Math.abs(sum / n - 0.5) < 3e-3)
  assert.ok(Math.abs(sq / n - (sum / n) ** 2 - 1 / 12) < 2e-3)
  assert.ok(Math.abs(nsum / n) < 1e-2)
  assert.ok(Math.abs(nsq / n - 1) < 2e-2)
})
