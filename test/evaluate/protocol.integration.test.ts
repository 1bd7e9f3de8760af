/**
 * The two scoring protocols on hand-made label maps (8 voxels in a row, 2 classes), every number
 * worked out by hand below. Case c4 has no reference foreground at all.
 *
 *   case  reference        prediction        strict: Dice 1, Dice 2 → mean   sipl (largest component): Dice 1, Dice 2 → mean
 *   c1    11002200         11002201*         0.8 (2·2/5), 1 → 0.9            1 (the stray x7 voxel dropped), 1 → 1
 *   c2    11110000         11000020          0.667 (2·2/6), 0 (a false       0.667, not scored (2 absent) → 0.667
 *                                            positive on an absent class) → 0.333
 *   c3    00110000         00110000          1, 1 (both empty) → 1            1, not scored → 1
 *   c4    00000000         10000000          0, 1 → 0.5                       not scored at all (no reference foreground)
 *   (* x7 is 1: a second component of class 1)
 *
 *   per class   strict: (0.8 + 0.667 + 1 + 0)/4 = 0.6167, (1 + 0 + 1 + 1)/4 = 0.75 → mean 0.6833
 *               sipl:   (1 + 0.667 + 1)/3 = 0.8889, 1/1 = 1 → mean 0.9444
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {writeNifti} from '../../src/io/nifti-writer.js'
import {IDENTITY_GEOMETRY} from '../helpers/geometry.js'
import {scoreCase, summarize} from '../../src/evaluate/evaluate.js'
import {keepLargestComponent} from '../../src/evaluate/postprocess.js'
import {sipl} from '../helpers/cli.js'

const row = (s: string) => Uint8Array.from([...s].map(Number))
const CASES: Record<string, [string, string]> = {
  c1: ['11002200', '11002201'],
  c2: ['11110000', '11000020'],
  c3: ['00110000', '00110000'],
  c4: ['00000000', '10000000'],
}
const SHAPE: [number, number, number] = [8, 1, 1]
const close = (a: number | null | undefined, b: number | null, what: string) =>
  b === null ? assert.equal(a, null, what) : assert.ok(a !== null && a !== undefined && Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`)

test('strict and sipl per-case tables, by hand (absent classes, false positives, an empty case)', () => {
  const score = (protocol: 'strict' | 'sipl') =>
    Object.entries(CASES).map(([id, [ref, pred]]) => {
      const p = protocol === 'sipl' ? keepLargestComponent(row(pred), SHAPE, 2) : row(pred)
      return scoreCase(id, p, row(ref), SHAPE, [1, 1, 1], 2, {overlappingRegions: false, tolerance: 1, protocol})
    })
  const strict = score('strict')
  const expectStrict: [number, number, number][] = [
    [0.8, 1, 0.9],
    [2 / 3, 0, 1 / 3],
    [1, 1, 1],
    [0, 1, 0.5],
  ]
  strict.forEach((r, i) => {
    close(r.classes[0].dice, expectStrict[i][0], `strict ${r.id} class 1`)
    close(r.classes[1].dice, expectStrict[i][1], `strict ${r.id} class 2`)
    close(r.meanDice, expectStrict[i][2], `strict ${r.id} mean`)
    assert.ok(r.classes.every((c) => c.scored))
  })
  const s1 = summarize(['a', 'b'], strict, 1, 'strict')
  close(s1.perClass.a.dice, (0.8 + 2 / 3 + 1 + 0) / 4, 'strict class a')
  close(s1.perClass.b.dice, 0.75, 'strict class b')
  close(s1.meanDice, ((0.8 + 2 / 3 + 1) / 4 + 0.75) / 2, 'strict mean')
  assert.equal(s1.protocol, 'strict')
  assert.deepEqual(Object.keys(s1.perCase), ['c1', 'c2', 'c3', 'c4'])
  assert.deepEqual(s1.unscoredCases, [])

  const siplResults = score('sipl')
  const expectSipl: [number | null, number | null, number | null][] = [
    [1, 1, 1],
    [2 / 3, null, 2 / 3],
    [1, null, 1],
    [null, null, null],
  ]
  siplResults.forEach((r, i) => {
    close(r.classes[0].dice, expectSipl[i][0], `sipl ${r.id} class 1`)
    close(r.classes[1].dice, expectSipl[i][1], `sipl ${r.id} class 2`)
    close(r.meanDice, expectSipl[i][2], `sipl ${r.id} mean`)
  })
  // a left-out class has no HD95 or surface Dice either, and is not counted as an undefined HD95
  assert.deepEqual(
    [siplResults[1].classes[1].hd95, siplResults[1].classes[1].surfaceDice, siplResults[1].classes[1].scored],
    [null, null, false],
  )
  const s2 = summarize(['a', 'b'], siplResults, 1, 'sipl')
  close(s2.perClass.a.dice, (1 + 2 / 3 + 1) / 3, 'sipl class a')
  close(s2.perClass.b.dice, 1, 'sipl class b')
  close(s2.meanDice, ((1 + 2 / 3 + 1) / 3 + 1) / 2, 'sipl mean')
  assert.deepEqual([s2.perClass.a.scored, s2.perClass.b.scored, s2.perClass.b.hd95Undefined], [3, 1, 0])
  assert.deepEqual(Object.keys(s2.perCase), ['c1', 'c2', 'c3'])
  assert.deepEqual(s2.unscoredCases, ['c4'])
  assert.match(s2.conventions, /not scored in that case/)
})

test('a protocol that scores nothing is a one-line error, not a NaN', () => {
  const r = scoreCase('c4', row('10000000'), row('00000000'), SHAPE, [1, 1, 1], 2, {
    overlappingRegions: false,
    tolerance: 1,
    protocol: 'sipl',
  })
  assert.throws(() => summarize(['a', 'b'], [r], 1, 'sipl'), /protocol sipl scores no class in any of the 1 case/)
})

test('sipl eval --protocol: per-case.csv, summary.json "protocol" and the table captions, for both protocols', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-protocol-'))
  try {
    const geometry = IDENTITY_GEOMETRY
    for (const [id, [ref, pred]] of Object.entries(CASES)) {
      writeNifti(join(root, 'labels', `${id}.nii.gz`), {shape: SHAPE, data: row(ref), geometry})
      writeNifti(join(root, 'pred', `${id}.nii.gz`), {shape: SHAPE, data: row(pred), geometry})
    }
    for (const protocol of ['strict', 'sipl'] as const) {
      const out = join(root, `eval-${protocol}`)
      // two classes although no reference holds a 2 in c2–c4: --config is not needed, c1 has one
      const r = sipl([
        'eval',
        '--pred',
        join(root, 'pred'),
        '--labels',
        join(root, 'labels'),
        '--protocol',
        protocol,
        '--out',
        out,
        '--json',
      ])
      assert.equal(r.code, 0, r.stderr + r.stdout)
      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
        protocol: string
        meanDice: number
        perCase: Record<string, number>
        settings: {protocol: string; grid: string; prediction: unknown}
      }
      assert.equal(summary.protocol, protocol)
      assert.deepEqual(summary.settings, {protocol, grid: 'labels', surfaceTolerance: 1, prediction: null})
      const csv = readFileSync(join(out, 'per-case.csv'), 'utf8').trim().split('\n')
      const dice = Object.fromEntries(
        csv
          .slice(1)
          .map((l) => l.split(','))
          .map((c) => [`${c[0]}/${c[1]}`, c[2]]),
      )
      if (protocol === 'strict') {
        close(summary.meanDice, ((0.8 + 2 / 3 + 1) / 4 + 0.75) / 2, 'strict mean')
        assert.deepEqual([dice['c2/class2'], dice['c4/class1'], dice['c4/class2']], ['0', '0', '1'])
        close(summary.perCase.c1, 0.9, 'c1 keeps its stray voxel under strict')
      } else {
        close(summary.meanDice, ((1 + 2 / 3 + 1) / 3 + 1) / 2, 'sipl mean')
        // left-out classes are blank cells; the stray voxel of c1 is gone (largest component)
        assert.deepEqual([dice['c2/class2'], dice['c4/class1'], dice['c4/class2'], dice['c1/class1']], ['', '', '', '1'])
        assert.deepEqual(Object.keys(summary.perCase).sort(), ['c1', 'c2', 'c3'])
      }
      const caption = new RegExp(`protocol ${protocol}:`)
      assert.match(readFileSync(join(out, 'table1.md'), 'utf8'), caption)
      assert.match(readFileSync(join(out, 'table1.tex'), 'utf8'), caption)
      assert.match(r.stdout, /"protocol"/)
    }
    const bad = sipl(['eval', '--pred', join(root, 'pred'), '--labels', join(root, 'labels'), '--protocol', 'nnunet'])
    assert.equal(bad.code, 2)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
