/**
 * `sipl report DIR`: one self-contained page (`report.html`) for a run, an evaluation, a sweep or
 * an ablation, gathered from the files the other commands wrote — nothing is recomputed but the
 * figures drawn from metrics.jsonl. Images are inline data: URIs and there is no script, so the
 * page opens offline in any browser and can be mailed or archived as one file.
 *
 *   run       summary (manifest, best epoch), training curves (losses; validation mean and
 *             per-class Dice; learning rate and τ), the last validation overlay, the evaluation
 *             below if eval/ exists, the resolved config
 *   eval      scores, per-class Dice / HD95 / surface Dice, per-case Dice, the paper's Table 1 and
 *             Tables 2/3 (DSC and p-values of the paired tests), the qualitative figures
 *   sweep     results per trial and per setting, the sweep plots (Fig. 5), each trial's first figure
 *   ablation  the paper's Tables 4–5 layout: per-class Dice, Δ and p against the full model
 */
import {existsSync, readdirSync, readFileSync, statSync} from 'node:fs'
import {basename, join, resolve} from 'node:path'
import {UserError} from '../errors.js'
import type {TestResult} from '../evaluate/compare.js'
import {PROTOCOL_DESCRIPTIONS, type EvalSummary, type Protocol} from '../evaluate/evaluate.js'
import {protocolCaption, type AblationRow, type CollectResult, type SettingRow, type TrialResult} from '../experiments/collect.js'
import type {ExperimentRecord} from '../experiments/layout.js'
import {runPaths} from '../run/run-dir.js'
import {lossCurveSvg, readMetrics} from '../train/metrics-log.js'
import {writeFileAtomic} from '../util/atomic.js'
import {escapeHtml, factsHtml, imageHtml, pageHtml, preHtml, tableHtml, type Section} from './html.js'
import {linePlotSvg} from './line-plot.js'
import {columnName, comparisonTable, formatP, perClassTable, type MethodRow} from './tables.js'

export type ReportKind = 'run' | 'eval' | 'sweep' | 'ablation'

export interface ReportResult {
  file: string
  kind: ReportKind
  title: string
  sections: string[]
  tables: number
  images: number
  bytes: number
}

function readJson<T>(file: string): T | undefined {
  if (!existsSync(file)) return undefined
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T
  } catch {
    return undefined
  }
}

const readText = (file: string): string | undefined => (existsSync(file) ? readFileSync(file, 'utf8') : undefined)
/** the files of `folder` ending in `ext`, sorted; none when it does not exist */
const filesIn = (folder: string, ext: string): string[] =>
  existsSync(folder)
    ? readdirSync(folder)
        .filter((f) => f.endsWith(ext))
        .sort()
    : []
const pct = (v: number | null | undefined, digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : (100 * v).toFixed(digits)
const num = (v: number | null | undefined, digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits)
/** training curves two to a row */
const CURVE = {width: 520, height: 330}
const svgImage = (svg: string, alt: string) => imageHtml(Buffer.from(svg, 'utf8'), 'image/svg+xml', alt)

export function reportKind(dir: string): ReportKind {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UserError(`${dir}: not a folder; give a run, eval, sweep or ablation folder`)
  if (existsSync(join(dir, 'experiment.json')))
    return readJson<ExperimentRecord>(join(dir, 'experiment.json'))?.kind === 'ablate' ? 'ablation' : 'sweep'
  if (existsSync(join(dir, 'config.yaml')) && (existsSync(join(dir, 'metrics.jsonl')) || existsSync(join(dir, 'checkpoints')))) return 'run'
  if (existsSync(join(dir, 'summary.json'))) return 'eval'
  throw new UserError(
    `${dir}: not a run, eval, sweep or ablation folder (no config.yaml with metrics, summary.json or experiment.json); give the folder 'sipl train', 'sipl eval', 'sipl sweep' or 'sipl ablate' wrote`,
  )
}

// ---------------------------------------------------------------- run

function runSections(dir: string): Section[] {
  const sections: Section[] = []
  const manifest = readJson<Record<string, unknown> & {result?: Record<string, unknown>}>(join(dir, 'manifest.json'))
  const rows = readMetrics(runPaths(dir))
  const last = rows[rows.length - 1]
  const val = rows.filter((r) => r.valDice !== null)
  const best = val.length > 0 ? val.reduce((a, b) => ((b.valDice as number) > (a.valDice as number) ? b : a)) : undefined
  const facts: [string, string][] = [
    ['run folder', dir],
    ['epochs done', last ? `${last.epoch} (${last.step} steps)` : 'none'],
    ['last training loss', last ? num(last.loss, 4) : '–'],
    ['best validation mean Dice', best ? `${num(best.valDice, 4)} at epoch ${best.epoch}` : 'no validation'],
  ]
  if (manifest) {
    const backend = manifest.backend as {name?: string; reason?: string} | null
    facts.push(
      ['sipl', `${String(manifest.sipl)}${manifest.git ? ` (${String(manifest.git)})` : ''}`],
      ['backend', backend?.name ? `${backend.name}${backend.reason ? ` — ${backend.reason}` : ''}` : '–'],
      ['seed / config hash', `${String(manifest.seed)} / ${String(manifest.configHash)}`],
      ['started / ended', `${String(manifest.start)} / ${manifest.end ? String(manifest.end) : 'not finished'}`],
      ['Node, platform', `${String(manifest.node)}, ${String(manifest.platform)}`],
    )
  }
  sections.push({id: 'summary', title: 'Run', body: factsHtml(facts)})

  if (rows.length > 0) {
    const x = rows.map((r) => r.epoch)
    const figures = [svgImage(lossCurveSvg(rows, CURVE), 'training loss per epoch')]
    if (val.length > 0) {
      const classes = Object.keys(val[val.length - 1].valPerClass ?? {})
      figures.push(
        svgImage(
          linePlotSvg({
            ...CURVE,
            title: 'Validation Dice',
            xLabel: 'epoch',
            yLabel: 'Dice',
            series: [
              {name: 'mean', x: val.map((r) => r.epoch), y: val.map((r) => r.valDice as number)},
              ...classes.map((c) => ({name: c, x: val.map((r) => r.epoch), y: val.map((r) => r.valPerClass?.[c] ?? NaN)})),
            ],
          }),
          'validation Dice per epoch',
        ),
      )
    }
    figures.push(
      svgImage(
        linePlotSvg({
          ...CURVE,
          title: 'Learning rate (last step of each epoch)',
          xLabel: 'epoch',
          yLabel: 'lr',
          series: [{name: 'lr', x, y: rows.map((r) => r.lr)}],
        }),
        'learning rate',
      ),
      svgImage(
        linePlotSvg({
          ...CURVE,
          title: 'τ, the SMG filtering threshold (Eq. 11)',
          xLabel: 'epoch',
          yLabel: 'τ',
          series: [{name: 'τ', x, y: rows.map((r) => r.tau)}],
        }),
        'tau',
      ),
    )
    const table = tableHtml({
      header: ['epoch', 'step', 'lr', 'τ', 'loss', 'L_seg', 'Σ L_aux', 'grad norm', 'val Dice', 'seconds'],
      rows: rows.map((r) => [
        String(r.epoch),
        String(r.step),
        r.lr.toExponential(2),
        num(r.tau, 3),
        num(r.loss, 4),
        num(r.segLoss, 4),
        num(r.auxLoss, 4),
        num(r.gradNorm, 3),
        num(r.valDice, 4),
        num(r.seconds, 1),
      ]),
      // validation is not an eval: say how its Dice is scored, so that it is not read as a protocol's
      caption:
        'metrics.csv; val Dice: mean over classes and validation cases on the preprocessed grid, every class scored in every case (both empty = 1), post-processed as eval.* says',
    })
    sections.push({id: 'curves', title: 'Training curves', body: figures.join('\n') + '\n<h3>Per epoch</h3>\n' + table})
  }
  const overlay = join(dir, 'validation-overlay.png')
  if (existsSync(overlay))
    sections.push({
      id: 'validation-overlay',
      title: 'Validation overlay',
      body: imageHtml(
        readFileSync(overlay),
        'image/png',
        'validation overlay',
        'the first validation case at the last validation: image | reference | prediction',
      ),
    })
  if (existsSync(join(dir, 'eval', 'summary.json'))) sections.push(...evalSections(join(dir, 'eval'), 'eval-'))
  const config = readText(join(dir, 'config.yaml'))
  if (config !== undefined) sections.push({id: 'config', title: 'Config (resolved)', body: preHtml(config)})
  return sections
}

// ---------------------------------------------------------------- eval

interface Comparison {
  methods: Record<string, {meanDice: number; perClass: Record<string, number>; perCase: Record<string, number>}>
  tests: TestResult[]
}

function evalSections(dir: string, prefix = ''): Section[] {
  const summary = readJson<EvalSummary & {method?: string; checkpoint?: string; checkpointEpoch?: number; split?: string; grid?: string}>(
    join(dir, 'summary.json'),
  )
  if (!summary)
    return [{id: `${prefix}missing`, title: 'Evaluation', body: `<p class="note">${escapeHtml(dir)}/summary.json is unreadable</p>`}]
  const classes = summary.classes ?? Object.keys(summary.perClass)
  const method = summary.method ?? 'main'
  // every table of scores names its protocol (summaries written before protocols existed say so)
  const scoredUnder =
    typeof summary.protocol !== 'string'
      ? 'scoring protocol not recorded in summary.json'
      : (PROTOCOL_DESCRIPTIONS[summary.protocol as Protocol] ?? `protocol ${summary.protocol}`)
  const sections: Section[] = []
  const facts: [string, string][] = [
    ['method', method],
    ['cases', `${summary.cases.length}${summary.split ? ` (${summary.split} split)` : ''}`],
    ['mean Dice', num(summary.meanDice, 4)],
    ['mean HD95', summary.meanHd95 === null ? 'n/a' : `${num(summary.meanHd95, 2)} mm`],
    [`mean surface Dice @ ${summary.surfaceTolerance} mm`, num(summary.meanSurfaceDice, 4)],
    ...(summary.checkpoint
      ? [
          ['checkpoint', `${summary.checkpoint}${summary.checkpointEpoch !== undefined ? ` (epoch ${summary.checkpointEpoch})` : ''}`] as [
            string,
            string,
          ],
        ]
      : []),
    ...(summary.grid ? [['scored on', `the ${summary.grid} grid`] as [string, string]] : []),
    ['empty masks', summary.conventions],
  ]
  sections.push({id: `${prefix}scores`, title: 'Evaluation', body: factsHtml(facts)})

  const perClass = tableHtml({
    header: ['class', 'Dice (%)', 'HD95 (mm)', 'surface Dice (%)', 'HD95 undefined', 'reference empty', 'prediction empty'],
    rows: classes.map((c) => {
      const s = summary.perClass[c]
      return [
        c,
        pct(s?.dice),
        num(s?.hd95),
        pct(s?.surfaceDice),
        String(s?.hd95Undefined ?? ''),
        String(s?.refEmpty ?? ''),
        String(s?.predEmpty ?? ''),
      ]
    }),
    caption: `per class, mean over ${summary.cases.length} cases; ${scoredUnder}`,
  })
  // per-case.csv: case,class,dice,hd95,…
  const perCase = new Map<string, Map<string, string>>()
  for (const line of (readText(join(dir, 'per-case.csv')) ?? '').trim().split('\n').slice(1)) {
    const [id, cls, dice] = line.split(',')
    if (id && cls) perCase.set(id, (perCase.get(id) ?? new Map()).set(cls, dice))
  }
  const caseTable = tableHtml({
    header: ['case', 'mean Dice (%)', ...classes.map(columnName)],
    rows: summary.cases.map((id) => [id, pct(summary.perCase[id]), ...classes.map((c) => pct(Number(perCase.get(id)?.get(c) ?? NaN)))]),
    caption: `Dice (%) per case (per-case.csv); ${scoredUnder}`,
  })
  sections.push({id: `${prefix}per-class`, title: 'Dice and HD95', body: perClass + '\n' + caseTable})

  // the paper's layouts: Table 1 (per class, the evaluated method last) and Tables 2/3 (DSC, p)
  const comparison = readJson<Comparison>(join(dir, 'comparison.json'))
  const methods = comparison
    ? Object.entries(comparison.methods)
    : [[method, {meanDice: summary.meanDice, perClass: Object.fromEntries(classes.map((c) => [c, summary.perClass[c]?.dice]))}] as const]
  const ordered: MethodRow[] = [...methods.filter(([n]) => n !== method), ...methods.filter(([n]) => n === method)].map(([name, m]) => ({
    name,
    meanDice: m.meanDice,
    perClass: m.perClass,
  }))
  const t1 = perClassTable(ordered, classes)
  let body = tableHtml({...t1, caption: `Table 1 layout: DSC (%) per class on ${summary.cases.length} cases; ${scoredUnder}`})
  for (const test of ['ttest', 'wilcoxon'] as const) {
    const group = (comparison?.tests ?? []).filter((t) => t.test === test)
    if (group.length === 0) continue
    const holm = group.some((g) => g.pHolm !== undefined)
    const label = `p-values (${test === 'ttest' ? 'paired t-test' : 'Wilcoxon signed-rank'}${holm ? ', Holm' : ''})`
    const table = comparisonTable(
      methods.map(([name, m]) => {
        const t = group.find((g) => g.b === name)
        return {name, meanDice: m.meanDice, p: t ? (holm ? (t.pHolm ?? t.p) : t.p) : null}
      }),
      method,
      label,
    )
    body +=
      '\n' +
      tableHtml({
        ...table,
        caption: `Tables 2/3 layout: ${label}, ${method} against each method on per-case mean Dice, n = ${group[0].n}; ${scoredUnder}`,
      })
  }
  if (!comparison || comparison.tests.length === 0)
    body += `<p class="note">No paired tests in this evaluation (add --compare NAME=DIR --paired-ttest to sipl eval).</p>`
  sections.push({id: `${prefix}tables`, title: 'Paper tables', body})

  const figuresDir = join(dir, 'figures')
  const pngs = filesIn(figuresDir, '.png')
  if (pngs.length > 0)
    sections.push({
      id: `${prefix}figures`,
      title: 'Qualitative figures',
      body: pngs
        .map((f) =>
          imageHtml(
            readFileSync(join(figuresDir, f)),
            'image/png',
            `case ${basename(f, '.png')}`,
            `${basename(f, '.png')}: image | reference | prediction`,
          ),
        )
        .join('\n'),
    })
  return sections
}

// ---------------------------------------------------------------- sweep and ablation

/** results.json as collection writes it (per-case scores left out) */
interface CollectedJson {
  counts: CollectResult['counts']
  rows: (Omit<TrialResult, 'perCase'> & Partial<Pick<AblationRow, 'delta' | 'p' | 'pairedCases'>>)[]
  settings?: SettingRow[]
  notes: string[]
}

function experimentSections(dir: string, record: ExperimentRecord): Section[] {
  const results = readJson<CollectedJson>(join(dir, 'results.json'))
  const sections: Section[] = []
  const counts = results
    ? Object.entries(results.counts)
        .filter(([, n]) => n > 0)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ')
    : 'not collected yet'
  const facts: [string, string][] = [
    ['folder', dir],
    ['kind', record.kind === 'ablate' ? 'ablation' : 'sweep'],
    ['trials', `${record.trials.length} (${counts})`],
    [
      'base config',
      `${record.base.config ?? '(defaults)'}${record.base.sets.length > 0 ? ' ' + record.base.sets.map((s) => `--set ${s}`).join(' ') : ''}`,
    ],
    ...(record.axes && record.axes.length > 0
      ? [['swept', record.axes.map((a) => `${a.key} ∈ {${a.values.join(', ')}}`).join('; ')] as [string, string]]
      : []),
    ...((record.seeds?.length ?? 0) > 0 ? [['seeds', record.seeds!.join(', ')] as [string, string]] : []),
    ...((record.folds ?? 0) > 0 ? [['folds', String(record.folds)] as [string, string]] : []),
    ['created', record.createdAt],
  ]
  sections.push({id: 'summary', title: record.kind === 'ablate' ? 'Ablation' : 'Sweep', body: factsHtml(facts)})
  if (!results) {
    sections.push({
      id: 'results',
      title: 'Results',
      body: `<p class="note">No results.json yet: run 'sipl sweep collect ${escapeHtml(dir)}'.</p>`,
    })
    return sections
  }
  const classes = record.classes
  const scoredUnder = protocolCaption(results.rows)
  if (record.kind === 'ablate') {
    sections.push({
      id: 'results',
      title: 'Results (Tables 4–5 layout)',
      body: tableHtml({
        header: ['variant', 'state', ...classes.map(columnName), 'Avg', 'Δ Avg vs full', 'p (paired t, vs full)', 'cases'],
        rows: results.rows.map((r) => [
          r.label,
          r.state,
          ...classes.map((c) => pct(r.dice[c])),
          pct(r.meanDice),
          r.delta === null || r.delta === undefined ? '' : pct(r.delta),
          formatP(r.p ?? null),
          r.pairedCases ? String(r.pairedCases) : '',
        ]),
        caption: `DSC (%); p: two-sided paired t-test on per-case mean Dice against the full model; ${scoredUnder}`,
      }),
    })
  } else {
    const keys = [...new Set(results.rows.flatMap((r) => Object.keys(r.params)))]
    let body = tableHtml({
      header: ['trial', ...keys, 'state', 'mean Dice', ...classes.map((c) => `Dice ${c}`), 'mean HD95 (mm)'],
      rows: results.rows.map((r) => [
        r.name,
        ...keys.map((k) => String(r.params[k] ?? '')),
        r.state,
        num(r.meanDice, 4),
        ...classes.map((c) => num(r.dice[c], 4)),
        num(r.meanHd95),
      ]),
      numericFrom: 1 + keys.length + 1,
      caption: `one row per trial (results.csv); ${scoredUnder}`,
    })
    const axisKeys = (record.axes ?? []).map((a) => a.key)
    if (results.settings && ((record.seeds?.length ?? 0) > 0 || (record.folds ?? 0) > 0) && axisKeys.length > 0)
      body +=
        '\n' +
        tableHtml({
          header: [...axisKeys, 'trials done', 'mean Dice', 'sd'],
          rows: results.settings.map((s) => [
            ...axisKeys.map((k) => String(s.params[k] ?? '')),
            `${s.done}/${s.trials}`,
            num(s.meanDice, 4),
            num(s.sdDice, 4),
          ]),
          numericFrom: axisKeys.length,
          caption: `averaged over seeds and folds; ${scoredUnder}`,
        })
    sections.push({id: 'results', title: 'Results', body})
    const plotsDir = join(dir, 'plots')
    const plots = filesIn(plotsDir, '.svg')
    if (plots.length > 0)
      sections.push({
        id: 'plots',
        title: 'Sweep plots (Fig. 5)',
        body: plots
          .map((f) => imageHtml(readFileSync(join(plotsDir, f)), 'image/svg+xml', `mean Dice against ${basename(f, '.svg')}`))
          .join('\n'),
      })
  }
  if (results.notes.length > 0)
    sections.push({id: 'notes', title: 'Notes', body: `<ul>${results.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`})

  // each finished trial's first qualitative figure
  const figures = record.trials.flatMap((t) => {
    const figuresDir = join(dir, 'trials', t.name, 'eval', 'figures')
    const first = filesIn(figuresDir, '.png')[0]
    return first
      ? [
          imageHtml(
            readFileSync(join(figuresDir, first)),
            'image/png',
            `${t.label}: ${basename(first, '.png')}`,
            `${t.label} — ${basename(first, '.png')}`,
          ),
        ]
      : []
  })
  if (figures.length > 0) sections.push({id: 'figures', title: 'Overlays per trial', body: figures.join('\n')})
  const overrides = tableHtml({
    header: ['trial', 'overrides on the base config'],
    rows: record.trials.map((t) => [t.label, t.overrides.join(' ') || '(none)']),
    numericFrom: 2,
  })
  const base = record.base.config ? readText(record.base.config) : undefined
  sections.push({
    id: 'config',
    title: 'Configs',
    body: overrides + (base !== undefined ? `\n<h3>Base config (${escapeHtml(record.base.config!)})</h3>\n${preHtml(base)}` : ''),
  })
  return sections
}

// ---------------------------------------------------------------- the page

export function buildReport(dirIn: string): {kind: ReportKind; title: string; html: string; sections: Section[]} {
  const dir = resolve(dirIn)
  const kind = reportKind(dir)
  let sections: Section[]
  let name = basename(dir)
  if (kind === 'run') sections = runSections(dir)
  else if (kind === 'eval') sections = evalSections(dir)
  else {
    const record = readJson<ExperimentRecord>(join(dir, 'experiment.json'))
    if (!record) throw new UserError(`${dir}/experiment.json is unreadable; rebuild it with the same sipl sweep/ablate command`)
    name = record.name
    sections = experimentSections(dir, record)
  }
  const title = `sipl ${kind}: ${name}`
  const html = pageHtml(title, `${dir} — written ${new Date().toISOString()} by sipl report`, sections)
  return {kind, title, html, sections}
}

export function writeReport(dir: string, out?: string): ReportResult {
  const {kind, title, html, sections} = buildReport(dir)
  const file = resolve(out ?? join(dir, 'report.html'))
  writeFileAtomic(file, html)
  return {
    file,
    kind,
    title,
    sections: sections.map((s) => s.id),
    tables: (html.match(/<table>/g) ?? []).length,
    images: (html.match(/<img /g) ?? []).length,
    bytes: Buffer.byteLength(html),
  }
}
