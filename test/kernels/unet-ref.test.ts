/**
 * The whole unet-ref training step (issue 7's benchmark network) with sipl's cpu kernels agrees
 * with the same step on tfjs's reference kernels, and `sipl bench` reports it.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../../src/backend/tf.js'
import {withReferenceConvKernels} from '../../src/kernels/register.js'
import {UnetRef, unetRefBatch, unetRefLoss} from '../../src/bench/unet-ref.js'
import {sipl} from '../helpers/cli.js'
import {chmodSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

await tf.setBackend('cpu')

/** loss, gradients and their norms, then the weights and the loss after two Adam steps */
function trainTwoSteps(): {loss: number; gradNorms: number[]; gradients: Float32Array[]; weights: Float32Array[]; lossAfter: number} {
  const net = new UnetRef(3)
  const {x, oneHot} = unetRefBatch(8, 3)
  const {value, grads} = tf.variableGrads(() => unetRefLoss(net.apply(x), oneHot), net.variables())
  const loss = value.dataSync()[0]
  const gradNorms = net.variables().map((v) => tf.tidy(() => tf.norm(grads[v.name]).dataSync()[0]))
  const gradients = net.variables().map((v) => grads[v.name].dataSync() as Float32Array)
  tf.dispose([value, ...Object.values(grads)])
  const optimizer = tf.train.adam(1e-3)
  for (let i = 0; i < 2; i++) optimizer.minimize(() => unetRefLoss(net.apply(x), oneHot), true, net.variables())?.dispose()
  const weights = net.variables().map((v) => v.dataSync() as Float32Array)
  const lossAfter = tf.tidy(() => unetRefLoss(net.apply(x), oneHot).dataSync()[0])
  optimizer.dispose()
  net.dispose()
  tf.dispose([x, oneHot])
  return {loss, gradNorms, gradients, weights, lossAfter}
}

test('unet-ref: loss, every gradient norm, the kernels and the loss after two Adam steps agree with the reference kernels', () => {
  const before = tf.memory().numTensors
  const fast = trainTwoSteps()
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors')
  const reference = withReferenceConvKernels(trainTwoSteps)
  const rel = (a: number, e: number) => Math.abs(a - e) / Math.abs(e)
  assert.ok(rel(fast.loss, reference.loss) <= 1e-4, `loss ${fast.loss} vs ${reference.loss}`)
  // a 4-class softmax at initialisation: cross-entropy near ln 4, Dice loss in (0, 1)
  assert.ok(fast.loss > 1 && fast.loss < Math.log(4) + 1.5, `loss ${fast.loss}`)
  fast.gradNorms.forEach((g, i) =>
    assert.ok(rel(g, reference.gradNorms[i]) <= 1e-4, `gradient norm ${i}: ${g} vs ${reference.gradNorms[i]}`),
  )
  assert.ok(rel(fast.lossAfter, reference.lossAfter) <= 1e-4, `loss after two steps ${fast.lossAfter} vs ${reference.lossAfter}`)
  assert.ok(fast.lossAfter < fast.loss, 'two Adam steps lower the loss')
  // every gradient element (Winograd rounds differently from the reference: ~1e-5 of the largest)
  fast.gradients.forEach((g, i) => {
    const scale = Math.max(...reference.gradients[i].map(Math.abs))
    const diff = Math.max(...g.map((v, j) => Math.abs(v - reference.gradients[i][j])))
    assert.ok(diff / scale <= 1e-4, `gradient ${i}: relative difference ${diff / scale}`)
  })
  // kernels only (even indices), and only where the gradient is not rounding noise: Adam's first steps
  // move every weight by ≈ ±lr·sign(g), so a weight whose gradient is ~1e-6 of the largest (or a bias of a
  // dead ReLU channel, g = 0) moves by ±lr on the sign of that noise; that is Adam, not the kernels
  fast.weights.forEach((w, i) => {
    if (i % 2 === 1) return
    const g = reference.gradients[i]
    const gMax = Math.max(...g.map(Math.abs))
    const scale = Math.max(...reference.weights[i].map(Math.abs))
    const diff = Math.max(...w.map((v, j) => (Math.abs(g[j]) > 1e-3 * gMax ? Math.abs(v - reference.weights[i][j]) : 0)))
    assert.ok(diff / scale <= 1e-4, `kernel ${i / 2}: relative difference ${diff / scale}`)
  })
  // 18 variables: 9 layers × (kernel, bias)
  assert.equal(fast.gradNorms.length, 18)
})

test('sipl bench --json: one row per backend with the agreed schema, agreement ≤ 1e-4, and the process exits', () => {
  const r = sipl(['bench', '--size', '8', '--backend', 'cpu', '--steps', '2', '--infer-size', '16', '--json'], {timeoutMs: 120_000})
  assert.equal(r.code, 0, r.stderr)
  const {rows} = JSON.parse(r.stdout) as {rows: Record<string, unknown>[]}
  assert.equal(rows.length, 1)
  const row = rows[0]
  for (const key of ['net', 'size', 'backend', 'stepMsMedian', 'stepMsMin', 'inferMs', 'maxRelErr']) assert.ok(key in row, key)
  assert.equal(row.net, 'unet-ref')
  assert.equal(row.size, 8)
  assert.equal(row.backend, 'cpu')
  assert.ok((row.stepMsMin as number) > 0 && (row.stepMsMin as number) <= (row.stepMsMedian as number))
  assert.ok((row.inferMs as number) > 0)
  assert.ok((row.maxRelErr as number) <= 1e-4, `maxRelErr ${row.maxRelErr}`)
  // peak tensor memory of the warm-up step: at least the parameters, the batch and the activations
  // the backward needs (all alive when it starts); at most that with gradients and Adam's two
  // moments on top, with room to spare
  const net = new UnetRef(1)
  const parameters = net.variables().reduce((sum, v) => sum + v.size, 0)
  net.dispose()
  const n = 8
  const voxels = (edge: number) => edge ** 3
  // x and its one-hot label; e1, up1, d1 (16 channels), logits and softmax (4) at n³; e2, up2, d2 (32) at (n/2)³; e3, b (64) at (n/4)³
  const activations = voxels(n) * (1 + 4 + 3 * 16 + 2 * 4) + voxels(n / 2) * 3 * 32 + voxels(n / 4) * 2 * 64
  const peak = row.peakTensorBytes as number
  assert.ok(peak >= 4 * (parameters + activations), `peak ${peak} B < parameters + activations ${4 * (parameters + activations)} B`)
  assert.ok(peak <= 2 * 4 * (4 * parameters + activations), `peak ${peak} B`)
})

test('sipl bench rejects a size the net cannot take, with exit code 2', () => {
  const r = sipl(['bench', '--size', '10', '--backend', 'cpu', '--infer-size', '0'], {timeoutMs: 60_000})
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--size 10: must be a positive multiple of 4/)
})

test('sipl bench --torch: a pytorch row from SIPL_PYTHON, the script gets size/steps/threads, and ratios to it', () => {
  // a stand-in Python that records its arguments and answers like bench/unet_ref_torch.py
  const dir = mkdtempSync(join(tmpdir(), 'sipl-torch-'))
  const python = join(dir, 'python')
  writeFileSync(
    python,
    `#!/bin/sh\necho "$@" > ${dir}/args\necho "OMP=$OMP_NUM_THREADS" >> ${dir}/args\n` +
      `echo '{"torch": "0.0-fake", "threads": 2, "size": 8, "stepMsMedian": 0.5, "stepMsMin": 0.25, "steps": 2}'\n`,
  )
  chmodSync(python, 0o755)
  const r = sipl(['bench', '--size', '8', '--backend', 'cpu', '--steps', '2', '--infer-size', '0', '--torch', '--json'], {
    env: {SIPL_PYTHON: python, SIPL_THREADS: '2'},
    timeoutMs: 120_000,
  })
  assert.equal(r.code, 0, r.stderr)
  const {rows} = JSON.parse(r.stdout) as {rows: Record<string, number | string | null>[]}
  assert.deepEqual(
    rows.map((row) => row.backend),
    ['cpu', 'pytorch'],
  )
  const [cpu, torch] = rows
  assert.equal(torch.stepMsMedian, 0.5)
  assert.equal(torch.torch, '0.0-fake')
  assert.ok(Math.abs((cpu.vsTorch as number) - (cpu.stepMsMedian as number) / 0.5) < 1e-9)
  const args = readFileSync(join(dir, 'args'), 'utf8')
  assert.match(args, /unet_ref_torch\.py --size 8 --steps 2 --warmup 1 --threads 2/)
  assert.match(args, /OMP=2/)
})

test('sipl bench --torch without a working torch: one line naming SIPL_PYTHON, exit code 2', () => {
  const r = sipl(['bench', '--size', '8', '--backend', 'cpu', '--steps', '1', '--infer-size', '0', '--torch', '--no-check'], {
    env: {SIPL_PYTHON: '/nonexistent/python3'},
    timeoutMs: 120_000,
  })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--torch: .*set SIPL_PYTHON to a Python with torch installed/)
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/)
})
