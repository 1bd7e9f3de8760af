/**
 * Test-time mirroring follows the training augmentation (nnU-Net's rule), and a model that has
 * learnt laterality shows why: mirroring along an axis it never saw mirrored changes its answer.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {experimentSchema} from '../../src/config/schema.js'
import {UserError} from '../../src/errors.js'
import {describeMirroring, trainedMirrorAxes, ttaMirrorAxes, type MirrorAxis} from '../../src/evaluate/mirroring.js'
import {probabilitiesToLabels, slidingWindow} from '../../src/evaluate/sliding-window.js'
import type {Vec3} from '../../src/util/vec3.js'

const configWith = (train: object, evalSection: object) => experimentSchema.parse({train: {augment: train}, eval: evalSection})

test('the mirror axes are the training flips: none without flip, flipAxes with it', () => {
  assert.deepEqual(trainedMirrorAxes(configWith({flip: 0}, {}).train.augment), [])
  assert.deepEqual(trainedMirrorAxes(configWith({flip: 0.5}, {}).train.augment), ['x', 'y', 'z'])
  assert.deepEqual(trainedMirrorAxes(configWith({flip: 0.5, flipAxes: ['z', 'y']}, {}).train.augment), ['y', 'z'])
  assert.deepEqual(trainedMirrorAxes(configWith({flip: 0.5, flipAxes: []}, {}).train.augment), [])
})

test('eval.tta mirrors only along the trained axes; asking for another axis is a one-line error', () => {
  // the demo's old combination: trained without flips, tta on → no mirroring, and the log says why
  const untrained = configWith({flip: 0}, {tta: true})
  assert.deepEqual(ttaMirrorAxes(untrained), [])
  assert.match(describeMirroring(untrained, [])!, /no mirroring, because the training never mirrored/)
  assert.deepEqual(ttaMirrorAxes(configWith({flip: 0.5}, {tta: false})), [])
  assert.equal(describeMirroring(configWith({flip: 0.5}, {tta: false}), []), null)
  const zOnly = configWith({flip: 0.5, flipAxes: ['z']}, {tta: true})
  assert.deepEqual(ttaMirrorAxes(zOnly), ['z'])
  assert.match(describeMirroring(zOnly, ['z'])!, /mirroring along z \(2 passes per window\)/)
  assert.deepEqual(ttaMirrorAxes(configWith({flip: 0.5}, {tta: true, ttaAxes: ['y']})), ['y'])
  assert.throws(
    () => ttaMirrorAxes(configWith({flip: 0.5, flipAxes: ['z']}, {tta: true, ttaAxes: ['x', 'z']})),
    (e: Error) =>
      e instanceof UserError && /eval\.ttaAxes asks to mirror along x, which the model was never trained to mirror/.test(e.message),
  )
  // each axis once
  assert.throws(() => configWith({flip: 0.5, flipAxes: ['x', 'x']}, {}))
})

test('a left/right-asymmetric model: mirroring along x changes the answer, along the axes it is symmetric in it does not', async () => {
  // A toy "network" that has learnt laterality, as one trained without x flips does: bright
  // voxels in the left half of the window (x < 4) are organ 1 ("spleen"), bright voxels in the
  // right half organ 2 ("liver"). The volume holds one bright blob on the left.
  const shape: Vec3 = [8, 4, 4]
  const image = new Float32Array(8 * 4 * 4)
  for (let z = 1; z < 3; z++) for (let y = 1; y < 3; y++) for (let x = 1; x < 3; x++) image[x + 8 * (y + 4 * z)] = 1
  const lateral = async (batch: Float32Array): Promise<Float32Array> => {
    const out = new Float32Array(batch.length * 2)
    for (let v = 0; v < batch.length; v++) {
      const left = v % 8 < 4
      out[v * 2] = batch[v] > 0.5 && left ? 0.9 : 0
      out[v * 2 + 1] = batch[v] > 0.5 && !left ? 0.9 : 0
    }
    return out
  }
  const blobVoxel = 1 + 8 * (1 + 4 * 1)
  const probabilitiesAtBlob = async (mirrorAxes: MirrorAxis[]) => {
    const p = await slidingWindow({image, shape, channels: 1}, lateral, {
      patch: shape,
      numClasses: 2,
      overlap: 0.5,
      sigmaScale: 0.125,
      mirrorAxes,
      batchSize: 1,
    })
    const labels = probabilitiesToLabels(p, 2, 0.5, false)
    const round = (v: number) => Math.round(v * 1000) / 1000
    return {spleen: round(p[blobVoxel * 2]), liver: round(p[blobVoxel * 2 + 1]), label: labels[blobVoxel]}
  }
  // trained with flips along y and z only: the rule mirrors y and z, and the answer stands
  const rule = ttaMirrorAxes(configWith({flip: 0.5, flipAxes: ['y', 'z']}, {tta: true}))
  assert.deepEqual(rule, ['y', 'z'])
  assert.deepEqual(await probabilitiesAtBlob([]), {spleen: 0.9, liver: 0, label: 1})
  assert.deepEqual(await probabilitiesAtBlob(rule), {spleen: 0.9, liver: 0, label: 1})
  // unrestricted mirroring averages in the x-mirrored views, where the blob sits on the right and
  // is called liver: both fall below the 0.5 threshold and the spleen is lost (the real CT's
  // spleen Dice 0.88 → 0.00)
  assert.deepEqual(await probabilitiesAtBlob(['x']), {spleen: 0.45, liver: 0.45, label: 0})
  assert.deepEqual(await probabilitiesAtBlob(['x', 'y', 'z']), {spleen: 0.45, liver: 0.45, label: 0})
})
