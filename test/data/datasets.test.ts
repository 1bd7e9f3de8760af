import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {loadConfig} from '../../src/config/load.js'
import {listCases, regionMask, BRATS_REGIONS} from '../../src/data/datasets.js'
import {makeSplits, NAMED_SPLITS, readOrCreateSplits} from '../../src/data/splits.js'
import {geometryFromAffine, writeNifti} from '../../src/io/nifti-writer.js'
import {UserError} from '../../src/errors.js'

const eye = [
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
]
const tiny = (path: string) => writeNifti(path, {shape: [2, 2, 2], data: new Uint8Array(8), geometry: geometryFromAffine(eye)})
const config = (...set: string[]) => loadConfig(undefined, set).config

test('BTCV layout: img/imgXXXX + label/labelXXXX, unlabelled images skipped', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-btcv-'))
  mkdirSync(join(root, 'img'))
  mkdirSync(join(root, 'label'))
  for (const n of ['0001', '0002', '0003']) tiny(join(root, 'img', `img${n}.nii.gz`))
  for (const n of ['0001', '0003']) tiny(join(root, 'label', `label${n}.nii.gz`))
  writeFileSync(join(root, 'img', '._img0001.nii.gz'), 'macOS resource fork')
  const cases = listCases(config('data.preset=btcv', `data.root=${root}`))
  assert.deepEqual(
    cases.map((c) => c.id),
    ['img0001', 'img0003'],
  )
  assert.equal(cases[1].label, join(root, 'label', 'label0003.nii.gz'))
})

test('MSD dataset.json (training entries with labels; test entries ignored) and a missing file is named', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-msd-'))
  mkdirSync(join(root, 'imagesTr'))
  mkdirSync(join(root, 'labelsTr'))
  for (const id of ['lung_001', 'lung_003']) {
    tiny(join(root, 'imagesTr', `${id}.nii.gz`))
    tiny(join(root, 'labelsTr', `${id}.nii.gz`))
  }
  const training = ['lung_001', 'lung_003'].map((id) => ({image: `./imagesTr/${id}.nii.gz`, label: `./labelsTr/${id}.nii.gz`}))
  writeFileSync(join(root, 'dataset.json'), JSON.stringify({training, test: ['./imagesTs/lung_002.nii.gz']}))
  const cases = listCases(config('data.preset=lungs', `data.root=${root}`))
  assert.deepEqual(
    cases.map((c) => c.id),
    ['lung_001', 'lung_003'],
  )
  writeFileSync(join(root, 'dataset.json'), JSON.stringify({training: [...training, {image: './imagesTr/x.nii.gz', label: './labelsTr/x.nii.gz'}]}))
  assert.throws(
    () => listCases(config('data.preset=lungs', `data.root=${root}`)),
    (e: unknown) => e instanceof UserError && /case x: .*x\.nii\.gz listed but missing/.test(e.message),
  )
})

test('plain folders: nnU-Net channel files become channels of one case', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-folder-'))
  mkdirSync(join(root, 'im'))
  mkdirSync(join(root, 'lab'))
  for (const c of ['0000', '0001']) tiny(join(root, 'im', `brain_7_${c}.nii.gz`))
  tiny(join(root, 'lab', 'brain_7.nii.gz'))
  const cases = listCases(config('data.preset=folder', `data.root=${root}`, 'data.imagesDir=im', 'data.labelsDir=lab'))
  assert.equal(cases.length, 1)
  assert.equal(cases[0].id, 'brain_7')
  assert.equal(cases[0].images.length, 2)
  assert.throws(() => listCases(config('data.preset=folder', `data.root=${root}/nope`)), UserError)
})

test('named BTCV splits: 24/6 (sipl) and 18/12 (synapse), disjoint, covering the 30 labelled scans', () => {
  const labelled = [...Array.from({length: 10}, (_, i) => i + 1), ...Array.from({length: 20}, (_, i) => i + 21)].map(
    (n) => `img${String(n).padStart(4, '0')}`,
  )
  for (const [name, counts] of [
    ['sipl', [24, 6]],
    ['synapse', [18, 12]],
  ] as const) {
    const s = NAMED_SPLITS.btcv[name]
    assert.equal(s.train.length, counts[0])
    assert.equal(s.test.length, counts[1])
    assert.deepEqual([...s.train, ...s.test].sort(), labelled, name)
  }
  assert.deepEqual(NAMED_SPLITS.btcv.sipl.test, ['img0003', 'img0006', 'img0010', 'img0036', 'img0039', 'img0040'])
  const splits = makeSplits(labelled, config('data.preset=btcv', 'data.split=synapse'))
  assert.ok(splits.test.includes('img0001') && splits.train.includes('img0005'))
  assert.throws(() => makeSplits(labelled.slice(1), config('data.preset=btcv', 'data.split=sipl')), /img0001/)
  assert.throws(() => makeSplits(labelled, config('data.preset=lungs', 'data.split=sipl')), /not a named split/)
})

test("named Lungs and BraTS splits: UNETR++'s fixed lists (50/13 and 387/73, 24 BraTS cases unused)", () => {
  const lungs = NAMED_SPLITS.lungs.unetrpp
  assert.deepEqual([lungs.train.length, lungs.val.length, lungs.test.length], [50, 0, 13])
  assert.equal(new Set([...lungs.train, ...lungs.test]).size, 63, 'the 63 labelled MSD lung cases, each once')
  // spot checks against unetr_pp_trainer_lung.py: its first train entry and its first and last val entries
  assert.ok(lungs.train.includes('lung_053'))
  assert.ok(lungs.test.includes('lung_058') && lungs.test.includes('lung_003'))
  const brats = NAMED_SPLITS.brats.unetrpp
  assert.deepEqual([brats.train.length, brats.val.length, brats.test.length], [387, 0, 73])
  const all = Array.from({length: 484}, (_, i) => `BRATS_${String(i + 1).padStart(3, '0')}`)
  const used = new Set([...brats.train, ...brats.test])
  assert.equal(used.size, 460)
  assert.ok([...used].every((id) => all.includes(id)))
  // unetr_pp_trainer_tumor.py: 'BRATS_011' opens its val list, 'BRATS_484' closes its train list; 'BRATS_058' is in neither
  assert.ok(brats.test.includes('BRATS_011') && brats.train.includes('BRATS_484') && !used.has('BRATS_058'))
  const splits = makeSplits(all, config('data.preset=brats', 'data.split=unetrpp'))
  assert.equal(splits.train.length, 387)
  assert.throws(() => makeSplits(all.slice(1), config('data.preset=brats', 'data.split=unetrpp')), /BRATS_001/)
  assert.throws(() => makeSplits(all, config('data.preset=btcv', 'data.split=unetrpp')), /not a named split/)
})

test('random splits are seeded, follow the fractions, and a present splits.json is respected', () => {
  const ids = Array.from({length: 20}, (_, i) => `case_${i}`)
  const a = makeSplits(ids, config('seed=1', 'data.splitFractions=[0.7, 0.1, 0.2]'))
  const b = makeSplits([...ids].reverse(), config('seed=1', 'data.splitFractions=[0.7, 0.1, 0.2]'))
  const c = makeSplits(ids, config('seed=2', 'data.splitFractions=[0.7, 0.1, 0.2]'))
  assert.deepEqual(a, b, 'same seed, same split whatever the input order')
  assert.notDeepEqual(a.test, c.test)
  assert.deepEqual([a.train.length, a.val.length, a.test.length], [14, 2, 4])
  assert.deepEqual([...a.train, ...a.val, ...a.test].sort(), [...ids].sort())
  const cache = mkdtempSync(join(tmpdir(), 'sipl-splits-'))
  const made = readOrCreateSplits(config('seed=1'), cache, ids)
  const mine = {train: ids.slice(0, 10), val: [], test: ids.slice(10)}
  writeFileSync(join(cache, 'splits.json'), JSON.stringify(mine))
  assert.deepEqual(readOrCreateSplits(config('seed=1'), cache, ids), mine)
  assert.notDeepEqual(made, mine)
  writeFileSync(join(cache, 'splits.json'), JSON.stringify({train: ['nope'], val: [], test: []}))
  assert.throws(() => readOrCreateSplits(config(), cache, ids), /nope are not in the preprocessed cache/)
})

test('BraTS regions from the exclusive MSD labels: WT = 1,2,3; TC = 2,3; ET = 3', () => {
  const labels = new Uint8Array([0, 1, 2, 3])
  assert.deepEqual(Array.from(regionMask(labels, BRATS_REGIONS.WT)), [0, 1, 1, 1])
  assert.deepEqual(Array.from(regionMask(labels, BRATS_REGIONS.TC)), [0, 0, 1, 1])
  assert.deepEqual(Array.from(regionMask(labels, BRATS_REGIONS.ET)), [0, 0, 0, 1])
})
