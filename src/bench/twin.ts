/**
 * sipl's side of the PyTorch twin (src/bench/sipl_twin.py, issue 16): writes one "twin case" — the
 * config, the weights, a labelled batch — runs the same forward pass, losses and gradients here,
 * has the twin compute them independently, and compares every quantity:
 *
 *   DIR/config.json        the model / smg / loss sections, classes, channels, training flag, epoch
 *   DIR/model.safetensors  sipl's weights under their sipl names (DHWIO conv kernels)
 *   DIR/batch.safetensors  x [B, D, H, W, C] float32, labels [B, D, H, W] int32
 *   DIR/sipl.safetensors   what sipl computed: logits, aux.l, loss.*, keep.l, grad.<name>, and
 *                          pre.<name>, every LeakyReLU input (the twin takes sipl's branch for
 *                          values within rounding of the kink; src/bench/sipl_twin.py says why)
 *   DIR/twin.safetensors   what the twin computed, same keys (float64)
 *
 * The agreement measure per quantity is max |sipl − twin| / max |twin| (issue 16's ≤ 1e-4).
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {tf} from '../backend/tf.js'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {projectRoot} from '../project-root.js'
import {readSafetensors, writeSafetensors} from '../io/safetensors.js'
import {siplLoss, targetsFromLabels} from '../model/losses.js'
import type {SiplNet} from '../model/sipl.js'
import {buildNet} from '../model/summary.js'
import {Rng} from '../util/rng.js'

export const TWIN_SCRIPT = join(projectRoot(), 'src', 'bench', 'sipl_twin.py')

/** issue 16's bound on max |sipl − twin| / max |twin| for every compared quantity */
export const TWIN_AGREEMENT = 1e-4

export interface TwinCaseOptions {
  config: ExperimentConfig
  /** patches in the batch */
  batch: number
  training: boolean
  /** 0-based epoch whose τ applies (Eq. 11) */
  epoch: number
  /** seed of the labelled batch (the weights come from config.seed) */
  dataSeed: number
  /** false: leave out sipl's own results (sipl.safetensors, a traced forward and backward), which only the agreement check reads */
  results?: boolean
}

export interface TwinCase {
  dir: string
  numClasses: number
  parameters: number
}

/**
 * A labelled batch with structure for the filtering to act on: a few balls of each class at
 * random centres (later balls paint over earlier ones), intensities by class plus noise.
 */
export function labelledBatch(
  rng: Rng,
  batch: number,
  patch: [number, number, number],
  channels: number,
  numClasses: number,
): {x: Float32Array; labels: Int32Array} {
  const [px, py, pz] = patch
  const voxels = px * py * pz
  const labels = new Int32Array(batch * voxels)
  const x = new Float32Array(batch * voxels * channels)
  for (let b = 0; b < batch; b++) {
    for (let k = 1; k <= numClasses; k++) {
      for (let ball = 0; ball < 2; ball++) {
        const centre = [rng.next() * px, rng.next() * py, rng.next() * pz]
        const radius = (0.12 + 0.15 * rng.next()) * Math.min(px, py, pz)
        for (let z = 0; z < pz; z++)
          for (let y = 0; y < py; y++)
            for (let xx = 0; xx < px; xx++)
              if ((xx - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius * radius)
                labels[b * voxels + xx + px * (y + py * z)] = k
      }
    }
    for (let v = 0; v < voxels; v++)
      for (let c = 0; c < channels; c++)
        x[(b * voxels + v) * channels + c] = labels[b * voxels + v] / numClasses + 0.3 * c + 0.25 * rng.normal()
  }
  return {x, labels}
}

/** What the twin needs to build the same network: the config's model, smg and loss sections and the data's shape. */
function twinConfig(options: TwinCaseOptions, numClasses: number): unknown {
  const {config} = options
  return {
    model: config.model,
    smg: config.smg,
    loss: config.loss,
    optimizer: config.train.optimizer,
    numClasses,
    inChannels: config.data.channels,
    overlappingRegions: config.data.overlappingRegions,
    training: options.training,
    epoch: options.epoch,
  }
}

async function arrays(tensors: Map<string, tf.Tensor>): Promise<Map<string, {shape: number[]; data: Float32Array}>> {
  const out = new Map<string, {shape: number[]; data: Float32Array}>()
  for (const [name, t] of tensors) out.set(name, {shape: t.shape, data: Float32Array.from(await t.data())})
  return out
}

function batchOf(options: TwinCaseOptions): {x: Float32Array; labels: Int32Array} {
  const {config} = options
  return labelledBatch(new Rng(options.dataSeed), options.batch, config.preprocess.patch, config.data.channels, config.data.classes.length)
}

/** Builds the config's network, writes a twin case into `dir` and sipl's own results beside it (DIR/sipl.safetensors). */
export async function writeTwinCase(dir: string, options: TwinCaseOptions): Promise<TwinCase> {
  const {config} = options
  const numClasses = config.data.classes.length
  const [px, py, pz] = config.preprocess.patch
  mkdirSync(dir, {recursive: true})
  const net = buildNet(config)
  try {
    const {x, labels} = batchOf(options)
    const named = net.namedVariables()
    writeSafetensors(join(dir, 'model.safetensors'), await arrays(new Map([...named].map(([n, v]) => [n, v as tf.Tensor]))))
    writeSafetensors(
      join(dir, 'batch.safetensors'),
      new Map<string, {shape: number[]; data: Float32Array | Int32Array}>([
        ['x', {shape: [options.batch, pz, py, px, config.data.channels], data: x}],
        ['labels', {shape: [options.batch, pz, py, px], data: labels}],
      ]),
    )
    writeFileSync(join(dir, 'config.json'), JSON.stringify(twinConfig(options, numClasses), null, 2) + '\n')
    if (options.results !== false) await writeResults(net, options, join(dir, 'sipl.safetensors'))
    return {dir, numClasses, parameters: net.parameterCount()}
  } finally {
    net.dispose()
  }
}

/** One training-step computation as the loop does it: forward, Eq. 13, gradients of every trainable variable. */
async function writeResults(net: SiplNet, options: TwinCaseOptions, file: string): Promise<void> {
  const {config} = options
  const numClasses = config.data.classes.length
  const [px, py, pz] = config.preprocess.patch
  const {x, labels} = batchOf(options)
  const byTfName = new Map([...net.namedVariables()].map(([name, v]) => [v.name, name]))
  const results = new Map<string, tf.Tensor>()
  const {grads} = tf.tidy(() => {
    const input = tf.tensor5d(x, [options.batch, pz, py, px, config.data.channels]) // [B, D, H, W, C]
    const target = targetsFromLabels(tf.tensor4d(labels, [options.batch, pz, py, px], 'int32'), numClasses, config.data.overlappingRegions)
    return tf.variableGrads(() => {
      // LeakyReLU inputs are compared as 'pre.<name>'; the SMG's discrete choices as themselves
      const trace = (name: string, value: tf.Tensor) =>
        results.set(name.startsWith('smg.') ? name : `pre.${name}`, tf.keep(value.dtype === 'float32' ? value : tf.cast(value, 'float32')))
      const out = net.apply(input, {training: options.training, epoch: options.epoch, trace})
      const losses = siplLoss(out, target, config.loss)
      results.set('logits', tf.keep(out.logits))
      out.aux.forEach((m, l) => results.set(`aux.${l}`, tf.keep(m)))
      out.keep.forEach((k, l) => k && results.set(`keep.${l}`, tf.keep(k)))
      results.set('loss.total', tf.keep(tf.reshape(losses.total, [1])))
      results.set('loss.seg', tf.keep(tf.reshape(losses.seg, [1])))
      results.set('loss.aux', tf.keep(tf.reshape(losses.aux, [1])))
      losses.auxPerLayer.forEach((v, l) => results.set(`loss.aux.${l}`, tf.keep(tf.reshape(v, [1]))))
      return losses.total
    }, net.trainableVariables())
  })
  for (const [tfName, g] of Object.entries(grads)) results.set(`grad.${byTfName.get(tfName)}`, g)
  writeSafetensors(file, await arrays(results))
  tf.dispose([...results.values()])
}

/** A Python that imports torch: SIPL_PYTHON, Debian's /usr/bin/python3, or python3 on PATH; null if none does. */
export function findTorchPython(preferred?: string): string | null {
  const candidates = [preferred, process.env.SIPL_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c)
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch, numpy'], {encoding: 'utf8'})
    if (probe.status === 0) return python
  }
  return null
}

export interface TwinReport {
  dir: string
  tau: number | null
  /** smallest top-1 − top-2 gap of the cluster similarities (how far the hard assignment is from a tie) */
  assignmentMargin: number | null
  classMargin: number | null
  /** per SMG layer [clusters kept, clusters] over the batch, null where no filtering ran */
  kept: ([number, number] | null)[]
  /** LeakyReLU inputs on the other side of the kink in the twin, which took sipl's side, and the largest such |z| relative to its layer's largest */
  adoptedBranches: number
  adoptedMax: number
  /** argmax choices (cluster of a voxel, class of the previous pseudo mask) within 1e-3 of a tie where the twin took sipl's choice */
  adoptedChoices: number
  /** the conditioning probe's noise on every conv output, relative to its largest value */
  rounding: number
  /** per quantity: how far the float64 twin itself moves under that noise, relative to the quantity's scale */
  spread: Record<string, number>
}

/** Runs the twin on the cases (one Python process for all of them); it writes DIR/twin.safetensors. */
export function runTwinCheck(python: string, dirs: string[], dtype: 'float64' | 'float32' = 'float64'): TwinReport[] {
  const result = spawnSync(
    python,
    [TWIN_SCRIPT, 'check', '--dtype', dtype, '--sipl', 'sipl.safetensors', '--out', 'twin.safetensors', ...dirs],
    {
      encoding: 'utf8',
      env: {...process.env, OMP_NUM_THREADS: '1'},
      maxBuffer: 64 << 20,
    },
  )
  if (result.status !== 0) {
    const why = result.error?.message ?? result.stderr.trim().split('\n').slice(-3).join(' | ')
    throw new UserError(`the PyTorch twin failed (${python} ${TWIN_SCRIPT}): ${why}`)
  }
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as TwinReport)
}

export interface TwinComparison {
  /** key → max |sipl − twin| / max |twin| (the absolute difference where the twin's values are all 0) */
  errors: Map<string, number>
  /** key → the bound it must meet: TWIN_AGREEMENT, or the twin's own spread under rounding-level noise where that is larger */
  allowed: Map<string, number>
  /** the key with the largest error ÷ allowed */
  worst: {key: string; error: number; allowed: number}
  /** keys one side has and the other lacks */
  missing: string[]
}

/**
 * Compares DIR/`siplFile` with DIR/twin.safetensors key by key. A gradient that is zero in exact
 * arithmetic (a conv bias right before an instance norm, whose mean subtraction cancels it; the
 * float64 twin has it below 1e-9 of the largest gradient) is rounding noise in float32: it is
 * compared on the scale of the largest gradient. Each key must agree to TWIN_AGREEMENT, or — where
 * the twin's report shows the quantity itself moving more than that when every convolution's
 * output is perturbed at the level of sipl's kernel rounding — to that spread.
 */
export function compareTwin(dir: string, report?: TwinReport, siplFile = 'sipl.safetensors'): TwinComparison {
  const file = join(dir, 'twin.safetensors')
  if (!existsSync(file)) throw new UserError(`${dir}: no twin.safetensors; run the twin first`)
  const ours = readSafetensors(join(dir, siplFile)).tensors
  const theirs = readSafetensors(file).tensors
  let gradientScale = 0
  for (const [key, e] of theirs) if (key.startsWith('grad.')) for (const v of e.data) gradientScale = Math.max(gradientScale, Math.abs(v))
  const missing = [...new Set([...ours.keys(), ...theirs.keys()])].filter((k) => !ours.has(k) || !theirs.has(k)).sort()
  const errors = new Map<string, number>()
  const allowed = new Map<string, number>()
  let worst = {key: '', error: 0, allowed: TWIN_AGREEMENT}
  for (const [key, a] of ours) {
    const e = theirs.get(key)
    if (!e) continue
    const bound = Math.max(TWIN_AGREEMENT, report?.spread[key] ?? 0)
    allowed.set(key, bound)
    if (a.data.length !== e.data.length) {
      errors.set(key, Infinity)
      worst = {key, error: Infinity, allowed: bound}
      continue
    }
    let scale = 0
    let diff = 0
    for (let i = 0; i < a.data.length; i++) {
      scale = Math.max(scale, Math.abs(e.data[i]))
      diff = Math.max(diff, Math.abs(a.data[i] - e.data[i]))
    }
    if (key.startsWith('grad.') && scale < 1e-9 * gradientScale) scale = gradientScale
    // NaN anywhere must fail, not compare as 0
    const error = Number.isNaN(diff) ? Infinity : scale > 0 ? diff / scale : diff
    errors.set(key, error)
    if (error / bound > worst.error / worst.allowed || worst.key === '') worst = {key, error, allowed: bound}
  }
  return {errors, allowed, worst, missing}
}
