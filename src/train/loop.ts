/**
 * `sipl train`: one readable function, numbered steps (STYLE §15).
 *
 * Exact resume: `last` is written at the end of every epoch with the weights, the optimiser
 * state and the loop state (epochs done, global step, sampling Rng state). Everything an epoch
 * does is a function of that state: the patch queue is emptied at each epoch start, the lr is
 * a pure function of the step, τ a pure function of the epoch, and the cpu backend is
 * deterministic. So a run killed at any point and resumed with --resume ends with the same
 * weights as an uninterrupted run (test/train/resume.integration.test.ts checks it bit for bit).
 */
import {tf} from '../backend/tf.js'
import {selectBackend, type BackendChoice, type BackendRequest} from '../backend/select.js'
import {configHash} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'
import {ensurePreprocessed, loadCase, loadPlan, loadSplits} from '../data/cache.js'
import {augment} from '../data/augment.js'
import {PatchSampler, type TrainCase, type Triple} from '../data/sampler.js'
import {UserError} from '../errors.js'
import {dice, classMask} from '../evaluate/metrics.js'
import {predictCase} from '../evaluate/predict.js'
import type {Logger} from '../log/logger.js'
import {progress} from '../log/progress.js'
import {SiplNet} from '../model/sipl.js'
import {siplLoss, targetsFromLabels, tauAt} from '../model/losses.js'
import {finishManifest, readRunConfig, runPaths, startManifest, writeResolvedConfig, type RunPaths} from '../run/run-dir.js'
import {Rng} from '../util/rng.js'
import {hasCheckpoint, loadOptimizer, loadWeights, readLoopState, saveCheckpoint, type LoopState} from './checkpoint.js'
import {appendMetrics, rewriteMetrics, writeTrainingCurves, type EpochMetrics} from './metrics-log.js'
import {clipByGlobalNorm, createOptimizer} from './optimizers.js'
import {scheduleFor} from './schedule.js'

export interface TrainOptions {
  config: ExperimentConfig
  runDir: string
  resume: boolean
  backend: BackendRequest
  log: Logger
  /** no progress bar */
  quiet?: boolean
}

export interface TrainResult {
  runDir: string
  backend: {name: string; reason: string}
  epochs: number
  steps: number
  resumedFrom: number | null
  finalLoss: number | null
  bestDice: number | null
  bestEpoch: number | null
  valSource: 'val' | null
  parameters: number
  seconds: number
}

function caseOf(loaded: {id: string; image: Float32Array; label?: Uint8Array; shape: number[]; channels: number}): TrainCase {
  if (!loaded.label) throw new UserError(`preprocessed case ${loaded.id} has no label; training cases need labels (check splits.json)`)
  return {id: loaded.id, image: loaded.image, label: loaded.label, shape: loaded.shape as Triple, channels: loaded.channels}
}

/** Mean Dice over the foreground classes and cases, on the preprocessed grid (validation only). */
async function validate(
  model: SiplNet,
  cases: TrainCase[],
  config: ExperimentConfig,
  patch: Triple,
  numClasses: number,
  epoch: number,
): Promise<{dice: number; perClass: number[]}> {
  const overlapping = config.data.overlappingRegions
  const sums = new Array<number>(numClasses).fill(0)
  for (const c of cases) {
    const {labels} = await predictCase(model, c, {patch, numClasses, overlappingRegions: overlapping, eval: config.eval, epoch})
    for (let k = 1; k <= numClasses; k++) sums[k - 1] += dice(classMask(labels, k, overlapping), classMask(c.label, k, overlapping))
  }
  const perClass = sums.map((s) => s / cases.length)
  return {dice: perClass.reduce((a, b) => a + b, 0) / numClasses, perClass}
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const started = Date.now()
  const {log} = options
  const paths: RunPaths = runPaths(options.runDir)

  // 1. The run directory: a fresh run refuses to overwrite a trained one; --resume needs `last`
  //    and the same config the run was started with.
  let config = options.config
  const last = paths.checkpoint('last')
  if (options.resume) {
    if (!hasCheckpoint(last)) throw new UserError(`${paths.dir}: nothing to resume (no checkpoints/last); start it without --resume`)
    const saved = readRunConfig(paths.dir)
    if (configHash(saved) !== configHash(config))
      throw new UserError(
        `${paths.dir}: --resume with a config that differs from the run's config.yaml; resume with -c ${paths.config} (and no --set), or train into a new --out`,
      )
    config = saved
  } else if (hasCheckpoint(last)) {
    throw new UserError(
      `${paths.dir} already holds a trained run; add --resume to continue it, or choose another --out (or delete the folder)`,
    )
  }
  writeResolvedConfig(paths, config)

  // 2. Backend, recorded with its reason.
  const choice: BackendChoice = await selectBackend(options.backend, log)
  const backend = {name: choice.name, reason: choice.reason}
  const manifest = startManifest(paths, {command: options.resume ? 'train --resume' : 'train', config, backend})

  // 3. Data: the preprocessed cache (generated/preprocessed on first use) and the split.
  const cacheDir = await ensurePreprocessed(config, log)
  const plan = loadPlan(cacheDir)
  const splits = loadSplits(config, cacheDir)
  if (splits.train.length === 0) throw new UserError(`${cacheDir}/splits.json has no training cases; fix data.split / data.splitFractions`)
  const trainCases = splits.train.map((id) => caseOf(loadCase(cacheDir, id)))
  const valCases = splits.val.map((id) => caseOf(loadCase(cacheDir, id)))
  const classes = plan.classes ?? config.data.classes
  const numClasses = classes.length
  const channels = plan.channels ?? config.data.channels
  const patch = (plan.patch ?? config.preprocess.patch) as Triple
  log.info({cache: cacheDir, train: trainCases.length, val: valCases.length, classes: numClasses, patch: patch.join('x')}, 'data')

  // 4. Model, optimiser, schedule. The model's initialisation uses the seed's first fork and
  //    sampling/augmentation the second, so the two streams never overlap.
  const model = new SiplNet({
    model: config.model,
    smg: config.smg,
    inChannels: channels,
    numClasses,
    seed: config.seed,
    overlappingRegions: config.data.overlappingRegions,
  })
  const variables = model.namedVariables()
  const optimizer = createOptimizer(config.train.optimizer)
  const lrAt = scheduleFor(config.train)
  const root = new Rng(config.seed)
  root.fork()
  let rng = root.fork()
  let state: LoopState = {
    epoch: 0,
    step: 0,
    rng: rng.getState(),
    tau: null,
    lr: lrAt(0),
    bestDice: null,
    bestEpoch: null,
    configHash: configHash(config),
    optimizer: {name: optimizer.name, iterations: 0},
    valSource: valCases.length > 0 ? 'val' : null,
    savedAt: new Date().toISOString(),
  }
  log.info(
    {parameters: model.parameterCount(), optimizer: optimizer.name, epochs: config.train.epochs, itersPerEpoch: config.train.itersPerEpoch},
    'model',
  )

  // 5. Resume: weights, optimiser state, loop state (incl. the Rng), metrics truncated to it.
  let resumedFrom: number | null = null
  if (options.resume) {
    state = readLoopState(last)
    loadWeights(last, variables)
    loadOptimizer(last, optimizer, state.optimizer.iterations)
    rng = new Rng(state.rng)
    resumedFrom = state.epoch
    rewriteMetrics(paths, state.epoch)
    log.info({epoch: state.epoch, step: state.step}, 'resumed from checkpoints/last')
  } else {
    rewriteMetrics(paths, 0)
  }

  const sampler = new PatchSampler(
    trainCases,
    {patch, posNegRatio: config.train.posNegRatio, samplesPerVolume: config.train.samplesPerVolume},
    rng,
  )
  const {epochs, itersPerEpoch, batchSize} = config.train
  const [px, py, pz] = patch
  const voxels = px * py * pz
  // the bar counts this invocation's steps, so that its ETA is right after a resume too
  const firstStep = state.step
  const bar = progress(log, 'train', epochs * itersPerEpoch - firstStep, {quiet: options.quiet})
  // tfjs names variables globally; variableGrads keys its gradients by those names
  const byTfName = new Map([...variables].map(([name, v]) => [v.name, name]))
  const trainable = [...variables.values()].filter((v) => v.trainable)
  let finalLoss: number | null = null

  for (let epoch = state.epoch; epoch < epochs; epoch++) {
    // 6. One epoch: itersPerEpoch steps of batchSize augmented patches.
    const epochStart = Date.now()
    sampler.startEpoch()
    const tau = tauAt(epoch, config.smg.tau)
    const sums = {loss: 0, seg: 0, aux: 0, gradNorm: 0}
    let lr = 0
    for (let iter = 0; iter < itersPerEpoch; iter++) {
      lr = lrAt(state.step)
      const x = new Float32Array(batchSize * voxels * channels)
      const y = new Int32Array(batchSize * voxels)
      for (let b = 0; b < batchSize; b++) {
        const p = augment(sampler.next(), config.train.augment, rng, patch, channels)
        x.set(p.image, b * voxels * channels)
        y.set(p.label, b * voxels)
      }
      let seg!: tf.Scalar
      let aux!: tf.Scalar
      const {value, grads} = tf.tidy(() => {
        const input = tf.tensor5d(x, [batchSize, pz, py, px, channels]) // [B, D, H, W, C]
        const labels = tf.tensor4d(y, [batchSize, pz, py, px], 'int32') // [B, D, H, W]
        const targets = targetsFromLabels(labels, numClasses, config.data.overlappingRegions)
        return tf.variableGrads(() => {
          const out = model.apply(input, {training: true, epoch})
          const losses = siplLoss(out, targets, config.loss)
          seg = tf.keep(losses.seg)
          aux = tf.keep(losses.aux)
          return losses.total
        }, trainable)
      })
      const named = new Map<string, tf.Tensor>()
      for (const [tfName, g] of Object.entries(grads)) named.set(byTfName.get(tfName)!, g)
      const clipped = await clipByGlobalNorm(named, config.train.gradClip)
      optimizer.step(variables, clipped.grads, lr)
      const loss = (await value.data())[0]
      const segValue = (await seg.data())[0]
      const auxValue = (await aux.data())[0]
      tf.dispose([value, seg, aux, ...clipped.grads.values(), ...named.values()])
      if (!Number.isFinite(loss))
        throw new UserError(
          `training diverged: loss ${loss} at epoch ${epoch + 1} step ${state.step + 1} (lower train.optimizer.lr or train.gradClip, and train into a new --out)`,
        )
      sums.loss += loss
      sums.seg += segValue
      sums.aux += auxValue
      sums.gradNorm += clipped.norm
      state.step++
      finalLoss = loss
      log.debug({epoch: epoch + 1, step: state.step, loss, lr, tau}, 'step')
      bar.update(state.step - firstStep, {epoch: epoch + 1, loss, lr, τ: tau})
    }

    // 7. End of epoch: validation every valEvery epochs (and after the last), metrics, checkpoints.
    const done = epoch + 1
    const row: EpochMetrics = {
      epoch: done,
      step: state.step,
      lr,
      tau,
      loss: sums.loss / itersPerEpoch,
      segLoss: sums.seg / itersPerEpoch,
      auxLoss: sums.aux / itersPerEpoch,
      gradNorm: sums.gradNorm / itersPerEpoch,
      valDice: null,
      seconds: (Date.now() - epochStart) / 1000,
    }
    const validateNow = valCases.length > 0 && config.train.valEvery > 0 && (done % config.train.valEvery === 0 || done === epochs)
    let improved = false
    if (validateNow) {
      const val = await validate(model, valCases, config, patch, numClasses, epoch)
      row.valDice = val.dice
      row.valPerClass = Object.fromEntries(classes.map((name, k) => [name, val.perClass[k]]))
      improved = state.bestDice === null || val.dice > state.bestDice
      if (improved) {
        state.bestDice = val.dice
        state.bestEpoch = done
      }
    }
    row.seconds = (Date.now() - epochStart) / 1000
    appendMetrics(paths, row)
    writeTrainingCurves(paths)
    state = {
      ...state,
      epoch: done,
      rng: rng.getState(),
      tau,
      lr,
      optimizer: {name: optimizer.name, iterations: optimizer.iterations},
      savedAt: new Date().toISOString(),
    }
    const content = {weights: variables, optimizer, state}
    await saveCheckpoint(last, content)
    // without a val split there is nothing to select on: best is the final epoch (nnU-Net's default too)
    if (improved || (valCases.length === 0 && done === epochs)) await saveCheckpoint(paths.checkpoint('best'), content)
    if (config.train.checkpointEvery > 0 && done % config.train.checkpointEvery === 0)
      await saveCheckpoint(paths.checkpoint(`epoch-${done}`), content)
    log.info({epoch: done, loss: row.loss, lr, tau, valDice: row.valDice ?? undefined, seconds: row.seconds}, 'epoch')
  }
  bar.stop()
  // a run resumed after its last epoch still needs a best checkpoint
  if (!hasCheckpoint(paths.checkpoint('best')) && hasCheckpoint(last)) {
    loadWeights(last, variables)
    await saveCheckpoint(paths.checkpoint('best'), {weights: variables, optimizer, state})
  }
  const parameters = model.parameterCount()
  model.dispose()
  optimizer.dispose()
  const result: TrainResult = {
    runDir: paths.dir,
    backend,
    epochs,
    steps: state.step,
    resumedFrom,
    finalLoss,
    bestDice: state.bestDice,
    bestEpoch: state.bestEpoch,
    valSource: valCases.length > 0 ? 'val' : null,
    parameters,
    seconds: (Date.now() - started) / 1000,
  }
  finishManifest(paths, manifest, {result})
  return result
}
