/**
 * Collection: reads every trial's eval/summary.json (whatever has finished), and writes the
 * experiment's tables and figures. Trials that failed, were cancelled or have not finished are
 * listed with their state and empty scores; they never stop the collection of the others.
 *
 * - sweep:  results.{csv,md,json} (one row per trial, + one row per setting averaged over seeds/folds)
 *           and plots/<key>.svg, mean Dice against each numeric swept key (paper Fig. 5);
 * - ablate: results.{csv,md,json} with the full model first, then each variant: per-class Dice,
 *           mean, difference to the full model and a paired t-test p-value on per-case mean Dice
 *           (paper Tables 4–5);
 * - both:   TensorBoard's HParams data for the finished trials (hparams.ts).
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {writeFileAtomic} from '../util/atomic.js'
import {PROTOCOL_DESCRIPTIONS, type Protocol} from '../evaluate/evaluate.js'
import {csvCell} from '../util/csv.js'
import type {EvalSummary} from '../evaluate/evaluate.js'
import {pairedTTest} from '../evaluate/stats.js'
import {linePlotSvg} from '../report/line-plot.js'
import {writeHParams} from './hparams.js'
import {trialDir, type ExperimentRecord} from './layout.js'
import type {ParamValue, TrialSpec} from './plan.js'
import {isFailed, stateCounts, trialStatuses, type TrialState, type TrialStatus} from './status.js'

export interface TrialResult {
  index: number
  name: string
  label: string
  variant?: string
  params: Record<string, ParamValue>
  state: TrialState
  detail?: string
  meanDice: number | null
  dice: Record<string, number | null>
  meanHd95: number | null
  /** the scoring protocol its eval/summary.json names (absent when not done or not recorded) */
  protocol?: string
  perCase?: Record<string, number>
}

export interface AblationRow extends TrialResult {
  /** mean Dice minus the full model's (null for the full model or when either is missing) */
  delta: number | null
  /** two-sided paired t-test on per-case mean Dice against the full model */
  p: number | null
  pairedCases: number
}

export interface SettingRow {
  params: Record<string, ParamValue>
  trials: number
  done: number
  meanDice: number | null
  sdDice: number | null
}

export interface CollectResult {
  dir: string
  kind: ExperimentRecord['kind']
  counts: Record<TrialState, number>
  rows: TrialResult[] | AblationRow[]
  settings?: SettingRow[]
  files: string[]
  plots: string[]
  notes: string[]
}

function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

/** eval/summary.json as the eval command writes it; partial, as an older or damaged file may be (every value read is checked) */
function readSummary(file: string): Partial<EvalSummary> | undefined {
  if (!existsSync(file)) return undefined
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as Partial<EvalSummary>
    return typeof s === 'object' && s !== null ? s : undefined
  } catch {
    return undefined
  }
}

function trialResult(dir: string, trial: TrialSpec, status: TrialStatus, classes: string[]): TrialResult {
  const summary = status.state === 'done' ? readSummary(join(trialDir(dir, trial), 'eval', 'summary.json')) : undefined
  const dice = Object.fromEntries(classes.map((c) => [c, finite(summary?.perClass?.[c]?.dice)]))
  const hd = classes.map((c) => finite(summary?.perClass?.[c]?.hd95)).filter((v): v is number => v !== null)
  const detail = status.state === 'done' && summary === undefined ? 'eval/summary.json missing or unreadable' : status.detail
  return {
    index: trial.index,
    name: trial.name,
    label: trial.label,
    variant: trial.variant,
    params: trial.params,
    state: status.state === 'done' && summary === undefined ? 'failed' : status.state,
    ...(detail !== undefined ? {detail} : {}),
    meanDice: finite(summary?.meanDice),
    dice,
    meanHd95: finite(summary?.meanHd95) ?? (hd.length > 0 ? hd.reduce((a, b) => a + b, 0) / hd.length : null),
    ...(typeof summary?.protocol === 'string' ? {protocol: summary.protocol} : {}),
    ...(summary?.perCase ? {perCase: summary.perCase} : {}),
  }
}

/**
 * The scoring protocol of the finished trials, for every table's caption: one protocol is named
 * with its description; trials scored under different protocols (or with none recorded) are said
 * to be so, trial by trial, rather than one of them being picked.
 */
export function protocolCaption(rows: Pick<TrialResult, 'name' | 'state' | 'protocol'>[]): string {
  const done = rows.filter((r) => r.state === 'done')
  if (done.length === 0) return 'scoring protocol: no finished trial yet'
  const byProtocol = new Map<string, string[]>()
  for (const r of done) byProtocol.set(r.protocol ?? '(not recorded)', [...(byProtocol.get(r.protocol ?? '(not recorded)') ?? []), r.name])
  if (byProtocol.size === 1) {
    const [only] = byProtocol.keys()
    return only in PROTOCOL_DESCRIPTIONS
      ? PROTOCOL_DESCRIPTIONS[only as Protocol]
      : `scoring protocol ${only} (eval/summary.json of every trial)`
  }
  const groups = [...byProtocol].map(([p, names]) => `${p}: ${names.join(', ')}`).join('; ')
  return `trials scored under different protocols, not comparable (${groups}); re-score them with 'sipl eval --run TRIAL --protocol NAME'`
}

/** The paired test against the full model on the cases both evaluated. */
function versusFull(full: TrialResult | undefined, row: TrialResult): Pick<AblationRow, 'delta' | 'p' | 'pairedCases'> {
  if (!full || full === row || full.meanDice === null || row.meanDice === null) return {delta: null, p: null, pairedCases: 0}
  const delta = row.meanDice - full.meanDice
  const cases = Object.keys(full.perCase ?? {}).filter((c) => finite(full.perCase?.[c]) !== null && finite(row.perCase?.[c]) !== null)
  if (cases.length < 2) return {delta, p: null, pairedCases: cases.length}
  const test = pairedTTest(
    cases.map((c) => row.perCase![c]),
    cases.map((c) => full.perCase![c]),
  )
  // identical per-case scores: no difference at all, which is p = 1 rather than scipy's NaN
  const p = Number.isNaN(test.p) && cases.every((c) => row.perCase![c] === full.perCase![c]) ? 1 : finite(test.p)
  return {delta, p, pairedCases: cases.length}
}

const pct = (v: number | null): string => (v === null ? '' : (100 * v).toFixed(2))
const num = (v: number | null, digits = 4): string => (v === null ? '' : v.toFixed(digits))
const pValue = (p: number | null): string => (p === null ? '' : p < 1e-4 ? p.toExponential(1) : p.toFixed(4))

function csv(header: string[], rows: string[][]): string {
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n'
}

function markdown(header: string[], rows: string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n')
}

function stateText(row: TrialResult): string {
  return row.state === 'done' ? 'done' : isFailed({state: row.state} as TrialStatus) ? 'FAILED' : row.state
}

function paramText(v: ParamValue | undefined): string {
  return v === undefined ? '' : v === null ? 'null' : String(v)
}

function mean(values: number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length
}

function sd(values: number[]): number | null {
  if (values.length < 2) return null
  const m = mean(values)!
  return Math.sqrt(values.reduce((a, b) => a + (b - m) ** 2, 0) / (values.length - 1))
}

const REPLICATE_KEYS = new Set(['seed', 'fold'])

function replicateNames(record: ExperimentRecord): string {
  return [(record.seeds?.length ?? 0) > 0 ? 'seeds' : '', (record.folds ?? 0) > 0 ? 'folds' : ''].filter((s) => s !== '').join(' and ')
}

function settings(record: ExperimentRecord, rows: TrialResult[]): SettingRow[] {
  const keys = (record.axes ?? []).map((a) => a.key)
  const groups = new Map<string, TrialResult[]>()
  for (const row of rows) {
    const id = JSON.stringify(keys.map((k) => row.params[k]))
    groups.set(id, [...(groups.get(id) ?? []), row])
  }
  return [...groups.values()].map((group) => {
    const values = group.map((r) => r.meanDice).filter((v): v is number => v !== null)
    return {
      params: Object.fromEntries(keys.map((k) => [k, group[0].params[k]])),
      trials: group.length,
      done: values.length,
      meanDice: mean(values),
      sdDice: sd(values),
    }
  })
}

/** One SVG per numeric swept key: x = its values, one line per combination of the other keys. */
function sweepPlots(dir: string, record: ExperimentRecord, rows: SettingRow[], notes: string[]): string[] {
  const axes = record.axes ?? []
  const written: string[] = []
  const replicates = (record.seeds?.length ?? 0) > 0 || (record.folds ?? 0) > 0
  for (const axis of axes) {
    if (!axis.values.every((v) => typeof v === 'number')) {
      notes.push(`no plot for ${axis.key}: its values are not numbers (see the table)`)
      continue
    }
    if (axis.values.length < 2) continue
    const others = axes.filter((a) => a.key !== axis.key)
    const seriesMap = new Map<string, {x: number[]; y: number[]}>()
    for (const row of rows) {
      const name = others.length === 0 ? 'mean Dice' : others.map((o) => `${o.key}=${paramText(row.params[o.key])}`).join(', ')
      const s = seriesMap.get(name) ?? {x: [], y: []}
      s.x.push(row.params[axis.key] as number)
      s.y.push(row.meanDice ?? NaN)
      seriesMap.set(name, s)
    }
    const series = [...seriesMap.entries()].map(([name, s]) => {
      const order = s.x.map((_, i) => i).sort((a, b) => s.x[a] - s.x[b])
      return {name, x: order.map((i) => s.x[i]), y: order.map((i) => s.y[i])}
    })
    const svg = linePlotSvg({
      title: `${record.name}: mean Dice vs ${axis.key}${replicates ? ` (mean over ${replicateNames(record)})` : ''}`,
      xLabel: axis.key,
      yLabel: 'mean Dice',
      series,
    })
    const file = join(dir, 'plots', `${axis.key}.svg`)
    writeFileAtomic(file, svg)
    written.push(file)
  }
  return written
}

export function collect(dir: string, record: ExperimentRecord): CollectResult {
  const statuses = trialStatuses(dir, record)
  const classes = record.classes
  const results = record.trials.map((t, i) => trialResult(dir, t, statuses[i], classes))
  const counts = stateCounts(results.map((r) => ({state: r.state}) as TrialStatus))
  const notes: string[] = []
  for (const s of record.skipped ?? []) notes.push(`skipped ${s.variant}: ${s.reason}`)
  const failed = results.filter((r) => isFailed({state: r.state} as TrialStatus))
  for (const r of failed) notes.push(`${r.name} ${r.state}${r.detail ? `: ${r.detail}` : ''}`)
  const files: string[] = []
  const write = (name: string, text: string): void => {
    writeFileAtomic(join(dir, name), text)
    files.push(join(dir, name))
  }

  if (record.kind === 'ablate') {
    const full = results.find((r) => r.variant === 'full')
    if (!full || full.meanDice === null) notes.push('the full model has no result, so no differences or p-values')
    const rows: AblationRow[] = results.map((r) => ({...r, ...versusFull(full, r)}))
    const header = ['variant', 'state', ...classes, 'mean', 'Δ mean vs full', 'p (paired t, vs full)', 'cases']
    const cells = (r: AblationRow, f: (v: number | null) => string): string[] => [
      r.label,
      stateText(r),
      ...classes.map((c) => f(r.dice[c])),
      f(r.meanDice),
      r.delta === null ? '' : f(r.delta),
      pValue(r.p),
      r.pairedCases > 0 ? String(r.pairedCases) : '',
    ]
    write(
      'results.csv',
      csv(
        header,
        rows.map((r) => cells(r, (v) => num(v))),
      ),
    )
    write(
      'results.md',
      `# ${record.name}: ablation (Dice %, ${classes.length} classes)\n\n` +
        markdown(
          header.map((h) => (h === 'Δ mean vs full' ? 'Δ mean vs full (points)' : h)),
          rows.map((r) => cells(r, pct)),
        ) +
        `\n\n${protocolCaption(rows)}.\n` +
        '\np: two-sided paired t-test on per-case mean Dice against the full model, over the cases both evaluated.\n' +
        (notes.length > 0 ? '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''),
    )
    const json = {
      kind: record.kind,
      name: record.name,
      classes,
      counts,
      scoring: protocolCaption(rows),
      rows: rows.map(({perCase: _, ...r}) => r),
      notes,
    }
    write('results.json', JSON.stringify(json, null, 2) + '\n')
    writeHParams(dir, record, rows)
    return {dir, kind: record.kind, counts, rows, files, plots: [], notes}
  }

  const keys = [...new Set(record.trials.flatMap((t) => Object.keys(t.params)))]
  const header = ['trial', ...keys, 'state', 'mean Dice', ...classes.map((c) => `Dice ${c}`), 'mean HD95 (mm)']
  const cells = (r: TrialResult, f: (v: number | null) => string): string[] => [
    r.name,
    ...keys.map((k) => paramText(r.params[k])),
    stateText(r),
    f(r.meanDice),
    ...classes.map((c) => f(r.dice[c])),
    num(r.meanHd95, 2),
  ]
  const settingRows = settings(record, results)
  const replicates = (record.seeds?.length ?? 0) > 0 || (record.folds ?? 0) > 0
  const axisKeys = (record.axes ?? []).map((a) => a.key)
  let md =
    `# ${record.name}: sweep over ${axisKeys.join(', ') || 'nothing'}\n\n` +
    markdown(
      header,
      results.map((r) => cells(r, num)),
    ) +
    `\n${protocolCaption(results)}.\n`
  if (replicates && axisKeys.length > 0) {
    const sHeader = [...axisKeys, 'trials done', 'mean Dice', 'sd']
    const sRows = settingRows.map((s) => [
      ...axisKeys.map((k) => paramText(s.params[k])),
      `${s.done}/${s.trials}`,
      num(s.meanDice),
      num(s.sdDice),
    ])
    md += `\n## Averaged over ${[...REPLICATE_KEYS].filter((k) => keys.includes(k)).join(' and ')}\n\n${markdown(sHeader, sRows)}\n`
    md += `\n${protocolCaption(results)}.\n`
    write('results-by-setting.csv', csv(sHeader, sRows))
  }
  if (notes.length > 0) md += '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n'
  write(
    'results.csv',
    csv(
      header,
      results.map((r) => cells(r, num)),
    ),
  )
  write('results.md', md)
  const plots = sweepPlots(dir, record, settingRows, notes)
  const json = {
    kind: record.kind,
    name: record.name,
    classes,
    counts,
    scoring: protocolCaption(results),
    rows: results.map(({perCase: _, ...r}) => r),
    settings: settingRows,
    plots,
    notes,
  }
  write('results.json', JSON.stringify(json, null, 2) + '\n')
  writeHParams(dir, record, results)
  return {dir, kind: record.kind, counts, rows: results, settings: settingRows, files, plots, notes}
}
