/**
 * What `sipl predict` takes as input: one NIfTI file or a folder, nnU-Net channel files grouped
 * into multi-channel cases, and a one-line error naming the case when its channels do not match
 * the run's.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {basename, join} from 'node:path'
import '../helpers/tf.js'
import {listPredictInputs} from '../../src/evaluate/predict-files.js'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import {userErrorMessage} from '../helpers/user-error.js'

const identity = [
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
]

function scan(path: string, channels = 1): void {
  const shape = channels === 1 ? [4, 3, 2] : [4, 3, 2, channels]
  writeNifti(path, {shape, data: new Int16Array(24 * channels), geometry: geometryFromAffine(identity as never)})
}

const summary = (cases: {id: string; images: string[]}[]) => cases.map((c) => [c.id, c.images.map((f) => basename(f))])

test('a folder of nnU-Net channel files becomes one case per id, channels in order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-predict-in-'))
  try {
    for (const name of ['b_0001', 'a_0000', 'a_0001', 'b_0000']) scan(join(dir, `${name}.nii.gz`))
    writeFileSync(join(dir, 'notes.txt'), 'not a scan')
    assert.deepEqual(summary(listPredictInputs(dir, 2)), [
      ['a', ['a_0000.nii.gz', 'a_0001.nii.gz']],
      ['b', ['b_0000.nii.gz', 'b_0001.nii.gz']],
    ])
    // one file of the case finds the others beside it
    assert.deepEqual(summary(listPredictInputs(join(dir, 'a_0001.nii.gz'), 2)), [['a', ['a_0000.nii.gz', 'a_0001.nii.gz']]])
    // a one-channel run is told what it was given
    assert.match(
      userErrorMessage(() => listPredictInputs(dir, 1)),
      /^case a: a_0000\.nii\.gz, a_0001\.nii\.gz hold 2 channel\(s\) but the run was trained on 1 /,
    )
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})

test('one-channel cases: plain names, _0000 names, a single file, a 4-D file for a multi-channel run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-predict-in-'))
  try {
    mkdirSync(join(dir, 'plain'))
    for (const name of ['ct1', 'ct2']) scan(join(dir, 'plain', `${name}.nii.gz`))
    assert.deepEqual(summary(listPredictInputs(join(dir, 'plain'), 1)), [
      ['ct1', ['ct1.nii.gz']],
      ['ct2', ['ct2.nii.gz']],
    ])
    mkdirSync(join(dir, 'nnunet'))
    for (const name of ['ct1_0000', 'ct2_0000']) scan(join(dir, 'nnunet', `${name}.nii`))
    assert.deepEqual(
      listPredictInputs(join(dir, 'nnunet'), 1).map((c) => c.id),
      ['ct1', 'ct2'],
    )
    assert.deepEqual(summary(listPredictInputs(join(dir, 'plain', 'ct2.nii.gz'), 1)), [['ct2', ['ct2.nii.gz']]])
    assert.deepEqual(summary(listPredictInputs(join(dir, 'nnunet', 'ct2_0000.nii'), 1)), [['ct2', ['ct2_0000.nii']]])
    // only _0000 is nnU-Net's suffix of a one-channel case: ct_0001.nii.gz is its own case
    scan(join(dir, 'plain', 'ct_0001.nii.gz'))
    assert.deepEqual(summary(listPredictInputs(join(dir, 'plain', 'ct_0001.nii.gz'), 1)), [['ct_0001', ['ct_0001.nii.gz']]])
    scan(join(dir, 'mri.nii.gz'), 4)
    assert.deepEqual(summary(listPredictInputs(join(dir, 'mri.nii.gz'), 4)), [['mri', ['mri.nii.gz']]])
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})

test('channels that do not match the run, a missing input and an empty folder are one-line errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-predict-in-'))
  try {
    for (const name of ['a_0000', 'a_0001', 'c_0000']) scan(join(dir, `${name}.nii.gz`))
    assert.match(
      userErrorMessage(() => listPredictInputs(dir, 2)),
      /^case c: c_0000\.nii\.gz hold 1 channel\(s\) but the run was trained on 2 \(data\.channels\); give one 4-D file or nnU-Net channel files c_0000, c_0001$/,
    )
    scan(join(dir, 'mri.nii.gz'), 4)
    assert.match(
      userErrorMessage(() => listPredictInputs(join(dir, 'mri.nii.gz'), 1)),
      /^case mri: mri\.nii\.gz hold 4 channel\(s\) but the run was trained on 1 .*give one 3-D image per case$/,
    )
    assert.match(
      userErrorMessage(() => listPredictInputs(join(dir, 'nothing'), 1)),
      /no such file or folder/,
    )
    mkdirSync(join(dir, 'empty'))
    assert.match(
      userErrorMessage(() => listPredictInputs(join(dir, 'empty'), 1)),
      /no NIfTI files/,
    )
    writeFileSync(join(dir, 'scan.txt'), '')
    assert.match(
      userErrorMessage(() => listPredictInputs(join(dir, 'scan.txt'), 1)),
      /not a NIfTI file/,
    )
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})
