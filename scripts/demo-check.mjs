#!/usr/bin/env node
// The README's demo, checked: train + eval of experiments/demo.yaml in a fresh folder, then the
// held-out mean Dice must reach the floor (issue 5: ≥ 0.85). Prints the wall time; never fails on
// time (timings belong to benchmarks), only on the result.
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const floor = Number(process.env.SIPL_DEMO_MIN_DICE ?? '0.85')
const cwd = mkdtempSync(join(tmpdir(), 'sipl-demo-'))
const run = (args) => {
  const result = spawnSync(process.execPath, [join(root, 'bin/run.js'), ...args], {
    cwd,
    stdio: 'inherit',
    env: {...process.env, SIPL_RUNS_DIR: '', SIPL_DATA_DIR: ''},
  })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
const started = Date.now()
run(['train', '-c', join(root, 'experiments/demo.yaml')])
run(['eval', '--run', 'runs/demo'])
const seconds = Math.round((Date.now() - started) / 1000)
const summary = JSON.parse(readFileSync(join(cwd, 'runs/demo/eval/summary.json'), 'utf8'))
const verdict = summary.meanDice >= floor ? 'ok' : 'FAIL'
console.log(
  `demo: mean Dice ${summary.meanDice.toFixed(4)} on ${summary.cases.length} held-out cases (floor ${floor}) in ${seconds} s: ${verdict}`,
)
process.exit(verdict === 'ok' ? 0 : 1)
