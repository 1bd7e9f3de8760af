import {test} from 'node:test'
import assert from 'node:assert/strict'
import {comparisonTable, formatP, perClassTable, render} from '../../src/report/tables.js'

test('Table 1 layout: paper abbreviations, DSC % with 2 decimals, Avg last', () => {
  const t = perClassTable(
    [
      {name: 'UNETR++', meanDice: 0.8328, perClass: {spleen: 0.9494, right_kidney: 0.919}},
      {name: 'SIPL (ours)', meanDice: 0.87, perClass: {spleen: 0.949, right_kidney: 0.9485}},
    ],
    ['spleen', 'right_kidney'],
  )
  assert.deepEqual(t.header, ['Methods', 'Spl', 'RKid', 'Avg'])
  assert.deepEqual(t.rows[1], ['SIPL (ours)', '94.90', '94.85', '87.00'])
  const r = render(t, 'BTCV')
  assert.equal(r.markdown.split('\n')[1], '| --- | ---: | ---: | ---: |')
  assert.equal(r.csv.split('\n')[2], 'SIPL (ours),94.90,94.85,87.00')
  assert.match(r.latex, /SIPL \(ours\) & 94\.90 & 94\.85 & 87\.00 \\\\/)
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
