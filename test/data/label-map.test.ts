/**
 * data.labelMap: source label values → classes (TotalSegmentator's spleen 1, kidney_right 2,
 * kidney_left 3, liver 5 → [spleen, kidney, liver]), its validation in configs and files, and its
 * use in preprocessing (class indices in the cache, unmapped values background, said once).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Writable} from 'node:stream'
import {loadConfig} from '../../src/config/load.js'
import {runPreprocess} from '../../src/data/cache.js'
import {loadCase, loadPlan} from '../../src/data/cache-files.js'
import {describeUnmapped, LabelMapping, loadLabelMapFile} from '../../src/data/label-map.js'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import {createLogger} from '../../src/log/logger.js'
import {userErrorMessage} from '../helpers/user-error.js'

const CLASSES = ['spleen', 'kidney', 'liver']
const TOTALSEG = {spleen: [1], kidney: [2, 3], liver: [5]}


const noFraction = (v: number): never => {
  throw new Error(`fraction ${v}`)
}

test('source values map to class indices; values the map leaves out become background and are counted', () => {
  const mapping = new LabelMapping(TOTALSEG, CLASSES)
  //                 bg spl kR kL  ? liv  ?  liv  ?   9999
  const stored = [0, 1, 2, 3, 4, 5, 6, 5, 4, 9999]
  const out = new Uint8Array(stored.length)
  const unmapped = new Map<number, number>()
  mapping.apply(stored, 1, 0, out, unmapped, noFraction)
  assert.deepEqual([...out], [0, 1, 2, 2, 0, 3, 0, 3, 0, 0])
  assert.deepEqual([...unmapped].sort((a, b) => a[0] - b[0]), [
    [4, 2],
    [6, 1],
    [9999, 1],
  ])
  assert.equal(describeUnmapped(unmapped), '4 (2 voxels), 6 (1 voxel), 9999 (1 voxel)')
  assert.deepEqual(
    [0, 1, 2, 3, 5, -1, 2.5].map((v) => mapping.classOf(v)),
    [0, 1, 2, 2, 3, 0, 0],
  )
  // the file's scaling applies first: stored 2 · 2.5 + 0 = 5 (liver); 0.8 · 2.5 = 2 (kidney)
  const scaled = new Uint8Array(2)
  mapping.apply([2, 0.8], 2.5, 0, scaled, new Map(), noFraction)
  assert.deepEqual([...scaled], [3, 2])
  // a fraction is the caller's error, unless values are rounded (other tools' float masks)
  assert.throws(() => mapping.apply([2.5], 1, 0, new Uint8Array(1), new Map(), noFraction), /fraction 2.5/)
  const rounded = new Uint8Array(2)
  mapping.apply([1.0000001, 2.9999], 1, 0, rounded, new Map(), noFraction, true)
  assert.deepEqual([...rounded], [1, 2])
})

function configFile(labelMap: string, extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-labelmap-cfg-'))
  const file = join(dir, 'totalseg.yaml')
  writeFileSync(file, `name: totalseg\ndata:\n  classes: [spleen, kidney, liver]\n${extra}  labelMap: ${labelMap}\n`)
  return file
}

test('data.labelMap in a config: accepted forms, and every mistake names the key', () => {
  const ok = loadConfig(configFile('{spleen: 1, kidney: [2, 3], liver: 5}')).config
  // a single value is stored as a one-element list
  assert.deepEqual(ok.data.labelMap, TOTALSEG)
  const cases: [string, RegExp][] = [
    ['{spleen: 1, kidny: [2, 3], liver: 5}', /totalseg\.yaml:\d+:\d+ data\.labelMap\.kidny: 'kidny' is not one of data\.classes \[spleen, kidney, liver\]/],
    ['{spleen: 1, kidney: [2, 1], liver: 5}', /data\.labelMap\.kidney: label value 1 is mapped twice \(also spleen\)/],
    ['{spleen: 1, kidney: [2, 2], liver: 5}', /data\.labelMap\.kidney: label value 2 is mapped twice \(listed twice in kidney\)/],
    ['{spleen: 1, kidney: [2, 3.5], liver: 5}', /totalseg\.yaml:\d+:\d+ data\.labelMap\.kidney\.1: label values are whole numbers/],
    ['{spleen: one, kidney: [2, 3], liver: 5}', /data\.labelMap\.spleen: expected a label value \(a whole number\) or a list of them/],
    ['{spleen: 0, kidney: [2, 3], liver: 5}', /data\.labelMap\.spleen\.0: label value 0 is background/],
    ['{spleen: 1, kidney: [2, 70000], liver: 5}', /data\.labelMap\.kidney\.1: label values above 65535 \(uint16\) are not supported/],
    ['{spleen: 1, kidney: [], liver: 5}', /data\.labelMap\.kidney: give at least one label value/],
    ['{spleen: 1, kidney: [2, 3]}', /data\.labelMap: no label values for liver/],
  ]
  for (const [map, message] of cases) assert.match(userErrorMessage(() => loadConfig(configFile(map))), message, map)
  assert.match(
    userErrorMessage(() => loadConfig(configFile('{spleen: 1, kidney: [2, 3], liver: 5}', '  overlappingRegions: true\n'))),
    /data\.labelMap: overlapping regions \(BraTS\)/,
  )
})

test('a label map file (--label-map): its keys give the classes unless a config does; errors name the file and key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-labelmap-file-'))
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text)
    return join(dir, name)
  }
  const fromKeys = loadLabelMapFile(file('ts.yaml', 'liver: 5\nspleen: 1\nkidney: [2, 3]\n'))
  assert.deepEqual(fromKeys.classes, ['liver', 'spleen', 'kidney'])
  assert.equal(fromKeys.classOf(5), 1)
  const json = loadLabelMapFile(file('ts.json', '{"liver": [5], "spleen": 1, "kidney": [2, 3]}'), CLASSES)
  assert.deepEqual(json.classes, CLASSES)
  assert.deepEqual([1, 2, 3, 5].map((v) => json.classOf(v)), [1, 2, 2, 3])
  assert.match(userErrorMessage(() => loadLabelMapFile(file('a.yaml', 'spleen: 1\nkidney: [2.5]\n'))), /^--label-map .*a\.yaml kidney: label values are whole numbers$/)
  assert.match(
    userErrorMessage(() => loadLabelMapFile(file('b.yaml', 'spleen: 1\nkidney: 1\n'))),
    /^--label-map .*b\.yaml kidney: label value 1 is mapped twice \(also spleen\)/,
  )
  assert.match(userErrorMessage(() => loadLabelMapFile(file('c.yaml', 'spleen: 1\nkidny: 2\n'), ['spleen', 'kidney'])), /c\.yaml kidny: 'kidny' is not one of data\.classes/)
  assert.match(userErrorMessage(() => loadLabelMapFile(file('d.yaml', '[1, 2]\n'))), /d\.yaml: expected a mapping of class names to label values/)
  assert.match(userErrorMessage(() => loadLabelMapFile(join(dir, 'missing.yaml'))), /missing\.yaml: no such file/)
  rmSync(dir, {recursive: true, force: true})
})

/** A 6×4×2 volume whose x-slabs hold: spleen 1, kidney_right 2, kidney_left 3, liver 5, an unlisted organ 7, background. */
function totalSegLabels(): Uint8Array {
  const values = [1, 2, 3, 5, 7, 0]
  return Uint8Array.from({length: 48}, (_, i) => values[i % 6])
}

test('preprocessing applies the map: the cache holds class indices, unmapped values are background, said once', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-labelmap-pre-'))
  try {
    mkdirSync(join(root, 'imagesTr'))
    mkdirSync(join(root, 'labelsTr'))
    const geometry = geometryFromAffine([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ])
    for (const id of ['s1', 's2']) {
      writeNifti(join(root, 'imagesTr', `${id}.nii.gz`), {shape: [6, 4, 2], data: new Int16Array(48).fill(100), geometry})
      writeNifti(join(root, 'labelsTr', `${id}.nii.gz`), {shape: [6, 4, 2], data: totalSegLabels(), geometry})
    }
    const overrides = [
      'data.preset=folder',
      `data.root=${root}`,
      'data.classes=[spleen, kidney, liver]',
      'preprocess.spacing=[1, 1, 1]',
      'preprocess.intensity={mode: none}',
      'preprocess.patch=[4, 4, 2]',
      'data.splitFractions=[0.5, 0, 0.5]',
    ]
    // without a map the values 5 and 7 are refused, and the error points at data.labelMap
    const plain = loadConfig(undefined, overrides).config
    await assert.rejects(runPreprocess(plain), /holds the value [57]; expected integers 0\.\.3 .*data\.labelMap/)

    const {config} = loadConfig(undefined, [...overrides, 'data.labelMap={spleen: 1, kidney: [2, 3], liver: 5}', 'data.cache=mapped'])
    let lines = ''
    const log = createLogger({
      level: 'info',
      console: new Writable({
        write(chunk, _encoding, done) {
          lines += String(chunk)
          done()
        },
      }),
    })
    const summary = await runPreprocess(config, {log})
    const c = loadCase(summary.cacheDir, 's1')
    // no crop or resampling here: the cache's voxels are the mapped source voxels
    assert.deepEqual(c.shape, [6, 4, 2])
    const classOfSlab = [1, 2, 2, 3, 0, 0]
    assert.deepEqual([...c.label!], Array.from({length: 48}, (_, i) => classOfSlab[i % 6]))
    assert.deepEqual(c.header.labelCounts, [16, 8, 16, 8])
    assert.deepEqual(c.header.unmappedLabels, {'7': 8})
    const plan = loadPlan(summary.cacheDir)
    assert.deepEqual(plan.labelMap, TOTALSEG)
    assert.deepEqual(plan.unmappedLabels, {'7': 16})
    const said = lines.split('\n').filter((l) => l.includes('does not list the label values'))
    assert.equal(said.length, 1, lines)
    assert.match(said[0], /label values 7 \(16 voxels\); they became background/)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
