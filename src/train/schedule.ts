/**
 * Learning-rate schedules as pure functions of the global step (STYLE §15): linear warm-up from
 * lr/warmup to lr over the warm-up steps, then cosine annealing to 0 (BTCV, as the official
 * LinearWarmupCosineAnnealingLR, but per step rather than per epoch) or nnU-Net's poly decay
 * lr·(1 − t)^power (Lungs, BraTS), or a constant. The warm-up starts one step above 0 so that
 * the first step is not wasted.
 */
import type {TrainConfig} from '../config/schema.js'

export interface ScheduleArgs {
  baseLr: number
  name: TrainConfig['schedule']['name']
  warmupSteps: number
  totalSteps: number
  polyPower: number
}

export function learningRate(step: number, args: ScheduleArgs): number {
  const {baseLr, warmupSteps, totalSteps} = args
  if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps
  if (args.name === 'constant') return baseLr
  const span = Math.max(1, totalSteps - warmupSteps)
  const t = Math.min(1, (step - warmupSteps) / span)
  if (args.name === 'cosine') return 0.5 * baseLr * (1 + Math.cos(Math.PI * t))
  return baseLr * (1 - t) ** args.polyPower
}

/** lr(step) for a training config whose epochs are `stepsPerEpoch` steps (src/data/sampler.ts stepsPerEpoch). */
export function scheduleFor(train: TrainConfig, stepsPerEpoch: number): (step: number) => number {
  const args: ScheduleArgs = {
    baseLr: train.optimizer.lr,
    name: train.schedule.name,
    warmupSteps: train.schedule.warmupEpochs * stepsPerEpoch,
    totalSteps: train.epochs * stepsPerEpoch,
    polyPower: train.schedule.polyPower,
  }
  return (step) => learningRate(step, args)
}
