import {test} from 'node:test'
import assert from 'node:assert/strict'
import {Rng} from '../../src/util/rng.js'
import {PatchSampler, cropCase, patchesInStep, stepsPerEpoch, type TrainCase} from '../../src/data/sampler.js'
import {applyAugment, randomize} from '../../src/data/augment.js'
import {augmentSchema} from '../../src/config/sections/train.js'
import type {Vec3} from '../../src/util/vec3.js'

function phantom(id: string): TrainCase {
  const shape: Vec3 = [20, 16, 12]
  const n = 20 * 16 * 12
  const image = Float32Array.from({length: n * 2}, (_, i) => i)
  const label = new Uint8Array(n)
  // one small foreground box of class 2 at x 14..16, y 3..4, z 8..9
  for (let z = 8; z < 10; z++) for (let y = 3; y < 5; y++) for (let x = 14; x < 17; x++) label[x + 20 * (y + 16 * z)] = 2
  return {id, image, label, shape, channels: 2}
}

test('cropCase copies the block and zero-pads beyond the volume', () => {
  const c = phantom('a')
  const {image, label} = cropCase(c, [18, 0, 0], [4, 2, 1])
  // voxel (1, 1, 0) of the crop is volume voxel (19, 1, 0): index 19 + 20 = 39, channels 78, 79
  const at = 1 + 4 * 1
  assert.deepEqual([image[at * 2], image[at * 2 + 1]], [78, 79])
  // x = 20, 21 are outside: zeros
  assert.deepEqual([image[2 * 2], image[3 * 2 + 1]], [0, 0])
  assert.equal(label.length, 8)
})

test('positive crops contain foreground; the pos:neg ratio is about 2:1; same seed → same patches', () => {
  const cases = [phantom('a'), phantom('b')]
  const options = {patch: [8, 8, 4] as Vec3, posNegRatio: [2, 1] as [number, number], samplesPerVolume: 3, volumeOrder: 'random' as const}
  const sampler = new PatchSampler(cases, options, new Rng(5))
  let positives = 0
  const n = 600
  for (let i = 0; i < n; i++) {
    const p = sampler.next()
    if (p.positive) {
      positives++
      assert.ok(
        p.label.some((v) => v > 0),
        'a positive crop contains foreground',
      )
    }
    for (let axis = 0; axis < 3; axis++) assert.ok(p.origin[axis] >= 0 && p.origin[axis] + options.patch[axis] <= cases[0].shape[axis])
  }
  // binomial(600, 2/3): mean 400, sd 11.5 → ±5 sd
  assert.ok(Math.abs(positives - 400) < 58, `${positives} positives`)
  const s1 = new PatchSampler(cases, options, new Rng(9))
  const s2 = new PatchSampler(cases, options, new Rng(9))
  for (let i = 0; i < 10; i++) assert.deepEqual(s1.next().origin, s2.next().origin)
})

test('after startEpoch the stream depends only on the Rng state (what resume relies on)', () => {
  const cases = [phantom('a'), phantom('b')]
  const options = {patch: [8, 8, 4] as Vec3, posNegRatio: [1, 1] as [number, number], samplesPerVolume: 4, volumeOrder: 'random' as const}
  const rng = new Rng(3)
  const s = new PatchSampler(cases, options, rng)
  s.next() // leaves 3 crops queued
  s.startEpoch()
  const state = rng.getState()
  const after = [s.next(), s.next()].map((p) => p.origin)
  const fresh = new PatchSampler(cases, options, new Rng(state))
  assert.deepEqual(
    [fresh.next(), fresh.next()].map((p) => p.origin),
    after,
  )
})

/** The case id of every patch of every step of `epochs` epochs, as the training loop draws them. */
function drawEpochs(
  cases: TrainCase[],
  train: {volumeOrder: 'permutation' | 'random'; itersPerEpoch?: number; samplesPerVolume: number; batchSize: number},
  epochs: number,
  seed: number,
): string[][][] {
  const sampler = new PatchSampler(
    cases,
    {patch: [8, 8, 4], posNegRatio: [2, 1], samplesPerVolume: train.samplesPerVolume, volumeOrder: train.volumeOrder},
    new Rng(seed),
  )
  const out: string[][][] = []
  for (let e = 0; e < epochs; e++) {
    sampler.startEpoch()
    const steps: string[][] = []
    for (let iter = 0; iter < stepsPerEpoch(train, cases.length); iter++)
      steps.push(Array.from({length: patchesInStep(train, cases.length, iter)}, () => sampler.next().caseId))
    out.push(steps)
  }
  return out
}

test('permutation order (the official BTCV loader): each step the crops of one volume, each volume once per epoch', () => {
  const cases = ['a', 'b', 'c', 'd', 'e', 'f'].map(phantom)
  // btcv.yaml: batch of 4 = the 4 crops of one volume
  const btcv = {volumeOrder: 'permutation' as const, samplesPerVolume: 4, batchSize: 4}
  assert.equal(stepsPerEpoch(btcv, 24), 24, '24 BTCV training volumes → 24 steps per epoch')
  const epochs = drawEpochs(cases, btcv, 5, 11)
  const orders = new Set<string>()
  for (const steps of epochs) {
    assert.equal(steps.length, 6, 'one step per volume')
    for (const step of steps) {
      assert.equal(step.length, 4, 'four crops per step')
      assert.equal(new Set(step).size, 1, `one volume per step, got ${step.join(',')}`)
    }
    const visited = steps.map((step) => step[0])
    assert.deepEqual([...visited].sort(), ['a', 'b', 'c', 'd', 'e', 'f'], 'every volume exactly once, no repeats')
    orders.add(visited.join(''))
  }
  assert.ok(orders.size >= 4, `the order is shuffled anew each epoch (${[...orders].join(' ')})`)

  // crops that do not fill the last step: 5 volumes × 3 crops in batches of 4 → 4, 4, 4, 3
  const uneven = {volumeOrder: 'permutation' as const, samplesPerVolume: 3, batchSize: 4}
  const [steps] = drawEpochs(cases.slice(0, 5), uneven, 1, 2)
  assert.deepEqual(
    steps.map((s) => s.length),
    [4, 4, 4, 3],
  )
  const counts = new Map<string, number>()
  for (const id of steps.flat()) counts.set(id, (counts.get(id) ?? 0) + 1)
  assert.deepEqual([...counts.values()], [3, 3, 3, 3, 3], 'each volume gives exactly its 3 crops')
})

test('random order: volumes with replacement, itersPerEpoch steps (250 by default)', () => {
  const cases = ['a', 'b', 'c', 'd'].map(phantom)
  assert.equal(stepsPerEpoch({volumeOrder: 'random', samplesPerVolume: 2, batchSize: 2}, 4), 250)
  const train = {volumeOrder: 'random' as const, itersPerEpoch: 40, samplesPerVolume: 1, batchSize: 1}
  const [steps] = drawEpochs(cases, train, 1, 3)
  assert.equal(steps.length, 40)
  const visits = steps.map((s) => s[0])
  // 40 draws from 4 volumes: some volume repeats within any 5 consecutive draws
  assert.ok(
    visits.some((id, i) => visits.slice(i + 1, i + 5).includes(id)),
    'draws with replacement repeat volumes',
  )
})

test('rot90 and flips move voxels as worked out by hand; intensity shift/scale; constant draw count', () => {
  // 2×2×1 patch, one channel: values v(x, y) = x + 2y → [0, 1, 2, 3] in x-fastest order
  const patch = {
    caseId: 'a',
    origin: [0, 0, 0] as Vec3,
    positive: true,
    image: Float32Array.from([0, 1, 2, 3]),
    label: Uint8Array.from([0, 1, 2, 3]),
  }
  const dims: Vec3 = [2, 2, 1]
  const none = {rot90: 0, flips: [false, false, false] as [boolean, boolean, boolean], shift: 0, scale: 1}
  // one quarter turn: out(x, y) = in(y, 1 − x): out(0,0) = in(0,1) = 2, out(1,0) = in(0,0) = 0,
  // out(0,1) = in(1,1) = 3, out(1,1) = in(1,0) = 1
  assert.deepEqual([...applyAugment(patch, {...none, rot90: 1}, dims, 1).label], [2, 0, 3, 1])
  // four quarter turns are the identity; k = 3 undoes k = 1
  const once = applyAugment(patch, {...none, rot90: 1}, dims, 1)
  assert.deepEqual([...applyAugment(once, {...none, rot90: 3}, dims, 1).label], [0, 1, 2, 3])
  assert.deepEqual([...applyAugment(patch, {...none, flips: [true, false, false]}, dims, 1).label], [1, 0, 3, 2])
  assert.deepEqual([...applyAugment(patch, {...none, shift: 0.5, scale: 2}, dims, 1).image], [0.5, 2.5, 4.5, 6.5])
  // image and label move together
  const both = applyAugment(patch, {...none, rot90: 2, flips: [false, true, false]}, dims, 1)
  assert.deepEqual([...both.image], [...both.label].map(Number))
  const config = augmentSchema.parse({
    rot90: 0.5,
    flip: 0.5,
    intensityShift: 0.1,
    intensityShiftProb: 0.5,
    intensityScale: 0.1,
    intensityScaleProb: 0.5,
  })
  const r1 = new Rng(1)
  const r2 = new Rng(1)
  randomize(config, r1, [4, 4, 4])
  randomize({...config, rot90: 0, flip: 0, intensityShiftProb: 0}, r2, [4, 6, 4])
  assert.deepEqual(r1.getState(), r2.getState(), 'the same number of draws whatever the outcome')
})

test('flips mirror only along train.augment.flipAxes, with the same draws whatever the axes', () => {
  const always = augmentSchema.parse({rot90: 0, flip: 1, intensityShiftProb: 0, flipAxes: ['z']})
  const r1 = new Rng(4)
  assert.deepEqual(randomize(always, r1, [4, 4, 4]).flips, [false, false, true])
  const r2 = new Rng(4)
  assert.deepEqual(randomize({...always, flipAxes: ['x', 'y', 'z']}, r2, [4, 4, 4]).flips, [true, true, true])
  assert.deepEqual(r1.getState(), r2.getState())
  assert.deepEqual(randomize(augmentSchema.parse({flip: 0}), new Rng(4), [4, 4, 4]).flips, [false, false, false])
})
