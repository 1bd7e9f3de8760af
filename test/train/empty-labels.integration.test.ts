/**
 * Empty label maps (issue 14 item 8): all-empty training labels trained to exit 0 and a model
 * that predicts background. Now preprocessing warns per empty case, training warns per empty
 * training case and per class no training case holds, and refuses a split where every label
 * map is empty (exit 2, one line).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {diagonal, writeVolume} from '../helpers/nifti-header.js'
import {TINY} from '../e2e/tiny.js'

/** 16³ cases at 2 mm; `labelled` ones hold a cube of class 1 */
function dataset(cases: Record<string, boolean>): string {
  const root = mkdtempSync(join(tmpdir(), 'sipl-empty-labels-'))
  for (const d of ['imagesTr', 'labelsTr']) mkdirSync(join(root, d))
  for (const [id, labelled] of Object.entries(cases)) {
    const image = new Int16Array(4096).fill(-1000)
    const label = new Uint8Array(4096)
    for (let z = 4; z < 12; z++)
      for (let y = 4; y < 12; y++)
        for (let x = 4; x < 12; x++) {
          const i = x + 16 * (y + 16 * z)
          image[i] = 60
          if (labelled) label[i] = 1
        }
    writeVolume(join(root, 'imagesTr', `${id}.nii`), [16, 16, 16], image, diagonal(2, 2, 2))
    writeVolume(join(root, 'labelsTr', `${id}.nii`), [16, 16, 16], label, diagonal(2, 2, 2))
  }
  return root
}

const args = (root: string, out: string) => [
  'train',
  '-c',
  'experiments/demo.yaml',
  ...TINY,
  ...[
    'data.preset=folder',
    `data.root=${root}`,
    `data.cache=${join(root, 'cache')}`,
    'data.classes=[x, y]',
    'data.splitFractions=[1, 0, 0]',
    'train.epochs=1',
    'train.itersPerEpoch=1',
    'train.valEvery=0',
  ].flatMap((s) => ['--set', s]),
  '--backend',
  'cpu',
  '--out',
  out,
]

test('every training label map empty: preprocessing warns per case, training refuses with exit 2 and one line', () => {
  const root = dataset({a: false, b: false})
  const r = sipl(args(root, join(root, 'run')))
  assert.equal(r.code, 2, r.stderr)
  const lines = r.stderr.trim().split('\n')
  assert.match(lines.at(-1)!, /^Error: every training case has an empty label map \(a, b\); check data\.root/)
  assert.equal(lines.filter((l) => l.startsWith('Error')).length, 1)
  for (const id of ['a', 'b']) assert.match(r.stderr, new RegExp(`case ${id}: the label map is empty after preprocessing`))
})

test('some empty: training runs, warning per empty training case and per class no case holds', () => {
  const root = dataset({a: true, b: false})
  const r = sipl(args(root, join(root, 'run')))
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stderr, /training case b has an empty label map/)
  assert.doesNotMatch(r.stderr, /training case a has an empty/)
  assert.match(r.stderr, /class 'y' \(label 2\) appears in no training case/)
  assert.doesNotMatch(r.stderr, /class 'x'/)
})
