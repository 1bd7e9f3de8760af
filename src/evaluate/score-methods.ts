/**
 * Scoring the methods of `sipl eval` under one protocol: a folder of masks against --labels, a
 * run's recorded eval/ (refused when it was made otherwise, or its checkpoint was saved again
 * since), or a run with no eval/ yet, evaluated now into its own eval/.
 */
import {existsSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {loadConfig} from '../config/load.js'
import {describeUnmapped} from '../data/label-map.js'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {removeStaleTemporaries, replaceDir, stagingDir} from '../util/atomic.js'
import {withFolderLock} from '../util/lock.js'
import type {MethodScores} from './compare.js'
import type {EvalCommandOptions, ComparedSource, EvalLabelMaps} from './eval-inputs.js'
import {isRunDir} from './eval-inputs.js'
import {evaluateFolders, summarize, writeEvalFiles, type CaseResult, type EvalSummary, type Protocol} from './evaluate.js'
import {
  differentSettingsError,
  predictionDifferences,
  rescoreCommand,
  settingDifferences,
  type PredictionSettings,
  type ScoringSettings,
} from './settings.js'

/** Scores a folder of masks against --labels: the run's written predictions (class indices) or another tool's (mapped). */
export type FolderScorer = (
  method: string,
  dir: string,
  what: string | undefined,
  predictions: 'run' | 'masks',
  numClasses?: number,
) => ReturnType<typeof evaluateFolders>

/** A FolderScorer that logs the values a label map left out, once per side (the references are read again for every method). */
export function folderScorer(
  labels: string,
  how: {overlappingRegions: boolean; tolerance: number; protocol: Protocol},
  labelMaps: EvalLabelMaps,
  log: Logger,
): FolderScorer {
  const {refMap, predMap} = labelMaps
  let refUnmappedSaid = false
  const sayUnmapped = (method: string, unmapped: {pred: Map<number, number>; ref: Map<number, number>}) => {
    if (!refUnmappedSaid && unmapped.ref.size > 0)
      log.info(
        {values: Object.fromEntries(unmapped.ref)},
        `--labels: values not in the label map became background: ${describeUnmapped(unmapped.ref)}`,
      )
    refUnmappedSaid = true
    if (unmapped.pred.size > 0)
      log.info(
        {method, values: Object.fromEntries(unmapped.pred)},
        `${method}: predicted values not in the label map became background: ${describeUnmapped(unmapped.pred)}`,
      )
  }
  return (method, dir, what, predictions, numClasses) => {
    const scored = evaluateFolders(dir, labels, {
      ...how,
      numClasses,
      what,
      labelMaps: {ref: refMap, pred: predictions === 'run' ? undefined : predMap},
    })
    sayUnmapped(method, scored.unmapped)
    return scored
  }
}

/** A method's per-case results as the scores the paired tests compare, and its summary. */
export function methodFrom(
  name: string,
  source: string,
  classes: string[],
  results: CaseResult[],
  tolerance: number,
  protocol: Protocol,
): {scores: MethodScores; summary: EvalSummary} {
  const summary = summarize(classes, results, tolerance, protocol)
  return {
    scores: {
      name,
      meanDice: summary.meanDice,
      perCase: summary.perCase,
      perClass: Object.fromEntries(classes.map((c) => [c, summary.perClass[c].dice])),
      source,
    },
    summary,
  }
}

/** state.json's savedAt of a run's checkpoint, or null when the checkpoint is gone. */
function checkpointSavedAt(runDir: string, checkpoint: string): string | null {
  const file = join(runDir, 'checkpoints', checkpoint, 'state.json')
  if (!existsSync(file)) return null
  try {
    return String((JSON.parse(readFileSync(file, 'utf8')) as {savedAt?: unknown}).savedAt ?? '')
  } catch {
    return null
  }
}

type RecordedSummary = EvalSummary & {settings?: ScoringSettings}

/**
 * A compared run's recorded eval: its summary and settings, refused (with the re-scoring
 * command) when it predates the settings record or when its checkpoint was saved again since.
 */
function recordedEval(name: string, dir: string, wanted: ScoringSettings): {summary: RecordedSummary; settings: ScoringSettings} {
  const file = join(dir, 'eval', 'summary.json')
  const summary = JSON.parse(readFileSync(file, 'utf8')) as RecordedSummary
  const settings = summary.settings
  if (!settings || !settings.prediction)
    throw new UserError(
      `--compare ${name}=${dir}: ${file} does not record how it was scored (made by an older sipl); re-score it: ${rescoreCommand(dir, wanted)}`,
    )
  const now = checkpointSavedAt(dir, settings.prediction.checkpoint)
  if (now !== settings.prediction.checkpointSavedAt)
    throw new UserError(
      `--compare ${name}=${dir}: checkpoints/${settings.prediction.checkpoint} has changed since ${file} was written (trained further or replaced); re-score it: ${rescoreCommand(dir, wanted)}`,
    )
  return {summary, settings}
}

/**
 * Evaluates a --compare run that has no eval/ yet into its own eval/, under that folder's lock,
 * replaced when complete: with the evaluated run's protocol, checkpoint choice and --set, so that
 * it is predicted and scored the same way. Returns its summary and the settings it recorded.
 */
async function evaluateCompareRun(
  c: ComparedSource,
  o: EvalCommandOptions,
  how: {sets: string[]; protocol: Protocol; checkpoint: string},
  log: Logger,
): Promise<{summary: RecordedSummary; settings: ScoringSettings}> {
  // the model stack (tfjs, the network, the data cache) loads only when a run is evaluated
  const {evaluateRun} = await import('./run-eval.js')
  const dir = join(c.dir, 'eval')
  return withFolderLock(dir, {what: 'eval folder', log, breakLock: o.breakLock}, async () => {
    removeStaleTemporaries(c.dir, (t) => t.base === 'eval')
    const stage = stagingDir(dir)
    try {
      const cfg = loadConfig(join(c.dir, 'config.yaml'), [...how.sets, `eval.protocol=${how.protocol}`]).config
      const r = await evaluateRun({config: cfg, runDir: c.dir, checkpoint: how.checkpoint, outDir: stage, log, quiet: o.quiet, figures: 0})
      const s = summarize(r.classes, r.results, cfg.eval.surfaceTolerance, how.protocol)
      const settings: ScoringSettings = {
        protocol: how.protocol,
        grid: 'preprocessed',
        surfaceTolerance: cfg.eval.surfaceTolerance,
        prediction: r.prediction,
      }
      writeEvalFiles(stage, r.classes, r.results, {
        ...s,
        method: c.name,
        run: c.dir,
        checkpoint: how.checkpoint,
        checkpointEpoch: r.checkpointEpoch,
        split: r.split,
        grid: 'preprocessed',
        settings,
      })
      replaceDir(stage, dir)
      return {summary: {...s, settings}, settings}
    } catch (error) {
      rmSync(stage, {recursive: true, force: true})
      throw error
    }
  })
}

export interface ComparedMethodsContext {
  o: EvalCommandOptions
  sets: string[]
  /** how the evaluated method was scored (its prediction: null unless it is a run) */
  settings: ScoringSettings
  classes: string[]
  scoreFolder: FolderScorer
  /** selects the backend once, before the first run is predicted */
  ensureBackend: () => Promise<void>
  log: Logger
}

/**
 * The compared methods: runs (their own eval, or their predictions against --labels) or mask
 * folders, all scored under the evaluated method's protocol. Runs must have been predicted like
 * the first run of the comparison (the evaluated one when it is a run).
 */
export async function scoreComparedMethods(compares: ComparedSource[], ctx: ComparedMethodsContext): Promise<MethodScores[]> {
  const {o, settings, classes, scoreFolder, log} = ctx
  const {protocol, surfaceTolerance: tolerance} = settings
  const methods: MethodScores[] = []
  let reference: {name: string; prediction: PredictionSettings} | null = settings.prediction
    ? {name: o.name, prediction: settings.prediction}
    : null
  const checkPrediction = (name: string, dir: string, prediction: PredictionSettings) => {
    if (!reference) {
      reference = {name, prediction}
      return
    }
    const differences = predictionDifferences(reference.prediction, prediction)
    if (differences.length > 0)
      throw differentSettingsError(
        `--compare ${name}=${dir}`,
        reference.name,
        differences,
        rescoreCommand(dir, {...settings, prediction: reference.prediction}),
      )
  }
  for (const c of compares) {
    if (!isRunDir(c.dir)) {
      const {results} = scoreFolder(c.name, c.dir, `--compare ${c.name}`, 'masks', classes.length)
      methods.push(methodFrom(c.name, c.dir, classes, results, tolerance, protocol).scores)
      continue
    }
    const wanted: ScoringSettings = {...settings, prediction: reference?.prediction ?? null}
    if (o.labels) {
      const preds = join(c.dir, 'eval', 'predictions')
      if (!existsSync(join(c.dir, 'eval', 'summary.json')))
        throw new UserError(`--compare ${c.name}=${c.dir}: no eval/summary.json; run '${rescoreCommand(c.dir, wanted)}' first`)
      checkPrediction(c.name, c.dir, recordedEval(c.name, c.dir, wanted).settings.prediction!)
      const {results} = scoreFolder(c.name, preds, `--compare ${c.name}`, 'run', classes.length)
      methods.push(methodFrom(c.name, c.dir, classes, results, tolerance, protocol).scores)
      continue
    }
    let recorded: {summary: RecordedSummary; settings: ScoringSettings}
    if (existsSync(join(c.dir, 'eval', 'summary.json'))) {
      recorded = recordedEval(c.name, c.dir, wanted)
      const differences = settingDifferences(wanted, recorded.settings)
      if (differences.length > 0)
        throw differentSettingsError(`--compare ${c.name}=${c.dir}`, reference?.name ?? o.name, differences, rescoreCommand(c.dir, wanted))
    } else {
      // never evaluated: predict it now with the same protocol, checkpoint choice and --set
      await ctx.ensureBackend()
      const checkpoint = reference?.prediction.checkpoint ?? o.checkpoint
      recorded = await evaluateCompareRun(c, o, {sets: ctx.sets, protocol, checkpoint}, log)
    }
    checkPrediction(c.name, c.dir, recorded.settings.prediction!)
    const s = recorded.summary
    methods.push({
      name: c.name,
      meanDice: s.meanDice,
      perCase: s.perCase,
      perClass: Object.fromEntries(Object.entries(s.perClass).map(([k, v]) => [k, v.dice])),
      source: c.dir,
    })
  }
  return methods
}
