// GPU device check (issue 7): unet-ref (src/model/unet-ref.ts) training step on `webgpu` with tfjs's stock
// conv3d kernels and with sipl's tiled ones, plus agreement of loss and gradients with `cpu`.
// sipl's rank-5 fixes (src/kernels/webgpu/rank5-fixes.ts) are on in both: without them the
// net's rank-1 biases come out as zeros on stock tfjs-backend-webgpu 4.22.
// Bundled by scripts/gpu/build-bundle.mjs into build/gpu/device-check.mjs (one file, no
// node_modules needed); run by scripts/gpu/run-device-check.sh. Prints one JSON line per
// measurement on stdout, progress on stderr.
//
//   node build/gpu/device-check.mjs --dawn build/gpu/dawn.node [--sizes 32,64,96]
//        [--check-size 16] [--kernels stock,tiled] [--warmup 2] [--steps 5] [--budget-s 200]
//        [--sipl-config experiments/btcv.yaml] [--sipl-size 96] [--sipl-steps 2]
// After unet-ref, one SIPL network from --sipl-config trains for 1 + --sipl-steps steps at
// --sipl-size³ with sipl's kernels (issue 7: "the btcv config trains at 96³ without running out of
// memory"), reporting its step times and the backend's memory (--sipl-size 0 skips it).
import {createRequire} from 'node:module'
import {performance} from 'node:perf_hooks'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {tf} from '../../src/backend/tf.js'
import {relError} from '../../src/util/rel-error.js'
import {installWebgpuKernels, setWebgpuConv3dKernels} from '../../src/kernels/webgpu/index.js'
import {UnetRef, unetRefBatch, unetRefLoss} from '../../src/model/unet-ref.js'
import {siplNetFactory} from '../../src/bench/sipl-net.js'
import {loadConfig} from '../../src/config/load.js'
import {AdamW} from '../../src/train/optimizers.js'

const started = performance.now()
const args = process.argv.slice(2)
const arg = (k, d) => {
  const i = args.indexOf(`--${k}`)
  return i < 0 ? d : args[i + 1]
}
const here = dirname(fileURLToPath(import.meta.url))
const dawnPath = arg('dawn', join(here, 'dawn.node'))
const sizes = arg('sizes', '32,64,96').split(',').map(Number)
const checkSize = Number(arg('check-size', '16'))
const kernelsList = arg('kernels', 'stock,tiled').split(',')
const warmup = Number(arg('warmup', '2'))
const steps = Number(arg('steps', '5'))
const budgetMs = Number(arg('budget-s', '200')) * 1000
const siplConfig = arg('sipl-config', 'experiments/btcv.yaml')
const siplSize = Number(arg('sipl-size', '96'))
const siplSteps = Number(arg('sipl-steps', '2'))
const emit = (o) => console.log(JSON.stringify(o))
const log = (...a) => console.error('[device-check]', ...a)
const firstLine = (e) => String(e?.message ?? e).split('\n')[0]
const tenths = (ms) => Math.round(ms * 10) / 10
/** The median and the fastest of the timed steps (ms), null when none ran. */
function stepStats(times) {
  const sorted = [...times].sort((a, b) => a - b)
  return {median: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null, min: sorted.length ? sorted[0] : null}
}

// WebGPU through Dawn: navigator.gpu must exist before the webgpu backend is imported
const require = createRequire(import.meta.url)
const {create, globals} = require(dawnPath)
Object.assign(globalThis, globals)
const gpu = create([])
globalThis.navigator = {gpu}
const adapter = await gpu.requestAdapter({powerPreference: 'high-performance'})
if (!adapter) {
  emit({error: 'no WebGPU adapter (Vulkan driver not found: check VK_DRIVER_FILES / the loader libraries)'})
  process.exit(1)
}
const info = adapter.info ?? {}
const adapterName = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ')
await import('@tensorflow/tfjs-backend-webgpu')
if (!(await tf.setBackend('webgpu'))) {
  emit({error: "tf.setBackend('webgpu') failed"})
  process.exit(1)
}
if (!installWebgpuKernels()) {
  emit({error: 'webgpu kernels not registered'})
  process.exit(1)
}
emit({event: 'start', adapter: adapterName, node: process.version, tfjs: tf.version_core, sizes, checkSize, warmup, steps})

const SEED = 1234

async function lossAndGrads(n) {
  const net = new UnetRef(SEED)
  const {x, oneHot} = unetRefBatch(n, SEED)
  const vars = net.variables()
  const {value, grads} = tf.variableGrads(() => unetRefLoss(net.apply(x), oneHot), vars)
  const out = [await value.data(), ...(await Promise.all(vars.map((v) => grads[v.name].data())))]
  tf.dispose([value, x, oneHot, ...Object.values(grads)])
  net.dispose()
  return out
}

// 1. agreement with cpu on a small volume
await tf.setBackend('cpu')
const expected = await lossAndGrads(checkSize)
await tf.setBackend('webgpu')
for (const kernels of kernelsList) {
  setWebgpuConv3dKernels(kernels)
  const actual = await lossAndGrads(checkSize)
  const errors = actual.map((a, i) => relError(a, expected[i]))
  emit({
    event: 'agreement',
    net: 'unet-ref',
    size: checkSize,
    backend: 'webgpu',
    kernels,
    loss: actual[0][0],
    cpuLoss: expected[0][0],
    maxRelErr: Math.max(...errors),
    pass: Math.max(...errors) <= 1e-4,
  })
}

// 2. training-step timing
for (const n of sizes) {
  for (const kernels of kernelsList) {
    if (performance.now() - started > budgetMs) {
      emit({event: 'skipped', net: 'unet-ref', size: n, kernels, reason: `time budget of ${budgetMs / 1000} s used`})
      continue
    }
    setWebgpuConv3dKernels(kernels)
    const net = new UnetRef(SEED)
    const {x, oneHot} = unetRefBatch(n, SEED)
    const vars = net.variables()
    const opt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8)
    const times = []
    const losses = []
    let error
    try {
      for (let i = 0; i < warmup + steps; i++) {
        const t0 = performance.now()
        const cost = opt.minimize(() => unetRefLoss(net.apply(x), oneHot), true, vars)
        const v = (await cost.data())[0]
        cost.dispose()
        const dt = performance.now() - t0
        losses.push(v)
        if (i >= warmup) times.push(dt)
        log(`${n}³ ${kernels} step ${i}: ${dt.toFixed(1)} ms loss ${v.toFixed(6)}`)
        if (performance.now() - started > budgetMs + 60000) break
      }
    } catch (e) {
      error = firstLine(e)
    }
    const {median, min} = stepStats(times)
    emit({
      net: 'unet-ref',
      size: n,
      backend: 'webgpu',
      kernels,
      adapter: adapterName,
      stepMsMedian: median,
      stepMsMin: min,
      steps: times.map(tenths),
      losses,
      finite: losses.every(Number.isFinite),
      ...(error ? {error} : {}),
    })
    opt.dispose()
    tf.dispose([x, oneHot])
    net.dispose()
  }
}
// 2b. the SIPL network of a real config (btcv: 34.6 M parameters) at its patch size, sipl's kernels
if (siplSize > 0 && performance.now() - started > budgetMs) {
  emit({event: 'skipped', net: 'sipl', config: siplConfig, size: siplSize, reason: `time budget of ${budgetMs / 1000} s used`})
} else if (siplSize > 0) {
  setWebgpuConv3dKernels('tiled')
  const times = []
  const losses = []
  let error
  let memory
  try {
    const bench = siplNetFactory(loadConfig(siplConfig).config, siplSize)(SEED)
    const {x, oneHot} = unetRefBatch(siplSize, SEED)
    // sipl's optimiser, as `sipl bench` and training use it; weight decay 0 = Adam
    const optimizer = new AdamW(0.9, 0.999, 0)
    const variables = new Map(bench.variables().map((v) => [v.name, v]))
    try {
      for (let i = 0; i < 1 + siplSteps; i++) {
        const t0 = performance.now()
        const {value, grads} = tf.variableGrads(() => bench.loss(x, oneHot), bench.variables())
        optimizer.step(variables, new Map(Object.entries(grads)), 1e-3)
        const v = (await value.data())[0]
        tf.dispose([value, ...Object.values(grads)])
        const dt = performance.now() - t0
        losses.push(v)
        if (i > 0) times.push(dt)
        log(`sipl ${siplConfig} ${siplSize}³ step ${i}: ${dt.toFixed(1)} ms loss ${v.toFixed(6)}`)
        if (performance.now() - started > budgetMs + 30000) break
      }
      memory = tf.memory()
    } finally {
      optimizer.dispose()
      tf.dispose([x, oneHot])
      bench.dispose()
    }
  } catch (e) {
    error = firstLine(e)
  }
  emit({
    net: 'sipl',
    config: siplConfig,
    size: siplSize,
    backend: 'webgpu',
    kernels: 'tiled',
    adapter: adapterName,
    stepMsMedian: stepStats(times).median,
    steps: times.map(tenths),
    losses,
    finite: losses.length > 0 && losses.every(Number.isFinite),
    ...(memory ? {memory} : {}),
    ...(error ? {error} : {}),
  })
}

// 3. per-layer conv kernel times at the largest size (where the step time goes), while time is left
const n = Math.max(...sizes)
// [layer, input size, in channels, out channels, kernel, stride]; up1/up2 are the k2 s2 transposed
// convolutions, seen as the conv3d whose input gradient they are
const LAYERS = [
  ['e1', n, 1, 16, 3, 1],
  ['e2', n, 16, 32, 3, 2],
  ['e3', n / 2, 32, 64, 3, 2],
  ['b', n / 4, 64, 64, 3, 1],
  ['up2', n / 2, 32, 64, 2, 2],
  ['d2', n / 2, 64, 32, 3, 1],
  ['up1', n, 16, 32, 2, 2],
  ['d1', n, 32, 16, 3, 1],
  ['head', n, 16, 4, 1, 1],
]
async function timeOp(f) {
  let best = Infinity
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now()
    const r = f()
    await r.data()
    r.dispose()
    if (i > 0) best = Math.min(best, performance.now() - t0)
  }
  return best
}
for (const [layer, size, cin, cout, k, stride] of LAYERS) {
  if (performance.now() - started > budgetMs) {
    emit({event: 'skipped', layer, reason: `time budget of ${budgetMs / 1000} s used`})
    continue
  }
  const pad = k === 2 ? 'valid' : 'same'
  const x = tf.randomUniform([1, size, size, size, cin])
  const w = tf.randomUniform([k, k, k, cin, cout], -0.1, 0.1)
  const y = tf.conv3d(x, w, stride, pad)
  const dy = tf.randomUniform(y.shape)
  const gflop = (2 * y.size * k ** 3 * cin) / 1e9
  const ops = {
    forward: () => tf.conv3d(x, w, stride, pad),
    inputGrad: () => tf.conv3dTranspose(dy, w, x.shape, stride, pad),
    filterGrad: () => tf.engine().runKernel('Conv3DBackpropFilterV2', {x, dy}, {strides: stride, pad, filterShape: w.shape}),
  }
  for (const [op, f] of Object.entries(ops)) {
    const row = {event: 'layer', size: n, layer, op, shape: [size, cin, cout, k, stride], gflop: Math.round(gflop * 1000) / 1000}
    for (const kernels of kernelsList) {
      setWebgpuConv3dKernels(kernels)
      try {
        const ms = await timeOp(f)
        row[`${kernels}Ms`] = Math.round(ms * 100) / 100
        row[`${kernels}Gflops`] = Math.round((gflop / (ms / 1000)) * 100) / 100
      } catch (e) {
        row[`${kernels}Error`] = firstLine(e)
      }
    }
    emit(row)
  }
  tf.dispose([x, w, y, dy])
}
setWebgpuConv3dKernels('tiled')

emit({event: 'done', seconds: Math.round((performance.now() - started) / 100) / 10})
process.exit(0)
