/**
 * The inputs of `sipl eval`, resolved and checked before anything is predicted or written: the
 * source of the main predictions (--run, or --pred with --labels), the config (the run's, or
 * --config), the label maps of both sides, the output folder and every --compare NAME=DIR.
 */
import {existsSync} from 'node:fs'
import {join, resolve} from 'node:path'
import type {BackendRequest} from '../backend/names.js'
import {loadConfig} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'
import {LabelMapping, loadLabelMapFile} from '../data/label-map.js'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {readRunConfig} from '../run/run-dir.js'
import {isDirectory} from '../util/atomic.js'
import {listMasks, matchCases, type Protocol} from './evaluate.js'

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

/** One --compare NAME=DIR, its folder resolved. */
export interface ComparedSource {
  name: string
  dir: string
}

export interface EvalLabelMaps {
  /** the references' map */
  refMap?: LabelMapping
  /** the predictions' map (undefined: their values are class indices already) */
  predMap?: LabelMapping
  /** the class names the maps (or the config) give, when any does */
  mappedClasses?: string[]
}

export interface EvalInputs {
  /** the run's config (with --set), or --config's; null for masks scored without a config */
  config: ExperimentConfig | null
  /** --set with --protocol appended, as a compared run that is evaluated now gets them too */
  sets: string[]
  compares: ComparedSource[]
  labelMaps: EvalLabelMaps
  /** the eval folder, replaced when the evaluation is complete */
  outDir: string
}

function parseCompare(spec: string): ComparedSource {
  const eq = spec.indexOf('=')
  if (eq <= 0 || eq === spec.length - 1) throw new UserError(`--compare ${spec}: expected NAME=DIR, e.g. --compare nnunet=preds/nnunet`)
  return {name: spec.slice(0, eq), dir: resolve(spec.slice(eq + 1))}
}

/** A trained run's folder (as opposed to a folder of masks). */
export const isRunDir = (dir: string) => existsSync(join(dir, 'config.yaml')) && existsSync(join(dir, 'checkpoints'))

/** Every check of the inputs, before anything is predicted or written. */
export async function resolveEvalInputs(o: EvalCommandOptions): Promise<EvalInputs> {
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
  const config = evalConfig(o, sets)
  const labelMaps = resolveLabelMaps(o, config)

  const outDir = resolve(o.out ?? (o.run ? join(o.run, 'eval') : join(o.pred!, 'eval')))
  if (existsSync(outDir) && !isDirectory(outDir))
    throw new UserError(
      `--out ${outDir} is a file, not a folder; give a folder for the evaluation's outputs (it is replaced when complete)`,
    )
  if (o.labels) listMasks(o.labels, '--labels')
  if (o.pred) matchCases(listMasks(o.pred, '--pred'), listMasks(o.labels!, '--labels'), `--pred ${o.pred}`)
  for (const c of compares) await checkCompare(c, o.labels)
  return {config, sets, compares, labelMaps, outDir}
}

/** The run's config with --set (never --config), or --config's, or none. */
function evalConfig(o: EvalCommandOptions, sets: string[]): ExperimentConfig | null {
  if (o.run) {
    if (o.configFile)
      throw new UserError(
        '--run uses the config the run was trained with (its config.yaml); drop --config (eval.* can still be changed with --set)',
      )
    readRunConfig(o.run)
    const config = loadConfig(join(o.run, 'config.yaml'), sets).config
    if (o.labels && !config.eval.savePredictions)
      throw new UserError(
        '--labels with --run scores the written predictions, but eval.savePredictions is false; drop --set eval.savePredictions=false',
      )
    return config
  }
  return o.configFile ? loadConfig(o.configFile, sets).config : null
}

/**
 * Label maps: the references' (--label-map, else the config's data.labelMap) and the predictions'
 * (--pred-label-map, else the same one); a run's own predictions are class indices already.
 */
function resolveLabelMaps(o: EvalCommandOptions, config: ExperimentConfig | null): EvalLabelMaps {
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
  return {refMap, predMap, mappedClasses: config?.data.classes ?? refMap?.classes ?? predMap?.classes}
}

/** The checks of one --compare NAME=DIR that need no predictions: its folder, and its case set against --labels. */
async function checkCompare(c: ComparedSource, labels: string | undefined): Promise<void> {
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
