import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PROTOCOL_DESCRIPTIONS} from '../../src/evaluate/evaluate.js'
import {collect, protocolCaption, type AblationRow} from '../../src/experiments/collect.js'
import {writeExperiment, type ExperimentRecord} from '../../src/experiments/layout.js'

/** An ablation directory with hand-written eval summaries, as `sipl eval` would leave them. */
function ablationDir(perCase: Record<string, Record<string, number> | 'failed'>, protocols: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-collect-'))
  const names = Object.keys(perCase)
  const record: ExperimentRecord = {
    format: 1,
    kind: 'ablate',
    name: 'btcv',
    createdAt: new Date().toISOString(),
    sipl: ['/bin/false'],
    base: {sets: []},
    classes: ['spleen', 'liver'],
    trials: names.map((name, index) => ({
      index,
      name,
      variant: name,
      label: name === 'full' ? 'SIPL (full)' : `− ${name.slice(3).toUpperCase()}`,
      params: {},
      overrides: [],
    })),
  }
  writeExperiment(dir, record, new Map())
  for (const [index, name] of names.entries()) {
    const trial = join(dir, 'trials', name)
    const scores = perCase[name]
    if (scores === 'failed') {
      writeFileSync(join(trial, 'trial.json'), JSON.stringify({state: 'failed', index, exitCode: 1}))
      writeFileSync(join(trial, 'trial.log'), 'Error: out of memory\n')
      continue
    }
    const values = Object.values(scores)
    const meanDice = values.reduce((a, b) => a + b, 0) / values.length
    mkdirSync(join(trial, 'eval'), {recursive: true})
    writeFileSync(
      join(trial, 'eval', 'summary.json'),
      JSON.stringify({
        protocol: protocols[name] ?? 'sipl',
        meanDice,
        perClass: {spleen: {dice: meanDice + 0.01, hd95: 4}, liver: {dice: meanDice - 0.01, hd95: 2}},
        cases: Object.keys(scores),
        perCase: scores,
      }),
    )
    writeFileSync(join(trial, 'trial.json'), JSON.stringify({state: 'done', index, exitCode: 0}))
  }
  return dir
}

test('ablation table: full model first, Δ mean and the paired t-test p against it (checked against scipy)', () => {
  const dir = ablationDir({
    full: {a: 0.8, b: 0.7, c: 0.9, d: 0.6},
    'no-ipl': {a: 0.7, b: 0.65, c: 0.8, d: 0.6},
    'no-smg': 'failed',
  })
  const record = JSON.parse(readFileSync(join(dir, 'experiment.json'), 'utf8')) as ExperimentRecord
  const result = collect(dir, record)
  const rows = result.rows as AblationRow[]
  assert.deepEqual(
    rows.map((r) => [r.name, r.state]),
    [
      ['full', 'done'],
      ['no-ipl', 'done'],
      ['no-smg', 'failed'],
    ],
  )
  assert.equal(rows[0].delta, null)
  assert.equal(rows[0].p, null)
  // means 0.75 and 0.6875 → Δ = −0.0625
  assert.ok(Math.abs(rows[1].delta! + 0.0625) < 1e-12)
  // d = [−0.1, −0.05, −0.1, 0]: mean −0.0625, sd √(0.006875/3), t = −2.61116, df 3;
  // scipy.stats.ttest_rel([.7,.65,.8,.6], [.8,.7,.9,.6]).pvalue = 0.07960498081790635
  assert.ok(Math.abs(rows[1].p! - 0.07960498081790635) < 1e-9, `p = ${rows[1].p}`)
  assert.equal(rows[1].pairedCases, 4)
  assert.equal(rows[2].delta, null)
  assert.match(rows[2].detail ?? '', /out of memory/)

  const md = readFileSync(join(dir, 'results.md'), 'utf8')
  const table = md.split('\n').filter((l) => l.startsWith('|'))
  assert.equal(table[0], '| variant | state | spleen | liver | mean | Δ mean vs full (points) | p (paired t, vs full) | cases |')
  assert.equal(table[2], '| SIPL (full) | done | 76.00 | 74.00 | 75.00 |  |  |  |')
  assert.equal(table[3], '| − IPL | done | 69.75 | 67.75 | 68.75 | -6.25 | 0.0796 | 4 |')
  assert.equal(table[4], '| − SMG | FAILED |  |  |  |  |  |  |')
  assert.match(md, /no-smg failed: Error: out of memory/)
  assert.ok(md.includes(`${PROTOCOL_DESCRIPTIONS.sipl}.`), 'results.md names the protocol of the trials')
  const csv = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n')
  assert.equal(csv[2], '− IPL,done,0.6975,0.6775,0.6875,-0.0625,0.0796,4')
  const json = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as {rows: AblationRow[]}
  assert.equal(json.rows[1].name, 'no-ipl')
})

test('ablation: only the cases both runs evaluated are paired; identical scores give p = 1; no full result gives no p', () => {
  const dir = ablationDir({
    full: {a: 0.8, b: 0.7, c: 0.9},
    'no-ipl': {a: 0.8, b: 0.7, c: 0.9, extra: 0.1},
  })
  const rows = collect(dir, JSON.parse(readFileSync(join(dir, 'experiment.json'), 'utf8')) as ExperimentRecord).rows as AblationRow[]
  assert.equal(rows[1].pairedCases, 3)
  assert.equal(rows[1].p, 1)

  const noFull = ablationDir({full: 'failed', 'no-ipl': {a: 0.5, b: 0.6}})
  const result = collect(noFull, JSON.parse(readFileSync(join(noFull, 'experiment.json'), 'utf8')) as ExperimentRecord)
  const r = result.rows as AblationRow[]
  assert.equal(r[1].p, null)
  assert.ok(result.notes.some((n) => /full model has no result/.test(n)))
})

test('the scoring protocol is named under every table; trials scored differently are said to be, not one picked', () => {
  const mixed = ablationDir({full: {a: 0.8, b: 0.7}, 'no-ipl': {a: 0.7, b: 0.6}, 'no-smg': {a: 0.6, b: 0.6}}, {'no-ipl': 'strict'})
  const result = collect(mixed, JSON.parse(readFileSync(join(mixed, 'experiment.json'), 'utf8')) as ExperimentRecord)
  assert.deepEqual(
    result.rows.map((r) => r.protocol),
    ['sipl', 'strict', 'sipl'],
  )
  const md = readFileSync(join(mixed, 'results.md'), 'utf8')
  assert.match(md, /trials scored under different protocols, not comparable \(sipl: full, no-smg; strict: no-ipl\)/)
  assert.ok(!md.includes(PROTOCOL_DESCRIPTIONS.sipl) && !md.includes(PROTOCOL_DESCRIPTIONS.strict), 'no single protocol claimed')
  const json = JSON.parse(readFileSync(join(mixed, 'results.json'), 'utf8')) as {scoring: string}
  assert.match(json.scoring, /different protocols/)

  assert.equal(protocolCaption([{name: 'a', state: 'done', protocol: 'strict'}]), PROTOCOL_DESCRIPTIONS.strict)
  assert.match(protocolCaption([{name: 'a', state: 'done'}]), /\(not recorded\)/)
  assert.match(protocolCaption([{name: 'a', state: 'failed'}]), /no finished trial/)
  // a failed trial has no protocol and does not make the finished ones look mixed
  assert.equal(
    protocolCaption([
      {name: 'a', state: 'done', protocol: 'sipl'},
      {name: 'b', state: 'failed'},
    ]),
    PROTOCOL_DESCRIPTIONS.sipl,
  )
})
