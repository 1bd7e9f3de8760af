/**
 * TensorBoard's HParams tab for a sweep or an ablation: `tensorboard --logdir <dir>` shows one
 * row per trial with its swept values (or its ablation variant) and its metrics. As TensorBoard's
 * hparams plugin reads them (plugins/hparams/backend_context.py):
 *
 *   <dir>/events.out.tfevents.<created>.sipl-hparams         the experiment: hparams, metrics
 *   <dir>/trials/<name>/events.out.tfevents.<created>.sipl-session-start
 *                                                            the session: this trial's values
 *   <dir>/trials/<name>/events.out.tfevents.<ended>.<state>.sipl-session-end
 *                                                            its test scores, then its status
 *
 * A session is the run folder that holds a session start; its metrics are the last values of
 * the metric tags in that folder, so the trial's own training events (val/mean_dice, loss/total)
 * are metrics too. Each file is written once, whole, and never grows: TensorBoard keeps the first
 * metadata it reads for a tag, and a reloading TensorBoard only picks up files it has not seen.
 * A retried trial gets a new end file (its end time and state are in the name) in place of the old one.
 */
import {existsSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {EventFileWriter, type HParamValue, type MetricInfo} from '../log/tensorboard.js'
import {readTrialRecord, trialDir, type ExperimentRecord} from './layout.js'
import type {ParamValue} from './plan.js'
import type {TrialState} from './status.js'

/** what collection knows of a trial (collect.ts's TrialResult / AblationRow) */
export interface TrialScores {
  index: number
  state: TrialState
  meanDice: number | null
  dice: Record<string, number | null>
  meanHd95: number | null
  delta?: number | null
  p?: number | null
}

const EXPERIMENT_FILE = (secs: number): string => `events.out.tfevents.${secs}.sipl-hparams`
const START_SUFFIX = '.sipl-session-start'
const END_SUFFIX = '.sipl-session-end'

const seconds = (iso: string | undefined, fallback: number): number => {
  const t = iso === undefined ? NaN : Date.parse(iso)
  return Number.isFinite(t) ? t / 1000 : fallback
}

const hparamValue = (v: ParamValue): HParamValue => (v === null ? 'null' : v)

/** the values a trial is known by in the table: its swept keys, or its ablation variant */
function trialHParams(record: ExperimentRecord, index: number): Record<string, HParamValue> {
  const trial = record.trials[index]
  if (record.kind === 'ablate') return {variant: trial.variant ?? trial.name}
  return Object.fromEntries(Object.entries(trial.params).map(([k, v]) => [k, hparamValue(v)]))
}

function metricInfos(record: ExperimentRecord): MetricInfo[] {
  return [
    {tag: 'eval/mean_dice', displayName: 'test mean Dice', description: 'sipl eval: mean over the test cases and classes'},
    {tag: 'eval/mean_hd95', displayName: 'test mean HD95 (mm)'},
    ...record.classes.map((c) => ({tag: `eval/dice/${c}`, displayName: `test Dice ${c}`})),
    ...(record.kind === 'ablate'
      ? [
          {tag: 'ablation/delta_mean_dice', displayName: 'Δ mean Dice vs full'},
          {tag: 'ablation/p_value', displayName: 'p (paired t, vs full)'},
        ]
      : []),
    {tag: 'val/mean_dice', displayName: 'val mean Dice (last validation)', dataset: 'validation' as const},
    {tag: 'loss/total', displayName: 'training loss (last step)', dataset: 'training' as const},
  ]
}

/** optimiser steps of the checkpoint eval used (best), for the metrics' step; 0 when unknown */
function trainedSteps(folder: string): number {
  for (const checkpoint of ['best', 'last']) {
    try {
      const step = (JSON.parse(readFileSync(join(folder, 'checkpoints', checkpoint, 'state.json'), 'utf8')) as {step?: unknown}).step
      if (typeof step === 'number' && Number.isSafeInteger(step) && step >= 0) return step
    } catch {
      // not trained (yet), or a fake trial in tests
    }
  }
  return 0
}

/**
 * Writes what is missing or out of date: the experiment, each trial's session start, and for each
 * finished trial in `results` its scores and end. Without results (at launch) only the first two.
 */
export function writeHParams(dir: string, record: ExperimentRecord, results?: TrialScores[]): void {
  const created = Math.floor(seconds(record.createdAt, Date.now() / 1000))
  if (!existsSync(join(dir, EXPERIMENT_FILE(created)))) {
    const writer = new EventFileWriter(dir, {name: EXPERIMENT_FILE(created), wallSecs: created})
    const values = new Map<string, HParamValue[]>()
    for (const t of record.trials)
      for (const [k, v] of Object.entries(trialHParams(record, t.index))) {
        const seen = values.get(k) ?? []
        if (!seen.includes(v)) seen.push(v)
        values.set(k, seen)
      }
    writer.hparamsExperiment(
      {
        name: `${record.name} ${record.kind === 'ablate' ? 'ablation' : 'sweep'}`,
        description: `sipl ${record.kind} '${record.name}', ${record.trials.length} trials`,
        createdSecs: created,
        hparams: [...values].map(([name, vs]) => ({name, values: vs})),
        metrics: metricInfos(record),
      },
      created,
    )
    writer.close()
  }

  for (const trial of record.trials) {
    const folder = trialDir(dir, trial)
    const start = `events.out.tfevents.${created}${START_SUFFIX}`
    if (!existsSync(join(folder, start))) {
      const writer = new EventFileWriter(folder, {name: start, wallSecs: created})
      writer.hparamsSessionStart(trialHParams(record, trial.index), created)
      writer.close()
    }
    const result = results?.find((r) => r.index === trial.index)
    if (!result || !['done', 'failed', 'cancelled'].includes(result.state)) continue
    const ended = seconds(readTrialRecord(dir, trial)?.updatedAt, created)
    // the state in the name too: a retry can end within the second the failure did
    const end = `events.out.tfevents.${Math.floor(ended)}.${result.state}${END_SUFFIX}`
    const stale = readdirSync(folder).filter((f) => f.endsWith(END_SUFFIX) && f !== end)
    if (existsSync(join(folder, end)) && stale.length === 0) continue
    const writer = new EventFileWriter(folder, {name: end, wallSecs: ended})
    if (result.state === 'done') {
      const step = trainedSteps(folder)
      writer.scalars(
        step,
        {
          'eval/mean_dice': result.meanDice ?? NaN,
          'eval/mean_hd95': result.meanHd95 ?? NaN,
          ...Object.fromEntries(record.classes.map((c) => [`eval/dice/${c}`, result.dice[c] ?? NaN])),
          ...(record.kind === 'ablate' ? {'ablation/delta_mean_dice': result.delta ?? NaN, 'ablation/p_value': result.p ?? NaN} : {}),
        },
        ended,
      )
      writer.hparamsSessionEnd('success', ended, step)
    } else writer.hparamsSessionEnd('failure', ended)
    writer.close()
    for (const f of stale) rmSync(join(folder, f), {force: true})
  }
}
