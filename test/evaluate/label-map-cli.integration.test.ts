/**
 * `sipl eval --pred --labels` with label maps, through the real CLI: masks in TotalSegmentator's
 * values scored against references in the same values (--label-map, or data.labelMap of -c),
 * sipl-style 1..K masks against them (--pred-label-map identity), and a bad map's exit 2.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import {sipl} from '../helpers/cli.js'

const SHAPE = [6, 4, 2]
const geometry = geometryFromAffine([
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
])

/** value of voxel (x, y) from one value per x-slab, or a function of (x, y) */
function volume(valueAt: (x: number, y: number) => number): Uint8Array {
  return Uint8Array.from({length: 48}, (_, i) => valueAt(i % 6, Math.floor(i / 6) % 4))
}

// references (TotalSegmentator values): x-slabs spleen 1, kidney_right 2, kidney_left 3, liver 5, another organ 7, background
const reference = volume((x) => [1, 2, 3, 5, 7, 0][x])
// predictions in the same values: both kidney slabs called left (3), liver only for y < 2, the other organ spilling into x = 5
const predicted = volume((x, y) => [1, 3, 3, y < 2 ? 5 : 0, 7, 7][x])
// the same prediction as sipl writes it: class indices 1..3 in [spleen, kidney, liver] order
const predictedClasses = volume((x, y) => [1, 2, 2, y < 2 ? 3 : 0, 0, 0][x])

// by hand: spleen 8/8 voxels → Dice 1; kidney {x 1, 2} both sides → 1 (2 and 3 are one class);
// liver: 4 predicted voxels inside 8 → 2·4 / (4 + 8) = 2/3; mean (1 + 1 + 2/3) / 3 = 8/9
const EXPECTED = {spleen: 1, kidney: 1, liver: 2 / 3}

function writeSet(dir: string, data: Uint8Array) {
  for (const id of ['case_01', 'case_02']) writeNifti(join(dir, `${id}.nii.gz`), {shape: SHAPE, data, geometry})
}

interface EvalJson {
  methods: {main: {meanDice: number; perClass: Record<string, number>}}
  summary: {classes: string[]}
}

test('eval --pred --labels scores masks through label maps: --label-map, -c with data.labelMap, --pred-label-map identity', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-labelmap-eval-'))
  try {
    writeSet(join(root, 'labels'), reference)
    writeSet(join(root, 'totalseg'), predicted)
    writeSet(join(root, 'sipl'), predictedClasses)
    const mapFile = join(root, 'totalseg-map.yaml')
    writeFileSync(mapFile, 'spleen: 1\nkidney: [2, 3]\nliver: 5\n')
    const check = (args: string[], what: string) => {
      const r = sipl(['eval', ...args, '--json', '--log-level', 'info'])
      assert.equal(r.code, 0, `${what}: ${r.stderr}`)
      const json = JSON.parse(r.stdout) as EvalJson
      assert.deepEqual(json.summary.classes, ['spleen', 'kidney', 'liver'], what)
      for (const [name, dice] of Object.entries(EXPECTED))
        assert.ok(Math.abs(json.methods.main.perClass[name] - dice) < 1e-12, `${what} ${name}`)
      assert.ok(Math.abs(json.methods.main.meanDice - 8 / 9) < 1e-12, what)
      return r.stderr
    }

    // 1. the map from a file, on both sides; the unmapped value 7 is said once per side
    const stderr = check(
      ['--pred', join(root, 'totalseg'), '--labels', join(root, 'labels'), '--label-map', mapFile, '--out', join(root, 'e1')],
      'file',
    )
    const refLines = stderr.split('\n').filter((l) => l.includes('--labels: values not in the label map became background'))
    assert.equal(refLines.length, 1, stderr)
    assert.match(refLines[0], /: 7 \(16 voxels\)/)
    assert.match(stderr, /main: predicted values not in the label map became background: 7 \(32 voxels\)/)
    const summary = JSON.parse(readFileSync(join(root, 'e1', 'summary.json'), 'utf8')) as {labelMap: unknown}
    assert.deepEqual(summary.labelMap, {
      labels: {spleen: [1], kidney: [2, 3], liver: [5]},
      predictions: {spleen: [1], kidney: [2, 3], liver: [5]},
    })

    // 2. the map from a config's data.labelMap
    const config = join(root, 'totalseg.yaml')
    writeFileSync(config, 'data:\n  classes: [spleen, kidney, liver]\n  labelMap: {spleen: 1, kidney: [2, 3], liver: 5}\n')
    check(['--pred', join(root, 'totalseg'), '--labels', join(root, 'labels'), '-c', config, '--out', join(root, 'e2')], 'config')

    // 3. masks already in class order (sipl predict's) against the mapped references
    check(
      [
        '--pred',
        join(root, 'sipl'),
        '--labels',
        join(root, 'labels'),
        '-c',
        config,
        '--pred-label-map',
        'identity',
        '--out',
        join(root, 'e3'),
      ],
      'identity',
    )

    // without a map the kidney halves do not match and 5, 7 are classes of their own
    const raw = sipl(['eval', '--pred', join(root, 'totalseg'), '--labels', join(root, 'labels'), '--out', join(root, 'e4'), '--json'])
    assert.equal(raw.code, 0, raw.stderr)
    assert.equal((JSON.parse(raw.stdout) as EvalJson).summary.classes.length, 7)

    // a bad map is exit 2 with one line naming the key
    writeFileSync(join(root, 'bad.yaml'), 'spleen: 1\nkidney: [2, 1]\nliver: 5\n')
    const bad = sipl(['eval', '--pred', join(root, 'totalseg'), '--labels', join(root, 'labels'), '--label-map', join(root, 'bad.yaml')])
    assert.equal(bad.code, 2)
    assert.match(
      bad.stderr,
      /^Error: --label-map .*bad\.yaml kidney: label value 1 is mapped twice \(also spleen\); give each value one class\n$/,
    )
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
