/**
 * AdamW over many parameters at once (src/kernels/adamw.ts: one kernel call per group of
 * parameters on `cpu`) gives the same bits as the op composition per parameter, for parameters of
 * mixed sizes that fill more than one group, over several steps; and one call per group.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {withReferenceCpuKernels} from '../../src/kernels/register.js'
import {FUSED_ADAMW_GROUP} from '../../src/kernels/adamw.js'
import {AdamW} from '../../src/train/optimizers.js'
import {expectNoLeakedTensors, variableOf} from '../helpers/tensors.js'

await tf.setBackend('cpu')

// 3 M + 1.5 M parameters do not fit one group of 2²² and split in two; the small ones ride along
const SHAPES = [[7], [3000, 1000], [33, 41], [1], [1500000], [3, 3, 3, 5, 7]]

async function run(fused: boolean): Promise<{state: number[][]; groupCalls: number}> {
  const variables = new Map(
    SHAPES.map((shape, i) => [`p${i}`, variableOf(() => tf.randomUniform(shape, -1, 1, 'float32', 40 + i), true, `group-${fused}-${i}`)]),
  )
  const grads = [0, 1, 2].map(
    (step) => new Map(SHAPES.map((shape, i) => [`p${i}`, tf.randomUniform(shape, -0.1, 0.1, 'float32', 100 * step + i)])),
  )
  const optimizer = new AdamW(0.9, 0.999, 0.05)
  const steps = () => grads.forEach((g, i) => optimizer.step(variables, g, 0.01 * (i + 1)))
  // the steps leave only Adam's two moments per parameter behind
  const profile = await tf.profile(() => expectNoLeakedTensors(() => (fused ? steps() : withReferenceCpuKernels(steps)), 2 * SHAPES.length))
  const state = [...variables.values(), ...optimizer.stateTensors().values()].map((t) => Array.from(t.dataSync()))
  tf.dispose([...variables.values(), ...grads.flatMap((g) => [...g.values()])])
  optimizer.dispose()
  return {state, groupCalls: profile.kernels.filter((k) => k.name === FUSED_ADAMW_GROUP).length}
}

test('grouped AdamW step: the same bits as the op composition per parameter, two groups per step', async () => {
  const fused = await run(true)
  const composed = await run(false)
  assert.equal(fused.groupCalls, 3 * 2, 'two grouped calls per step')
  assert.equal(composed.groupCalls, 0)
  assert.equal(fused.state.length, 3 * SHAPES.length)
  fused.state.forEach((values, i) => assert.deepEqual(values, composed.state[i], `tensor ${i}`))
})

test('grouped AdamW writes the variables in place, unless another tensor shares their data or their array was read out: then new tensors, the sharer and the reader unchanged, the same bits', async () => {
  const fresh = () =>
    new Map(
      SHAPES.slice(0, 4).map((shape, i) => [
        `p${i}`,
        variableOf(() => tf.randomUniform(shape, -1, 1, 'float32', 60 + i), true, `own-${i}`),
      ]),
    )
  const grads = new Map(SHAPES.slice(0, 4).map((shape, i) => [`p${i}`, tf.randomUniform(shape, -0.1, 0.1, 'float32', 70 + i)]))
  // the backend's own array of a tensor (dataSync would mark it read out)
  const arrayOf = (t: tf.Tensor) => (tf.backend() as unknown as {data: {get(id: object): {values: Float32Array}}}).data.get(t.dataId).values
  const stepped = (mode: 'own' | 'shared' | 'read') => {
    const variables = fresh()
    const p0 = variables.get('p0')!
    const before = arrayOf(p0)
    const otherBefore = arrayOf(variables.get('p1')!)
    const copy = Array.from(before)
    // a reshape shares the variable's data on cpu; dataSync hands its array out
    const sharer = mode === 'shared' ? tf.reshape(p0, [-1]) : null
    const readOut = mode === 'read' ? p0.dataSync() : null
    const optimizer = new AdamW(0.9, 0.999, 0.05)
    optimizer.step(variables, grads, 0.01)
    const after = arrayOf(p0)
    const result = {
      sameArray: after === before,
      otherInPlace: arrayOf(variables.get('p1')!) === otherBefore,
      changed: !after.every((v, i) => v === copy[i]),
      kept: sharer
        ? Array.from(sharer.dataSync()).every((v, i) => Object.is(v, copy[i]))
        : readOut
          ? Array.from(readOut).every((v, i) => Object.is(v, copy[i]))
          : null,
      state: [...variables.values(), ...optimizer.stateTensors().values()].map((t) => Array.from(t.dataSync())),
    }
    tf.dispose([...variables.values(), ...(sharer ? [sharer] : [])])
    optimizer.dispose()
    return result
  }
  const own = stepped('own')
  assert.ok(own.sameArray && own.changed, 'the variable keeps its array, with new values')
  const shared = stepped('shared')
  assert.ok(!shared.sameArray && shared.changed, 'a shared variable gets a new array')
  assert.equal(shared.kept, true, 'the tensor sharing the old data still holds it')
  assert.ok(own.otherInPlace && shared.otherInPlace, 'the other parameters of the group are written in place all the same')
  const read = stepped('read')
  assert.ok(!read.sameArray && read.changed, 'a variable whose array was read out gets a new array')
  assert.equal(read.kept, true, 'the array read out still holds what was read')
  const composed = withReferenceCpuKernels(() => stepped('own'))
  for (const [name, result] of [
    ['in place', own],
    ['shared', shared],
    ['read out', read],
  ] as const)
    result.state.forEach((values, i) => assert.deepEqual(values, composed.state[i], `${name}: tensor ${i}`))
  tf.dispose([...grads.values()])
})

test("grouped AdamW: a tensor sharing one of Adam's moments (a reshape of the optimiser's state) keeps its values through the next step", () => {
  const p = variableOf(() => tf.randomUniform([64, 32], -1, 1, 'float32', 81), true, 'moment-shared')
  const variables = new Map([['p', p]])
  const grads = new Map([['p', tf.randomUniform([64, 32], -0.1, 0.1, 'float32', 82)]])
  const optimizer = new AdamW(0.9, 0.999, 0.05)
  try {
    // the first step makes the moments; each later one runs while a reshape shares one of them
    optimizer.step(variables, grads, 0.01)
    for (const key of ['p.exp_avg', 'p.exp_avg_sq']) {
      const sharer = tf.reshape(optimizer.stateTensors().get(key)!, [-1])
      const copy = Array.from(sharer.dataSync())
      optimizer.step(variables, grads, 0.01)
      assert.ok(
        Array.from(sharer.dataSync()).every((v, i) => Object.is(v, copy[i])),
        `${key}: the tensor sharing it still holds the old values`,
      )
      assert.ok(!Array.from(optimizer.stateTensors().get(key)!.dataSync()).every((v, i) => Object.is(v, copy[i])), `${key} itself moved on`)
      sharer.dispose()
    }
  } finally {
    tf.dispose([p, ...grads.values()])
    optimizer.dispose()
  }
})
