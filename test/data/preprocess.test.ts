import {test} from 'node:test'
import assert from 'node:assert/strict'
import {copyFileSync, mkdirSync, mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {SHARED} from '../helpers/cli.js'
import {IDENTITY_GEOMETRY} from '../helpers/geometry.js'
import {needsShared} from '../helpers/needs.js'
import {loadConfig} from '../../src/config/load.js'
import type {ExperimentConfig} from '../../src/config/schema.js'
import {runPreprocess} from '../../src/data/cache.js'
import {loadCase, loadPlan} from '../../src/data/cache-files.js'
import {restoreToOriginal, toOriginalGrid} from '../../src/data/original-grid.js'
import {readNifti} from '../../src/io/nifti.js'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import {UserError} from '../../src/errors.js'

const SCT = join(SHARED, 'data/labelled/sct/t2')
const skip = needsShared('the preprocessing tests on the spine MRI', 'data/labelled/sct/t2')
const tmp = (tag: string) => mkdtempSync(join(tmpdir(), `sipl-pre-${tag}-`))

/** A folder-preset dataset root with empty imagesTr/ and labelsTr/. */
function emptyDataset(tag: string): string {
  const root = tmp(tag)
  mkdirSync(join(root, 'imagesTr'))
  mkdirSync(join(root, 'labelsTr'))
  return root
}

function folderDataset(files: {id: string; image: string; label: string}[]): string {
  const root = emptyDataset('folder')
  for (const f of files) {
    copyFileSync(f.image, join(root, 'imagesTr', `${f.id}.nii.gz`))
    copyFileSync(f.label, join(root, 'labelsTr', `${f.id}.nii.gz`))
  }
  return root
}

/** The config of the folder preset over `root`, with these class names and overrides. */
function folderConfig(root: string, classes: string, ...sets: string[]): ExperimentConfig {
  return loadConfig(undefined, ['data.preset=folder', `data.root=${root}`, `data.classes=[${classes}]`, ...sets]).config
}

test('sct t2 (PSR, 1 mm): 1.5 mm preprocessing keeps the cord volume within 2 %, and the inverse mapping puts ≥ 99 % of voxels back', {skip}, async () => {
  const root = folderDataset([{id: 't2', image: join(SCT, 't2.nii.gz'), label: join(SCT, 't2_seg-manual.nii.gz')}])
  const config = folderConfig(
    root,
    'cord',
    'preprocess.spacing=[1.5, 1.5, 1.5]',
    'preprocess.intensity={mode: zscore-nonzero}',
    'preprocess.patch=[16, 16, 16]',
  )
  const summary = await runPreprocess(config)
  const c = loadCase(summary.cacheDir, 't2')
  assert.equal(c.header.original.axcodes, 'PSR')
  assert.deepEqual(c.spacing, [1.5, 1.5, 1.5])
  // MANIFEST B3: 4275 voxels of 1 mm³
  const volume = c.header.labelCounts[1] * 1.5 ** 3
  assert.ok(Math.abs(volume / 4275 - 1) <= 0.02, `cord volume ${volume} mm³ vs 4275 mm³`)
  const original = readNifti(join(SCT, 't2_seg-manual.nii.gz'))
  const back = toOriginalGrid(c.header, c.label!)
  let same = 0
  let overlap = 0
  let predicted = 0
  for (let i = 0; i < back.length; i++) {
    if (back[i] === original.data[i]) same++
    if (back[i] && original.data[i]) overlap++
    if (back[i]) predicted++
  }
  assert.ok(same / back.length >= 0.99, `only ${same / back.length} of the voxels are back in place`)
  const dice = (2 * overlap) / (predicted + 4275)
  assert.ok(dice > 0.85, `cord Dice after the round trip ${dice}`)
  // written with the image's geometry: same shape, affine and codes (t2.nii.gz: qform 2, sform 1)
  const out = restoreToOriginal(c.header, c.label!, join(root, 'pred', 't2_pred.nii.gz'))
  const written = readNifti(out)
  assert.deepEqual(written.header.shape, [60, 55, 52])
  assert.equal(written.header.qformCode, 2)
  assert.equal(written.header.sformCode, 1)
  for (let r = 0; r < 4; r++) for (let k = 0; k < 4; k++) assert.ok(Math.abs(written.header.affine[r][k] - original.header.affine[r][k]) < 1e-4)
  assert.deepEqual(Array.from(written.data), Array.from(back))
})

test('at the source spacing the whole chain (RAS, crop, pad, inverse) is exact', {skip}, async () => {
  const root = folderDataset([{id: 't2', image: join(SCT, 't2.nii.gz'), label: join(SCT, 't2_seg-manual_labeled.nii.gz')}])
  const config = folderConfig(root, 'c1, c2, c3, c4, c5', 'preprocess.spacing=[1, 1, 1]', 'preprocess.intensity={mode: none}', 'preprocess.patch=[64, 64, 64]')
  const c = loadCase((await runPreprocess(config)).cacheDir, 't2')
  assert.deepEqual(c.shape, [64, 64, 64], 'padded up to the patch')
  const original = readNifti(join(SCT, 't2_seg-manual_labeled.nii.gz'))
  assert.deepEqual(Array.from(toOriginalGrid(c.header, c.label!)), Array.from(original.data))
  // image values: the preprocessed voxel at the world position of original voxel (0, 0, 0) is the stored value there
  const image = readNifti(join(SCT, 't2.nii.gz'))
  const [X, Y] = c.shape
  const inv = c.header.affine
  // original voxel (10, 20, 30) → world → preprocessed index
  const a = image.header.affine
  const world = [0, 1, 2].map((r) => a[r][0] * 10 + a[r][1] * 20 + a[r][2] * 30 + a[r][3])
  const index = [0, 1, 2].map((r) => Math.round((world[r] - inv[r][3]) / inv[r][r]))
  assert.equal(c.image[index[0] + X * (index[1] + Y * index[2])], image.data[10 + 60 * (20 + 55 * 30)])
})

test('multi-channel (4-D) cases are interleaved channels-last; ct-window maps [-175, 250] HU onto [0, 1]', async () => {
  const root = emptyDataset('4d')
  const [X, Y, Z] = [4, 3, 2]
  const n = X * Y * Z
  const data = new Float32Array(2 * n)
  for (let i = 0; i < n; i++) {
    data[i] = -175 + (425 * i) / (n - 1) // channel 0: a ramp across the window
    data[n + i] = 1000 + i // channel 1
  }
  const affine = [
    [2, 0, 0, 0],
    [0, 2, 0, 0],
    [0, 0, 2, 0],
    [0, 0, 0, 1],
  ]
  writeNifti(join(root, 'imagesTr', 'a.nii.gz'), {shape: [X, Y, Z, 2], data, geometry: geometryFromAffine(affine)})
  writeNifti(join(root, 'labelsTr', 'a.nii.gz'), {shape: [X, Y, Z], data: new Uint8Array(n).fill(1), geometry: geometryFromAffine(affine)})
  const base = ['data.preset=folder', `data.root=${root}`, 'data.classes=[x]', 'data.channels=2', 'preprocess.spacing=[2, 2, 2]']
  const {config} = loadConfig(undefined, [...base, 'preprocess.patch=[4, 3, 2]', 'preprocess.cropForeground=false'])
  const c = loadCase((await runPreprocess(config)).cacheDir, 'a')
  assert.equal(c.channels, 2)
  assert.deepEqual(c.shape, [X, Y, Z])
  for (let i = 0; i < n; i++) {
    const expected = Math.min(1, Math.max(0, (data[i] + 175) / 425))
    assert.ok(Math.abs(c.image[2 * i] - expected) < 1e-6, `channel 0 voxel ${i}`)
    assert.equal(c.image[2 * i + 1], 1, 'channel 1 (≥ 250 HU) is clipped to 1')
  }
  assert.equal(c.image[0], 0)
  assert.ok(Math.abs(c.image[2 * (n - 1)] - 1) < 1e-6)
  const wrong = loadConfig(undefined, [...base.slice(0, 4), 'data.channels=1', `data.cache=${root}/other`]).config
  await assert.rejects(runPreprocess(wrong), (e: unknown) => e instanceof UserError && /hold 2 channel\(s\) but data.channels is 1/.test(e.message))
})

test('an image/label grid mismatch names both files', async () => {
  const root = emptyDataset('mismatch')
  const eye = [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ]
  const moved = eye.map((r) => r.slice())
  moved[0][3] = 5
  writeNifti(join(root, 'imagesTr', 'b.nii.gz'), {shape: [2, 2, 2], data: new Int16Array(8), geometry: geometryFromAffine(eye)})
  writeNifti(join(root, 'labelsTr', 'b.nii.gz'), {shape: [2, 2, 2], data: new Uint8Array(8), geometry: geometryFromAffine(moved)})
  const config = folderConfig(root, 'x')
  await assert.rejects(
    runPreprocess(config),
    (e: unknown) => e instanceof UserError && /labelsTr\/b\.nii\.gz and image .*imagesTr\/b\.nii\.gz have different affines/.test(e.message),
  )
})

test('intensity presets on hand-computed values: zscore-nonzero keeps zeros, ct-percentile clips to training-set percentiles', async () => {
  const root = emptyDataset('norm')
  // 4×1×1 volumes; the label marks voxels 1..3 as foreground
  const image = new Float32Array([0, 1, 2, 3])
  const label = new Uint8Array([0, 1, 1, 1])
  for (const id of ['a', 'b']) {
    writeNifti(join(root, 'imagesTr', `${id}.nii.gz`), {shape: [4, 1, 1], data: image, geometry: IDENTITY_GEOMETRY})
    writeNifti(join(root, 'labelsTr', `${id}.nii.gz`), {shape: [4, 1, 1], data: label, geometry: IDENTITY_GEOMETRY})
  }
  const base = ['data.preset=folder', `data.root=${root}`, 'data.classes=[x]', 'preprocess.spacing=[1, 1, 1]', 'preprocess.patch=[4, 1, 1]']
  // non-zero voxels 1, 2, 3: mean 2, population sd √(2/3)
  const z = loadConfig(undefined, [...base, 'preprocess.intensity={mode: zscore-nonzero}', `data.cache=${root}/z`]).config
  const zc = loadCase((await runPreprocess(z)).cacheDir, 'a')
  const sd = Math.sqrt(2 / 3)
  // cropped to the non-zero voxels 1..3, then padded back to 4 with one zero after (symmetric: 0 before, 1 after)
  assert.deepEqual(
    Array.from(zc.image).map((v) => +v.toFixed(6)),
    [-1 / sd, 0, 1 / sd, 0].map((v) => +v.toFixed(6)),
  )
  assert.deepEqual(zc.header.crop, {start: [1, 0, 0], end: [4, 1, 1]})
  // foreground samples are 1, 2, 3 (twice, from the training cases): numpy percentile(…, [25, 75]) = 1.25, 2.75
  const p = loadConfig(undefined, [
    ...base,
    'preprocess.intensity={mode: ct-percentile, percentiles: [25, 75]}',
    'preprocess.cropForeground=false',
    'data.splitFractions=[1, 0, 0]',
    `data.cache=${root}/p`,
  ]).config
  const summary = await runPreprocess(p)
  const plan = loadPlan(summary.cacheDir)
  assert.ok(Math.abs((plan.intensity.lower as number) - 1.25) < 1e-9 && Math.abs((plan.intensity.upper as number) - 2.75) < 1e-9)
  assert.ok(Math.abs((plan.intensity.mean as number) - 2) < 1e-9 && Math.abs((plan.intensity.std as number) - sd) < 1e-9)
  const pc = loadCase(summary.cacheDir, 'a')
  // 0 → clipped to 1.25, 3 → 2.75; then (v − 2) / sd
  assert.deepEqual(
    Array.from(pc.image).map((v) => +v.toFixed(5)),
    [1.25, 1.25, 2, 2.75].map((v) => +((v - 2) / sd).toFixed(5)),
  )
})
