/**
 * Result tables in the paper's layouts, as Markdown, CSV and LaTeX (booktabs):
 *  - Table 1 (BTCV): one row per method, one DSC (%) column per class, then Avg; 2 decimals.
 *  - Tables 2/3 (Lungs, BraTS): Model | DSC (%) | p-values, the compared methods first and the
 *    evaluated method ("ours") last with no p-value; p < 0.0001 is printed as "< 0.0001", other
 *    p-values with 4 decimals, as in the paper.
 */
import {csvCell} from '../util/csv.js'

/**
 * The header of a class column, in every table sipl writes (eval's Table 1, the ablation and sweep
 * tables, the console): the class name exactly as configured in data.classes, the same key as in
 * summary.json and per-case.csv. No abbreviations: a rule that shortens some names (the paper's "Spl",
 * "RKid") leaves others whole and gives mixed headers such as `Liv | Spl | kidney` (docs/decisions.md).
 */
export function columnName(cls: string): string {
  return cls
}

export interface Table {
  header: string[]
  rows: string[][]
}

export interface Rendered {
  markdown: string
  csv: string
  latex: string
}

function latexCell(s: string): string {
  return s
    .replace(/\\/g, '\\textbackslash{}')
    .replace(/([&%$#_{}])/g, '\\$1')
    .replace(/</g, '$<$')
}

/** Markdown gets the caption under the table (pandoc's `Table:` line), LaTeX in \\caption; CSV stays plain data. */
export function render(table: Table, caption: string): Rendered {
  const md = [
    `| ${table.header.join(' | ')} |`,
    `| ${table.header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...table.rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Table: ${caption}`,
  ].join('\n')
  const csv = [table.header, ...table.rows].map((r) => r.map(csvCell).join(',')).join('\n')
  const latex = [
    '\\begin{table}[t]',
    '\\centering',
    `\\begin{tabular}{l${'r'.repeat(table.header.length - 1)}}`,
    '\\toprule',
    `${table.header.map(latexCell).join(' & ')} \\\\`,
    '\\midrule',
    ...table.rows.map((r) => `${r.map(latexCell).join(' & ')} \\\\`),
    '\\bottomrule',
    '\\end{tabular}',
    `\\caption{${latexCell(caption)}}`,
    '\\end{table}',
  ].join('\n')
  return {markdown: md + '\n', csv: csv + '\n', latex: latex + '\n'}
}

const pct = (x: number | null | undefined, digits = 2) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : (100 * x).toFixed(digits)

export function formatP(p: number | null | undefined): string {
  if (p === null || p === undefined) return ''
  if (Number.isNaN(p)) return 'n/a'
  return p < 1e-4 ? '< 0.0001' : p.toFixed(4)
}

export interface MethodRow {
  name: string
  meanDice: number
  perClass: Record<string, number | null>
}

/** Table 1: per-class DSC (%) and the average, one row per method in the given order. */
export function perClassTable(methods: MethodRow[], classes: string[]): Table {
  return {
    header: ['Methods', ...classes.map(columnName), 'Avg'],
    rows: methods.map((m) => [m.name, ...classes.map((c) => pct(m.perClass[c])), pct(m.meanDice)]),
  }
}

/** Tables 2/3: DSC (%) and the p-value of each compared method against `ours`, which comes last. */
export function comparisonTable(rows: {name: string; meanDice: number; p: number | null}[], oursName: string, pLabel = 'p-values'): Table {
  const others = rows.filter((r) => r.name !== oursName)
  const ours = rows.filter((r) => r.name === oursName)
  return {
    header: ['Model', 'DSC (%)', pLabel],
    rows: [...others, ...ours].map((r) => [r.name, pct(r.meanDice), r.name === oursName ? '' : formatP(r.p)]),
  }
}
