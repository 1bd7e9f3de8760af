/**
 * A stand-in for `sipl train` / `sipl eval` that trials run in the executor tests, so those tests
 * check the executors and collection in a second rather than in minutes of training. It reads the
 * trial's config.yaml like the real commands and writes what they write (checkpoints/last,
 * eval/summary.json, eval/per-case.csv). Control files in $FAKE_SIPL_CONTROL/<trial name>.<what>:
 *   .fail   train exits 2 with an 'Error: …' line
 *   .sleep  train sleeps that many seconds first (to be cancelled)
 * Every call is appended to $FAKE_SIPL_CONTROL/calls.log.
 */
import {chmodSync, mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

const SOURCE = `#!/usr/bin/env node
import {appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {basename, join} from 'node:path'
const [command, ...rest] = process.argv.slice(2)
const arg = (name) => rest[rest.indexOf(name) + 1]
const control = process.env.FAKE_SIPL_CONTROL
if (command === 'preprocess') {
  appendFileSync(join(control, 'calls.log'), 'preprocess ' + basename(join(arg('--config'), '..')) + '\\n')
  process.exit(0)
}
const dir = command === 'train' ? arg('--out') : arg('--run')
const name = basename(dir)
appendFileSync(join(control, 'calls.log'), [command, name, ...rest.filter((a) => a === '--resume' || a === '--json')].join(' ') + '\\n')
const config = readFileSync(command === 'train' ? arg('--config') : join(dir, 'config.yaml'), 'utf8')
const queries = Number(/^  queries: (\\d+)$/m.exec(config)[1])
const seed = Number(/^seed: (-?\\d+)$/m.exec(config)[1])
if (command === 'train') {
  const sleep = join(control, name + '.sleep')
  if (existsSync(sleep)) await new Promise((r) => setTimeout(r, 1000 * Number(readFileSync(sleep, 'utf8'))))
  if (existsSync(join(control, name + '.fail'))) {
    console.error('Error: forced failure of ' + name)
    process.exit(2)
  }
  mkdirSync(join(dir, 'checkpoints', 'last'), {recursive: true})
  writeFileSync(join(dir, 'checkpoints', 'last', 'state.json'), '{}')
} else if (command === 'eval') {
  const cases = ['case1', 'case2', 'case3']
  // per-case Dice grows with the number of queries and differs a little per case and seed
  // without IPL every case loses 0.1 + i/100 (so an ablation has a known Δ and p)
  const noIpl = /^  ipl: false$/m.test(config)
  const perCase = Object.fromEntries(cases.map((c, i) => [c, 0.5 + queries / 100 + i / 50 + (seed % 5) / 1000 - (noIpl ? 0.1 + i / 100 : 0)]))
  const meanDice = Object.values(perCase).reduce((a, b) => a + b, 0) / cases.length
  const protocol = (/^  protocol: (\\w+)$/m.exec(config) ?? [null, 'strict'])[1]
  const classes = ['liver', 'spleen', 'kidney']
  const perClass = Object.fromEntries(classes.map((c, k) => [c, {dice: meanDice + (k - 1) / 100, hd95: 2 + k, surfaceDice: 0.9}]))
  mkdirSync(join(dir, 'eval'), {recursive: true})
  writeFileSync(join(dir, 'eval', 'summary.json'), JSON.stringify({protocol, meanDice, meanHd95: 3, perClass, cases, perCase, classes}))
  writeFileSync(join(dir, 'eval', 'per-case.csv'), 'case,class,dice\\n' + cases.map((c) => c + ',liver,' + perCase[c]).join('\\n') + '\\n')
  console.log(JSON.stringify({meanDice}))
} else {
  console.error('fake sipl: unknown command ' + command)
  process.exit(1)
}
`

/** Writes the fake into `dir` and returns its path and its control folder. */
export function writeFakeSipl(dir: string): {command: string; control: string} {
  const control = join(dir, 'control')
  mkdirSync(control, {recursive: true})
  writeFileSync(join(control, 'calls.log'), '')
  const command = join(dir, 'fake-sipl.mjs')
  writeFileSync(command, SOURCE)
  chmodSync(command, 0o755)
  return {command, control}
}
