/**
 * nnU-Net's augmentation set (src/data/augment.ts) and nnU-Net sampling (src/data/sampler.ts):
 * every transform keeps the patch's shape and is a function of the seed; hand-checkable cases
 * (constant images, a rotated pattern, a zoom) and values from scipy / batchgenerators' formulas
 * (computed with numpy 1.24 / scipy 1.10 and written here).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {augmentSchema} from '../../src/config/sections/train.js'
import {affineMatrix, aroundOne, applyAugment, augment, blurChannel, contrastChannel, gammaChannel, randomize, resampleAffine, simulateLowResolution, type AugmentDraw} from '../../src/data/augment.js'
import {PatchSampler, type Patch, type TrainCase} from '../../src/data/sampler.js'
import {Rng} from '../../src/util/rng.js'
import {sipl} from '../helpers/cli.js'
import {sets, TINY} from '../e2e/tiny.js'
import type {Vec3} from '../../src/util/vec3.js'

const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, what)
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`)
}

/** every nnU-Net transform at probability 1 */
const ALL_ON = augmentSchema.parse({
  rot90: 0,
  flip: 0.5,
  intensityShiftProb: 0,
  rotation: {p: 1},
  scaling: {p: 1},
  gaussianNoise: {p: 1},
  gaussianBlur: {p: 1, pPerChannel: 1},
  brightness: {p: 1},
  contrast: {p: 1},
  lowResolution: {p: 1, pPerChannel: 1},
  gammaInverted: {p: 1},
  gamma: {p: 1},
})

function volume(shape: Vec3, channels: number, seed: number): TrainCase {
  const rng = new Rng(seed)
  const n = shape[0] * shape[1] * shape[2]
  const label = new Uint8Array(n)
  for (let i = 0; i < n; i++) label[i] = i % shape[0] < shape[0] / 2 ? 1 : 2
  return {id: `v${seed}`, shape, channels, image: Float32Array.from({length: n * channels}, () => rng.normal()), label}
}

const patchOf = (c: TrainCase): Patch => ({caseId: c.id, origin: [0, 0, 0], positive: false, image: c.image, label: c.label, source: c})
const none: AugmentDraw = {rot90: 0, flips: [false, false, false], shift: 0, scale: 1}

test('every transform keeps the shape; the whole set is a function of the seed', () => {
  const dims: Vec3 = [8, 6, 4]
  const c = volume(dims, 2, 1)
  const p = patchOf(c)
  const a = augment(p, ALL_ON, new Rng(7), dims, 2)
  const b = augment(p, ALL_ON, new Rng(7), dims, 2)
  const other = augment(p, ALL_ON, new Rng(8), dims, 2)
  assert.deepEqual([a.image.length, a.label.length], [p.image.length, p.label.length])
  assert.deepEqual([...a.image], [...b.image])
  assert.deepEqual([...a.label], [...b.label])
  assert.notDeepEqual([...a.image], [...other.image])
  assert.ok(a.image.every(Number.isFinite))
  assert.ok([...a.label].every((l) => l <= 2))
  // one transform at a time: shape kept, intensity transforms leave the label alone
  const d: AugmentDraw = {
    ...none,
    noise: {sd: 0.1, seed: 3},
    blur: [0.8, null],
    brightness: [1.2, 0.9],
    contrast: [1.3, 0.8],
    lowResolution: [null, 0.5],
    gammaInverted: [0.8, 1.2],
    gamma: [1.4, 0.7],
  }
  for (const key of ['noise', 'blur', 'brightness', 'contrast', 'lowResolution', 'gammaInverted', 'gamma'] as const) {
    const out = applyAugment(p, {...none, [key]: d[key]}, dims, 2)
    assert.equal(out.image.length, p.image.length, key)
    assert.deepEqual([...out.label], [...p.label], key)
    assert.notDeepEqual([...out.image], [...p.image], `${key} changes the image`)
    assert.deepEqual([...p.image], [...c.image], `${key} leaves the input alone`)
  }
})

test('the number of draws depends on the config, never on the outcomes; p 0 draws nothing', () => {
  const dims: Vec3 = [4, 4, 4]
  const r1 = new Rng(1)
  const r2 = new Rng(1)
  randomize(ALL_ON, r1, dims, 3)
  const rarely = augmentSchema.parse(
    Object.fromEntries(
      Object.entries(ALL_ON).map(([k, v]) => [k, typeof v === 'object' && v !== null && 'p' in v ? {...v, p: 1e-9} : v]),
    ),
  )
  randomize(rarely, r2, dims, 3)
  assert.deepEqual(r1.getState(), r2.getState())
  // the BTCV set alone draws its nine numbers, as before the nnU-Net set existed
  const r3 = new Rng(2)
  const r4 = new Rng(2)
  randomize(augmentSchema.parse({}), r3, dims, 3)
  for (let i = 0; i < 9; i++) r4.next()
  assert.deepEqual(r3.getState(), r4.getState())
})

test('aroundOne: half the factors below 1, half above, within the range', () => {
  const rng = new Rng(11)
  const xs = Array.from({length: 4000}, () => aroundOne(rng, [0.7, 1.4]))
  assert.ok(xs.every((x) => x >= 0.7 && x <= 1.4))
  const below = xs.filter((x) => x < 1).length
  assert.ok(Math.abs(below - 2000) < 5 * Math.sqrt(1000), `${below} below 1`)
})

test('rotation of a known pattern, scaling, identity, and resampling from the whole volume', () => {
  // 3×3×1 patch, one bright voxel at (x 2, y 1): offset (+1, 0) from the centre
  const dims: Vec3 = [3, 3, 1]
  const image = new Float32Array(9)
  const label = new Uint8Array(9)
  image[2 + 3 * 1] = 5
  label[2 + 3 * 1] = 3
  const p: Patch = {caseId: 'a', origin: [0, 0, 0], positive: true, image, label}
  // identity: the patch itself
  const same = resampleAffine(p, affineMatrix([0, 0, 0], 1), dims, 1)
  assert.deepEqual([...same.image], [...image])
  assert.deepEqual([...same.label], [...label])
  // 90° about array axis 0 (z), as batchgenerators' rotation_x: output offset (dx, dy) reads the
  // source at (x −dy, y dx), so the bright voxel at source offset (+1, 0) lands at output offset
  // (0, −1) = voxel (1, 0)
  const turned = resampleAffine(p, affineMatrix([Math.PI / 2, 0, 0], 1), dims, 1)
  near(turned.image, [0, 5, 0, 0, 0, 0, 0, 0, 0], 1e-9, 'rotated image')
  assert.deepEqual([...turned.label], [0, 3, 0, 0, 0, 0, 0, 0, 0])
  // scaling by 2 (zoom out): output offset d reads source offset 2d
  const line: TrainCase = {id: 'l', shape: [9, 1, 1], channels: 1, image: Float32Array.from({length: 9}, (_, i) => i), label: new Uint8Array(9)}
  const crop: Patch = {caseId: 'l', origin: [3, 0, 0], positive: false, image: line.image.slice(3, 6), label: line.label.slice(3, 6), source: line}
  near(resampleAffine(crop, affineMatrix([0, 0, 0], 2), [3, 1, 1], 1, line).image, [2, 4, 6], 1e-9, 'zoom 2 reads 2·offset')
  near(resampleAffine(crop, affineMatrix([0, 0, 0], 0.5), [3, 1, 1], 1, line).image, [3.5, 4, 4.5], 1e-9, 'zoom 0.5 interpolates')
  // without the volume the same zoom reads zeros beyond the crop
  near(resampleAffine({...crop, source: undefined}, affineMatrix([0, 0, 0], 2), [3, 1, 1], 1).image, [0, 4, 0], 1e-9, 'patch only')
})

test('a 45° turn keeps the labels it had and fills the turned-in corners from the volume', () => {
  const c = volume([12, 12, 1], 1, 5)
  for (let i = 0; i < c.image.length; i++) c.image[i] = 1
  const dims: Vec3 = [6, 6, 1]
  const crop: Patch = {caseId: c.id, origin: [3, 3, 0], positive: false, image: new Float32Array(36), label: new Uint8Array(36), source: c}
  const out = resampleAffine(crop, affineMatrix([Math.PI / 4, 0, 0], 1), dims, 1, c)
  assert.ok([...out.label].every((l) => l === 1 || l === 2))
  // every output voxel has a whole-volume source inside the 12×12 slice (z stays 0), so the image is 1 everywhere
  near(out.image, new Array(36).fill(1), 1e-6, 'no empty corners')
})

test('intensity transforms by hand: constant images, brightness, contrast, gamma against numpy', () => {
  const dims: Vec3 = [4, 1, 1]
  const constant = () => Float32Array.from([2, 2, 2, 2])
  for (const key of ['blur', 'contrast', 'lowResolution', 'gamma', 'gammaInverted'] as const) {
    const draw: AugmentDraw = {...none, blur: [0.8], contrast: [1.3], lowResolution: [0.5], gamma: [1.4], gammaInverted: [0.8]}
    const out = applyAugment({caseId: 'c', origin: [0, 0, 0], positive: false, image: constant(), label: new Uint8Array(4)}, {...none, [key]: draw[key]}, dims, 1)
    near(out.image, [2, 2, 2, 2], 1e-5, `${key} of a constant image`)
  }
  const p: Patch = {caseId: 'c', origin: [0, 0, 0], positive: false, image: Float32Array.from([0, 1, 2, 3]), label: new Uint8Array(4)}
  near(applyAugment(p, {...none, brightness: [1.25]}, dims, 1).image, [0, 1.25, 2.5, 3.75], 1e-6, 'brightness')
  // contrast: mean 1.5; f 2 → (v − 1.5)·2 + 1.5 = [−1.5, 0.5, 2.5, 4.5], clipped to [0, 3]
  const c = Float32Array.from([0, 1, 2, 3])
  contrastChannel(c, 1, 0, 2)
  near(c, [0, 0.5, 2.5, 3], 1e-6, 'contrast')
  // batchgenerators augment_gamma(retain_stats=True) in numpy on [0, 1, 2, 3]
  const g = Float32Array.from([0, 1, 2, 3])
  gammaChannel(g, 1, 0, 2, false)
  near(g, [0.3819660208332536, 0.7014043005951812, 1.6597191398809639, 3.256910538690601], 1e-5, 'gamma 2')
  const gi = Float32Array.from([0, 1, 2, 3])
  gammaChannel(gi, 1, 0, 2, true)
  near(gi, [-0.2569105386906012, 1.3402808601190361, 2.2985956994048187, 2.6180339791667464], 1e-5, 'inverted gamma 2')
  // noise of sd 0 changes nothing; of sd 0.5 has that sd
  near(applyAugment(p, {...none, noise: {sd: 0, seed: 1}}, dims, 1).image, [0, 1, 2, 3], 0, 'noise sd 0')
  const big: Patch = {caseId: 'n', origin: [0, 0, 0], positive: false, image: new Float32Array(20000), label: new Uint8Array(20000)}
  const noisy = applyAugment(big, {...none, noise: {sd: 0.5, seed: 9}}, [20000, 1, 1], 1).image
  const sd = Math.sqrt(noisy.reduce((s, v) => s + v * v, 0) / noisy.length)
  assert.ok(Math.abs(sd - 0.5) < 0.02, `noise sd ${sd}`)
})

test('Gaussian blur equals scipy.ndimage.gaussian_filter (reflect mode, truncate 4)', () => {
  // scipy.ndimage.gaussian_filter1d([0, 1, 0, 0, 0, 0, 0], 0.8)
  const line = Float32Array.from([0, 1, 0, 0, 0, 0, 0])
  blurChannel(line, [7, 1, 1], 1, 0, 0.8)
  near(line, [0.2502210306, 0.4991171954, 0.2283107165, 0.0219103142, 0.0004407434, 0, 0], 1e-7, 'gaussian_filter1d')
  // scipy.ndimage.gaussian_filter of a (z 3, y 4, x 5) impulse at (1, 2, 0), σ 0.6; channel 1 of 2 only
  const dims: Vec3 = [5, 4, 3]
  const v = new Float32Array(60 * 2)
  const at = (x: number, y: number, z: number) => x + 5 * (y + 4 * z)
  v[at(0, 2, 1) * 2 + 1] = 1
  v[at(0, 2, 1) * 2] = 7
  blurChannel(v, dims, 2, 1, 0.6)
  near(
    [v[at(0, 2, 1) * 2 + 1], v[at(0, 2, 0) * 2 + 1], v[at(1, 3, 1) * 2 + 1], v[at(4, 0, 2) * 2 + 1]],
    [0.3654539068, 0.0925395545, 0.0187558742, 0],
    1e-7,
    'gaussian_filter 3-D',
  )
  assert.equal(v[at(0, 2, 1) * 2], 7, 'the other channel is untouched')
})

test('low-resolution simulation by hand: nearest down to 4 of 6, linear back up', () => {
  // zoom 2/3: 6 → 4 samples at positions 0.25, 1.75, 3.25, 4.75 → voxels 0, 2, 3, 5 = [0, 2, 3, 5];
  // back to 6 at positions 0 (clamped), 0.5, 1.167, 1.833, 2.5, 3 (clamped) → [0, 1, 2.167, 2.833, 4, 5]
  const v = Float32Array.from([0, 1, 2, 3, 4, 5])
  simulateLowResolution(v, [6, 1, 1], 1, 0, 2 / 3)
  near(v, [0, 1, 2 + 1 / 6, 2 + 5 / 6, 4, 5], 1e-5, 'low resolution')
  const same = Float32Array.from([0, 1, 2, 3, 4, 5])
  simulateLowResolution(same, [6, 1, 1], 1, 0, 1)
  near(same, [0, 1, 2, 3, 4, 5], 1e-6, 'zoom 1 is the identity')
})

test('nnunet sampling: one volume per batch element, the last round(B·(1 − 0.33)) … elements on foreground, class-balanced', () => {
  // ten volumes; class 1 a big block at x < 10, class 2 one voxel at x 35
  const cases = Array.from({length: 10}, (_, k) => {
    const shape: Vec3 = [40, 8, 8]
    const label = new Uint8Array(40 * 64)
    for (let i = 0; i < label.length; i++) if (i % 40 < 10) label[i] = 1
    label[35 + 40 * (4 + 8 * 4)] = 2
    return {id: `c${k}`, shape, channels: 1, image: new Float32Array(40 * 64), label}
  })
  const patch: Vec3 = [8, 8, 8]
  const sampler = new PatchSampler(cases, {patch, posNegRatio: [1, 1], samplesPerVolume: 4, mode: 'nnunet', batchSize: 3, oversampleForeground: 0.33}, new Rng(1))
  const batches = Array.from({length: 600}, () => [sampler.next(), sampler.next(), sampler.next()])
  // batch 3: round(3 · 0.67) = 2, so the third element of each batch is forced onto foreground
  assert.ok(batches.every((b) => !b[0].positive && !b[1].positive && b[2].positive))
  assert.ok(batches.every((b) => b[2].label.some((l) => l > 0)))
  // a random class, then a random voxel of it: the one-voxel class 2 is in about half the forced patches
  const tiny = batches.filter((b) => b[2].label.includes(2)).length
  assert.ok(Math.abs(tiny - 300) < 5 * Math.sqrt(150), `${tiny} of 600 forced patches hold class 2`)
  // every element draws its own volume: neighbours share one about 1 time in 10
  const flat = batches.flat()
  const repeats = flat.slice(1).filter((p, i) => p.caseId === flat[i].caseId).length
  assert.ok(repeats / flat.length < 0.2, `${repeats} repeats`)
  // random placements span the volume and stay inside it
  const origins = flat.filter((p) => !p.positive).map((p) => p.origin[0])
  assert.ok(Math.min(...origins) === 0 && Math.max(...origins) === 32)
  // monai sampling with 4 crops per volume: three of four neighbours share their volume
  const monai = new PatchSampler(cases, {patch, posNegRatio: [1, 1], samplesPerVolume: 4}, new Rng(1))
  const m = Array.from({length: 400}, () => monai.next())
  assert.ok(m.slice(1).filter((p, i) => p.caseId === m[i].caseId).length >= 290)
  // batch 2 forces its second element; startEpoch restarts the batch position
  const two = new PatchSampler(cases, {patch, posNegRatio: [1, 1], samplesPerVolume: 1, mode: 'nnunet', batchSize: 2, oversampleForeground: 0.33}, new Rng(2))
  assert.deepEqual([two.next().positive, two.next().positive, two.next().positive], [false, true, false])
  two.startEpoch()
  assert.equal(two.next().positive, false)
  // B − round(B · (1 − o)), not round(B · o): at B = 3, o = 0.5 nnU-Net forces one element (round(1.5) = 2 either way)
  const half = new PatchSampler(cases, {patch, posNegRatio: [1, 1], samplesPerVolume: 1, mode: 'nnunet', batchSize: 3, oversampleForeground: 0.5}, new Rng(3))
  assert.deepEqual([half.next().positive, half.next().positive, half.next().positive], [false, false, true])
  // same seed, same patches
  const s1 = new PatchSampler(cases, {patch, posNegRatio: [1, 1], samplesPerVolume: 1, mode: 'nnunet', batchSize: 2}, new Rng(5))
  const s2 = new PatchSampler(cases, {patch, posNegRatio: [1, 1], samplesPerVolume: 1, mode: 'nnunet', batchSize: 2}, new Rng(5))
  for (let i = 0; i < 10; i++) assert.deepEqual([s1.next().origin, s1.next().caseId], [s2.next().origin, s2.next().caseId])
})

test('sipl train with nnU-Net sampling and the whole nnU-Net augmentation set runs', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-nnunet-aug-'))
  try {
    const on = ['rotation', 'scaling', 'gaussianNoise', 'gaussianBlur', 'brightness', 'contrast', 'lowResolution', 'gammaInverted', 'gamma']
    const training = sets('train.epochs=1', 'train.itersPerEpoch=3', 'train.batchSize=2', 'train.sampling=nnunet', 'train.augment.flip=0.5')
    const r = sipl(
      ['train', '-c', 'experiments/demo.yaml', ...TINY, ...training, ...sets(...on.map((k) => `train.augment.${k}.p=1`), 'train.valEvery=0'), '--out', join(root, 'run'), '--json'],
      {env: {SIPL_DATA_DIR: join(root, 'data')}},
    )
    assert.equal(r.code, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout) as {steps: number}).steps, 3)
    const rows = readFileSync(join(root, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n')
    assert.ok(Number.isFinite((JSON.parse(rows[0]) as {loss: number}).loss))
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})
