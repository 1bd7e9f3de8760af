/** `sipl bench` on unet-ref through the CLI: its JSON rows, its errors, and the PyTorch comparison row. */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {UnetRef} from '../../src/model/unet-ref.js'
import {sipl} from '../helpers/cli.js'
import type {BenchRow} from '../../src/bench/bench.js'
import {chmodSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

await tf.setBackend('cpu')

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

test('sipl bench --torch: a pytorch row from SIPL_PYTHON, the script gets size/steps/threads and glibc retaining memory, and ratios to it', () => {
  // a stand-in Python that records its arguments and answers like src/bench/unet_ref_torch.py
  const dir = mkdtempSync(join(tmpdir(), 'sipl-torch-'))
  const python = join(dir, 'python')
  writeFileSync(
    python,
    `#!/bin/sh\necho "$@" > ${dir}/args\necho "OMP=$OMP_NUM_THREADS MMAP_MAX=$MALLOC_MMAP_MAX_" >> ${dir}/args\n` +
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
  assert.equal(torch.torchMalloc, 'retain')
  assert.ok(Math.abs((cpu.vsTorch as number) - (cpu.stepMsMedian as number) / 0.5) < 1e-9)
  const args = readFileSync(join(dir, 'args'), 'utf8')
  assert.match(args, /unet_ref_torch\.py --size 8 --steps 2 --warmup 1 --threads 2/)
  assert.match(args, /OMP=2 MMAP_MAX=0\n/)
})

test('sipl bench --torch --rounds 2 --torch-malloc default: sipl and PyTorch take turns, each row pools both rounds, glibc untouched', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-torch-'))
  const python = join(dir, 'python')
  writeFileSync(
    python,
    `#!/bin/sh\necho "call$MALLOC_MMAP_MAX_" >> ${dir}/calls\necho "pytorch call" >&2\n` +
      `echo '{"torch": "0.0-fake", "threads": 2, "size": 8, "stepMsMedian": 0.5, "stepMsMin": 0.25, "stepMs": [0.5, 0.25], "steps": 2}'\n`,
  )
  chmodSync(python, 0o755)
  const args = ['bench', '--size', '8', '--backend', 'cpu', '--steps', '2', '--infer-size', '0', '--torch', '--rounds', '2', '--json']
  const r = sipl([...args, '--torch-malloc', 'default'], {
    env: {SIPL_PYTHON: python, SIPL_THREADS: '2'},
    timeoutMs: 120_000,
  })
  assert.equal(r.code, 0, r.stderr)
  assert.equal(readFileSync(join(dir, 'calls'), 'utf8'), 'call\ncall\n')
  // the order of the log lines: round 1's sipl steps, then PyTorch, then round 2's
  const order = r.stderr
    .split('\n')
    .map((line) => (/^round \d/.test(line) ? line : /^cpu: step/.test(line) ? 'sipl' : /^pytorch: /.test(line) ? 'pytorch' : ''))
    .filter((line) => line !== '')
    .filter((line, i, all) => line !== all[i - 1])
  assert.deepEqual(order, ['round 1 of 2', 'sipl', 'pytorch', 'round 2 of 2', 'sipl', 'pytorch'])
  const {rows} = JSON.parse(r.stdout) as {rows: (BenchRow & Record<string, unknown>)[]}
  const [cpu, torch] = rows
  assert.equal(cpu.steps, 4)
  assert.equal(cpu.rounds, 2)
  assert.equal(cpu.stepMs!.length, 4)
  assert.deepEqual(torch.stepMs, [0.5, 0.25, 0.5, 0.25])
  assert.equal(torch.stepMsMedian, 0.375)
  assert.equal(torch.torchMalloc, 'default')
  assert.ok(Math.abs((cpu.vsTorch as number) - (cpu.stepMsMedian as number) / 0.375) < 1e-9)
  // the agreement check with the reference kernels ran once, in the first round
  assert.equal(r.stderr.match(/reference: loss and gradient norms/g)?.length, 1)
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

test('sipl bench --torch-malloc without --torch: one line saying to add --torch, exit code 2', () => {
  const r = sipl(['bench', '--backend', 'cpu', '--infer-size', '0', '--torch-malloc', 'default'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--torch-malloc default: .*add --torch/)
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/)
})
