/**
 * Scoring label maps and writing `eval/`: per-case.csv, summary.json (+ tables, written by the
 * eval command through src/report). Two sources of predictions:
 *  - a run directory: its best checkpoint predicts the test split of the preprocessed cache
 *    (sliding window), the label maps are written back in the original geometry as .nii.gz,
 *    and the metrics are computed on the preprocessed grid against the cached labels;
 *  - a folder of predicted masks from any tool against a folder of reference masks, matched by
 *    case id (file name), metrics on the reference's grid with the reference's voxel spacing.
 *
 * Every score is made under a named protocol (docs/evaluation.md):
 *  - `strict`: every class is scored in every case (both empty = 1, a false positive on an absent
 *    class = 0, metrics.ts);
 *  - `sipl`: the official SIPL test.py — a class absent from a case's reference is left out of
 *    that class's mean and of that case's mean, and the largest connected component of each class
 *    is kept in every scored prediction. Its Dice has no `+1` in the denominator (test.py's
 *    dice_score adds one, which pulls small organs down).
 * Per-case mean Dice = mean over the case's scored classes; it is the score the paired tests
 * compare. The overall mean is the mean of the per-class means (test.py's "average"; under
 * `strict` it equals the mean of the per-case means).
 */
import {readdirSync, existsSync, statSync} from 'node:fs'
import {join} from 'node:path'
import type {EvalConfig} from '../config/schema.js'
import {protocolSchema} from '../config/sections/eval.js'
import {UserError} from '../errors.js'
import type {LabelMapping} from '../data/label-map.js'
import {assertScalar, assertUsableGeometry, isNiftiPath, niftiStem, readNifti, readNiftiHeader, type NiftiImage} from '../io/nifti.js'
import {AFFINE_TOLERANCE, formatAffine, maxAffineDifference} from '../io/orientation.js'
import {writeFileAtomic} from '../util/atomic.js'
import {evaluateLabels} from './metrics.js'
import {keepLargestComponent} from './postprocess.js'
import type {Vec3} from '../util/vec3.js'

export const PROTOCOLS = protocolSchema.options
export type Protocol = EvalConfig['protocol']

/** One line per protocol, for summary.json and the table captions. */
export const PROTOCOL_DESCRIPTIONS: Record<Protocol, string> = {
  strict: 'protocol strict: every class scored in every case (both empty = 1, a false positive on an absent class = 0)',
  sipl: 'protocol sipl: a class absent from the reference is left out of its class and case means; largest connected component per class; Dice without +1',
}

/** Whether the protocol keeps only the largest component of each class in every scored prediction. */
export const protocolKeepsLargestComponent = (protocol: Protocol) => protocol === 'sipl'

/**
 * Whether the run's own predictions keep only the largest component of each class: the
 * protocol's choice unless eval.largestComponent says otherwise; turning it off under sipl is a
 * UserError (the protocol is defined with it).
 */
export function largestComponentFor(evalConfig: EvalConfig): boolean {
  if (evalConfig.largestComponent === false && protocolKeepsLargestComponent(evalConfig.protocol))
    throw new UserError(
      'eval.largestComponent=false contradicts eval.protocol sipl, which keeps the largest component of each class; score raw outputs with --protocol strict',
    )
  return evalConfig.largestComponent ?? protocolKeepsLargestComponent(evalConfig.protocol)
}

export interface ScoredClass {
  /** null when the protocol leaves the class out of this case (sipl: absent from the reference) */
  dice: number | null
  /** null when left out, or when exactly one of prediction and reference is empty */
  hd95: number | null
  surfaceDice: number | null
  refEmpty: boolean
  predEmpty: boolean
  scored: boolean
}

export interface CaseResult {
  id: string
  classes: ScoredClass[]
  /** mean over the scored classes; null when the protocol scores no class of this case */
  meanDice: number | null
}

export interface ClassSummary {
  /** mean over the cases where the class is scored (null when it is scored in none) */
  dice: number | null
  /** mean over the cases where it is defined (null when it is defined for none) */
  hd95: number | null
  surfaceDice: number | null
  /** cases where the class is scored */
  scored: number
  /** scored cases whose HD95 is undefined (exactly one of prediction and reference empty) */
  hd95Undefined: number
  refEmpty: number
  predEmpty: number
}

export interface EvalSummary {
  protocol: Protocol
  meanDice: number
  meanHd95: number | null
  meanSurfaceDice: number
  perClass: Record<string, ClassSummary>
  cases: string[]
  /** per-case mean Dice of the cases with a scored class (all of them under strict) */
  perCase: Record<string, number>
  /** cases without any scored class (sipl: no reference foreground at all); not in perCase */
  unscoredCases: string[]
  classes: string[]
  surfaceTolerance: number
  conventions: string
}

export const EMPTY_MASK_CONVENTION =
  'both empty: Dice 1, surface Dice 1, HD95 0; exactly one empty: Dice 0, surface Dice 0, HD95 undefined (blank in per-case.csv, null in JSON, left out of HD95 means and counted in hd95Undefined)'

const CONVENTIONS: Record<Protocol, string> = {
  strict: EMPTY_MASK_CONVENTION,
  sipl:
    'a class whose reference is empty is not scored in that case (blank in per-case.csv, left out of its class and case means, whatever was predicted); ' +
    'reference present and prediction empty: Dice 0, surface Dice 0, HD95 undefined (counted in hd95Undefined)',
}

export interface ScoreOptions {
  overlappingRegions: boolean
  tolerance: number
  protocol: Protocol
}

export function scoreCase(
  id: string,
  pred: Uint8Array,
  ref: Uint8Array,
  shape: Vec3,
  spacing: Vec3,
  numClasses: number,
  options: ScoreOptions,
): CaseResult {
  const classes: ScoredClass[] = evaluateLabels(pred, ref, shape, spacing, numClasses, options).map((c) => {
    const scored = options.protocol === 'strict' || !c.refEmpty
    return scored ? {...c, scored} : {dice: null, hd95: null, surfaceDice: null, refEmpty: c.refEmpty, predEmpty: c.predEmpty, scored}
  })
  const dices = classes.filter((c) => c.scored).map((c) => c.dice as number)
  return {id, classes, meanDice: dices.length === 0 ? null : mean(dices)}
}

const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length)
const defined = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null)

export function summarize(classNames: string[], results: CaseResult[], tolerance: number, protocol: Protocol): EvalSummary {
  const perClass: Record<string, ClassSummary> = {}
  classNames.forEach((name, k) => {
    const rows = results.map((r) => r.classes[k]).filter((r) => r.scored)
    const hds = defined(rows.map((r) => r.hd95))
    perClass[name] = {
      dice: rows.length > 0 ? mean(rows.map((r) => r.dice as number)) : null,
      hd95: hds.length > 0 ? mean(hds) : null,
      surfaceDice: rows.length > 0 ? mean(rows.map((r) => r.surfaceDice as number)) : null,
      scored: rows.length,
      hd95Undefined: rows.length - hds.length,
      refEmpty: results.filter((r) => r.classes[k].refEmpty).length,
      predEmpty: results.filter((r) => r.classes[k].predEmpty).length,
    }
  })
  const classDice = defined(Object.values(perClass).map((c) => c.dice))
  if (classDice.length === 0)
    throw new UserError(
      `protocol ${protocol} scores no class in any of the ${results.length} case(s): every reference is empty; check --labels, or score with --protocol strict`,
    )
  const classHd = defined(Object.values(perClass).map((c) => c.hd95))
  return {
    protocol,
    meanDice: mean(classDice),
    meanHd95: classHd.length > 0 ? mean(classHd) : null,
    meanSurfaceDice: mean(defined(Object.values(perClass).map((c) => c.surfaceDice))),
    perClass,
    cases: results.map((r) => r.id),
    perCase: Object.fromEntries(results.filter((r) => r.meanDice !== null).map((r) => [r.id, r.meanDice as number])),
    unscoredCases: results.filter((r) => r.meanDice === null).map((r) => r.id),
    classes: classNames,
    surfaceTolerance: tolerance,
    conventions: CONVENTIONS[protocol],
  }
}

export function perCaseCsv(classNames: string[], results: CaseResult[]): string {
  const lines = ['case,class,dice,hd95,surfaceDice,refEmpty,predEmpty']
  const cell = (v: number | null) => (v === null ? '' : v)
  for (const r of results)
    r.classes.forEach((c, k) =>
      lines.push([r.id, classNames[k], cell(c.dice), cell(c.hd95), cell(c.surfaceDice), c.refEmpty, c.predEmpty].join(',')),
    )
  return lines.join('\n') + '\n'
}

export function writeEvalFiles(
  dir: string,
  classNames: string[],
  results: CaseResult[],
  summary: EvalSummary & Record<string, unknown>,
): void {
  writeFileAtomic(join(dir, 'per-case.csv'), perCaseCsv(classNames, results))
  writeFileAtomic(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n')
}

/**
 * Case id of a mask file: the name without its NIfTI extension, and without nnU-Net's channel
 * suffix `_0000`. Files are matched on this id; when ids differ only by a prefix (BTCV's
 * `img0001` vs `label0001`), they are matched on their last group of digits if that is unique.
 */
export function caseIdOf(file: string): string {
  return niftiStem(file).replace(/_0000$/, '')
}

export function listMasks(dir: string, role: string): Map<string, string> {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UserError(`${role} ${dir}: not a folder; give the folder that holds the .nii.gz masks`)
  const out = new Map<string, string>()
  for (const name of readdirSync(dir).sort()) {
    if (!isNiftiPath(name) || /\.img(\.gz)?$/i.test(name)) continue
    out.set(caseIdOf(name), join(dir, name))
  }
  if (out.size === 0) throw new UserError(`${role} ${dir}: no NIfTI files (.nii, .nii.gz, .hdr) found`)
  return out
}

function digitsKey(id: string): string | null {
  const m = id.match(/(\d+)(?!.*\d)/)
  return m ? String(Number(m[1])) : null
}

/** Pairs predictions with references by case id; any id on one side only is a UserError listing them. */
export function matchCases(preds: Map<string, string>, refs: Map<string, string>, what: string): {id: string; pred: string; ref: string}[] {
  let predById = preds
  const exact = [...refs.keys()].every((id) => preds.has(id)) && [...preds.keys()].every((id) => refs.has(id))
  if (!exact) {
    // fall back to the trailing number when it identifies the cases on both sides uniquely
    const keyed = (m: Map<string, string>) => {
      const keys = [...m.keys()].map(digitsKey)
      return keys.every((k) => k !== null) && new Set(keys).size === keys.length
        ? new Map([...m].map(([id, p]) => [digitsKey(id)!, p]))
        : null
    }
    const pk = keyed(preds)
    const rk = keyed(refs)
    if (pk && rk && [...rk.keys()].every((k) => pk.has(k)) && [...pk.keys()].every((k) => rk.has(k))) {
      const refIdByKey = new Map([...refs.keys()].map((id) => [digitsKey(id)!, id]))
      predById = new Map([...pk].map(([k, p]) => [refIdByKey.get(k)!, p]))
    } else {
      const missingPred = [...refs.keys()].filter((id) => !preds.has(id))
      const extraPred = [...preds.keys()].filter((id) => !refs.has(id))
      const parts = []
      if (missingPred.length > 0) parts.push(`no prediction for ${missingPred.join(', ')}`)
      if (extraPred.length > 0) parts.push(`no reference for ${extraPred.join(', ')}`)
      throw new UserError(`${what}: case sets differ (${parts.join('; ')}); predict every reference case, or remove the extra files`)
    }
  }
  return [...refs].map(([id, ref]) => ({id, ref, pred: predById.get(id)!}))
}

/**
 * A NIfTI label map as Uint8 labels (x-fastest), with its shape, voxel spacing and largest value.
 * Every value must be an integer: a float map (probabilities, a resampled mask) would otherwise be
 * rounded into classes it never said. Without a `mapping` the values are the class indices 0..255;
 * with one (data.labelMap, --label-map) the file's values become class indices and the values it
 * does not list become background, counted in `unmapped`.
 */
export function readLabelMap(
  path: string,
  mapping?: LabelMapping,
  unmapped: Map<number, number> = new Map(),
): {labels: Uint8Array; shape: Vec3; spacing: Vec3; image: NiftiImage; max: number} {
  const image = readNifti(path)
  const shape = image.header.shape
  if (shape.length < 3 || shape.slice(3).some((d) => d !== 1))
    throw new UserError(`${path}: a label map must be a 3-D volume, got shape ${shape.join('×')}`)
  assertScalar(image, 'a label map')
  assertUsableGeometry(image)
  const [slope, inter] = image.header.effectiveSlopeInter
  const labels = new Uint8Array(shape[0] * shape[1] * shape[2])
  const notInteger = (v: number, i: number): never => {
    throw new UserError(
      `${path}: voxel ${i} holds ${v}, not a whole class value; label maps hold integers (threshold or argmax a probability map, and resample masks with nearest neighbour)`,
    )
  }
  let max = 0
  if (mapping) {
    mapping.apply(image.data, slope, inter, labels, unmapped, notInteger)
    for (const v of labels) if (v > max) max = v
  } else
    for (let i = 0; i < labels.length; i++) {
      const v = Number(image.data[i]) * slope + inter
      if (!Number.isInteger(v)) notInteger(v, i)
      if (v < 0 || v > 255)
        throw new UserError(`${path}: voxel ${i} holds ${v}, not a class index 0..255; map the values to classes with --label-map`)
      labels[i] = v
      if (v > max) max = v
    }
  return {
    labels,
    shape: [shape[0], shape[1], shape[2]],
    spacing: [image.header.zooms[0], image.header.zooms[1], image.header.zooms[2]] as Vec3,
    image,
    max,
  }
}

/**
 * Checks, before anything is predicted, that predictions named after `ids` will pair with the
 * references in `labelsDir` (the same rule as matchCases) and lie on their grids; returns the pairs.
 */
export function checkFuturePredictions(
  ids: string[],
  shapes: Map<string, number[]>,
  labelsDir: string,
  what: string,
): {id: string; pred: string; ref: string}[] {
  const pairs = matchCases(new Map(ids.map((id) => [id, `${id}.nii.gz`])), listMasks(labelsDir, '--labels'), what)
  for (const p of pairs) {
    const ref = readNiftiHeader(p.ref).shape.slice(0, 3)
    const pred = shapes.get(p.id)
    if (pred !== undefined && pred.slice(0, 3).join() !== ref.join())
      throw new UserError(
        `${what}: case ${p.id} is predicted on its image's grid ${pred.slice(0, 3).join('×')}, but the reference ${p.ref} is ${ref.join('×')}; give the labels that belong to these images`,
      )
  }
  return pairs
}

/**
 * Scores every prediction in `predDir` against the reference with the same case id in `labelsDir`.
 * Under protocol sipl every prediction first keeps only the largest component of each class (not
 * for nested regions), whichever tool made it, so that all methods are scored on equal terms.
 * `labelMaps` turn each side's values into class indices (data.labelMap); `unmapped` counts, per
 * side, the values they did not list.
 */
export function evaluateFolders(
  predDir: string,
  labelsDir: string,
  options: {numClasses?: number; what?: string; labelMaps?: {pred?: LabelMapping; ref?: LabelMapping}} & ScoreOptions,
): {results: CaseResult[]; numClasses: number; unmapped: {pred: Map<number, number>; ref: Map<number, number>}} {
  const pairs = matchCases(listMasks(predDir, '--pred'), listMasks(labelsDir, '--labels'), options.what ?? `--pred ${predDir}`)
  const unmapped = {pred: new Map<number, number>(), ref: new Map<number, number>()}
  const maps = options.labelMaps ?? {}
  const loaded = pairs.map((p) => ({
    id: p.id,
    pred: readLabelMap(p.pred, maps.pred, unmapped.pred),
    ref: readLabelMap(p.ref, maps.ref, unmapped.ref),
    predPath: p.pred,
    refPath: p.ref,
  }))
  let K = options.numClasses ?? maps.ref?.classes.length ?? 0
  if (!options.numClasses) for (const l of loaded) if (l.ref.max > K) K = l.ref.max
  if (K === 0)
    throw new UserError(
      `--labels ${labelsDir}: every reference is empty; give --config with data.classes to say how many classes there are`,
    )
  const classesFrom = options.numClasses
    ? `data.classes has ${K}`
    : `the largest label in --labels is ${K}; give --config with data.classes if there are more classes`
  const results = loaded.map((l) => {
    for (const [map, path] of [
      [l.ref, l.refPath],
      [l.pred, l.predPath],
    ] as const)
      if (map.max > K)
        throw new UserError(
          `${path}: holds label ${map.max}, but there are ${K} classes (${classesFrom}); scoring would ignore it, so fix the label numbering`,
        )
    if (l.pred.shape.join() !== l.ref.shape.join())
      throw new UserError(
        `${l.predPath}: shape ${l.pred.shape.join('×')} differs from the reference ${l.refPath} (${l.ref.shape.join('×')}); predictions must be on the reference grid`,
      )
    const predAffine = l.pred.image.header.affine
    const refAffine = l.ref.image.header.affine
    const diff = maxAffineDifference(predAffine, refAffine)
    if (diff > AFFINE_TOLERANCE)
      throw new UserError(
        `${l.predPath}: affine ${formatAffine(predAffine)} differs from the reference ${l.refPath} ${formatAffine(refAffine)} (max difference ${+diff.toPrecision(3)}, tolerance ${AFFINE_TOLERANCE}); predictions must be on the reference grid: resample them onto it, or save them with the reference's header`,
      )
    const pred =
      protocolKeepsLargestComponent(options.protocol) && !options.overlappingRegions
        ? keepLargestComponent(l.pred.labels, l.ref.shape, K)
        : l.pred.labels
    return scoreCase(l.id, pred, l.ref.labels, l.ref.shape, l.ref.spacing, K, options)
  })
  return {results, numClasses: K, unmapped}
}
