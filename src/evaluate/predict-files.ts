/**
 * `sipl predict`: a trained run segments new scans, as nnU-Net's `nnUNetv2_predict` or a MONAI
 * bundle's inference does. Every input case takes the path a cached test case takes in
 * `sipl eval --run`: the run's own preprocessing (preprocessCase with the run's config and plan:
 * RAS, target spacing, intensity normalisation with the training statistics, foreground crop,
 * padding), the sliding window with the run's eval settings (TTA, largest component), and the
 * label map back on the input's original grid with its header (writeOriginalGrid). So for the
 * same scan both commands write the same file. No label is read.
 *
 * Inputs: one NIfTI file or a folder of them. A multi-channel run takes one 4-D file per case or
 * nnU-Net's channel files `<case>_0000.nii.gz`, `<case>_0001.nii.gz`, … (grouped by case).
 */
import {existsSync, readFileSync, statSync} from 'node:fs'
import {basename, dirname, join, resolve} from 'node:path'
import type {BackendRequest} from '../backend/names.js'
import {loadConfig, parseOverride} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'
import {cacheDirOf, interleave, type Plan} from '../data/cache-files.js'
import {settingsHash} from '../data/cache-staleness.js'
import {toOriginalGrid, writeOriginalGrid} from '../data/original-grid.js'
import {caseFiles, niftiFiles} from '../data/datasets.js'
import {preprocessCase, type IntensityFingerprint} from '../data/preprocess.js'
import {UserError} from '../errors.js'
import {isNiftiPath, niftiStem, readNiftiHeader} from '../io/nifti.js'
import {affineSpacing} from '../io/orientation.js'
import type {Logger} from '../log/logger.js'
import {progress, type Progress} from '../log/progress.js'
import {inferenceEpoch} from '../model/sipl.js'
import {readRunConfig, runPaths} from '../run/run-dir.js'
import {writeFileAtomic} from '../util/atomic.js'
import {largestComponentFor} from './evaluate.js'
import {ttaMirrorAxes, type MirrorAxis} from './mirroring.js'
import {loadRunModel, predictCase, requireCheckpoint} from './predict.js'
import type {Vec3} from '../util/vec3.js'

export interface PredictInput {
  id: string
  /** one file (3-D, or 4-D with the channels in dim 4) or one file per channel */
  images: string[]
}

export interface PredictedCase {
  id: string
  inputs: string[]
  output: string
  /** the input's grid [X, Y, Z] and voxel spacing (mm), which the output shares */
  shape: Vec3
  spacing: Vec3
  /** the preprocessed grid the network saw */
  grid: Vec3
  /** per class: voxels of the written label map and their volume */
  volumes: Record<string, {voxels: number; ml: number}>
  seconds: number
}

export interface PredictSummary {
  run: string
  checkpoint: string
  checkpointEpoch: number
  backend: string
  classes: string[]
  /** where the preprocessing statistics came from: the run's plan.json, the cache's, or the config alone */
  plan: string
  eval: {tta: boolean; mirrorAxes: MirrorAxis[]; largestComponent: boolean; overlap: number; threshold: number}
  outDir: string
  cases: PredictedCase[]
  seconds: number
}

export interface PredictOptions {
  run: string
  checkpoint: string
  input: string
  outDir: string
  /** eval.* overrides of the run's config */
  set: string[]
  backend: BackendRequest
  log: Logger
  quiet?: boolean
}

/**
 * The cases under `input` (a NIfTI file or a folder), each with as many channels as the run was
 * trained on; anything else is a UserError naming the case and the expected files.
 */
export function listPredictInputs(input: string, channels: number): PredictInput[] {
  const path = resolve(input)
  if (!existsSync(path)) throw new UserError(`-i ${input}: no such file or folder; give a NIfTI file or a folder of them`)
  let groups: Map<string, string[]>
  if (statSync(path).isDirectory()) {
    const names = niftiFiles(path)
    if (names.length === 0) throw new UserError(`-i ${input}: no NIfTI files (.nii, .nii.gz, .hdr) in this folder`)
    groups = caseFiles(path, names)
  } else {
    if (!isNiftiPath(path)) throw new UserError(`-i ${input}: not a NIfTI file (.nii, .nii.gz, .hdr/.img)`)
    const dir = dirname(path)
    const name = basename(path)
    const stem = niftiStem(name)
    // an nnU-Net channel file of a multi-channel run: the case is every <case>_XXXX beside it
    if (channels > 1 && /_\d{4}$/.test(stem))
      groups = caseFiles(
        dir,
        niftiFiles(dir).filter((n) => /_\d{4}$/.test(niftiStem(n)) && niftiStem(n).slice(0, -5) === stem.slice(0, -5)),
      )
    else groups = new Map([[stem.replace(/_0000$/, ''), [path]]])
  }
  const cases: PredictInput[] = []
  const byLowerId = new Map<string, string>()
  for (const [id, images] of groups) {
    const clash = byLowerId.get(id.toLowerCase())
    if (clash !== undefined) throw new UserError(`-i ${input}: cases '${clash}' and '${id}' would write the same output; rename one`)
    byLowerId.set(id.toLowerCase(), id)
    const held = images.reduce(
      (n, f) =>
        n +
        readNiftiHeader(f)
          .shape.slice(3)
          .reduce((a, b) => a * b, 1),
      0,
    )
    if (held !== channels)
      throw new UserError(
        `case ${id}: ${images.map((f) => basename(f)).join(', ')} hold ${held} channel(s) but the run was trained on ${channels} (data.channels); ` +
          (channels === 1
            ? 'give one 3-D image per case'
            : `give one 4-D file or nnU-Net channel files ${Array.from({length: channels}, (_, c) => `${id}_${String(c).padStart(4, '0')}`).join(', ')}`),
      )
    cases.push({id, images})
  }
  return cases
}

/**
 * The intensity statistics and shapes the run was trained with: its own plan.json (written by
 * `sipl train`), else the cache's plan.json when it was made with the run's settings, else the
 * config alone — enough for every intensity mode except ct-percentile, whose statistics come from
 * the training cases.
 */
export function predictionPlan(config: ExperimentConfig, runDir: string): {plan: Plan | null; source: string} {
  const own = runPaths(runDir).plan
  if (existsSync(own)) return {plan: JSON.parse(readFileSync(own, 'utf8')) as Plan, source: own}
  const cached = join(cacheDirOf(config), 'plan.json')
  if (existsSync(cached)) {
    const plan = JSON.parse(readFileSync(cached, 'utf8')) as Plan
    if (plan.settingsHash === settingsHash(config)) return {plan, source: cached}
  }
  if (config.preprocess.intensity.mode === 'ct-percentile')
    throw new UserError(
      `${runDir}: no plan.json with the ct-percentile intensity statistics of its training cases (runs trained before sipl copied it have none); run 'sipl preprocess -c ${runPaths(runDir).config}' to rebuild the cache's, or copy the cache's plan.json into the run`,
    )
  return {plan: null, source: 'config'}
}

function fingerprintOf(plan: Plan | null): IntensityFingerprint | undefined {
  const i = plan?.intensity as Partial<IntensityFingerprint> | undefined
  if (!i || i.lower === undefined || i.upper === undefined || i.mean === undefined || i.std === undefined) return undefined
  return {lower: i.lower, upper: i.upper, mean: i.mean, std: i.std, samples: i.samples ?? 0}
}

/** Voxels per class of a label map; nested regions (BraTS) count every voxel inside region k. */
function classVoxels(labels: Uint8Array, numClasses: number, overlappingRegions: boolean): number[] {
  const perValue = new Array<number>(numClasses + 1).fill(0)
  for (const v of labels) perValue[v]++
  return Array.from({length: numClasses}, (_, k) =>
    overlappingRegions ? perValue.slice(k + 1).reduce((a, b) => a + b, 0) : perValue[k + 1],
  )
}

export async function runPredict(o: PredictOptions): Promise<PredictSummary> {
  const started = Date.now()
  const {log} = o
  // 1. The run: its config (eval.* may change), checkpoint and plan.
  const runDir = resolve(o.run)
  readRunConfig(runDir)
  for (const s of o.set) {
    const key = parseOverride(s).path
    if (key[0] !== 'eval')
      throw new UserError(
        `--set ${s}: predict uses the run's config as trained; only eval.* (tta, overlap, largestComponent, …) can change`,
      )
  }
  const config = loadConfig(runPaths(runDir).config, o.set).config
  requireCheckpoint(runDir, o.checkpoint)
  const {plan, source} = predictionPlan(config, runDir)
  const classes = plan?.classes ?? config.data.classes
  const channels = plan?.channels ?? config.data.channels
  const patch = (plan?.patch ?? config.preprocess.patch) as Vec3
  const numClasses = classes.length
  const overlappingRegions = config.data.overlappingRegions
  const fingerprint = fingerprintOf(plan)
  const hash = settingsHash(config)

  // 2. The inputs, checked before anything slow starts; no output may overwrite an input.
  const inputs = listPredictInputs(o.input, channels)
  const outDir = resolve(o.outDir)
  const inputFiles = new Set(inputs.flatMap((c) => c.images.map((f) => resolve(f))))
  for (const c of inputs) {
    const output = join(outDir, `${c.id}.nii.gz`)
    if (inputFiles.has(output)) throw new UserError(`-o ${o.outDir}: ${output} is an input; write the predictions to another folder`)
  }

  // 3. Backend and model.
  const {selectBackend} = await import('../backend/select.js')
  const backend = await selectBackend(o.backend, log)
  const {model, epoch} = loadRunModel(config, runDir, o.checkpoint, {channels, numClasses})
  log.info({run: runDir, checkpoint: o.checkpoint, epoch, cases: inputs.length, plan: source}, 'predicting')

  // 4. Every case: preprocess → sliding window (+ TTA, post-processing) → original grid.
  const cases: PredictedCase[] = []
  try {
    for (const input of inputs) {
      const caseStarted = Date.now()
      const pre = preprocessCase(input, config, hash, fingerprint)
      const shape = pre.header.shape as Vec3
      const image = interleave(pre.channels)
      pre.channels = []
      let bar: Progress | undefined
      const {labels} = await predictCase(
        model,
        {image, shape, channels},
        {
          patch,
          numClasses,
          overlappingRegions,
          eval: config.eval,
          mirrorAxes: ttaMirrorAxes(config),
          epoch: inferenceEpoch(epoch),
          onProgress: (done, total) => {
            bar ??= progress(log, `predict ${input.id}`, total, {quiet: o.quiet})
            bar.update(done)
          },
        },
      )
      bar?.stop()
      const original = toOriginalGrid(pre.header, labels)
      const output = writeOriginalGrid(pre.header, original, join(outDir, `${input.id}.nii.gz`))
      const spacing = affineSpacing(pre.header.original.affine) as Vec3
      const voxelMl = (spacing[0] * spacing[1] * spacing[2]) / 1000
      const counts = classVoxels(original, numClasses, overlappingRegions)
      const seconds = (Date.now() - caseStarted) / 1000
      cases.push({
        id: input.id,
        inputs: input.images,
        output,
        shape: pre.header.original.shape as Vec3,
        spacing,
        grid: shape,
        volumes: Object.fromEntries(classes.map((name, k) => [name, {voxels: counts[k], ml: counts[k] * voxelMl}])),
        seconds,
      })
      log.info({case: input.id, output, seconds}, 'predicted')
      // let signals and log output through between cases
      await new Promise((r) => setImmediate(r))
    }
  } finally {
    model.dispose()
  }

  const {tta, overlap, threshold} = config.eval
  const summary: PredictSummary = {
    run: runDir,
    checkpoint: o.checkpoint,
    checkpointEpoch: epoch,
    backend: backend.name,
    classes,
    plan: source,
    eval: {tta, mirrorAxes: ttaMirrorAxes(config), largestComponent: largestComponentFor(config.eval), overlap, threshold},
    outDir,
    cases,
    seconds: (Date.now() - started) / 1000,
  }
  writeFileAtomic(join(outDir, 'predict.json'), JSON.stringify(summary, null, 2) + '\n')
  return summary
}
