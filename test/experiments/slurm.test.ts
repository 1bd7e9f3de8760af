/** The Slurm executor's pure parts; slurm.integration.test.ts runs the CLI and a real cluster. */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {arraySpec} from '../../src/experiments/slurm.js'

test('arraySpec: ranges for contiguous trials, lists for retries, %N throttle', () => {
  assert.equal(arraySpec([0, 1, 2, 3]), '0-3')
  assert.equal(arraySpec([3, 1]), '1,3')
  assert.equal(arraySpec([5]), '5')
  assert.equal(arraySpec([0, 1, 2], 2), '0-2%2')
})
