/**
 * `sipl report DIR` on a real run (trained and evaluated), an evaluation with paired tests, a sweep
 * and an ablation, each page opened in a real headless browser (Debian's Chromium over the
 * DevTools protocol): it loads with no console error and no request but itself and its data:
 * images, its tables and images are there and visible with the values of the files they come
 * from, and its screenshot is not blank. A control page with an error and a remote image shows
 * that the browser check catches both.
 */
import {after, before, test} from 'node:test'
import assert from 'node:assert/strict'
import {copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {PROTOCOL_DESCRIPTIONS} from '../../src/evaluate/evaluate.js'
import {formatP} from '../../src/report/tables.js'
import {Browser, chromiumMissing, type PageLoad} from '../helpers/browser.js'
import {sipl} from '../helpers/cli.js'
import {pixelStats} from '../helpers/png-decode.js'
import {TINY} from '../e2e/tiny.js'
import {writeFakeSipl} from '../experiments/fake-sipl.js'

const skip = chromiumMissing()
const root = mkdtempSync(join(tmpdir(), 'sipl-report-'))
const env = {SIPL_DATA_DIR: join(root, 'data'), SIPL_BACKEND: 'cpu'}
const run = join(root, 'run')
let browser: Browser | undefined

before(async () => {
  if (skip) return
  // the run every test below uses: trained (with validation, so it has an overlay) and evaluated
  const sets = ['train.epochs=2', 'train.itersPerEpoch=2', 'eval.overlap=0'].flatMap((s) => ['--set', s])
  const t = sipl(['train', '-c', 'experiments/demo.yaml', ...TINY, ...sets, '--out', run], {env})
  assert.equal(t.code, 0, t.stderr)
  const e = sipl(['eval', '--run', run, '--figures', '1'], {env})
  assert.equal(e.code, 0, e.stderr)
  browser = await Browser.launch()
})
after(async () => {
  await browser?.close()
  rmSync(root, {recursive: true, force: true})
})

interface Measured {
  title: string
  sections: string[]
  tables: {visible: boolean; rows: number; caption: string; text: string}[]
  images: {visible: boolean; complete: boolean; width: number; height: number; alt: string}[]
  pre: string[]
}

const MEASURE = `() => {
  const visible = (el) => {
    const r = el.getBoundingClientRect()
    const s = getComputedStyle(el)
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none' && Number(s.opacity) > 0
  }
  return {
    title: document.title,
    sections: [...document.querySelectorAll('section')].map((s) => s.id),
    tables: [...document.querySelectorAll('table')].map((t) => ({visible: visible(t), rows: t.rows.length, caption: t.caption ? t.caption.textContent : '', text: t.innerText})),
    images: [...document.images].map((i) => ({visible: visible(i), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight, alt: i.alt})),
    pre: [...document.querySelectorAll('pre')].map((p) => p.textContent),
  }
}`

/** `sipl report DIR`, then the page in Chromium, with the checks every report must pass */
async function reportInBrowser(
  dir: string,
  kind: string,
): Promise<{page: PageLoad<Measured>; result: {file: string; tables: number; images: number}}> {
  const r = sipl(['report', dir, '--json'], {env})
  assert.equal(r.code, 0, r.stderr)
  const result = JSON.parse(r.stdout) as {file: string; kind: string; tables: number; images: number}
  assert.equal(result.kind, kind)
  assert.equal(result.file, join(dir, 'report.html'))
  const page = await browser!.load<Measured>(result.file, MEASURE)
  assert.deepEqual(page.errors, [], 'no console errors')
  const self = pathToFileURL(result.file).href
  assert.deepEqual(
    page.requests.filter((u) => u !== self && !u.startsWith('data:')),
    [],
    'no request but the page itself and its data: images',
  )
  const m = page.measured
  assert.equal(m.tables.length, result.tables)
  assert.equal(m.images.length, result.images)
  for (const t of m.tables) assert.ok(t.visible && t.rows >= 2, `table '${t.caption}' visible with rows`)
  for (const i of m.images) assert.ok(i.visible && i.complete && i.width > 0 && i.height > 0, `image '${i.alt}' decoded and visible`)
  const shot = pixelStats(page.screenshot)
  assert.ok(shot.height > 900, 'the screenshot covers the whole page')
  assert.ok(shot.sd > 15 && shot.inked > 0.02 && shot.colours > 50, `the screenshot is not blank: ${JSON.stringify(shot)}`)
  return {page, result}
}

/** Every table of scores names the protocol it was scored under (issue 13 item 5); the configs' overrides hold no score. */
const assertProtocolInCaptions = (all: Measured['tables'], description: string) => {
  const tables = all.filter((t) => !t.text.startsWith('trial\toverrides on the base config'))
  assert.ok(tables.length > 0)
  for (const t of tables) assert.ok(t.caption.includes(description), `caption '${t.caption}' names '${description}'`)
}

const tableWith = (m: Measured, caption: RegExp) => {
  const t = m.tables.find((x) => caption.test(x.caption))
  assert.ok(t, `a table captioned ${caption}: ${m.tables.map((x) => x.caption).join(' | ')}`)
  return t
}

test('a run with its evaluation: curves, overlay, Dice/HD95 and paper tables, figures, config', {skip}, async () => {
  const {page} = await reportInBrowser(run, 'run')
  const m = page.measured
  assert.equal(m.title, 'sipl run: run')
  for (const id of ['summary', 'curves', 'validation-overlay', 'eval-scores', 'eval-per-class', 'eval-tables', 'eval-figures', 'config'])
    assert.ok(m.sections.includes(id), `section ${id} in ${m.sections.join(' ')}`)
  // 4 curves, the validation overlay, one qualitative figure
  assert.equal(m.images.length, 6)
  assert.deepEqual(
    m.images.slice(0, 4).map((i) => i.width),
    [520, 520, 520, 520],
  )
  const overlay = readFileSync(join(run, 'validation-overlay.png'))
  assert.deepEqual([m.images[4].width, m.images[4].height], [overlay.readUInt32BE(16), overlay.readUInt32BE(20)])
  // the per-epoch table is metrics.csv
  const csv = readFileSync(join(run, 'metrics.csv'), 'utf8').trim().split('\n').slice(1)
  const epochs = tableWith(m, /metrics\.csv/)
  assert.equal(epochs.rows, 1 + csv.length)
  assert.ok(epochs.text.includes(Number(csv[1].split(',')[4]).toFixed(4)), 'epoch 2 loss')
  // per-class Dice and HD95 from eval/summary.json
  const summary = JSON.parse(readFileSync(join(run, 'eval', 'summary.json'), 'utf8')) as {
    perClass: Record<string, {dice: number; hd95: number | null}>
  }
  const perClass = tableWith(m, /per class, mean over/)
  for (const [cls, s] of Object.entries(summary.perClass)) {
    const line = perClass.text.split('\n').find((l) => l.startsWith(cls))
    assert.ok(line?.includes((100 * s.dice).toFixed(2)), `${cls} Dice in ${line}`)
    if (s.hd95 !== null) assert.ok(line?.includes(s.hd95.toFixed(2)), `${cls} HD95 in ${line}`)
  }
  tableWith(m, /Table 1 layout/)
  // the demo config scores under the default protocol, strict; the training table says how val Dice is scored
  assertProtocolInCaptions(
    m.tables.filter((t) => t !== epochs),
    PROTOCOL_DESCRIPTIONS.strict,
  )
  assert.match(epochs.caption, /val Dice: .*every class scored in every case/)
  assert.equal(m.pre[m.pre.length - 1], readFileSync(join(run, 'config.yaml'), 'utf8'))
})

test('an evaluation of masks with paired tests: the Tables 2/3 layout with its p-values', {skip}, async () => {
  // reference = the phantoms' labels; "SIPL" predicts them exactly, "shifted" gives each case its neighbour's labels
  const labels = join(env.SIPL_DATA_DIR, 'demo', 'labelsTr')
  const files = readdirSync(labels).sort()
  assert.ok(files.length >= 3, 'the phantoms the run was trained on')
  const [exact, shifted, out] = ['exact', 'shifted', 'eval'].map((d) => join(root, d))
  mkdirSync(exact)
  mkdirSync(shifted)
  files.forEach((f, i) => {
    copyFileSync(join(labels, f), join(exact, f))
    copyFileSync(join(labels, files[(i + 1) % files.length]), join(shifted, f))
  })
  const e = sipl(
    [
      'eval',
      '--pred',
      exact,
      '--labels',
      labels,
      '--name',
      'SIPL',
      '--compare',
      `shifted=${shifted}`,
      '--paired-ttest',
      '--wilcoxon',
      '--out',
      out,
    ],
    {env},
  )
  assert.equal(e.code, 0, e.stderr)

  const {page} = await reportInBrowser(out, 'eval')
  const m = page.measured
  const comparison = JSON.parse(readFileSync(join(out, 'comparison.json'), 'utf8')) as {tests: {test: string; b: string; p: number}[]}
  for (const [test, caption] of [
    ['ttest', /paired t-test/],
    ['wilcoxon', /Wilcoxon/],
  ] as const) {
    const p = comparison.tests.find((t) => t.test === test && t.b === 'shifted')!.p
    const table = tableWith(m, caption)
    const row = table.text.split('\n').find((l) => l.startsWith('shifted'))
    assert.ok(row?.includes(formatP(p)), `${test} p ${formatP(p)} in '${row}'`)
    assert.ok(table.text.split('\n').some((l) => l.startsWith('SIPL')))
  }
  const t1 = tableWith(m, /Table 1 layout/)
  const lines = t1.text.split('\n')
  assert.match(lines[lines.length - 1], /^SIPL\t100\.00/, 'the evaluated method last, exact = 100 %')
  assert.equal(m.images.length, 0, 'no figures for masks')
  assert.equal(m.tables.length, 5, 'per class, per case, Table 1 and two tests')
  assertProtocolInCaptions(m.tables, PROTOCOL_DESCRIPTIONS.strict)
})

test('a sweep: results per trial and per setting, the sweep plot, per-trial overlays', {skip}, async () => {
  const {command, control} = writeFakeSipl(root)
  const out = join(root, 'sweep')
  const s = sipl(
    ['sweep', '-c', 'experiments/demo.yaml', '--grid', 'model.queries=8,16', '--seeds', '1,2', '--out', out, '--trial-command', command],
    {
      env: {...env, FAKE_SIPL_CONTROL: control},
    },
  )
  assert.equal(s.code, 0, s.stderr)
  // the fake writes no figures: give one trial the figure a real eval writes
  mkdirSync(join(out, 'trials', 'queries=8_seed=1', 'eval', 'figures'), {recursive: true})
  copyFileSync(join(run, 'validation-overlay.png'), join(out, 'trials', 'queries=8_seed=1', 'eval', 'figures', 'case_1.png'))

  const {page} = await reportInBrowser(out, 'sweep')
  const m = page.measured
  assert.equal(m.title, 'sipl sweep: demo')
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {rows: {name: string; meanDice: number}[]}
  const perTrial = tableWith(m, /one row per trial/)
  assert.equal(perTrial.rows, 1 + 4)
  for (const r of results.rows) assert.ok(perTrial.text.includes(`${r.name}\t`) && perTrial.text.includes(r.meanDice.toFixed(4)), r.name)
  assert.equal(tableWith(m, /averaged over seeds/).rows, 1 + 2)
  assertProtocolInCaptions(m.tables, PROTOCOL_DESCRIPTIONS.strict)
  assert.deepEqual(
    m.images.map((i) => i.alt),
    ['mean Dice against model.queries', 'queries=8, seed=1: case_1'],
  )
})

test('an ablation: Δ and the paired t-test p against the full model', {skip}, async () => {
  const {command, control} = writeFakeSipl(join(root, 'fake-ablation'))
  const out = join(root, 'ablation')
  const a = sipl(['ablate', '-c', 'experiments/demo.yaml', '--remove', 'ipl', '--out', out, '--trial-command', command], {
    env: {...env, FAKE_SIPL_CONTROL: control},
  })
  assert.equal(a.code, 0, a.stderr)
  const {page} = await reportInBrowser(out, 'ablation')
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
    rows: {label: string; p: number | null; delta: number | null}[]
  }
  const table = tableWith(page.measured, /paired t-test/)
  const noIpl = results.rows[1]
  const row = table.text.split('\n').find((l) => l.startsWith(noIpl.label))
  assert.ok(row?.includes(formatP(noIpl.p)) && row.includes((100 * noIpl.delta!).toFixed(2)), `'${row}'`)
  assertProtocolInCaptions(page.measured.tables, PROTOCOL_DESCRIPTIONS.strict)
})

test('the browser check catches a console error and a request for a remote file', {skip}, async () => {
  const file = join(root, 'control.html')
  writeFileSync(
    file,
    `<!DOCTYPE html><html><body><p>control</p><img src="http://127.0.0.1:9/remote.png"><script>console.error('control error')</script></body></html>`,
  )
  const page = await browser!.load<number>(file, '() => document.images.length')
  assert.ok(
    page.errors.some((e) => e.includes('control error')),
    page.errors.join('\n'),
  )
  assert.ok(page.requests.includes('http://127.0.0.1:9/remote.png'), page.requests.join('\n'))
  assert.ok(pixelStats(page.screenshot).inked < 0.01, 'an almost empty page counts as blank')
})

test('a folder that is none of the four: one line, exit 2', () => {
  const r = sipl(['report', mkdtempSync(join(tmpdir(), 'sipl-not-a-run-'))])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^Error: .*not a run, eval, sweep or ablation folder.*\n$/)
})
