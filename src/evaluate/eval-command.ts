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
import {existsSync, readFileSync, rmSync} from 'node:fs'
import {basename, dirname, join, resolve} from 'node:path'
import type {BackendRequest} from '../backend/names.js'
import {loadConfig} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'
import {describeUnmapped, LabelMapping, loadLabelMapFile} from '../data/label-map.js'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {comparisonTable, perClassTable, render, type MethodRow} from '../report/tables.js'
import {readRunConfig} from '../run/run-dir.js'
import {isDirectory, removeStaleTemporaries, replaceDir, stagingDir, writeFileAtomic} from '../util/atomic.js'
import {lockFolder, withFolderLock} from '../util/lock.js'
import {compareMethods, type MethodScores, type TestResult} from './compare.js'
import {
  checkFuturePredictions,
  evaluateFolders,
  listMasks,
  matchCases,
  PROTOCOL_DESCRIPTIONS,
  summarize,
  writeEvalFiles,
  type CaseResult,
  type EvalSummary,
  type Protocol,
} from './evaluate.js'
import {
  differentSettingsError,
  predictionDifferences,
  rescoreCommand,
  settingDifferences,
  type PredictionSettings,
  type ScoringSettings,
} from './settings.js'

export interface EvalCommandOptions {
  run?: string
  checkpoint: string
  pred?: string
  labels?: string
  compare: string[]
  name: string
  /** --protocol; default eval.protocol of the config (strict without one) */
  protocol?: Protocol
  ttest: boolean
  wilcoxon: boolean
  holm: boolean
  out?: string
  figures: number
  configFile?: string
  /** the references' label map file (default: the config's data.labelMap) */
  labelMap?: string
  /** the predictions' label map file, or 'identity' (default: the references' map) */
  predLabelMap?: string
  set: string[]
  backend: BackendRequest
  /** a logger to stderr, and to `file` when given */
  makeLogger: (file?: string) => Logger
  quiet: boolean
  /** take over the eval folder's lock from another host (--break-lock) */
  breakLock?: boolean
}

export interface EvalJson {
  methods: Record<string, {meanDice: number; perCase: Record<string, number>; perClass: Record<string, number | null>; source: string}>
  tests: TestResult[]
  summary: EvalSummary
  outDir: string
  files: string[]
}

function parseCompare(spec: string): {name: string; dir: string} {
  const eq = spec.indexOf('=')
  if (eq <= 0 || eq === spec.length - 1) throw new UserError(`--compare ${spec}: expected NAME=DIR, e.g. --compare nnunet=preds/nnunet`)
  return {name: spec.slice(0, eq), dir: resolve(spec.slice(eq + 1))}
}

const isRunDir = (dir: string) => existsSync(join(dir, 'config.yaml')) && existsSync(join(dir, 'checkpoints'))

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

function methodFrom(
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

export async function runEval(o: EvalCommandOptions): Promise<{text: string; json: EvalJson}> {
  // 1. Every check of the inputs, before anything is predicted or written.
  if (!o.run && !o.pred)
    throw new UserError('say what to evaluate: --run DIR (a trained run) or --pred DIR --labels DIR (masks from any tool)')
  if (o.pred && !o.labels) throw new UserError('--pred needs --labels DIR (the reference masks, matched by case id in the file names)')
  if ((o.ttest || o.wilcoxon) && o.compare.length === 0)
    throw new UserError('--paired-ttest / --wilcoxon compare methods: add at least one --compare NAME=DIR')
  const compares = o.compare.map(parseCompare)
  const names = [o.name, ...compares.map((c) => c.name)]
  const dup = names.find((n, i) => names.indexOf(n) !== i)
  if (dup) throw new UserError(`method name '${dup}' is used twice; give every --compare (and --name) a distinct NAME`)
  if (!/^(?!\.\.?$)[A-Za-z0-9._-]+$/.test(o.checkpoint))
    throw new UserError(`--checkpoint ${o.checkpoint}: give the name of a folder under checkpoints/ (best, last or epoch-N)`)

  // --protocol is eval.protocol, applied last so that it wins over the config and --set
  const sets = o.protocol ? [...o.set, `eval.protocol=${o.protocol}`] : o.set
  let config: ExperimentConfig | null = null
  if (o.run) {
    if (o.configFile)
      throw new UserError(
        '--run uses the config the run was trained with (its config.yaml); drop --config (eval.* can still be changed with --set)',
      )
    readRunConfig(o.run)
    config = loadConfig(join(o.run, 'config.yaml'), sets).config
    if (o.labels && !config.eval.savePredictions)
      throw new UserError(
        '--labels with --run scores the written predictions, but eval.savePredictions is false; drop --set eval.savePredictions=false',
      )
  } else if (o.configFile) {
    config = loadConfig(o.configFile, sets).config
  }
  // Label maps: the references' (--label-map, else the config's data.labelMap) and the predictions'
  // (--pred-label-map, else the same one); a run's own predictions are class indices already.
  const refMap = o.labelMap
    ? loadLabelMapFile(o.labelMap, config?.data.classes)
    : config?.data.labelMap
      ? new LabelMapping(config.data.labelMap, config.data.classes)
      : undefined
  const predMap =
    o.predLabelMap === 'identity'
      ? undefined
      : o.predLabelMap
        ? loadLabelMapFile(o.predLabelMap, config?.data.classes ?? refMap?.classes, '--pred-label-map')
        : refMap
  if (predMap && refMap && predMap.classes.join() !== refMap.classes.join())
    throw new UserError(
      `--pred-label-map ${o.predLabelMap}: classes [${predMap.classes.join(', ')}] differ from the references' [${refMap.classes.join(', ')}]; list the same classes in the same order`,
    )
  const mappedClasses = config?.data.classes ?? refMap?.classes ?? predMap?.classes

  const outDir = resolve(o.out ?? (o.run ? join(o.run, 'eval') : join(o.pred!, 'eval')))
  if (existsSync(outDir) && !isDirectory(outDir))
    throw new UserError(
      `--out ${outDir} is a file, not a folder; give a folder for the evaluation's outputs (it is replaced when complete)`,
    )
  if (o.labels) listMasks(o.labels, '--labels')
  if (o.pred) matchCases(listMasks(o.pred, '--pred'), listMasks(o.labels!, '--labels'), `--pred ${o.pred}`)
  for (const c of compares) await checkCompare(c, o.labels)

  // 2. One writer per eval folder: the new results are built in a fresh folder beside it, which
  //    replaces it only when complete, so a kill or an error never mixes new files with old ones.
  const lock = await lockFolder(outDir, {what: 'eval folder', log: o.makeLogger(), breakLock: o.breakLock, outFlag: '--out'})
  let stage: string | undefined
  try {
    const litter = removeStaleTemporaries(dirname(outDir), (t) => t.base === basename(outDir))
    stage = stagingDir(outDir)
    const log = o.makeLogger(join(stage, 'eval.log'))
    if (litter.length > 0) log.info({removed: litter.length}, 'removed the folders of interrupted evaluations')
    const {text, json} = await evaluateInto({dir: stage, final: outDir}, o, config, sets, compares, {refMap, predMap, mappedClasses}, log)
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

/** The checks of one --compare NAME=DIR that need no predictions: its folder, and its case set against --labels. */
async function checkCompare(c: {name: string; dir: string}, labels: string | undefined): Promise<void> {
  if (!existsSync(c.dir)) throw new UserError(`--compare ${c.name}=${c.dir}: no such folder`)
  if (isRunDir(c.dir)) {
    if (labels) {
      const preds = join(c.dir, 'eval', 'predictions')
      if (!existsSync(preds)) throw new UserError(`--compare ${c.name}=${c.dir}: no eval/predictions; run 'sipl eval --run ${c.dir}' first`)
      matchCases(listMasks(preds, `--compare ${c.name}`), listMasks(labels, '--labels'), `--compare ${c.name}`)
    } else if (!existsSync(join(c.dir, 'eval', 'summary.json'))) {
      // the checkpoint module brings tfjs, which mask-only evaluations never load
      const {hasCheckpoint, readableCheckpoint} = await import('../run/checkpoint.js')
      if (!hasCheckpoint(readableCheckpoint(join(c.dir, 'checkpoints', 'best'))))
        throw new UserError(`--compare ${c.name}=${c.dir}: no eval/summary.json and no checkpoints/best to make one; train it first`)
    }
  } else {
    if (!labels)
      throw new UserError(`--compare ${c.name}=${c.dir} is a folder of masks; add --labels DIR with the reference masks to score it`)
    matchCases(listMasks(c.dir, `--compare ${c.name}`), listMasks(labels, '--labels'), `--compare ${c.name}`)
  }
}

/**
 * Evaluates a --compare run that has no eval/ yet into its own eval/, under that folder's lock,
 * replaced when complete: with the evaluated run's protocol, checkpoint choice and --set, so that
 * it is predicted and scored the same way. Returns its summary and the settings it recorded.
 */
async function evaluateCompareRun(
  c: {name: string; dir: string},
  evaluateRun: typeof import('./run-eval.js').evaluateRun,
  o: EvalCommandOptions,
  how: {sets: string[]; protocol: Protocol; checkpoint: string},
  log: Logger,
): Promise<{summary: RecordedSummary; settings: ScoringSettings}> {
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

/** Steps 3–5 of an evaluation, writing every output into `out.dir` (the fresh folder that becomes `out.final`). */
async function evaluateInto(
  out: {dir: string; final: string},
  o: EvalCommandOptions,
  config: ExperimentConfig | null,
  sets: string[],
  compares: {name: string; dir: string}[],
  labelMaps: {refMap?: LabelMapping; predMap?: LabelMapping; mappedClasses?: string[]},
  log: Logger,
): Promise<{text: string; json: EvalJson}> {
  const {refMap, predMap, mappedClasses} = labelMaps
  const outDir = out.dir
  const tolerance = config?.eval.surfaceTolerance ?? 1
  const overlappingRegions = config?.data.overlappingRegions ?? false
  const protocol: Protocol = config?.eval.protocol ?? o.protocol ?? 'strict'
  const grid: ScoringSettings['grid'] = o.labels ? 'labels' : 'preprocessed'
  // values a label map left out, said once per side (the references are read again for every method)
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
  const scoreFolder = (method: string, dir: string, what: string | undefined, predictions: 'run' | 'masks', numClasses?: number) => {
    const scored = evaluateFolders(dir, o.labels!, {
      numClasses,
      overlappingRegions,
      tolerance,
      protocol,
      what,
      labelMaps: {ref: refMap, pred: predictions === 'run' ? undefined : predMap},
    })
    sayUnmapped(method, scored.unmapped)
    return scored
  }
  const files: string[] = []
  let backendSelected = false
  const ensureBackend = async () => {
    if (!backendSelected) await (await import('../backend/select.js')).selectBackend(o.backend, log)
    backendSelected = true
  }

  // 3. The main method. With --run, the cases it will predict are known (and checked against
  //    --labels) before the first is predicted.
  let classes: string[]
  let results: CaseResult[]
  let extra: Record<string, unknown> = {method: o.name}
  let mainPrediction: PredictionSettings | null = null
  // the model stack (tfjs, the network, the data cache) loads only when a run is evaluated
  const runEval = () => import('./run-eval.js')
  if (o.run) {
    const {planRunEval, evaluateRun} = await runEval()
    const plan = await planRunEval(config!, resolve(o.run), o.checkpoint, log)
    if (o.labels) checkFuturePredictions(plan.ids, plan.originalShapes, o.labels, `--labels ${o.labels}`)
    await ensureBackend()
    const r = await evaluateRun({
      config: config!,
      runDir: resolve(o.run),
      checkpoint: o.checkpoint,
      outDir,
      log,
      quiet: o.quiet,
      figures: o.figures,
      plan,
    })
    classes = r.classes
    results = r.results
    mainPrediction = r.prediction
    extra = {
      ...extra,
      run: resolve(o.run),
      checkpoint: r.checkpoint,
      checkpointEpoch: r.checkpointEpoch,
      split: r.split,
      grid: 'preprocessed',
    }
    files.push(...r.predictions, ...r.figures)
    if (o.labels) {
      results = scoreFolder(o.name, join(outDir, 'predictions'), undefined, 'run', classes.length).results
      extra = {...extra, grid: 'labels', labels: resolve(o.labels)}
    }
  } else {
    const scored = scoreFolder(o.name, o.pred!, undefined, 'masks', mappedClasses?.length)
    classes = mappedClasses ?? Array.from({length: scored.numClasses}, (_, k) => `class${k + 1}`)
    results = scored.results
    extra = {...extra, pred: resolve(o.pred!), labels: resolve(o.labels!), grid: 'labels'}
  }
  if (refMap || predMap)
    extra = {
      ...extra,
      labelMap: {labels: refMap?.labelMap ?? null, predictions: o.run ? null : (predMap?.labelMap ?? null)},
    }
  const settings: ScoringSettings = {protocol, grid, surfaceTolerance: tolerance, prediction: mainPrediction}
  const main = methodFrom(o.name, o.run ? resolve(o.run) : resolve(o.pred!), classes, results, tolerance, protocol)
  const summary = main.summary
  writeEvalFiles(outDir, classes, results, {...summary, ...extra, settings})
  files.push(join(outDir, 'per-case.csv'), join(outDir, 'summary.json'))

  // 4. The compared methods: runs (their own eval, or their predictions against --labels) or mask
  //    folders, all scored under this protocol. Runs must have been predicted like the first run
  //    of the comparison (the evaluated one when it is a run).
  const methods: MethodScores[] = [main.scores]
  let reference: {name: string; prediction: PredictionSettings} | null = mainPrediction ? {name: o.name, prediction: mainPrediction} : null
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
    if (isRunDir(c.dir)) {
      const wanted: ScoringSettings = {...settings, prediction: reference?.prediction ?? null}
      if (o.labels) {
        const preds = join(c.dir, 'eval', 'predictions')
        if (!existsSync(join(c.dir, 'eval', 'summary.json')))
          throw new UserError(`--compare ${c.name}=${c.dir}: no eval/summary.json; run '${rescoreCommand(c.dir, wanted)}' first`)
        checkPrediction(c.name, c.dir, recordedEval(c.name, c.dir, wanted).settings.prediction!)
        methods.push(
          methodFrom(
            c.name,
            c.dir,
            classes,
            scoreFolder(c.name, preds, `--compare ${c.name}`, 'run', classes.length).results,
            tolerance,
            protocol,
          ).scores,
        )
      } else {
        let recorded: {summary: RecordedSummary; settings: ScoringSettings}
        if (existsSync(join(c.dir, 'eval', 'summary.json'))) {
          recorded = recordedEval(c.name, c.dir, wanted)
          const differences = settingDifferences(wanted, recorded.settings)
          if (differences.length > 0)
            throw differentSettingsError(
              `--compare ${c.name}=${c.dir}`,
              reference?.name ?? o.name,
              differences,
              rescoreCommand(c.dir, wanted),
            )
        } else {
          // never evaluated: predict it now with the same protocol, checkpoint choice and --set
          await ensureBackend()
          const checkpoint = reference?.prediction.checkpoint ?? o.checkpoint
          recorded = await evaluateCompareRun(c, (await runEval()).evaluateRun, o, {sets, protocol, checkpoint}, log)
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
    } else {
      methods.push(
        methodFrom(
          c.name,
          c.dir,
          classes,
          scoreFolder(c.name, c.dir, `--compare ${c.name}`, 'masks', classes.length).results,
          tolerance,
          protocol,
        ).scores,
      )
    }
  }

  // 5. Paired tests and the tables.
  const tests = compareMethods(methods, {ttest: o.ttest, wilcoxon: o.wilcoxon, holm: o.holm})
  const write = (stem: string, rendered: {markdown: string; csv: string; latex: string}) => {
    for (const [ext, text] of [
      ['md', rendered.markdown],
      ['csv', rendered.csv],
      ['tex', rendered.latex],
    ] as const) {
      writeFileAtomic(join(outDir, `${stem}.${ext}`), text)
      files.push(join(outDir, `${stem}.${ext}`))
    }
  }
  // the evaluated method last, as the paper puts "SIPL (ours)"
  const rows: MethodRow[] = [...methods.slice(1), methods[0]].map((m) => ({name: m.name, meanDice: m.meanDice, perClass: m.perClass}))
  const scoredOn = `${grid === 'labels' ? 'the --labels grid' : 'the preprocessed grid'}; ${PROTOCOL_DESCRIPTIONS[protocol]}`
  const table1 = render(perClassTable(rows, classes), `DSC (%) per class on ${summary.cases.length} cases, ${scoredOn}`)
  write('table1', table1)
  const textParts = [
    `${o.name}: mean Dice ${summary.meanDice.toFixed(4)}, mean HD95 ${summary.meanHd95 === null ? 'n/a' : summary.meanHd95.toFixed(2) + ' mm'}, mean surface Dice@${tolerance}mm ${summary.meanSurfaceDice.toFixed(4)} on ${summary.cases.length} cases (protocol ${protocol}) → ${out.final}`,
    '',
    table1.markdown,
  ]
  for (const test of ['ttest', 'wilcoxon'] as const) {
    const group = tests.filter((t) => t.test === test)
    if (group.length === 0) continue
    const label = `p-values (${test === 'ttest' ? 'paired t-test' : 'Wilcoxon'}${o.holm ? ', Holm' : ''})`
    const table = comparisonTable(
      methods.map((m) => {
        const t = group.find((g) => g.b === m.name)
        return {name: m.name, meanDice: m.meanDice, p: t ? (o.holm ? (t.pHolm ?? t.p) : t.p) : null}
      }),
      o.name,
      label,
    )
    const rendered = render(
      table,
      `${label}, ${o.name} against each method, per-case mean Dice, n = ${Object.keys(summary.perCase).length}, ${scoredOn}`,
    )
    write(`comparison-${test}`, rendered)
    textParts.push(rendered.markdown)
  }
  const undefinedHd = Object.entries(summary.perClass).filter(([, c]) => c.hd95Undefined > 0)
  if (undefinedHd.length > 0)
    textParts.push(
      `HD95 undefined (one mask empty) for: ${undefinedHd.map(([k, c]) => `${k} ×${c.hd95Undefined}`).join(', ')} — see ${basename(out.final)}/per-case.csv`,
    )

  const json: EvalJson = {
    methods: Object.fromEntries(
      methods.map((m) => [m.name, {meanDice: m.meanDice, perCase: m.perCase, perClass: m.perClass, source: m.source}]),
    ),
    tests,
    summary,
    outDir: out.final,
    files,
  }
  writeFileAtomic(join(outDir, 'comparison.json'), JSON.stringify({methods: json.methods, tests}, null, 2) + '\n')
  return {text: textParts.join('\n'), json}
}
