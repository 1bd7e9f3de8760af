/**
 * NaN / ±Inf image voxels (issue 14 item 2): every intensity mode refuses them by default, naming
 * the case, the file and the counts; preprocess.nonFinite 'min' / 'zero' replace them, and the
 * replaced values are checked by hand on 4×1×1 volumes.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {loadConfig} from '../../src/config/load.js'
import {runPreprocess} from '../../src/data/cache.js'
import {loadCase} from '../../src/data/cache-files.js'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import {UserError} from '../../src/errors.js'

const eye = [
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
]

/** Cases a (finite) and b (voxel 1 NaN, voxel 3 +Inf, and -Inf where asked), 4×1×1, foreground at voxels 1..2. */
function dataset(bValues: number[]): string {
  const root = mkdtempSync(join(tmpdir(), 'sipl-nonfinite-'))
  mkdirSync(join(root, 'imagesTr'))
  mkdirSync(join(root, 'labelsTr'))
  const images: Record<string, number[]> = {a: [5, 6, 7, 8], b: bValues}
  for (const [id, values] of Object.entries(images)) {
    writeNifti(join(root, 'imagesTr', `${id}.nii.gz`), {shape: [4, 1, 1], data: Float32Array.from(values), geometry: geometryFromAffine(eye)})
    writeNifti(join(root, 'labelsTr', `${id}.nii.gz`), {shape: [4, 1, 1], data: new Uint8Array([0, 1, 1, 0]), geometry: geometryFromAffine(eye)})
  }
  return root
}

const base = (root: string) => [
  'data.preset=folder',
  `data.root=${root}`,
  'data.classes=[x]',
  'data.splitFractions=[1, 0, 0]',
  'preprocess.spacing=[1, 1, 1]',
  'preprocess.patch=[4, 1, 1]',
  'preprocess.cropForeground=false',
]

const MODES = ['{mode: ct-window}', '{mode: ct-percentile}', '{mode: zscore-nonzero}', '{mode: none}']

for (const mode of MODES) {
  test(`intensity ${mode}: a case with NaN/Inf voxels is refused, naming the case, the file and the counts`, async () => {
    const root = dataset([5, NaN, 7, Infinity])
    const {config} = loadConfig(undefined, [...base(root), `preprocess.intensity=${mode}`])
    await assert.rejects(
      runPreprocess(config),
      (e: unknown) =>
        e instanceof UserError &&
        /^case b: image .*imagesTr\/b\.nii\.gz holds 1 NaN, 1 \+Inf voxel\(s\) of 4; .*preprocess\.nonFinite: min/.test(e.message),
    )
  })
}

test('preprocess.nonFinite: min puts the case minimum in place of NaN/±Inf, zero puts 0; the header counts them', async () => {
  const root = dataset([5, NaN, 7, -Infinity])
  for (const [policy, expected] of [
    ['min', [5, 5, 7, 5]],
    ['zero', [5, 0, 7, 0]],
  ] as const) {
    const {config} = loadConfig(undefined, [
      ...base(root),
      'preprocess.intensity={mode: none}',
      `preprocess.nonFinite=${policy}`,
      `data.cache=${root}/cache-${policy}`,
    ])
    const summary = await runPreprocess(config)
    const b = loadCase(summary.cacheDir, 'b')
    assert.deepEqual(Array.from(b.image), expected)
    assert.equal(b.header.nonFiniteReplaced, 2)
    assert.equal(loadCase(summary.cacheDir, 'a').header.nonFiniteReplaced, undefined)
  }
  // ct-percentile: the statistics come from the replaced values, so none of them is NaN
  const {config} = loadConfig(undefined, [
    ...base(root),
    'preprocess.intensity={mode: ct-percentile}',
    'preprocess.nonFinite=min',
    `data.cache=${root}/cache-pct`,
  ])
  const summary = await runPreprocess(config)
  for (const id of ['a', 'b']) assert.ok(loadCase(summary.cacheDir, id).image.every(Number.isFinite), `case ${id} has NaN after ct-percentile`)
})

test('sipl preprocess: NaN voxels are exit 2 with one line; with --set preprocess.nonFinite=min a warning names the case', () => {
  const root = dataset([5, NaN, 7, NaN])
  const args = ['preprocess', ...base(root).flatMap((s) => ['--set', s]), '--set', 'preprocess.intensity={mode: ct-window}']
  const refused = sipl(args)
  assert.equal(refused.code, 2, refused.stderr)
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
  assert.match(refused.stderr, /^Error: case b: image .*b\.nii\.gz holds 2 NaN voxel\(s\) of 4/)
  const replaced = sipl([...args, '--set', 'preprocess.nonFinite=min'])
  assert.equal(replaced.code, 0, replaced.stderr)
  assert.match(replaced.stderr, /case b: 2 NaN\/Inf image voxel\(s\) replaced \(preprocess\.nonFinite: min\)/)
})
