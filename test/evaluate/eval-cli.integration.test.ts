/**
 * `sipl eval --pred/--labels/--compare` end to end on NIfTI masks written here: outputs exist
 * and parse, --json has the documented shape, the p-values equal the library functions applied
 * to the per-case scores in the JSON, and mismatched case sets are a one-line error.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {writeNifti, geometryFromAffine} from '../../src/io/nifti-writer.js'
import {pairedTTest, wilcoxonSignedRank, holm} from '../../src/evaluate/stats.js'
import {sipl} from '../helpers/cli.js'

const SHAPE = [12, 10, 8]
const SPACING = [1.5, 1.5, 2]
const affine = [
  [1.5, 0, 0, 0],
  [0, 1.5, 0, 0],
  [0, 0, 2, 0],
  [0, 0, 0, 1],
]

/** two boxes: class 1 at x0.., class 2 shifted; `jitter` moves the prediction's class-1 box */
function labels(caseIndex: number, jitter: number): Uint8Array {
  const [X, Y, Z] = SHAPE
  const out = new Uint8Array(X * Y * Z)
  for (let z = 2; z < 6; z++)
    for (let y = 1; y < 10; y++)
      for (let x = 0; x < X; x++) {
        const i = x + X * (y + Y * z)
        if (y < 6 && x >= 1 + jitter && x < 5 + jitter + (caseIndex % 3)) out[i] = 1
        else if (y >= 7 && x >= 7 && x < 10) out[i] = 2
      }
  return out
}

function writeSet(dir: string, ids: string[], jitter: (k: number) => number, suffix = '') {
  ids.forEach((id, k) =>
    writeNifti(join(dir, `${id}${suffix}.nii.gz`), {
      shape: SHAPE,
      data: labels(k, jitter(k)),
      geometry: geometryFromAffine(affine as never),
    }),
  )
}

test('eval --pred --labels --compare with paired tests writes every output and the documented --json', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-eval-'))
  try {
    const ids = ['case_001', 'case_002', 'case_003', 'case_004', 'case_005', 'case_006']
    writeSet(join(root, 'labels'), ids, () => 0)
    writeSet(join(root, 'ours'), ids, (k) => (k % 2 === 0 ? 0 : 1))
    writeSet(join(root, 'other'), ids, (k) => 1 + (k % 2))
    // nnU-Net style names with the _0000 suffix still match by case id
    writeSet(join(root, 'third'), ids, (k) => (k < 3 ? 2 : 1), '_0000')
    const out = join(root, 'eval')
    const r = sipl([
      'eval',
      '--pred',
      join(root, 'ours'),
      '--labels',
      join(root, 'labels'),
      '--name',
      'SIPL',
      '--compare',
      `other=${join(root, 'other')}`,
      '--compare',
      `third=${join(root, 'third')}`,
      '--paired-ttest',
      '--wilcoxon',
      '--holm',
      '--out',
      out,
      '--json',
    ])
    assert.equal(r.code, 0, r.stderr + r.stdout)
    const json = JSON.parse(r.stdout) as {
      methods: Record<string, {meanDice: number; perCase: Record<string, number>}>
      tests: {a: string; b: string; test: string; p: number; pHolm: number}[]
    }
    assert.deepEqual(Object.keys(json.methods).sort(), ['SIPL', 'other', 'third'])
    assert.deepEqual(Object.keys(json.methods.SIPL.perCase).sort(), ids)
    const scores = (name: string) => ids.map((id) => json.methods[name].perCase[id])
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    assert.ok(Math.abs(json.methods.SIPL.meanDice - mean(scores('SIPL'))) < 1e-12)
    // the prediction of case 0 equals the reference → per-case Dice 1
    assert.equal(json.methods.SIPL.perCase.case_001, 1)
    const tt = json.tests.filter((t) => t.test === 'ttest')
    assert.deepEqual(
      tt.map((t) => [t.a, t.b]),
      [
        ['SIPL', 'other'],
        ['SIPL', 'third'],
      ],
    )
    tt.forEach((t) => assert.ok(Math.abs(t.p - pairedTTest(scores('SIPL'), scores(t.b)).p) < 1e-12))
    const holmed = holm(tt.map((t) => t.p))
    tt.forEach((t, i) => assert.ok(Math.abs(t.pHolm - holmed[i]) < 1e-12))
    const w = json.tests.find((t) => t.test === 'wilcoxon' && t.b === 'other')!
    assert.ok(Math.abs(w.p - wilcoxonSignedRank(scores('SIPL'), scores('other')).p) < 1e-12)
    for (const f of [
      'per-case.csv',
      'summary.json',
      'table1.md',
      'table1.csv',
      'table1.tex',
      'comparison-ttest.md',
      'comparison-wilcoxon.tex',
    ])
      assert.ok(existsSync(join(out, f)), `${f} exists`)
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
      meanDice: number
      perClass: Record<string, {dice: number; hd95: number}>
      cases: string[]
    }
    assert.deepEqual(Object.keys(summary.perClass), ['class1', 'class2'])
    // class 2 is identical everywhere: Dice 1, HD95 0
    assert.deepEqual([summary.perClass.class2.dice, summary.perClass.class2.hd95], [1, 0])
    const csv = readFileSync(join(out, 'per-case.csv'), 'utf8').trim().split('\n')
    assert.equal(csv[0], 'case,class,dice,hd95,surfaceDice,refEmpty,predEmpty')
    assert.equal(csv.length, 1 + ids.length * 2)
    // Table 1 layout: Methods | class columns | Avg, ours last
    const md = readFileSync(join(out, 'table1.md'), 'utf8').split('\n')
    assert.equal(md[0], '| Methods | class1 | class2 | Avg |')
    // the evaluated method's row, then the caption (pandoc's Table: line) naming the grid and protocol
    assert.match(md[md.length - 4], /^\| SIPL \|/)
    assert.match(md[md.length - 2], /^Table: DSC \(%\) per class on 6 cases, the --labels grid; protocol strict/)
    assert.match(readFileSync(join(out, 'comparison-ttest.tex'), 'utf8'), /\\toprule/)

    // a missing case is a user error that lists it
    rmSync(join(root, 'other', 'case_004.nii.gz'))
    const bad = sipl([
      'eval',
      '--pred',
      join(root, 'ours'),
      '--labels',
      join(root, 'labels'),
      '--compare',
      `other=${join(root, 'other')}`,
      '--paired-ttest',
    ])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /case sets differ \(no prediction for case_004\)/)
    const noCompare = sipl(['eval', '--pred', join(root, 'ours'), '--labels', join(root, 'labels'), '--paired-ttest'])
    assert.equal(noCompare.code, 2)
    assert.match(noCompare.stderr, /add at least one --compare/)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
