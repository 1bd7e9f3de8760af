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
import {join} from 'node:path'
import {tf} from '../backend/tf.js'
import type {BackendRequest} from '../backend/names.js'
import {selectBackend, type BackendChoice} from '../backend/select.js'
import {configHash, configToYaml} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'
import {loadCase} from '../data/cache-files.js'
import {prepareData} from '../data/prepared-data.js'
import {augment} from '../data/augment.js'
import {patchesInStep, PatchSampler, samplerOptions, stepsPerEpoch, type TrainCase} from '../data/sampler.js'
import {fileSystemUserError, UserError} from '../errors.js'
import {dice, classMask} from '../evaluate/metrics.js'
import {ttaMirrorAxes} from '../evaluate/mirroring.js'
import {predictCase} from '../evaluate/predict.js'
import type {Logger} from '../log/logger.js'
import {progress} from '../log/progress.js'
import {EventFileWriter} from '../log/tensorboard.js'
import {SiplNet} from '../model/sipl.js'
import {siplLoss, targetsFromLabels} from '../model/losses.js'
import {tauAt} from '../model/smg.js'
import {qualitativePng} from '../report/figures.js'
import {finishManifest, readRunConfig, runPaths, startManifest, writeResolvedConfig, type RunPaths} from '../run/run-dir.js'
import {isDirectory, removeStaleTemporaries, writeFileAtomic} from '../util/atomic.js'
import {lockFolder} from '../util/lock.js'
import {Rng} from '../util/rng.js'
import {
  hasCheckpoint,
  loadOptimizer,
  loadWeights,
  readableCheckpoint,
  readLoopState,
  recoverCheckpoints,
  saveCheckpoint,
  type LoopState,
} from '../run/checkpoint.js'
import {appendMetrics, rewriteMetrics, writeTrainingCurves, type EpochMetrics} from './metrics-log.js'
import {clipByGlobalNorm, createOptimizer} from './optimizers.js'
import {scheduleFor} from './schedule.js'
import type {Vec3} from '../util/vec3.js'

export interface TrainOptions {
  config: ExperimentConfig
  runDir: string
  resume: boolean
  backend: BackendRequest
  log: Logger
  /** no progress bar */
  quiet?: boolean
  /** take over the run folder's lock from another host (--break-lock) */
  breakLock?: boolean
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
  return {id: loaded.id, image: loaded.image, label: loaded.label, shape: loaded.shape as Vec3, channels: loaded.channels}
}

/**
 * Labels that cannot teach anything: a training case whose label map is all background gets a
 * warning (it may be a true negative, or a wrong labels folder), a class no training case holds
 * gets one too, and a training split where every label map is empty is refused: it trains to
 * exit 0 and predicts background everywhere.
 */
function checkTrainingLabels(cases: TrainCase[], classes: string[], log: Logger): void {
  const present = new Array<boolean>(classes.length + 1).fill(false)
  const empty: string[] = []
  for (const c of cases) {
    let foreground = false
    for (const v of c.label)
      if (v > 0) {
        present[v] = true
        foreground = true
      }
    if (!foreground) {
      empty.push(c.id)
      log.warn({case: c.id}, `training case ${c.id} has an empty label map (background only)`)
    }
  }
  if (empty.length === cases.length)
    throw new UserError(
      `every training case has an empty label map (${empty.slice(0, 5).join(', ')}${empty.length > 5 ? ', …' : ''}); check data.root / data.labelsDir and the label files, then 'sipl preprocess --force'`,
    )
  classes.forEach((name, k) => {
    if (!present[k + 1])
      log.warn({class: name}, `class '${name}' (label ${k + 1}) appears in no training case; the network cannot learn it`)
  })
}

/**
 * Mean Dice over the foreground classes and cases, on the preprocessed grid (validation only),
 * and the first case's overlay figure (image | reference | prediction, as eval's figures).
 */
async function validate(
  model: SiplNet,
  cases: TrainCase[],
  config: ExperimentConfig,
  patch: Vec3,
  numClasses: number,
  epoch: number,
): Promise<{dice: number; perClass: number[]; overlay: Buffer}> {
  const overlapping = config.data.overlappingRegions
  const sums = new Array<number>(numClasses).fill(0)
  let overlay: Buffer | undefined
  for (const c of cases) {
    const {labels} = await predictCase(model, c, {
      patch,
      numClasses,
      overlappingRegions: overlapping,
      eval: config.eval,
      mirrorAxes: ttaMirrorAxes(config),
      epoch,
    })
    for (let k = 1; k <= numClasses; k++) sums[k - 1] += dice(classMask(labels, k, overlapping), classMask(c.label, k, overlapping))
    overlay ??= qualitativePng({image: c.image, channels: c.channels, shape: c.shape, reference: c.label, prediction: labels}).png
    await new Promise((r) => setImmediate(r))
  }
  const perClass = sums.map((s) => s / cases.length)
  return {dice: perClass.reduce((a, b) => a + b, 0) / numClasses, perClass, overlay: overlay!}
}

/** One writer per run folder: the run's lock is held from the first check to the last write. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const lock = await lockFolder(options.runDir, {what: 'run folder', log: options.log, breakLock: options.breakLock, outFlag: '--out'})
  try {
    return await trainLocked(options)
  } catch (error) {
    throw withCheckpointNote(error, runPaths(options.runDir))
  } finally {
    lock.release()
  }
}

/** A full disk or a file in the way, with what is safe: the last complete checkpoint and how to continue from it. */
function withCheckpointNote(error: unknown, paths: RunPaths): unknown {
  const user = fileSystemUserError(error)
  if (user === undefined) return error
  const last = readableCheckpoint(paths.checkpoint('last'))
  if (!hasCheckpoint(last)) return user
  const note = new UserError(
    `${user.message}; checkpoints/last (epoch ${readLoopState(last).epoch}) is intact: once that is fixed, continue with 'sipl train --out ${paths.dir} --resume'`,
  )
  note.cause = error
  return note
}

async function trainLocked(options: TrainOptions): Promise<TrainResult> {
  const started = Date.now()
  const {log} = options
  const paths: RunPaths = runPaths(options.runDir)

  // 1. The run directory. First what interrupted commands left: a checkpoint whose replacement a
  //    kill cut between its two renames is put back, and temporaries of dead processes go (the
  //    top level's folders are left: an eval's folder in the making belongs to the eval's lock).
  //    Then a fresh run refuses to overwrite a trained one; --resume needs `last` and the same
  //    config the run was started with.
  for (const restored of recoverCheckpoints(paths.checkpoints))
    log.warn(`recovered checkpoints/${restored}: a kill had interrupted its replacement`)
  const litter = [...removeStaleTemporaries(paths.dir, (t) => !isDirectory(t.path)), ...removeStaleTemporaries(paths.checkpoints)]
  if (litter.length > 0) log.info({removed: litter.length}, 'removed temporaries left by interrupted commands')
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
  const {cacheDir, plan, splits, classes, channels, patch} = await prepareData(config, log)
  // the plan travels with the run, so `sipl predict` preprocesses new scans as these were, without the cache
  writeFileAtomic(paths.plan, JSON.stringify(plan, null, 2) + '\n')
  if (splits.train.length === 0) throw new UserError(`${cacheDir}/splits.json has no training cases; fix data.split / data.splitFractions`)
  const trainCases = splits.train.map((id) => caseOf(loadCase(cacheDir, id)))
  const valCases = splits.val.map((id) => caseOf(loadCase(cacheDir, id)))
  const numClasses = classes.length
  log.info({cache: cacheDir, train: trainCases.length, val: valCases.length, classes: numClasses, patch: patch.join('x')}, 'data')
  checkTrainingLabels(trainCases, classes, log)

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
  const itersPerEpoch = stepsPerEpoch(config.train, trainCases.length)
  const lrAt = scheduleFor(config.train, itersPerEpoch)
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
    {
      parameters: model.parameterCount(),
      optimizer: optimizer.name,
      epochs: config.train.epochs,
      stepsPerEpoch: itersPerEpoch,
      volumeOrder: config.train.volumeOrder,
    },
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
  // TensorBoard: a new events file per invocation; a resume first drops what the interrupted
  // process logged after the checkpoint, as TensorBoard's restart marker does
  const board = new EventFileWriter(paths.dir)
  if (options.resume) board.sessionStart(state.step)
  board.text(state.step, 'config', '```yaml\n' + configToYaml(config) + '```\n')

  const sampler = new PatchSampler(trainCases, samplerOptions(config.train, patch), rng)
  const {epochs} = config.train
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
    // 6. One epoch: itersPerEpoch steps of batchSize augmented patches (a permutation epoch's
    //    last step takes the crops that are left).
    const epochStart = Date.now()
    sampler.startEpoch()
    const tau = tauAt(epoch, config.smg.tau)
    const sums = {loss: 0, seg: 0, aux: 0, gradNorm: 0}
    let lr = 0
    for (let iter = 0; iter < itersPerEpoch; iter++) {
      const stepStart = performance.now()
      lr = lrAt(state.step)
      const batchSize = patchesInStep(config.train, trainCases.length, iter)
      const x = new Float32Array(batchSize * voxels * channels)
      const y = new Int32Array(batchSize * voxels)
      for (let b = 0; b < batchSize; b++) {
        const p = augment(sampler.next(), config.train.augment, rng, patch, channels)
        x.set(p.image, b * voxels * channels)
        y.set(p.label, b * voxels)
      }
      let seg!: tf.Scalar
      let aux!: tf.Scalar
      let auxPerLayer!: tf.Scalar[]
      const {value, grads} = tf.tidy(() => {
        const input = tf.tensor5d(x, [batchSize, pz, py, px, channels]) // [B, D, H, W, C]
        const labels = tf.tensor4d(y, [batchSize, pz, py, px], 'int32') // [B, D, H, W]
        const targets = targetsFromLabels(labels, numClasses, config.data.overlappingRegions)
        return tf.variableGrads(() => {
          const out = model.apply(input, {training: true, epoch})
          const losses = siplLoss(out, targets, config.loss)
          seg = tf.keep(losses.seg)
          aux = tf.keep(losses.aux)
          auxPerLayer = losses.auxPerLayer.map((l) => tf.keep(l))
          return losses.total
        }, trainable)
      })
      const named = new Map<string, tf.Tensor>()
      for (const [tfName, g] of Object.entries(grads)) named.set(byTfName.get(tfName)!, g)
      const clipped = await clipByGlobalNorm(named, config.train.gradClip)
      optimizer.step(variables, clipped.grads, lr)
      // one read for all the logged losses (each read is a sync point on a GPU backend)
      const lossesT = tf.stack([value, seg, aux, ...auxPerLayer])
      const [loss, segValue, auxValue, ...auxLayerValues] = await lossesT.data()
      tf.dispose([lossesT, value, seg, aux, ...auxPerLayer, ...clipped.grads.values(), ...named.values()])
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
      board.scalars(state.step, {
        'loss/total': loss,
        'loss/seg': segValue,
        'loss/aux_sum': auxValue,
        ...Object.fromEntries(auxLayerValues.map((v, l) => [`loss/aux/layer_${l + 1}`, v])),
        'train/lr': lr,
        'train/tau': tau,
        'train/grad_norm': clipped.norm,
        'train/step_seconds': (performance.now() - stepStart) / 1000,
      })
      log.debug({epoch: epoch + 1, step: state.step, loss, lr, tau}, 'step')
      bar.update(state.step - firstStep, {epoch: epoch + 1, loss, lr, τ: tau})
      // a turn of the event loop: SIGTERM's handler (which releases the run's lock) and the lock's refresh timer run
      await new Promise((r) => setImmediate(r))
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
      board.scalars(state.step, {
        'val/mean_dice': val.dice,
        ...Object.fromEntries(classes.map((name, k) => [`val/dice/${name}`, val.perClass[k]])),
      })
      board.image(state.step, 'val/overlay', val.overlay)
      writeFileAtomic(join(paths.dir, 'validation-overlay.png'), val.overlay)
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
  board.close()
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
