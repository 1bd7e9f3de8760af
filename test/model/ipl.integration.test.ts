// The `sipl model` command through the CLI; ipl.test.ts tests IPL and the CPP initialisations in-process.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {loadConfig} from '../../src/config/load.js'
import {buildNet} from '../../src/model/summary.js'
import {sipl} from '../helpers/cli.js'

await tf.setBackend('cpu')

test('sipl model --json prints parameters per module, shapes and FLOPs; a bad CPP file exits 2', () => {
  const result = sipl(['model', '--config', 'experiments/demo.yaml', '--set', 'model.smg=false', '--json'])
  assert.equal(result.code, 0, result.stderr)
  const summary = JSON.parse(result.stdout)
  const net = buildNet(loadConfig('experiments/demo.yaml', ['model.smg=false']).config)
  assert.equal(summary.parameters.total, net.parameterCount())
  net.dispose()
  assert.equal(
    Object.values(summary.parameters.modules as Record<string, number>).reduce((a, b) => a + b, 0),
    summary.parameters.total,
  )
  assert.deepEqual(summary.shapes.logits, [1, 32, 32, 32, 3])
  assert.deepEqual(summary.shapes['aux.0'], [1, 8, 8, 8, 4])
  assert.ok(summary.flops.forwardGFlops > 0)
  const bad = sipl(['model', '--config', 'experiments/demo.yaml', '--set', 'model.cpp.init=biobert'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /model\.cpp\.file/)
})
