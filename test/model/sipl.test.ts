// The whole network: shapes for every shipped config, parameter counts from an independent
// formula, gradients reaching every variable, the overfit test, and cross-backend agreement.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../../src/backend/tf.js'
import {probeBackend} from '../../src/backend/select.js'
import {loadConfig} from '../../src/config/load.js'
import type {ExperimentConfig} from '../../src/config/schema.js'
import {UserError} from '../../src/errors.js'
import {metered} from '../../src/model/layers.js'
import {siplLoss, targetsFromLabels} from '../../src/model/losses.js'
import {SiplNet} from '../../src/model/sipl.js'
import {buildNet, dryForwardMacs, outputShapes, summarizeModel} from '../../src/model/summary.js'

await tf.setBackend('cpu')

const configOf = (name: string, sets: string[] = []) => loadConfig(`experiments/${name}.yaml`, sets).config

/** Trainable parameters of the config's network, counted from the architecture description alone. */
function expectedParameterCount(c: ExperimentConfig): number {
  const {widths, depths, patchStride: p, embedDim: e} = c.model.backbone
  const cin = c.data.channels
  const k = c.data.classes.length
  const conv = (size: number, i: number, o: number) => size ** 3 * i * o
  const norm = (ch: number) => 2 * ch
  const dense = (i: number, o: number, bias = true) => i * o + (bias ? o : 0)
  let n = conv(3, cin, e) + norm(e) // full-resolution branch
  n += conv(p, cin, widths[0]) + norm(widths[0]) // stem
  widths.forEach((w, i) => {
    if (i > 0) n += conv(3, widths[i - 1], w) + norm(w) // stride-2 downsampling
    n += depths[i] * 2 * (conv(3, w, w) + norm(w)) // residual blocks
  })
  for (let i = widths.length - 2; i >= 0; i--)
    n += conv(2, widths[i + 1], widths[i]) + widths[i] + conv(3, 2 * widths[i], widths[i]) + norm(widths[i])
  n += conv(p, widths[0], e) + e + norm(e) + dense(e, e) // out: upsampling, norm, 1×1×1 projection
  const dq = c.smg.queryDim
  const strides = widths.map((_, i) => p * 2 ** i)
  if (c.model.smg) {
    n += c.model.queries * dq
    for (const s of c.smg.scales) {
      const ch = widths[strides.indexOf(s)]
      const layer =
        dense(ch, dq) +
        norm(dq) +
        dense(dq, dq) + // pixel projection, its LN, pixel head
        norm(dq) +
        dense(dq, dq) + // mask-kernel LN and projection
        dense(dq, dq) +
        dq +
        dense(dq, dq, false) + // values, RMS norm, cross-attention output
        norm(dq) +
        dense(dq, 3 * dq) +
        dense(dq, dq) + // self-attention
        norm(dq) +
        dense(dq, c.smg.ffnHidden) +
        dense(c.smg.ffnHidden, dq) + // FFN
        norm(dq) +
        dense(dq, dq) +
        dense(dq, k + 1) // cluster-to-class MLP
      n += c.smg.layersPerScale * layer
    }
  } else {
    n += dense(widths[strides.indexOf(Math.min(...c.smg.scales))], k + 1)
  }
  const di = widths.at(-1)!
  if (c.model.ipl) {
    n += c.model.cpp.init === 'random' ? k * di : dense(k, di) // onehot: K → d_i map
    n += dense(2 * di, c.model.prototypeHidden) + dense(c.model.prototypeHidden, e)
    n += c.model.classBias ? k : 0
  } else {
    n += k * e + (c.model.classBias ? k : 0)
  }
  return n
}

test('demo config: real forward shapes and parameter count, with each ablation', () => {
  for (const sets of [[], ['model.ipl=false'], ['model.smg=false'], ['model.cpp.init=onehot']]) {
    const config = configOf('demo', sets)
    const net = buildNet(config)
    assert.equal(net.parameterCount(), expectedParameterCount(config), sets.join(' '))
    const before = tf.memory().numTensors
    const shapes = tf.tidy(() => {
      const out = net.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: true, epoch: 1})
      assert.ok(out.logits.dataSync().every(Number.isFinite))
      return [out.logits.shape, ...out.aux.map((a) => a.shape)]
    })
    assert.equal(tf.memory().numTensors, before, 'forward inside tidy leaves no tensors behind')
    const expected = outputShapes(config, [32, 32, 32])
    assert.deepEqual(shapes, [
      expected.logits,
      ...Object.keys(expected)
        .filter((k) => k.startsWith('aux'))
        .map((k) => expected[k]),
    ])
    net.dispose()
  }
})

test('btcv, lungs, brats configs: parameter counts, and shapes of a dry forward pass at their own patch', () => {
  const counts: Record<string, number> = {}
  for (const name of ['btcv', 'lungs', 'brats']) {
    const config = configOf(name)
    const net = buildNet(config)
    counts[name] = net.parameterCount()
    assert.equal(counts[name], expectedParameterCount(config), name)
    // a dry pass skips the convolution/matmul arithmetic but runs every reshape, so the shapes are real
    const [x, y, z] = config.preprocess.patch
    const shapes = tf.tidy(() => {
      const out = metered(true, () =>
        net.apply(tf.zeros([1, z, y, x, config.data.channels]) as tf.Tensor5D, {training: true, epoch: 0}),
      ).value
      return [out.logits.shape, ...out.aux.map((a) => a.shape)]
    })
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
  const shape = tf.tidy(() => grouped.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: false, epoch: 0}).logits.shape)
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

test('FLOP estimate: the affine extrapolation in voxels is exact, and dry and real passes count the same', () => {
  const config = configOf('demo')
  const net = buildNet(config)
  const real = tf.tidy(
    () => metered(false, () => net.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: true, epoch: 0})).macs,
  )
  assert.equal(dryForwardMacs(net, [32, 32, 32]), real)
  const a = dryForwardMacs(net, [32, 32, 32])
  const b = dryForwardMacs(net, [64, 32, 32])
  const perVoxel = (b - a) / 32 ** 3
  assert.equal(dryForwardMacs(net, [64, 64, 32]), a + perVoxel * 3 * 32 ** 3)
  net.dispose()
  const summary = summarizeModel(configOf('demo', ['preprocess.patch=[64,64,32]']))
  assert.ok(Math.abs(summary.flops.forwardGFlops - (2 * (a + perVoxel * 3 * 32 ** 3)) / 1e9) < 1e-9)
  assert.equal(summary.parameters.total, expectedParameterCount(config))
})

/** a 32³ phantom: background, a bright sphere (1), a mid-grey box (2), a dark ellipsoid (3), mild texture */
function phantom(): {image: tf.Tensor5D; labels: tf.Tensor4D} {
  const n = 32
  const image = new Float32Array(n ** 3)
  const labels = new Int32Array(n ** 3)
  for (let z = 0; z < n; z++)
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n; x++) {
        const i = x + n * (y + n * z)
        let label = 0
        if ((x - 10) ** 2 + (y - 10) ** 2 + (z - 16) ** 2 < 49) label = 1
        else if (Math.abs(x - 22) < 5 && Math.abs(y - 21) < 6 && Math.abs(z - 12) < 5) label = 2
        else if (((x - 19) / 7) ** 2 + ((y - 7) / 4) ** 2 + ((z - 25) / 5) ** 2 < 1) label = 3
        labels[i] = label
        image[i] = [0, 1, 0.66, 0.33][label] + 0.05 * Math.sin(0.9 * x + 1.7 * y + 2.3 * z)
      }
  return {image: tf.tensor5d(image, [1, n, n, n, 1]), labels: tf.tensor4d(labels, [1, n, n, n], 'int32')}
}

function trainingStep(net: SiplNet, config: ExperimentConfig, x: tf.Tensor5D, t: ReturnType<typeof targetsFromLabels>, epoch: number) {
  return tf.variableGrads(() => siplLoss(net.apply(x, {training: true, epoch}), t, config.loss).total, net.trainableVariables())
}

test('one training step: every trainable variable receives a finite, non-zero gradient (full model and both ablations)', () => {
  const {image, labels} = phantom()
  for (const sets of [[], ['model.ipl=false'], ['model.smg=false']]) {
    const config = configOf('demo', sets)
    const net = buildNet(config)
    const targets = targetsFromLabels(labels, 3, false)
    const tensorsBefore = tf.memory().numTensors
    const started = Date.now()
    const {value, grads} = trainingStep(net, config, image, targets, 1)
    if (sets.length === 0) console.log(`# one demo training step on cpu: ${Date.now() - started} ms`)
    const names = new Map([...net.namedVariables()].map(([name, v]) => [v.name, name]))
    const bad: string[] = []
    for (const v of net.trainableVariables()) {
      const g = grads[v.name]
      const values = g?.dataSync()
      if (!values || !values.every(Number.isFinite) || !values.some((e) => e !== 0)) bad.push(names.get(v.name)!)
    }
    assert.deepEqual(bad, [], `${sets.join(' ') || 'full model'}: variables without a finite non-zero gradient`)
    tf.dispose([value, ...Object.values(grads)])
    assert.equal(tf.memory().numTensors, tensorsBefore, 'a training step leaks no tensors')
    tf.dispose([targets.regions, targets.labels])
    net.dispose()
  }
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
    const {value, grads} = trainingStep(net, config, image, targets, step)
    optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({name, tensor})))
    losses.push(value.dataSync()[0])
    tf.dispose([value, ...Object.values(grads)])
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
  const reference = await compute()
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
      const rel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
        let d = 0
        let s = 0
        for (let i = 0; i < b.length; i++) {
          d = Math.max(d, Math.abs(a[i] - b[i]))
          s = Math.max(s, Math.abs(b[i]))
        }
        return d / s
      }
      const logitError = rel(got.logits, reference.logits)
      const gradientError = Math.max(...got.gradientValues.map((g, i) => rel(g, reference.gradientValues[i])))
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
