/**
 * The tables and text of `sipl eval`: paired tests over the scored methods, table1.{md,csv,tex}
 * (paper Table 1 layout), comparison-<test>.{md,csv,tex} (paper Tables 2/3 layout),
 * comparison.json, and the summary printed to the terminal.
 */
import {basename, join} from 'node:path'
import {comparisonTable, perClassTable, render, type MethodRow} from '../report/tables.js'
import {writeFileAtomic} from '../util/atomic.js'
import {compareMethods, type MethodScores, type TestResult} from './compare.js'
import {PROTOCOL_DESCRIPTIONS, type EvalSummary} from './evaluate.js'
import type {ScoringSettings} from './settings.js'

export interface EvalJson {
  methods: Record<string, {meanDice: number; perCase: Record<string, number>; perClass: Record<string, number | null>; source: string}>
  tests: TestResult[]
  summary: EvalSummary
  outDir: string
  files: string[]
}

export interface EvalReportInput {
  /** the evaluated method first */
  methods: MethodScores[]
  classes: string[]
  /** the evaluated method's summary */
  summary: EvalSummary
  settings: ScoringSettings
  tests: {ttest: boolean; wilcoxon: boolean; holm: boolean}
  /** the folder written into, and the one it becomes (named in the text) */
  out: {dir: string; final: string}
}

/** Runs the paired tests, writes the tables and comparison.json into `out.dir`, and returns the text and the paths written. */
export function writeEvalReport(input: EvalReportInput): {
  text: string
  tests: TestResult[]
  methodsJson: EvalJson['methods']
  files: string[]
} {
  const {methods, classes, summary, settings, out} = input
  const {protocol, grid, surfaceTolerance: tolerance} = settings
  const {holm} = input.tests
  const name = methods[0].name
  const files: string[] = []
  const tests = compareMethods(methods, input.tests)
  const write = (stem: string, rendered: {markdown: string; csv: string; latex: string}) => {
    for (const [ext, text] of [
      ['md', rendered.markdown],
      ['csv', rendered.csv],
      ['tex', rendered.latex],
    ] as const) {
      writeFileAtomic(join(out.dir, `${stem}.${ext}`), text)
      files.push(join(out.dir, `${stem}.${ext}`))
    }
  }
  // the evaluated method last, as the paper puts "SIPL (ours)"
  const rows: MethodRow[] = [...methods.slice(1), methods[0]].map((m) => ({name: m.name, meanDice: m.meanDice, perClass: m.perClass}))
  const scoredOn = `${grid === 'labels' ? 'the --labels grid' : 'the preprocessed grid'}; ${PROTOCOL_DESCRIPTIONS[protocol]}`
  const table1 = render(perClassTable(rows, classes), `DSC (%) per class on ${summary.cases.length} cases, ${scoredOn}`)
  write('table1', table1)
  const textParts = [
    `${name}: mean Dice ${summary.meanDice.toFixed(4)}, mean HD95 ${summary.meanHd95 === null ? 'n/a' : summary.meanHd95.toFixed(2) + ' mm'}, mean surface Dice@${tolerance}mm ${summary.meanSurfaceDice.toFixed(4)} on ${summary.cases.length} cases (protocol ${protocol}) → ${out.final}`,
    '',
    table1.markdown,
  ]
  for (const test of ['ttest', 'wilcoxon'] as const) {
    const group = tests.filter((t) => t.test === test)
    if (group.length === 0) continue
    const label = `p-values (${test === 'ttest' ? 'paired t-test' : 'Wilcoxon'}${holm ? ', Holm' : ''})`
    const table = comparisonTable(
      methods.map((m) => {
        const t = group.find((g) => g.b === m.name)
        return {name: m.name, meanDice: m.meanDice, p: t ? (holm ? (t.pHolm ?? t.p) : t.p) : null}
      }),
      name,
      label,
    )
    const rendered = render(
      table,
      `${label}, ${name} against each method, per-case mean Dice, n = ${Object.keys(summary.perCase).length}, ${scoredOn}`,
    )
    write(`comparison-${test}`, rendered)
    textParts.push(rendered.markdown)
  }
  const undefinedHd = Object.entries(summary.perClass).filter(([, c]) => c.hd95Undefined > 0)
  if (undefinedHd.length > 0)
    textParts.push(
      `HD95 undefined (one mask empty) for: ${undefinedHd.map(([k, c]) => `${k} ×${c.hd95Undefined}`).join(', ')} — see ${basename(out.final)}/per-case.csv`,
    )
  const methodsJson: EvalJson['methods'] = Object.fromEntries(
    methods.map((m) => [m.name, {meanDice: m.meanDice, perCase: m.perCase, perClass: m.perClass, source: m.source}]),
  )
  writeFileAtomic(join(out.dir, 'comparison.json'), JSON.stringify({methods: methodsJson, tests}, null, 2) + '\n')
  return {text: textParts.join('\n'), tests, methodsJson, files}
}
