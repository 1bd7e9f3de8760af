import {test} from 'node:test'
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseDocument} from 'yaml'
import {comparisonTable, formatP, perClassTable, render} from '../../src/report/tables.js'
import {PROJECT_ROOT} from '../helpers/cli.js'

test('Table 1 layout: class columns, DSC % with 2 decimals, Avg last', () => {
  const t = perClassTable(
    [
      {name: 'UNETR++', meanDice: 0.8328, perClass: {spleen: 0.9494, right_kidney: 0.919}},
      {name: 'SIPL (ours)', meanDice: 0.87, perClass: {spleen: 0.949, right_kidney: 0.9485}},
    ],
    ['spleen', 'right_kidney'],
  )
  assert.deepEqual(t.header, ['Methods', 'spleen', 'right_kidney', 'Avg'])
  assert.deepEqual(t.rows[1], ['SIPL (ours)', '94.90', '94.85', '87.00'])
  const r = render(t, 'BTCV')
  assert.equal(r.markdown.split('\n')[1], '| --- | ---: | ---: | ---: |')
  assert.equal(r.csv.split('\n')[2], 'SIPL (ours),94.90,94.85,87.00')
  assert.match(r.latex, /SIPL \(ours\) & 94\.90 & 94\.85 & 87\.00 \\\\/)
})

test('one header style: every class column is the class name as configured, whatever the names', () => {
  const configs: Record<string, string[]> = {
    // the demo's mix of BTCV organs and other names once gave `Liv | Spl | kidney`
    demo: ['liver', 'spleen', 'kidney'],
    btcv: parseDocument(readFileSync(join(PROJECT_ROOT, 'experiments', 'btcv.yaml'), 'utf8')).toJS().data.classes as string[],
    brats: ['WT', 'TC', 'ET'],
    lungs: ['tumour'],
  }
  assert.equal(configs.btcv.length, 13)
  for (const [name, classes] of Object.entries(configs)) {
    const perClass = Object.fromEntries(classes.map((c, k) => [c, 0.5 + k / 100]))
    const t = perClassTable([{name: 'm', meanDice: 0.5, perClass}], classes)
    assert.deepEqual(t.header, ['Methods', ...classes, 'Avg'], name)
    // each column header is the key of its value in summary.json's perClass, so every cell is filled
    assert.ok(!t.rows[0].includes('–'), `${name}: ${t.rows[0].join(' ')}`)
    assert.equal(render(t, name).csv.split('\n')[0], ['Methods', ...classes, 'Avg'].join(','))
  }
  assert.equal(render(perClassTable([], configs.demo), 'demo').markdown.split('\n')[0], '| Methods | liver | spleen | kidney | Avg |')
  // LaTeX gets the same names, escaped
  assert.ok(render(perClassTable([], ['right_kidney']), 'x').latex.includes('Methods & right\\_kidney & Avg \\\\'))
})

test('Tables 2/3 layout: compared methods first, ours last without a p-value; p formatting as in the paper', () => {
  assert.equal(formatP(0.00001), '< 0.0001')
  assert.equal(formatP(0.0014), '0.0014')
  assert.equal(formatP(NaN), 'n/a')
  const t = comparisonTable(
    [
      {name: 'SIPL', meanDice: 0.815, p: null},
      {name: 'UNETR++', meanDice: 0.8068, p: 0.0014},
      {name: 'nnUNet', meanDice: 0.7431, p: 1e-6},
    ],
    'SIPL',
  )
  assert.deepEqual(t.header, ['Model', 'DSC (%)', 'p-values'])
  assert.deepEqual(t.rows, [
    ['UNETR++', '80.68', '0.0014'],
    ['nnUNet', '74.31', '< 0.0001'],
    ['SIPL', '81.50', ''],
  ])
  // LaTeX escapes & and %, and typesets <
  const latex = render({header: ['a&b', 'DSC (%)'], rows: [['x_y', '< 0.0001']]}, 'c').latex.split('\n')
  assert.equal(latex[4], 'a\\&b & DSC (\\%) \\\\')
  assert.equal(latex[6], 'x\\_y & $<$ 0.0001 \\\\')
})
