import {test} from 'node:test'
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {SHARED, sipl} from '../helpers/cli.js'
import {needsShared} from '../helpers/needs.js'

const DATA = join(SHARED, 'data')
const skip = needsShared('sipl inspect on the real NIfTI files', 'data/manifest.json', 'data/nifti')
const manifest = (skip ? {entries: []} : JSON.parse(readFileSync(join(DATA, 'manifest.json'), 'utf8'))) as {
  entries: {local: string; props?: Record<string, unknown>}[]
}
const props = (local: string) => manifest.entries.find((e) => e.local === local)!.props as Record<string, number & number[] & string>

const KEYS = [
  'path',
  'shape',
  'datatype',
  'zooms',
  'affine',
  'sformCode',
  'qformCode',
  'sclSlope',
  'sclInter',
  'axcodes',
  'min',
  'max',
  'mean',
  'nanCount',
]

test('sipl inspect --json: one object per file with exactly the documented keys; a bad file is reported, exit 2', {skip}, () => {
  const files = ['nifti/nibabel/resampled_anat_moved.nii', 'nifti/nifti-reader-js/not-nifti.nii', 'labelled/sct/t2/t2.nii.gz']
  const {stdout, stderr, code} = sipl(['inspect', ...files.map((f) => join(DATA, f)), '--json'])
  assert.equal(code, 2, stderr)
  const out = JSON.parse(stdout) as Record<string, unknown>[]
  assert.equal(out.length, 3)
  assert.deepEqual(Object.keys(out[0]), KEYS)
  assert.deepEqual(Object.keys(out[2]), KEYS)
  assert.deepEqual(Object.keys(out[1]), ['path', 'error'])
  assert.match(out[1].error as string, /not-nifti\.nii: not a NIfTI file/)

  const moved = props('conformance/nibabel/resampled_anat_moved.nii')
  assert.deepEqual(out[0].shape, moved.nibabel_shape)
  assert.equal(out[0].datatype, 'float32')
  assert.equal(out[0].nanCount, moved.n_nan)
  assert.equal(out[0].axcodes, moved.axcodes)
  assert.ok(Math.abs((out[0].mean as number) - moved.mean) <= 1e-5 * moved.mean)

  const t2 = props('labelled/sct/t2/t2.nii.gz')
  assert.equal(out[2].axcodes, 'PSR')
  assert.equal(out[2].sformCode, t2.sform_code)
  assert.equal(out[2].qformCode, t2.qform_code)
  assert.equal(out[2].max, t2.max)
  const affine = out[2].affine as number[][]
  const expected = t2.affine as unknown as number[][]
  affine.forEach((row, r) => row.forEach((v, c) => assert.ok(Math.abs(v - expected[r][c]) < 1e-4)))
})

test('sipl inspect prints a readable block per file and exits 0 when all files read', {skip}, () => {
  const {stdout, code} = sipl(['inspect', join(DATA, 'nifti/niivue/hippo.nii.gz')])
  assert.equal(code, 0)
  assert.match(stdout, /shape 91 × 109 × 91 {2}float32 {2}zooms 2 × 2 × 2 {2}LAS/)
  assert.match(stdout, /sform_code 4 {2}qform_code 4/)
})

test('sipl preprocess with a missing dataset folder: exit 2, one line naming the folder and the fix', () => {
  const {stderr, code} = sipl(['preprocess', '--set', 'data.preset=btcv', '--set', 'data.root=/nonexistent/BTCV'])
  assert.equal(code, 2)
  assert.equal(stderr.trim().split('\n').length, 1, stderr)
  assert.match(stderr, /data\.root \/nonexistent\/BTCV does not exist .*set data\.root or SIPL_DATA_DIR/)
})
