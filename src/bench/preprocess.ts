/**
 * Benchmark (not a test): preprocessing one abdominal-CT-sized volume, 512×512×200 int16 at
 * 0.8×0.8×2.5 mm stored LPS, to 1.5 mm isotropic with the BTCV settings (RAS, trilinear,
 * HU window, foreground crop, pad to 96³). The volume is a synthetic phantom written as a real
 * .nii.gz first, so the timed path includes gunzip and decoding, exactly as `sipl preprocess`.
 *
 *   node dist/src/bench/preprocess.js        (after `npx tsc -p .`)
 */
import {mkdtempSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {loadConfig} from '../config/load.js'
import {preprocessCase} from '../data/preprocess.js'
import {resampleGrid, resampleLinear, resampleNearest} from '../data/resample.js'
import {makePhantom} from '../data/synthetic.js'
import {readNifti, scaledFloat32} from '../io/nifti.js'
import {geometryFromAffine, writeNifti} from '../io/nifti-writer.js'
import {affineSpacing, reorientToRAS} from '../io/orientation.js'
import type {Vec3} from '../util/vec3.js'
import {Rng} from '../util/rng.js'

export interface PreprocessBenchResult {
  name: string
  input: {shape: Vec3; spacing: Vec3; fileMB: number}
  output: {shape: Vec3; spacing: Vec3}
  seconds: {read: number; reorient: number; resampleImage: number; resampleLabel: number; endToEnd: number}
  node: string
}

const seconds = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e9

export async function benchPreprocess(options: {shape?: Vec3; spacing?: Vec3; target?: Vec3; log?: (line: string) => void} = {}) {
  const shape = options.shape ?? [512, 512, 200]
  const spacing = options.spacing ?? [0.8, 0.8, 2.5]
  const target = options.target ?? [1.5, 1.5, 1.5]
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'))
  const dir = mkdtempSync(join(tmpdir(), 'sipl-bench-'))
  try {
    const {config} = loadConfig(undefined, [
      'data.preset=folder',
      `data.root=${dir}`,
      `data.synthetic.shape=[${shape.join(',')}]`,
      `data.synthetic.spacing=[${spacing.join(',')}]`,
      `preprocess.spacing=[${target.join(',')}]`,
      'preprocess.intensity={mode: ct-window, window: [-175, 250]}',
      'preprocess.patch=[96, 96, 96]',
    ])
    log(`building a ${shape.join('×')} int16 phantom (not timed) …`)
    const image = join(dir, 'imagesTr', 'ct.nii.gz')
    const label = join(dir, 'labelsTr', 'ct.nii.gz')
    {
      const phantom = makePhantom(config.data.synthetic, 3, new Rng(1))
      writeNifti(image, {shape: phantom.shape, data: phantom.image, geometry: geometryFromAffine(phantom.affine)})
      writeNifti(label, {shape: phantom.shape, data: phantom.label, geometry: geometryFromAffine(phantom.affine)})
    }

    // the whole case as `sipl preprocess` runs it (read + RAS + resample + window + crop + pad)
    let t = process.hrtime.bigint()
    const result = preprocessCase({id: 'ct', images: [image], label}, config, 'bench')
    const endToEnd = seconds(t)
    const outputShape = result.header.shape

    // then the main stages one by one, on the same data
    t = process.hrtime.bigint()
    const nifti = readNifti(image)
    const values = scaledFloat32(nifti)
    const read = seconds(t)
    t = process.hrtime.bigint()
    const ras = reorientToRAS(values, shape, nifti.header.affine)
    const reorient = seconds(t)
    const labels = reorientToRAS(readNifti(label).data as Uint8Array, shape, nifti.header.affine)
    const grid = resampleGrid(ras.shape, affineSpacing(ras.affine), target)
    t = process.hrtime.bigint()
    resampleLinear(ras.data, ras.shape, grid)
    const resampleImage = seconds(t)
    t = process.hrtime.bigint()
    resampleNearest(labels.data, labels.shape, grid)
    const resampleLabel = seconds(t)

    const out: PreprocessBenchResult = {
      name: 'preprocess CT 512×512×200 int16 → 1.5 mm',
      input: {shape, spacing, fileMB: +(statSync(image).size / 1e6).toFixed(1)},
      output: {shape: outputShape, spacing: target},
      seconds: {
        read: +read.toFixed(3),
        reorient: +reorient.toFixed(3),
        resampleImage: +resampleImage.toFixed(3),
        resampleLabel: +resampleLabel.toFixed(3),
        endToEnd: +endToEnd.toFixed(3),
      },
      node: process.version,
    }
    log(
      `${out.name}: ${endToEnd.toFixed(2)} s end to end (read+gunzip ${read.toFixed(2)} s, RAS ${reorient.toFixed(2)} s, ` +
        `trilinear ${resampleImage.toFixed(2)} s, nearest labels ${resampleLabel.toFixed(2)} s); output ${outputShape.join('×')}`,
    )
    return out
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchPreprocess()
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
}
