/**
 * Source label values → class indices (`data.labelMap`). Datasets label organs with their own
 * values (TotalSegmentator: spleen 1, kidney_right 2, kidney_left 3, liver 5, …); the config's
 * classes are 1..K in `data.classes` order. A map gives each class one or several source values;
 * every other value becomes background (0) and is counted, so the caller can say once which
 * values it dropped. The same mapping serves preprocessing (the training labels) and evaluation
 * (both sides of `sipl eval --pred --labels`).
 */
import {existsSync, readFileSync} from 'node:fs'
import {parse} from 'yaml'
import {labelMapIssues, labelMapSchema, type LabelMapConfig} from '../config/sections/data.js'
import {UserError} from '../errors.js'

export class LabelMapping {
  /** source value → class index 1..K; 0 = not mapped */
  private readonly table: Uint8Array
  readonly classes: string[]

  /** `labelMap` is assumed valid for `classes` (labelMapIssues is empty), as the config schema ensures. */
  constructor(
    readonly labelMap: LabelMapConfig,
    classes: readonly string[],
  ) {
    this.classes = [...classes]
    const entries = classes.map((name, k) => ({k: k + 1, values: labelMap[name] ?? []}))
    const largest = Math.max(0, ...entries.flatMap((e) => e.values))
    this.table = new Uint8Array(largest + 1)
    for (const e of entries) for (const v of e.values) this.table[v] = e.k
  }

  /** The class index (1..K) of a source value, 0 when the map does not list it. */
  classOf(value: number): number {
    // undefined outside the table and for fractions
    return this.table[value] ?? 0
  }

  /**
   * Writes the class index of every value (stored · slope + inter) into `out`; values the map does
   * not list become 0 and are counted in `unmapped` (value → voxels; 0 itself is not counted).
   * A value that is not a whole number is reported through `notInteger` (the caller's error);
   * `round` rounds values first (predicted masks from other tools may be stored as floats).
   */
  apply(
    stored: ArrayLike<number>,
    slope: number,
    inter: number,
    out: Uint8Array,
    unmapped: Map<number, number>,
    notInteger: (value: number, index: number) => never,
    round = false,
  ): void {
    const table = this.table
    for (let i = 0; i < out.length; i++) {
      const v = round ? Math.round(stored[i] * slope + inter) : stored[i] * slope + inter
      // undefined for values outside the table and for fractions
      const k = table[v]
      if (k) {
        out[i] = k
        continue
      }
      if (!Number.isInteger(v)) notInteger(v, i)
      out[i] = 0
      if (v !== 0) unmapped.set(v, (unmapped.get(v) ?? 0) + 1)
    }
  }
}

/** Adds the counts of `from` into `into` (value → voxels). */
export function addUnmapped(into: Map<number, number>, from: Map<number, number> | Record<string, number>): void {
  for (const [v, n] of from instanceof Map ? from : Object.entries(from).map(([k, n]) => [Number(k), n] as const))
    into.set(v, (into.get(v) ?? 0) + n)
}

/** "4 (1 234 voxels), 6 (87 voxels)", in value order. */
export function describeUnmapped(unmapped: Map<number, number>): string {
  return [...unmapped]
    .sort((a, b) => a[0] - b[0])
    .map(([v, n]) => `${v} (${n} voxel${n === 1 ? '' : 's'})`)
    .join(', ')
}

/**
 * A label map from a YAML/JSON file (`sipl eval --label-map FILE`): `{spleen: 1, kidney: [2, 3]}`.
 * The classes are `classes` when given (a config's data.classes), else the file's keys in order.
 * Anything wrong is a UserError naming the file and the key.
 */
export function loadLabelMapFile(file: string, classes?: readonly string[], flag = '--label-map'): LabelMapping {
  if (!existsSync(file)) throw new UserError(`${flag} ${file}: no such file; give a YAML or JSON mapping like {spleen: 1, kidney: [2, 3]}`)
  let raw: unknown
  try {
    raw = parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new UserError(`${flag} ${file}: not valid YAML/JSON (${(error as Error).message.split('\n')[0]})`)
  }
  const parsed = labelMapSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue.path.length > 0 ? ` ${issue.path[0]}` : ''
    const message = issue.path.length === 0 ? 'expected a mapping of class names to label values, e.g. {spleen: 1, kidney: [2, 3]}' : issue.message
    throw new UserError(`${flag} ${file}${where}: ${message}`)
  }
  const names = classes ?? Object.keys(parsed.data)
  if (names.length === 0) throw new UserError(`${flag} ${file}: the mapping is empty; give each class its label value(s)`)
  const issues = labelMapIssues(parsed.data, names)
  if (issues.length > 0) {
    const first = issues[0]
    throw new UserError(`${flag} ${file}${first.path.length > 0 ? ` ${first.path[0]}` : ''}: ${first.message}`)
  }
  return new LabelMapping(parsed.data, names)
}
