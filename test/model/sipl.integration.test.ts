// The whole network at full size and over many steps: shapes and parameter counts of the btcv,
// lungs and brats configs, the overfit test, and cross-backend agreement (sipl.test.ts: the demo
// network's shapes, FLOPs and one training step).
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {probeBackend} from '../../src/backend/select.js'
import {UserError} from '../../src/errors.js'
import {metered} from '../../src/model/mac-meter.js'
import {targetsFromLabels} from '../../src/model/losses.js'
import {buildNet, outputShapes} from '../../src/model/summary.js'
import {relError} from '../../src/util/rel-error.js'
import {configOf, expectedParameterCount, phantom, trainingStep} from './sipl-fixtures.js'
import {expectNoLeakedTensors} from '../helpers/tensors.js'

await tf.setBackend('cpu')

test('btcv, lungs, brats configs: parameter counts, and shapes of a dry forward pass at their own patch', () => {
  const counts: Record<string, number> = {}
  for (const name of ['btcv', 'lungs', 'brats']) {
    const config = configOf(name)
    const net = buildNet(config)
    counts[name] = net.parameterCount()
    assert.equal(counts[name], expectedParameterCount(config), name)
    // a dry pass skips the convolution/matmul arithmetic but runs every reshape, so the shapes are real
    const [x, y, z] = config.preprocess.patch
    const shapes = expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const out = metered(true, () =>
          net.apply(tf.zeros([1, z, y, x, config.data.channels]) as tf.Tensor5D, {training: true, epoch: 0}),
        ).value
        return [out.logits.shape, ...out.aux.map((a) => a.shape)]
      }),
    )
    const expected = outputShapes(config, config.preprocess.patch)
    assert.deepEqual(shapes[0], expected.logits)
    assert.equal(shapes.length - 1, config.smg.scales.length * config.smg.layersPerScale)
    net.dispose()
  }
  // BraTS: 4 input channels, 3 overlapping region outputs, 4 aux classes
  const brats = outputShapes(configOf('brats'), [128, 128, 64])
  assert.deepEqual(brats.input, [1, 64, 128, 128, 4])
  assert.deepEqual(brats.logits, [1, 64, 128, 128, 3])
  assert.deepEqual(brats['aux.0'], [1, 2, 4, 4, 4])
  console.log(`# parameters: ${JSON.stringify(counts)}`)
})

test('btcv widths on a 32³ input: the real forward pass works with group norm and is refused with instance norm', () => {
  const grouped = buildNet(configOf('btcv', ['model.backbone.norm=group', 'smg.scales=[16,8,4]']))
  const shape = expectNoLeakedTensors(() =>
    tf.tidy(() => grouped.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: false, epoch: 0}).logits.shape),
  )
  assert.deepEqual(shape, [1, 32, 32, 32, 13])
  grouped.dispose()
  const instance = buildNet(configOf('btcv'))
  assert.throws(
    () =>
      tf.tidy(() => {
        instance.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: false, epoch: 0})
      }),
    (e: unknown) => e instanceof UserError && /norm=group/.test(e.message),
  )
  assert.throws(
    () =>
      tf.tidy(() => {
        instance.apply(tf.zeros([1, 48, 32, 32, 1]) as tf.Tensor5D, {training: false, epoch: 0})
      }),
    (e: unknown) => e instanceof UserError && /multiple of 32/.test(e.message) && /preprocess\.patch/.test(e.message),
  )
  instance.dispose()
  assert.throws(
    () => buildNet(configOf('demo', ['smg.scales=[12]'])),
    (e: unknown) => e instanceof UserError && /smg\.scales/.test(e.message),
  )
})

test('overfit: the demo model fits one fixed phantom patch to Dice > 0.9 within 80 steps on cpu', {timeout: 600_000}, () => {
  const config = configOf('demo')
  const net = buildNet(config)
  const {image, labels} = phantom()
  const targets = targetsFromLabels(labels, 3, false)
  const optimizer = tf.train.adam(1e-2)
  const dice = () =>
    tf.tidy(() => {
      const predicted = tf.cast(tf.greater(net.apply(image, {training: false, epoch: 0}).logits, 0), 'float32')
      const overlap = tf.sum(tf.mul(predicted, targets.regions), [0, 1, 2, 3])
      const sizes = tf.add(tf.sum(predicted, [0, 1, 2, 3]), tf.sum(targets.regions, [0, 1, 2, 3]))
      return Array.from(tf.div(tf.mul(overlap, 2), sizes).dataSync())
    })
  const losses: number[] = []
  let scores = dice()
  const started = Date.now()
  let step = 0
  for (; step < 80; step++) {
    // after the first step (which creates Adam's moments), a step leaves nothing behind
    expectNoLeakedTensors(
      () => {
        const {value, grads} = trainingStep(net, config, image, targets, step)
        optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({name, tensor})))
        losses.push(value.dataSync()[0])
        tf.dispose([value, ...Object.values(grads)])
      },
      step === 0 ? 2 * net.trainableVariables().length : 0,
    )
    if (step % 5 === 4) {
      scores = dice()
      if (Math.min(...scores) > 0.9) break
    }
  }
  console.log(
    `# overfit: ${step + 1} steps in ${((Date.now() - started) / 1000).toFixed(1)} s; loss ${losses[0].toFixed(3)} → ${losses.at(-1)!.toFixed(3)}; Dice ${scores.map((s) => s.toFixed(3)).join(' ')}`,
  )
  assert.ok(losses.at(-1)! < 0.5 * losses[0], 'loss at least halves')
  assert.ok(Math.min(...scores) > 0.9, `every class above 0.9: ${scores}`)
  optimizer.dispose()
  net.dispose()
})

test('cross-backend: forward pass and gradients agree with cpu on every other usable backend', async (t) => {
  // webgpu on a software Vulkan (lavapipe) compiles every shader on the CPU: minutes on a busy 2-core machine
  if (process.env.SIPL_TEST_CROSS_BACKEND === '0') return t.skip('SIPL_TEST_CROSS_BACKEND=0')
  const config = configOf('demo')
  // async reads: the webgpu backend cannot read synchronously in Node
  const compute = async () => {
    const net = buildNet(config)
    const {image, labels} = phantom()
    const targets = targetsFromLabels(labels, 3, false)
    const logitsTensor = tf.tidy(() => net.apply(image, {training: true, epoch: 1}).logits)
    const logits = await logitsTensor.data()
    const {value, grads} = trainingStep(net, config, image, targets, 1)
    const gradientValues = await Promise.all(net.trainableVariables().map((v) => grads[v.name].data()))
    tf.dispose([logitsTensor, value, ...Object.values(grads), image, labels, targets.regions, targets.labels])
    net.dispose()
    return {logits, gradientValues}
  }
  const reference = await expectNoLeakedTensors(compute)
  const skipped: string[] = []
  const compared: string[] = []
  for (const name of ['tensorflow', 'webgpu', 'wasm'] as const) {
    const probe = await probeBackend(name, true)
    if (!probe.loadable) {
      skipped.push(`${name}: ${probe.detail}`)
      continue
    }
    if (probe.check && !probe.check.pass) {
      skipped.push(
        `${name}: fails the conv3d self-check (rel. error ${probe.check.maxRelError.toExponential(1)}), so sipl never trains on it`,
      )
      continue
    }
    await tf.setBackend(name)
    try {
      const started = Date.now()
      const got = await compute()
      const logitError = relError(got.logits, reference.logits)
      const gradientError = Math.max(...got.gradientValues.map((g, i) => relError(g, reference.gradientValues[i])))
      assert.ok(logitError < 1e-3, `${name}: logits rel. error ${logitError}`)
      assert.ok(gradientError < 1e-2, `${name}: worst gradient rel. error ${gradientError}`)
      compared.push(name)
      console.log(
        `# ${name} agrees with cpu: logits ${logitError.toExponential(1)}, gradients ${gradientError.toExponential(1)} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
      )
    } finally {
      await tf.setBackend('cpu')
    }
  }
  await tf.setBackend('cpu')
  if (skipped.length > 0) console.log(`# not compared: ${skipped.join('; ')}`)
  // .ci/run installs lavapipe, so CI always has a WebGPU adapter
  if (process.env.CI === 'true') assert.ok(compared.includes('webgpu'), `CI=true but webgpu was not compared: ${skipped.join('; ')}`)
  if (compared.length === 0) t.skip(`no backend besides cpu is usable here (${skipped.join('; ')})`)
})
