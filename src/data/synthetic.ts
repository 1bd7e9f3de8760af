/**
 * Synthetic CT-like phantoms (preset 'synthetic'): a body (elliptic cylinder of soft tissue with a
 * fat rim, in air) holding `organs` ellipsoids of distinct HU, warped by a smooth random
 * deformation and overlaid with Gaussian noise. Written as real int16 `.nii.gz` images, uint8
 * label maps and an MSD-style dataset.json through the same writer as everything else, so the
 * demo exercises the real reading, reorientation (files are stored LPS, like DICOM-derived CT)
 * and preprocessing path. Everything is a function of data.synthetic (seed included).
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import type {DataConfig} from '../config/sections/data.js'
import {UserError} from '../errors.js'
import {geometryFromAffine, writeNifti} from '../io/nifti-writer.js'
import type {Mat4} from '../io/orientation.js'
import {silentLogger, type Logger} from '../log/logger.js'
import {writeFileAtomic} from '../util/atomic.js'
import {Rng} from '../util/rng.js'
import {dataRoot} from './datasets.js'

type SyntheticConfig = DataConfig['synthetic']

const AIR_HU = -1000
const FAT_HU = -100
const SOFT_TISSUE_HU = 40
// organ intensities, the first three (liver, spleen, kidney in the demo) as in portal-venous
// contrast CT like BTCV's: liver ≈ 95, spleen ≈ 135, renal cortex ≈ 190 HU against ≈ 40 HU soft
// tissue, 40–55 HU apart under the default 20 HU noise (at 60 HU the liver was within one noise
// SD of soft tissue and the rims of brighter organs, and the demo's liver Dice varied 0.26–0.83)
const ORGAN_HU = [95, 135, 190, 60, 160, 225, 80, 145, 210]
const organHU = (k: number) => ORGAN_HU[k % ORGAN_HU.length] + 7 * Math.floor(k / ORGAN_HU.length)

export interface Phantom {
  image: Int16Array
  label: Uint8Array
  shape: [number, number, number]
  affine: Mat4
}

interface Ellipsoid {
  centre: [number, number, number]
  radii: [number, number, number]
  angle: number // rotation about z
  hu: number
}

/** One phantom, fully determined by `rng`'s state. */
export function makePhantom(cfg: SyntheticConfig, organs: number, rng: Rng): Phantom {
  const [X, Y, Z] = cfg.shape
  const [sx, sy, sz] = cfg.spacing
  const half = [(X - 1) / 2, (Y - 1) / 2, (Z - 1) / 2]
  // body semi-axes in mm (x wider than y, like an abdomen)
  const bodyA = 0.45 * X * sx * rng.uniform(0.88, 1.02)
  const bodyB = 0.4 * Y * sy * rng.uniform(0.88, 1.02)
  const fat = rng.uniform(0.06, 0.1)
  const zExtent = (Z * sz) / 2
  const shapes: Ellipsoid[] = []
  const scale = Math.min(bodyA, bodyB)
  for (let k = 0; k < organs; k++) {
    let best: Ellipsoid | undefined
    for (let attempt = 0; attempt < 60; attempt++) {
      const radii: [number, number, number] = [
        scale * rng.uniform(0.26, 0.4),
        scale * rng.uniform(0.26, 0.4),
        Math.min(zExtent * 0.6, scale * rng.uniform(0.3, 0.5)),
      ]
      const centre: [number, number, number] = [
        rng.uniform(-0.5, 0.5) * bodyA,
        rng.uniform(-0.5, 0.5) * bodyB,
        rng.uniform(-0.35, 0.35) * zExtent,
      ]
      const candidate = {centre, radii, angle: rng.uniform(0, Math.PI), hu: organHU(k) + rng.uniform(-5, 5)}
      best = candidate
      const clear = shapes.every((s) => {
        const d = Math.hypot(s.centre[0] - centre[0], s.centre[1] - centre[1], s.centre[2] - centre[2])
        return d > 0.95 * (Math.max(...s.radii) + Math.max(...radii))
      })
      if (clear) break
    }
    shapes.push(best!)
  }
  // smooth deformation: three low-frequency sinusoids (wavelength ≈ the field of view), ≈ 2 voxels
  const amplitude = 2 * Math.min(sx, sy, sz)
  const waves = [0, 1, 2].map(() => {
    const f = [0, 1, 2].map(() => rng.uniform(-1, 1) / (1.2 * Math.max(X * sx, Y * sy, Z * sz)))
    return {f, phase: rng.uniform(0, 2 * Math.PI), amp: amplitude * rng.uniform(0.5, 1)}
  })
  const image = new Int16Array(X * Y * Z)
  const label = new Uint8Array(X * Y * Z)
  const cos = shapes.map((s) => Math.cos(s.angle))
  const sin = shapes.map((s) => Math.sin(s.angle))
  const inv2 = shapes.map((s) => s.radii.map((r) => 1 / (r * r)))
  // sin(a_x + a_yz) = sin a_x cos a_yz + cos a_x sin a_yz: the x part is tabulated once per wave and
  // the (y, z) part once per row, which keeps a 512×512×200 phantom to a few seconds
  const px = Float64Array.from({length: X}, (_, i) => (i - half[0]) * sx)
  const sinX = waves.map((w) => px.map((x) => Math.sin(2 * Math.PI * w.f[0] * x)))
  const cosX = waves.map((w) => px.map((x) => Math.cos(2 * Math.PI * w.f[0] * x)))
  // Gaussian noise from a seeded table of 65 536 normals, indexed by the generator: Box–Muller per voxel is several times slower
  const normals = Float32Array.from({length: 65536}, () => rng.normal())
  const q = [0, 0, 0]
  const sinRow = [0, 0, 0]
  const cosRow = [0, 0, 0]
  const innerFat = (1 - fat) ** 2
  let index = 0
  for (let k = 0; k < Z; k++)
    for (let j = 0; j < Y; j++) {
      const py = (j - half[1]) * sy
      const pz = (k - half[2]) * sz
      for (let a = 0; a < 3; a++) {
        const arg = 2 * Math.PI * (waves[a].f[1] * py + waves[a].f[2] * pz) + waves[a].phase
        sinRow[a] = Math.sin(arg)
        cosRow[a] = Math.cos(arg)
      }
      for (let i = 0; i < X; i++, index++) {
        q[0] = px[i] + waves[0].amp * (sinX[0][i] * cosRow[0] + cosX[0][i] * sinRow[0])
        q[1] = py + waves[1].amp * (sinX[1][i] * cosRow[1] + cosX[1][i] * sinRow[1])
        q[2] = pz + waves[2].amp * (sinX[2][i] * cosRow[2] + cosX[2][i] * sinRow[2])
        const body = (q[0] / bodyA) ** 2 + (q[1] / bodyB) ** 2
        let hu = AIR_HU
        let value = 0
        if (body <= 1) {
          hu = body > innerFat ? FAT_HU : SOFT_TISSUE_HU
          for (let s = 0; s < shapes.length; s++) {
            const e = shapes[s]
            const dx = q[0] - e.centre[0]
            const dy = q[1] - e.centre[1]
            const u = cos[s] * dx + sin[s] * dy
            const v = -sin[s] * dx + cos[s] * dy
            const w = q[2] - e.centre[2]
            if (u * u * inv2[s][0] + v * v * inv2[s][1] + w * w * inv2[s][2] <= 1) {
              hu = e.hu
              value = s + 1
            }
          }
        }
        const noisy = Math.round(hu + cfg.noiseHU * normals[rng.nextUint32() >>> 16])
        image[index] = noisy < -1024 ? -1024 : noisy > 3071 ? 3071 : noisy
        label[index] = value
      }
    }
  // stored LPS (x and y reversed), like CT converted from DICOM; centred on the world origin
  const affine: Mat4 = [
    [-sx, 0, 0, half[0] * sx],
    [0, -sy, 0, half[1] * sy],
    [0, 0, sz, -half[2] * sz],
    [0, 0, 0, 1],
  ]
  return {image, label, shape: [X, Y, Z], affine}
}

// bump when the phantom recipe changes, so datasets generated by an older sipl are regenerated
const GENERATOR_VERSION = 2

export function syntheticStamp(config: ExperimentConfig): Record<string, unknown> {
  return {generator: GENERATOR_VERSION, synthetic: config.data.synthetic, classes: config.data.classes}
}

/** True when <root>/dataset.json was generated by sipl from exactly these settings. */
export function syntheticIsCurrent(config: ExperimentConfig): boolean {
  const file = join(dataRoot(config), 'dataset.json')
  if (!existsSync(file)) return false
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as {sipl?: unknown}
    return JSON.stringify(doc.sipl) === JSON.stringify(syntheticStamp(config))
  } catch {
    return false
  }
}

/**
 * Writes the phantom dataset to data.root (imagesTr/, labelsTr/, dataset.json last, so an
 * interrupted run is simply redone). Refuses to overwrite a dataset.json that sipl did not write.
 */
export function generateSynthetic(config: ExperimentConfig, log: Logger = silentLogger): string {
  const root = dataRoot(config)
  const cfg = config.data.synthetic
  const organs = cfg.organs
  if (organs !== config.data.classes.length)
    throw new UserError(
      `data.synthetic.organs is ${organs} but data.classes names ${config.data.classes.length} classes; make them equal (one class per organ)`,
    )
  if (organs > 254) throw new UserError(`data.synthetic.organs ${organs}: at most 254 organs fit a uint8 label map`)
  const datasetJson = join(root, 'dataset.json')
  if (existsSync(datasetJson)) {
    const doc = JSON.parse(readFileSync(datasetJson, 'utf8')) as {sipl?: unknown}
    if (!doc.sipl)
      throw new UserError(`${datasetJson} exists and was not generated by sipl; point data.root at an empty folder for preset 'synthetic'`)
  }
  const started = Date.now()
  const master = new Rng(cfg.seed)
  const training: {image: string; label: string}[] = []
  for (let c = 0; c < cfg.cases; c++) {
    const phantom = makePhantom(cfg, organs, master.fork())
    const id = `case_${String(c).padStart(3, '0')}`
    const geometry = geometryFromAffine(phantom.affine, 1)
    writeNifti(join(root, 'imagesTr', `${id}.nii.gz`), {shape: phantom.shape, data: phantom.image, geometry, description: 'sipl phantom'})
    writeNifti(join(root, 'labelsTr', `${id}.nii.gz`), {shape: phantom.shape, data: phantom.label, geometry, description: 'sipl phantom labels'})
    training.push({image: `./imagesTr/${id}.nii.gz`, label: `./labelsTr/${id}.nii.gz`})
  }
  const labels = Object.fromEntries([['0', 'background'], ...config.data.classes.map((name, k) => [String(k + 1), name])])
  const doc = {
    name: 'sipl-synthetic',
    description: 'CT-like phantoms generated by sipl (ellipsoid organs, smooth deformation, Gaussian noise)',
    tensorImageSize: '3D',
    modality: {'0': 'CT'},
    labels,
    numTraining: training.length,
    numTest: 0,
    training,
    test: [],
    sipl: syntheticStamp(config),
  }
  writeFileAtomic(datasetJson, JSON.stringify(doc, null, 2) + '\n')
  log.info({cases: cfg.cases, shape: cfg.shape.join('x'), seconds: (Date.now() - started) / 1000, root}, 'synthetic phantoms written')
  return root
}
