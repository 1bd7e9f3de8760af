/**
 * What `sipl eval` does, behind the thin command: pick the source of the main predictions (a
 * run or a folder of masks), score them, add the --compare methods, run the paired tests and
 * write eval/: per-case.csv, summary.json, table1.{md,csv,tex} (paper Table 1 layout) and, with
 * tests, comparison-<test>.{md,csv,tex} (paper Tables 2/3 layout).
 *
 * Scoring grid: with --run alone, the run's test cases are scored on the preprocessed grid
 * against the cached labels. With --labels, every method (the run's written predictions
 * included) is scored from its masks against those references, on their grid, so runs and
 * other tools' outputs are compared on identical terms.
 *
 * Every method is scored under one protocol (--protocol / eval.protocol), and summary.json
 * records everything that determined the scores (settings.ts). A compared run's existing
 * eval/ is reused only when it was made the same way and its checkpoint has not been saved
 * again since; otherwise the command stops, names the setting and prints the command that
 * re-scores it.
 */
import {rmSync} from 'node:fs'
import {basename, dirname, join, resolve} from 'node:path'
import type {Logger} from '../log/logger.js'
import {removeStaleTemporaries, replaceDir, stagingDir} from '../util/atomic.js'
import {lockFolder} from '../util/lock.js'
import {checkFuturePredictions, writeEvalFiles, type CaseResult} from './evaluate.js'
import {resolveEvalInputs, type EvalCommandOptions, type EvalInputs} from './eval-inputs.js'
import {writeEvalReport, type EvalJson} from './eval-report.js'
import {folderScorer, methodFrom, scoreComparedMethods, type FolderScorer} from './score-methods.js'
import type {PredictionSettings, ScoringSettings} from './settings.js'

export type {EvalCommandOptions} from './eval-inputs.js'
export type {EvalJson} from './eval-report.js'

export async function runEval(o: EvalCommandOptions): Promise<{text: string; json: EvalJson}> {
  // 1. Every check of the inputs, before anything is predicted or written.
  const inputs = await resolveEvalInputs(o)
  const {outDir} = inputs

  // 2. One writer per eval folder: the new results are built in a fresh folder beside it, which
  //    replaces it only when complete, so a kill or an error never mixes new files with old ones.
  const lock = await lockFolder(outDir, {what: 'eval folder', log: o.makeLogger(), breakLock: o.breakLock, outFlag: '--out'})
  let stage: string | undefined
  try {
    const litter = removeStaleTemporaries(dirname(outDir), (t) => t.base === basename(outDir))
    stage = stagingDir(outDir)
    const log = o.makeLogger(join(stage, 'eval.log'))
    if (litter.length > 0) log.info({removed: litter.length}, 'removed the folders of interrupted evaluations')
    const {text, json} = await evaluateInto({dir: stage, final: outDir}, o, inputs, log)
    replaceDir(stage, outDir)
    const final = (path: string) => (path.startsWith(stage!) ? outDir + path.slice(stage!.length) : path)
    return {text, json: {...json, files: json.files.map(final)}}
  } catch (error) {
    if (stage !== undefined) rmSync(stage, {recursive: true, force: true})
    throw error
  } finally {
    lock.release()
  }
}

/** The evaluated method's per-case results, with what summary.json records about where they came from. */
interface MainMethod {
  classes: string[]
  results: CaseResult[]
  extra: Record<string, unknown>
  prediction: PredictionSettings | null
  files: string[]
}

/**
 * The main method. With --run, the cases it will predict are known (and checked against --labels)
 * before the first is predicted; with --labels its written predictions are then scored against them.
 */
async function scoreMainMethod(
  o: EvalCommandOptions,
  inputs: EvalInputs,
  outDir: string,
  scoreFolder: FolderScorer,
  ensureBackend: () => Promise<void>,
  log: Logger,
): Promise<MainMethod> {
  const extra: Record<string, unknown> = {method: o.name}
  if (!o.run) {
    const {mappedClasses} = inputs.labelMaps
    const scored = scoreFolder(o.name, o.pred!, undefined, 'masks', mappedClasses?.length)
    return {
      classes: mappedClasses ?? Array.from({length: scored.numClasses}, (_, k) => `class${k + 1}`),
      results: scored.results,
      extra: {...extra, pred: resolve(o.pred!), labels: resolve(o.labels!), grid: 'labels'},
      prediction: null,
      files: [],
    }
  }
  // the model stack (tfjs, the network, the data cache) loads only when a run is evaluated
  const {planRunEval, evaluateRun} = await import('./run-eval.js')
  const config = inputs.config!
  const plan = await planRunEval(config, resolve(o.run), o.checkpoint, log)
  if (o.labels) checkFuturePredictions(plan.ids, plan.originalShapes, o.labels, `--labels ${o.labels}`)
  await ensureBackend()
  const r = await evaluateRun({
    config,
    runDir: resolve(o.run),
    checkpoint: o.checkpoint,
    outDir,
    log,
    quiet: o.quiet,
    figures: o.figures,
    plan,
  })
  const main: MainMethod = {
    classes: r.classes,
    results: r.results,
    extra: {
      ...extra,
      run: resolve(o.run),
      checkpoint: r.checkpoint,
      checkpointEpoch: r.checkpointEpoch,
      split: r.split,
      grid: 'preprocessed',
    },
    prediction: r.prediction,
    files: [...r.predictions, ...r.figures],
  }
  if (o.labels) {
    main.results = scoreFolder(o.name, join(outDir, 'predictions'), undefined, 'run', r.classes.length).results
    main.extra = {...main.extra, grid: 'labels', labels: resolve(o.labels)}
  }
  return main
}

/** Steps 3–5 of an evaluation, writing every output into `out.dir` (the fresh folder that becomes `out.final`). */
async function evaluateInto(
  out: {dir: string; final: string},
  o: EvalCommandOptions,
  inputs: EvalInputs,
  log: Logger,
): Promise<{text: string; json: EvalJson}> {
  const {config, labelMaps} = inputs
  const {refMap, predMap} = labelMaps
  const outDir = out.dir
  const tolerance = config?.eval.surfaceTolerance ?? 1
  const protocol = config?.eval.protocol ?? o.protocol ?? 'strict'
  const grid: ScoringSettings['grid'] = o.labels ? 'labels' : 'preprocessed'
  const scoreFolder = folderScorer(
    o.labels!,
    {overlappingRegions: config?.data.overlappingRegions ?? false, tolerance, protocol},
    labelMaps,
    log,
  )
  let backendSelected = false
  const ensureBackend = async () => {
    if (!backendSelected) await (await import('../backend/select.js')).selectBackend(o.backend, log)
    backendSelected = true
  }

  // 3. The main method, written as per-case.csv and summary.json.
  const main = await scoreMainMethod(o, inputs, outDir, scoreFolder, ensureBackend, log)
  const {classes, results} = main
  let extra = main.extra
  if (refMap || predMap)
    extra = {
      ...extra,
      labelMap: {labels: refMap?.labelMap ?? null, predictions: o.run ? null : (predMap?.labelMap ?? null)},
    }
  const settings: ScoringSettings = {protocol, grid, surfaceTolerance: tolerance, prediction: main.prediction}
  const {scores, summary} = methodFrom(o.name, o.run ? resolve(o.run) : resolve(o.pred!), classes, results, tolerance, protocol)
  writeEvalFiles(outDir, classes, results, {...summary, ...extra, settings})
  const files = [...main.files, join(outDir, 'per-case.csv'), join(outDir, 'summary.json')]

  // 4. The compared methods, scored under this protocol.
  const compared = await scoreComparedMethods(inputs.compares, {o, sets: inputs.sets, settings, classes, scoreFolder, ensureBackend, log})
  const methods = [scores, ...compared]

  // 5. Paired tests and the tables.
  const report = writeEvalReport({methods, classes, summary, settings, tests: {ttest: o.ttest, wilcoxon: o.wilcoxon, holm: o.holm}, out})
  files.push(...report.files)
  return {text: report.text, json: {methods: report.methodsJson, tests: report.tests, summary, outDir: out.final, files}}
}
