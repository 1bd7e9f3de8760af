/**
 * Everything that determines a score, recorded in summary.json (`settings`) so that a later
 * `--compare` can tell whether two methods were scored alike, and refuse to pair them when not
 * (a paired test between a run scored with mirroring and the largest component and one scored
 * raw measures the post-processing, not the methods).
 *
 * Two halves: how the masks were scored (protocol, grid, surface tolerance: set by the eval
 * command for every method it scores) and how a run's masks were predicted (checkpoint, test-time
 * mirroring, largest component, filtering at inference, threshold, window overlap and weighting:
 * set when the run was evaluated). Masks from another tool have no prediction half (null).
 */
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {largestComponentFor, type Protocol} from './evaluate.js'
import {ttaMirrorAxes, type MirrorAxis} from './mirroring.js'

export interface PredictionSettings {
  /** checkpoint folder name: best, last, epoch-N */
  checkpoint: string
  /** epochs the checkpoint had trained when it was scored */
  checkpointEpoch: number
  /** the checkpoint's state.json savedAt: a checkpoint saved again since (more training) makes the scores stale */
  checkpointSavedAt: string
  /** test-time mirror axes actually used ([] = none) */
  ttaAxes: MirrorAxis[]
  largestComponent: boolean
  filterAtInference: boolean
  threshold: number
  overlap: number
  sigmaScale: number
}

export interface ScoringSettings {
  protocol: Protocol
  /** 'preprocessed': the cache's grid against the cached labels; 'labels': the grid of the --labels masks */
  grid: 'preprocessed' | 'labels'
  surfaceTolerance: number
  prediction: PredictionSettings | null
}

export function predictionSettings(
  config: ExperimentConfig,
  checkpoint: {name: string; epoch: number; savedAt: string},
): PredictionSettings {
  return {
    checkpoint: checkpoint.name,
    checkpointEpoch: checkpoint.epoch,
    checkpointSavedAt: checkpoint.savedAt,
    ttaAxes: ttaMirrorAxes(config),
    largestComponent: largestComponentFor(config.eval),
    filterAtInference: config.smg.filterAtInference,
    threshold: config.eval.threshold,
    overlap: config.eval.overlap,
    sigmaScale: config.eval.sigmaScale,
  }
}

export interface SettingDifference {
  /** the setting's name as a user knows it (a config key or flag) */
  name: string
  ours: string
  theirs: string
}

const show = (v: unknown) => (Array.isArray(v) ? `[${v.join(', ')}]` : String(v))

const PREDICTION_KEYS: [keyof PredictionSettings, string][] = [
  ['checkpoint', '--checkpoint'],
  ['ttaAxes', 'test-time mirror axes (eval.tta, eval.ttaAxes)'],
  ['largestComponent', 'eval.largestComponent'],
  ['filterAtInference', 'smg.filterAtInference'],
  ['threshold', 'eval.threshold'],
  ['overlap', 'eval.overlap'],
  ['sigmaScale', 'eval.sigmaScale'],
]

export function predictionDifferences(ours: PredictionSettings, theirs: PredictionSettings): SettingDifference[] {
  return PREDICTION_KEYS.filter(([key]) => show(ours[key]) !== show(theirs[key])).map(([key, name]) => ({
    name,
    ours: show(ours[key]),
    theirs: show(theirs[key]),
  }))
}

/**
 * Differences of the scoring half (protocol, grid) and, when both have one, of the prediction
 * half. The surface tolerance is recorded but not compared: the paired tests compare Dice.
 */
export function settingDifferences(ours: ScoringSettings, theirs: ScoringSettings): SettingDifference[] {
  const out: SettingDifference[] = []
  if (ours.protocol !== theirs.protocol) out.push({name: '--protocol', ours: ours.protocol, theirs: theirs.protocol})
  if (ours.grid !== theirs.grid) out.push({name: 'grid (--labels)', ours: ours.grid, theirs: theirs.grid})
  if (ours.prediction && theirs.prediction) out.push(...predictionDifferences(ours.prediction, theirs.prediction))
  return out
}

/** `sipl eval --run DIR …` that predicts and scores a run the way `settings` says. */
export function rescoreCommand(runDir: string, settings: ScoringSettings): string {
  const parts = ['sipl eval --run', runDir, '--protocol', settings.protocol]
  const p = settings.prediction
  if (p) {
    parts.push('--checkpoint', p.checkpoint)
    parts.push(p.ttaAxes.length === 0 ? '--set eval.tta=false' : `--set eval.tta=true --set 'eval.ttaAxes=[${p.ttaAxes.join(', ')}]'`)
    if (!(settings.protocol === 'sipl' && p.largestComponent)) parts.push(`--set eval.largestComponent=${p.largestComponent}`)
    parts.push(`--set smg.filterAtInference=${p.filterAtInference}`)
    parts.push(`--set eval.threshold=${p.threshold} --set eval.overlap=${p.overlap} --set eval.sigmaScale=${p.sigmaScale}`)
  }
  return parts.join(' ')
}

/**
 * The UserError for a compared method scored differently: names the first differing setting
 * (and how many others differ) and the command that re-scores it like the evaluated method.
 */
export function differentSettingsError(
  what: string,
  oursName: string,
  differences: SettingDifference[],
  rescore: string | null,
): UserError {
  const [first, ...rest] = differences
  const more = rest.length > 0 ? ` (and ${rest.map((d) => d.name).join(', ')})` : ''
  const fix = rescore ? `; re-score it like ${oursName}: ${rescore}` : ''
  return new UserError(
    `${what} was scored with ${first.name} = ${first.theirs}, ${oursName} with ${first.ours}${more}; paired methods must be scored alike${fix}`,
  )
}
