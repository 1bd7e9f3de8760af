/**
 * Checkpoints (DESIGN §8): one folder per checkpoint, written whole under a temporary name and
 * renamed (writeDirAtomic), so a SIGKILL leaves the previous complete `last`. Replacing a folder
 * takes two renames; a kill between them leaves no `last` but two complete hidden copies, and
 * recoverCheckpoints (train, under the run's lock) puts the newer back.
 *
 *   model.safetensors      the network's variables under their stable names (DHWIO conv kernels)
 *   optimizer.safetensors  optimiser state: '<variable>.exp_avg', '<variable>.exp_avg_sq' (AdamW)
 *                          or '<variable>.momentum_buffer' (SGD), PyTorch's state names
 *   state.json             loop state: epochs done, global step, the sampling Rng state, τ, lr,
 *                          best validation Dice, the config hash, optimiser name and step count
 */
import {existsSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {basename, join} from 'node:path'
import {z} from 'zod'
import {tf} from '../backend/tf.js'
import {UserError} from '../errors.js'
import {readSafetensors, writeSafetensors} from '../io/safetensors.js'
import {listTemporaries, recoverableCopy, recoverDir, writeDirAtomic} from '../util/atomic.js'
import type {RngState} from '../util/rng.js'

/** What a checkpoint needs of an optimizer (src/train/optimizers.ts implements it). */
export interface CheckpointedOptimizer {
  readonly name: string
  /** completed steps */
  readonly iterations: number
  /** named state tensors (moments, momentum buffers) */
  stateTensors(): Map<string, tf.Tensor>
  /** restores state written by stateTensors() */
  loadState(tensors: Map<string, tf.Tensor>, iterations: number): void
}

export interface LoopState {
  /** epochs completed; training resumes at this epoch index */
  epoch: number
  /** optimiser steps taken (the schedule's input) */
  step: number
  rng: RngState
  /** τ of the last completed epoch (Eq. 11), for the record; a resumed run recomputes it from the epoch */
  tau: number | null
  lr: number
  bestDice: number | null
  bestEpoch: number | null
  configHash: string
  optimizer: {name: string; iterations: number}
  /** where the validation Dice came from: the val split, or null when there was none */
  valSource: 'val' | null
  savedAt: string
}

async function tensorsToArrays(tensors: Map<string, tf.Tensor>): Promise<Map<string, {shape: number[]; data: Float32Array}>> {
  const out = new Map<string, {shape: number[]; data: Float32Array}>()
  for (const [name, t] of tensors) out.set(name, {shape: t.shape, data: (await t.data()) as Float32Array})
  return out
}

export interface CheckpointContent {
  weights: Map<string, tf.Variable>
  optimizer: CheckpointedOptimizer
  state: LoopState
}

/** Reads every tensor first (async), then writes the folder in one synchronous, atomic step. */
export async function saveCheckpoint(dir: string, content: CheckpointContent): Promise<void> {
  const weights = await tensorsToArrays(content.weights)
  const optimizerState = await tensorsToArrays(content.optimizer.stateTensors())
  writeDirAtomic(dir, (tmp) => {
    writeSafetensors(join(tmp, 'model.safetensors'), weights, {
      format: 'sipl',
      layout: 'conv kernels DHWIO [kd, kh, kw, in, out]',
      epoch: String(content.state.epoch),
    })
    writeSafetensors(join(tmp, 'optimizer.safetensors'), optimizerState, {
      optimizer: content.optimizer.name,
      iterations: String(content.optimizer.iterations),
    })
    // state.json goes last: its presence marks a complete checkpoint even without the rename
    writeJson(join(tmp, 'state.json'), content.state)
  })
}

function writeJson(path: string, value: unknown): void {
  // inside writeDirAtomic the folder itself is the atomic unit, so a plain write is enough
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n')
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, 'state.json')) && existsSync(join(dir, 'model.safetensors'))
}

const count = z.number().int().nonnegative()
/**
 * state.json as saveCheckpoint writes it. Resume trusts these numbers (the epoch to start at, the
 * Rng words, the optimiser's step count), so a damaged or hand-edited file ("epoch": "two") is
 * refused rather than half-used; keys added by later versions pass through.
 */
export const loopStateSchema: z.ZodType<LoopState> = z
  .object({
    epoch: count,
    step: count,
    rng: z.tuple([count, count, count, count]),
    tau: z.number().nullable(),
    lr: z.number(),
    bestDice: z.number().nullable(),
    bestEpoch: count.nullable(),
    configHash: z.string(),
    optimizer: z.object({name: z.string(), iterations: count}),
    valSource: z.literal('val').nullable(),
    savedAt: z.string(),
  })
  .passthrough()

/** All three files, and a valid state.json: what a kill can interrupt is then not this copy. */
export function isCompleteCheckpoint(dir: string): boolean {
  if (!hasCheckpoint(dir) || !existsSync(join(dir, 'optimizer.safetensors'))) return false
  try {
    return loopStateSchema.safeParse(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'))).success
  } catch {
    return false
  }
}

/**
 * The folder to read checkpoint `dir` from: itself, or, while a kill between the two renames of
 * its replacement has left it missing, the complete hidden copy that recoverCheckpoints would
 * restore (readers such as eval do not hold the run's lock, so they read it where it is).
 */
export function readableCheckpoint(dir: string): string {
  return recoverableCopy(dir, isCompleteCheckpoint) ?? dir
}

/**
 * Puts back every checkpoint (last, best, epoch-N) whose replacement a kill interrupted between
 * its two renames, from the newer complete copy. Call it holding the run's lock. Returns
 * 'name ← copy' for each one restored.
 */
export function recoverCheckpoints(checkpointsDir: string): string[] {
  if (!existsSync(checkpointsDir)) return []
  const present = new Set(readdirSync(checkpointsDir))
  const missing = new Set(listTemporaries(checkpointsDir).map((t) => t.base))
  const restored: string[] = []
  for (const name of missing) {
    if (present.has(name)) continue
    const copy = recoverDir(join(checkpointsDir, name), isCompleteCheckpoint)
    if (copy !== undefined) restored.push(`${name} ← ${basename(copy)}`)
  }
  return restored
}

export function readLoopState(dir: string): LoopState {
  const file = join(dir, 'state.json')
  if (!existsSync(file)) throw new UserError(`${dir}: no checkpoint here (state.json missing); train first, or drop --resume`)
  const damaged = (why: string) =>
    new UserError(
      `${file}: not a valid checkpoint state (${why}); the checkpoint is damaged or was edited: restore it from a copy (checkpoints/epoch-N holds earlier ones) or train into a new --out`,
    )
  let json: unknown
  try {
    json = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw damaged((error as Error).message.split('\n')[0])
  }
  const result = loopStateSchema.safeParse(json)
  if (!result.success) {
    const issue = result.error.issues[0]
    throw damaged(`${issue.path.join('.') || 'top level'}: ${issue.message}`)
  }
  return result.data
}

/** Copies the checkpoint's weights into the model's variables; names and shapes must match. */
export function loadWeights(dir: string, variables: Map<string, tf.Variable>): void {
  const {tensors} = readSafetensors(join(dir, 'model.safetensors'))
  const missing = [...variables.keys()].filter((n) => !tensors.has(n))
  const extra = [...tensors.keys()].filter((n) => !variables.has(n))
  if (missing.length > 0 || extra.length > 0)
    throw new UserError(
      `${dir}/model.safetensors does not fit this model (missing ${missing.length}: ${missing.slice(0, 3).join(', ')}; unexpected ${extra.length}: ${extra.slice(0, 3).join(', ')}); use the run's own config.yaml`,
    )
  for (const [name, v] of variables) {
    const t = tensors.get(name)!
    if (t.shape.join(',') !== v.shape.join(','))
      throw new UserError(
        `${dir}/model.safetensors: ${name} has shape [${t.shape}] but the model needs [${v.shape}]; use the run's own config.yaml`,
      )
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, t.shape)))
  }
}

export function loadOptimizer(dir: string, optimizer: CheckpointedOptimizer, iterations: number): void {
  const {tensors, metadata} = readSafetensors(join(dir, 'optimizer.safetensors'))
  if (metadata.optimizer && metadata.optimizer !== optimizer.name)
    throw new UserError(
      `${dir}: the checkpoint was trained with ${metadata.optimizer} but the config says ${optimizer.name}; resume with the run's own config`,
    )
  const state = new Map<string, tf.Tensor>()
  for (const [name, t] of tensors) state.set(name, tf.tensor(t.data as Float32Array, t.shape))
  optimizer.loadState(state, iterations)
  for (const t of state.values()) t.dispose()
}
