/**
 * Which axes test-time mirroring may use (nnU-Net's rule: the inference mirror axes are the
 * training augmentation's mirror axes). A model trained without mirrored anatomy has learnt that
 * the spleen is on the patient's left; averaging in its prediction of a mirrored volume paints
 * the spleen on the right, so mirroring along an axis the training never mirrored is not a
 * harmless average (a real abdominal CT: spleen Dice 0.88 without it, 0.00 with it).
 */
import type {ExperimentConfig, TrainConfig} from '../config/schema.js'
import {UserError} from '../errors.js'

export type MirrorAxis = 'x' | 'y' | 'z'

const ORDER: MirrorAxis[] = ['x', 'y', 'z']

/** The axes the training augmentation mirrored: `flipAxes` when `flip` > 0, else none. */
export function trainedMirrorAxes(augment: TrainConfig['augment']): MirrorAxis[] {
  return augment.flip > 0 ? ORDER.filter((a) => augment.flipAxes.includes(a)) : []
}

/**
 * The axes sliding-window inference mirrors for this config: none without `eval.tta`; with it,
 * `eval.ttaAxes` (default: every trained axis). Asking for an axis the training never mirrored
 * is a UserError naming it.
 */
export function ttaMirrorAxes(config: ExperimentConfig): MirrorAxis[] {
  if (!config.eval.tta) return []
  const trained = trainedMirrorAxes(config.train.augment)
  const requested = config.eval.ttaAxes ?? trained
  const untrained = requested.filter((a) => !trained.includes(a))
  if (untrained.length > 0)
    throw new UserError(
      `eval.ttaAxes asks to mirror along ${untrained.join(', ')}, which the model was never trained to mirror ` +
        `(train.augment.flip ${config.train.augment.flip}, flipAxes [${config.train.augment.flipAxes.join(', ')}]); ` +
        `mirroring it would swap left and right structures: drop ${untrained.join(', ')} from eval.ttaAxes, or set eval.tta=false`,
    )
  return ORDER.filter((a) => requested.includes(a))
}

/** A line for the log: what test-time mirroring does for this config, and why. */
export function describeMirroring(config: ExperimentConfig, axes: MirrorAxis[]): string | null {
  if (!config.eval.tta) return null
  if (axes.length === 0) return 'eval.tta: no mirroring, because the training never mirrored (train.augment.flip is 0 or flipAxes is empty)'
  return `eval.tta: mirroring along ${axes.join(', ')} (${2 ** axes.length} passes per window), the axes train.augment mirrored`
}
