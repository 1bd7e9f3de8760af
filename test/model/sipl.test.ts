// The demo network: shapes with each ablation and parameter counts from an independent formula,
// the FLOP estimate, and gradients reaching every variable (sipl.integration.test.ts: the full-size
// configs, the overfit test and cross-backend agreement).
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {metered} from '../../src/model/mac-meter.js'
import {fusedKernelsActive, sigmoidProbabilities} from '../../src/kernels/fused.js'
import {withReferenceCpuKernels} from '../../src/kernels/register.js'
import {targetsFromLabels} from '../../src/model/losses.js'
import {buildNet, dryForwardMacs, outputShapes, summarizeModel} from '../../src/model/summary.js'
import {configOf, expectedParameterCount, phantom, trainingStep} from './sipl-fixtures.js'
import {expectNoLeakedTensors} from '../helpers/tensors.js'

await tf.setBackend('cpu')

test('demo config: real forward shapes and parameter count, with each ablation', () => {
  for (const sets of [[], ['model.ipl=false'], ['model.smg=false'], ['model.cpp.init=onehot']]) {
    const config = configOf('demo', sets)
    const net = buildNet(config)
    assert.equal(net.parameterCount(), expectedParameterCount(config), sets.join(' '))
    // forward inside tidy leaves no tensors behind
    const shapes = expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const out = net.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: true, epoch: 1})
        assert.ok(out.logits.dataSync().every(Number.isFinite))
        return [out.logits.shape, ...out.aux.map((a) => a.shape)]
      }),
    )
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

test("FLOP estimate: the same with sipl's whole-layer kernels as with the op composition (a counted pass takes the composition)", () => {
  assert.ok(fusedKernelsActive(), "sipl's kernels run on cpu here")
  const net = buildNet(configOf('demo'))
  try {
    const fast = dryForwardMacs(net, [32, 32, 32])
    assert.equal(
      withReferenceCpuKernels(() => dryForwardMacs(net, [32, 32, 32])),
      fast,
    )
    // and more than the backbone alone: the six kMaX layers' dense maps and products are in it
    const backboneOnly = buildNet(configOf('demo', ['model.smg=false']))
    try {
      assert.ok(fast > dryForwardMacs(backboneOnly, [32, 32, 32]), 'the SMG layers are counted')
    } finally {
      backboneOnly.dispose()
    }
  } finally {
    net.dispose()
  }
})

test('FLOP estimate: the affine extrapolation in voxels is exact, and dry and real passes count the same', () => {
  const config = configOf('demo')
  const net = buildNet(config)
  const real = expectNoLeakedTensors(() =>
    tf.tidy(() => metered(false, () => net.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: true, epoch: 0})).macs),
  )
  assert.equal(
    expectNoLeakedTensors(() => dryForwardMacs(net, [32, 32, 32])),
    real,
  )
  const a = dryForwardMacs(net, [32, 32, 32])
  const b = dryForwardMacs(net, [64, 32, 32])
  const perVoxel = (b - a) / 32 ** 3
  assert.equal(dryForwardMacs(net, [64, 64, 32]), a + perVoxel * 3 * 32 ** 3)
  net.dispose()
  const summary = summarizeModel(configOf('demo', ['preprocess.patch=[64,64,32]']))
  assert.ok(Math.abs(summary.flops.forwardGFlops - (2 * (a + perVoxel * 3 * 32 ** 3)) / 1e9) < 1e-9)
  assert.equal(summary.parameters.total, expectedParameterCount(config))
})

test('one training step: every trainable variable receives a finite, non-zero gradient (full model and both ablations)', () => {
  const {image, labels} = phantom()
  for (const sets of [[], ['model.ipl=false'], ['model.smg=false']]) {
    const config = configOf('demo', sets)
    const net = buildNet(config)
    const targets = targetsFromLabels(labels, 3, false)
    const started = Date.now()
    // a training step leaves only the loss and one gradient per trainable variable
    const {value, grads} = expectNoLeakedTensors(() => trainingStep(net, config, image, targets, 1), 1 + net.trainableVariables().length)
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
    tf.dispose([targets.regions, targets.labels])
    net.dispose()
  }
})

test('inference probabilities in one kernel (the full-resolution end, product, shift, σ): the same bits as σ of the logits, batch 1 and 2, 3 and 13 classes, both heads, with and without the class bias, other strides and groups', async () => {
  assert.ok(fusedKernelsActive(), "sipl's kernels run on cpu here")
  const demo = buildNet(configOf('demo'))
  const profile = await tf.profile(() => demo.probabilities(tf.zeros([1, 32, 32, 32, 1]) as tf.Tensor5D, 3))
  tf.dispose(profile.result as tf.Tensor)
  demo.dispose()
  const names = profile.kernels.map((k) => k.name)
  assert.ok(names.includes('SiplFullResolutionProbabilities'), 'the full-resolution end and the head ran as one kernel')
  for (const separate of ['SiplPrototypeSigmoid', 'SiplSigmoid']) assert.ok(!names.includes(separate), `no ${separate} beside it`)
  const fullResolutionNorms = profile.kernels.filter((k) => k.name === 'SiplGroupNorm' && k.inputShapes[0]?.[0] === 32 ** 3)
  assert.equal(fullResolutionNorms.length, 0, 'no norm of its own at full resolution')
  const variants: [string, string[]][] = [
    ['demo, batch 2', []],
    ['13 classes (≥ 8 columns)', ['data.classes=[a,b,c,d,e,f,g,h,i,j,k,l,m]']],
    ['no class bias', ['model.classBias=false']],
    ['plain prototypes (−IPL)', ['model.ipl=false']],
    ['stride-2 stem, 2 groups', ['model.backbone.patchStride=2', 'model.backbone.groups=2']],
    // not a multiple of 8: im2col and the scatter with its residual pass instead of the direct jobs
    ['embedding width 12', ['model.backbone.embedDim=12']],
  ]
  for (const [name, sets] of variants) {
    const net = buildNet(configOf('demo', sets))
    // a new net's biases and norm shifts are zeros and its norm scales ones: random ones, so that
    // the shift (b·g_k + b_k) and every operand of the full-resolution end count
    tf.tidy(() => {
      for (const [param, v] of net.namedVariables())
        if (/(bias|classBias|gamma|beta)$/.test(param)) v.assign(tf.randomNormal(v.shape, 0, 1, 'float32', param.length))
    })
    try {
      for (const batch of name === 'demo, batch 2' ? [1, 2] : [2]) {
        expectNoLeakedTensors(() =>
          tf.tidy(() => {
            const x = tf.randomNormal([batch, 32, 32, 32, 1], 0, 1, 'float32', 7) as tf.Tensor5D
            const fused = net.probabilities(x, 3).dataSync() as Float32Array
            const unfused = sigmoidProbabilities(net.apply(x, {training: false, epoch: 3}).logits).dataSync() as Float32Array
            assert.equal(fused.length, unfused.length, name)
            assert.ok(
              fused.every((v, i) => Object.is(v, unfused[i])),
              `${name}, batch ${batch}: the same bits`,
            )
            // and the op composition on tfjs's kernels (the whole net rounds differently: ~1e-5 apart)
            const reference = withReferenceCpuKernels(() => net.probabilities(x, 3).dataSync() as Float32Array)
            const worst = fused.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i])), 0)
            assert.ok(worst <= 2e-4, `${name}, batch ${batch}: ${worst} from the composition`)
          }),
        )
      }
    } finally {
      net.dispose()
    }
  }
})
