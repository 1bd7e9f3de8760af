/**
 * Expansion of one base config into trials (STYLE 7: named overlays, expanded before submission).
 * A trial is a list of `--set`-style overrides applied on top of the base config and its own
 * `--set`s; its resolved config is validated here, before anything runs or is submitted.
 *
 * - sweep: `--grid key=v1,v2` axes, cartesian (default) or `--zip` (element-wise), then × seeds × folds;
 * - ablate: the full model plus named variants (`no-ipl`, `no-smg`, `cpp-onehot`, …), each a small overlay.
 */
import {parseDocument} from 'yaml'
import {UserError} from '../errors.js'
import {configHash, loadConfig} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'

export type ParamValue = string | number | boolean | null

export interface TrialSpec {
  /** position in the plan = Slurm array task id */
  index: number
  /** directory name under <experiment>/trials/; parses back to the params (`q=8_tau.end=0.1`) */
  name: string
  /** ablation variant name ('full', 'no-ipl', …) or undefined for sweeps */
  variant?: string
  /** human label for tables, e.g. '− IPL' */
  label: string
  /** the swept values, keyed by dotted config path */
  params: Record<string, ParamValue>
  /** overrides on top of the base config's own --set list, in `key=value` form */
  overrides: string[]
  /** hash of the resolved config (equal hashes = the same run) */
  configHash?: string
  /** the resolved config could not be built: the trial is recorded as failed and never runs */
  invalid?: string
}

export interface Axis {
  key: string
  values: ParamValue[]
}

/** `model.queries=8,16,32` → {key, values: [8, 16, 32]}; values are typed like `--set` values (YAML). */
export function parseAxis(text: string, flag = '--grid'): Axis {
  const eq = text.indexOf('=')
  if (eq <= 0) throw new UserError(`${flag} ${text}: expected dotted.key=v1,v2,…, e.g. ${flag} model.queries=8,16,32`)
  const key = text.slice(0, eq).trim()
  if (!/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/.test(key)) throw new UserError(`${flag} ${text}: '${key}' is not a dotted key like model.queries`)
  const values = splitValues(text.slice(eq + 1)).map((raw) => typedValue(raw, `${flag} ${text}`))
  if (values.length === 0) throw new UserError(`${flag} ${text}: no values after '='`)
  return {key, values}
}

/** Splits on commas outside [] and {} so a value can itself be a list: `a=[8,16],[16,32]`. */
function splitValues(raw: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of raw) {
    if (ch === '[' || ch === '{') depth++
    if (ch === ']' || ch === '}') depth--
    if (ch === ',' && depth === 0) {
      parts.push(current)
      current = ''
    } else current += ch
  }
  parts.push(current)
  return parts.map((p) => p.trim()).filter((p) => p !== '')
}

function typedValue(raw: string, where: string): ParamValue {
  const doc = parseDocument(raw)
  if (doc.errors.length > 0) throw new UserError(`${where}: value '${raw}' is not valid YAML`)
  const value = doc.toJS() as unknown
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return value as ParamValue
  // lists/maps stay in YAML flow text; the override parser types them again
  return raw
}

export function parseIntList(text: string, flag: string): number[] {
  const values = text.split(',').map((s) => s.trim())
  if (values.some((v) => !/^-?\d+$/.test(v))) throw new UserError(`${flag} ${text}: expected comma-separated integers, e.g. ${flag} 1,2,3`)
  return values.map(Number)
}

/**
 * Short, readable names for keys in trial names: the key without its section (model.queries →
 * queries, smg.tau.end → tau.end), or the whole key when that would be ambiguous.
 */
export function shortKeys(keys: string[]): Map<string, string> {
  const strip = (key: string): string => (key.includes('.') ? key.slice(key.indexOf('.') + 1) : key)
  const out = new Map<string, string>()
  for (const key of keys) {
    const short = strip(key)
    out.set(key, keys.some((other) => other !== key && strip(other) === short) ? key : short)
  }
  return out
}

function valueText(value: ParamValue): string {
  return value === null ? 'null' : String(value)
}

function safeName(text: string): string {
  // keep names valid as folder names and Slurm-script words
  return text.replace(/[^A-Za-z0-9._=+-]/g, '-')
}

export interface SweepRequest {
  grid: Axis[]
  zip: boolean
  seeds: number[]
  /** K for K-fold cross-validation (0 = none): every setting runs on folds 0..K-1 */
  folds: number
}

/** All combinations (or zipped tuples) × seeds × folds, in a stable order. */
export function expandSweep(request: SweepRequest): {params: Record<string, ParamValue>}[] {
  let combos: Record<string, ParamValue>[] = [{}]
  if (request.zip && request.grid.length > 0) {
    const n = request.grid[0].values.length
    const bad = request.grid.find((a) => a.values.length !== n)
    if (bad)
      throw new UserError(
        `--zip needs every --grid to have the same number of values: ${request.grid[0].key} has ${n}, ${bad.key} has ${bad.values.length}`,
      )
    combos = Array.from({length: n}, (_, i) => Object.fromEntries(request.grid.map((a) => [a.key, a.values[i]])))
  } else {
    for (const axis of request.grid) combos = combos.flatMap((c) => axis.values.map((v) => ({...c, [axis.key]: v})))
  }
  const keys = request.grid.map((a) => a.key)
  const dup = keys.find((k, i) => keys.indexOf(k) !== i)
  if (dup) throw new UserError(`--grid ${dup} is given twice; put all its values in one --grid ${dup}=v1,v2`)
  if (request.seeds.length > 0) combos = combos.flatMap((c) => request.seeds.map((s) => ({...c, seed: s})))
  if (request.folds > 0) combos = combos.flatMap((c) => Array.from({length: request.folds}, (_, f) => ({...c, fold: f})))
  return combos.map((params) => ({params}))
}

/**
 * Names like `queries=8_tau.end=0.1_seed=1`, unique because the params are. The `fold` param is
 * not a config key: fold k becomes `data.splitsFile=<foldFile(k)>`.
 */
export function sweepTrials(request: SweepRequest, foldFile?: (fold: number) => string): Omit<TrialSpec, 'configHash' | 'invalid'>[] {
  const combos = expandSweep(request)
  const keys = [...new Set(combos.flatMap((c) => Object.keys(c.params)))]
  const short = shortKeys(keys)
  return combos.map(({params}, index) => {
    const parts = Object.entries(params).map(([k, v]) => `${short.get(k)}=${valueText(v)}`)
    const label = parts.length > 0 ? parts.join(', ') : 'base'
    return {
      index,
      name: parts.length > 0 ? safeName(parts.join('_')) : 'base',
      label,
      params,
      overrides: Object.entries(params).map(([k, v]) =>
        k === 'fold' ? `data.splitsFile=${foldFile ? foldFile(v as number) : `folds/fold-${String(v)}.json`}` : `${k}=${valueText(v)}`,
      ),
    }
  })
}

export const CPP_INITS = ['onehot', 'biobert', 'clip', 'random'] as const
const CPP_LABELS: Record<string, string> = {onehot: 'one-hot CPP', biobert: 'BioBERT CPP', clip: 'CLIP CPP', random: 'RanInit CPP'}

export interface AblationRequest {
  /** modules removed one at a time (Table 4): 'ipl', 'smg' */
  remove: string[]
  /** CPP initialisations (Table 5) */
  cppInit: string[]
  /** embedding file per CPP init (clip/biobert need one) */
  cppFiles: Record<string, string>
}

export interface AblationVariants {
  variants: Omit<TrialSpec, 'index' | 'configHash' | 'invalid'>[]
  /** variants left out, each with the reason (e.g. no embedding file for clip) */
  skipped: {variant: string; reason: string}[]
}

/**
 * The full model first, then one overlay per removed module and per CPP init. An embedding-based
 * init without a file is skipped with a reason rather than failing the whole ablation.
 */
export function ablationVariants(request: AblationRequest, base: ExperimentConfig): AblationVariants {
  const variants: AblationVariants['variants'] = [{name: 'full', variant: 'full', label: 'SIPL (full)', params: {}, overrides: []}]
  const skipped: AblationVariants['skipped'] = []
  for (const module of request.remove) {
    const m = module.toLowerCase()
    if (m !== 'ipl' && m !== 'smg') throw new UserError(`--remove ${module}: unknown module; use ipl or smg (Table 4)`)
    variants.push({
      name: `no-${m}`,
      variant: `no-${m}`,
      label: `− ${m.toUpperCase()}`,
      params: {[`model.${m}`]: false},
      overrides: [`model.${m}=false`],
    })
  }
  for (const init of request.cppInit) {
    const i = init.toLowerCase()
    if (!(CPP_INITS as readonly string[]).includes(i))
      throw new UserError(`--cpp-init ${init}: unknown initialisation; use ${CPP_INITS.join(', ')} (Table 5)`)
    const overrides = [`model.cpp.init=${i}`]
    if (i === 'clip' || i === 'biobert') {
      const file = request.cppFiles[i] ?? base.model.cpp.file
      if (file === undefined) {
        skipped.push({
          variant: `cpp-${i}`,
          reason: `cpp-init ${i} needs a K×e embedding file (sipl never downloads a model): give --cpp-file ${i}=PATH or --set model.cpp.file=PATH`,
        })
        continue
      }
      overrides.push(`model.cpp.file=${file}`)
    }
    variants.push({name: `cpp-${i}`, variant: `cpp-${i}`, label: CPP_LABELS[i], params: {'model.cpp.init': i}, overrides})
  }
  const names = variants.map((v) => v.name)
  const dup = names.find((n, i) => names.indexOf(n) !== i)
  if (dup) throw new UserError(`variant ${dup} is asked for twice; give each --remove / --cpp-init value once`)
  return {variants, skipped}
}

/**
 * Resolves every trial's config (base file + base --set + trial overrides) so that mistakes show up
 * before anything runs. A trial whose config is invalid is kept, marked invalid with the message,
 * and reported as failed; when every trial is invalid the request itself is wrong and this throws.
 */
export function resolveTrials<T extends Omit<TrialSpec, 'configHash' | 'invalid'>>(
  trials: T[],
  configFile: string | undefined,
  baseSets: string[],
): {trial: T & Pick<TrialSpec, 'configHash' | 'invalid'>; config?: ExperimentConfig}[] {
  type Resolved = {trial: T & Pick<TrialSpec, 'configHash' | 'invalid'>; config?: ExperimentConfig}
  const resolved = trials.map((trial): Resolved => {
    try {
      const {config} = loadConfig(configFile, [...baseSets, ...trial.overrides])
      return {trial: {...trial, configHash: configHash(config)}, config}
    } catch (error) {
      if (error instanceof UserError) return {trial: {...trial, invalid: error.message}}
      throw error
    }
  })
  if (resolved.length > 0 && resolved.every((r) => r.trial.invalid !== undefined)) {
    throw new UserError(`no trial has a valid config; the first says: ${resolved[0].trial.invalid}`)
  }
  return resolved
}
