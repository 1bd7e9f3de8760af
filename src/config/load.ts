/**
 * YAML → `--set` overrides → strict schema → frozen object.
 * Every failure is a UserError that points at the offending text:
 *   `experiments/demo.yaml:12:5 model.queries: Expected number, received string`
 *   `--set model.queries=abc model.queries: Expected number, received string`
 */
import {createHash} from 'node:crypto'
import {existsSync, readFileSync, statSync} from 'node:fs'
import {isMap, isScalar, LineCounter, parseDocument, stringify, type Document, type Node} from 'yaml'
import type {ZodIssue} from 'zod'
import {UserError} from '../errors.js'
import {experimentSchema, type ExperimentConfig} from './schema.js'
import {resolveConfigFile, type ShippedConfig} from './shipped.js'

export interface LoadedConfig {
  config: ExperimentConfig
  /** the file it came from, or undefined for defaults only */
  source?: string
  /** set when `source` is a shipped config found by its bare name (shipped.ts) */
  shipped?: ShippedConfig
  overrides: string[]
}

interface Override {
  text: string
  path: string[]
  value: unknown
}

type Json = null | boolean | number | string | Json[] | {[key: string]: Json}

const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

export function parseOverride(text: string): Override {
  const eq = text.indexOf('=')
  if (eq <= 0) throw new UserError(`--set ${text}: expected dotted.key=value, e.g. --set model.queries=16`)
  const key = text.slice(0, eq).trim()
  const raw = text.slice(eq + 1)
  if (!/^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$/.test(key)) {
    throw new UserError(`--set ${text}: '${key}' is not a dotted key like train.epochs`)
  }
  // these would reach Object.prototype through the plain objects the overrides are merged into
  const reserved = key.split('.').find((part) => RESERVED_KEYS.has(part))
  if (reserved !== undefined) throw new UserError(`--set ${text}: '${reserved}' is not a config key (no section or key has that name)`)
  // YAML flow syntax types the value: 16 → number, true → boolean, [8, 16] → list, abc → string
  const doc = parseDocument(raw === '' ? '""' : raw)
  if (doc.errors.length > 0) throw new UserError(`--set ${text}: value is not valid YAML (${doc.errors[0].message.split('\n')[0]})`)
  return {text, path: key.split('.'), value: valuesOf(doc, `--set ${text}`)}
}

/**
 * The document as plain values. The yaml package refuses aliases that would expand beyond a
 * limit (a "billion laughs" document of a few hundred bytes that expands to gigabytes); that, and
 * any other failure to build the values, is the user's file, not a bug.
 */
function valuesOf(doc: Document, where: string): unknown {
  try {
    return doc.toJS() as unknown
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]
    const fix = /alias/i.test(message) ? 'write the values out instead of nesting aliases' : 'fix the YAML'
    throw new UserError(`${where}: the YAML cannot be turned into values (${message}); ${fix}`)
  }
}

function setIn(target: Record<string, unknown>, path: string[], value: unknown, override: Override): void {
  let node: Record<string, unknown> = target
  for (const [i, key] of path.slice(0, -1).entries()) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined
    if (next === undefined || next === null) {
      node[key] = {}
    } else if (typeof next !== 'object' || Array.isArray(next)) {
      throw new UserError(`--set ${override.text}: ${path.slice(0, i + 1).join('.')} is not a section, so it has no key '${path[i + 1]}'`)
    }
    node = node[key] as Record<string, unknown>
  }
  node[path[path.length - 1]] = value
}

function startsWith(path: readonly (string | number)[], prefix: readonly string[]): boolean {
  return prefix.every((key, i) => String(path[i]) === key)
}

/** The YAML node at `path`, or the deepest ancestor that exists. */
function nodeAt(doc: Document, path: readonly (string | number)[], keyOf?: string): Node | undefined {
  let node: unknown = doc.contents
  let found = node as Node | undefined
  for (const key of [...path, ...(keyOf === undefined ? [] : [keyOf])]) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key))
      if (!pair) break
      if (key === keyOf) return pair.key as Node
      node = pair.value
    } else if (node && typeof node === 'object' && 'items' in node && Array.isArray((node as {items: unknown[]}).items)) {
      node = (node as {items: unknown[]}).items[Number(key)]
    } else break
    if (node && typeof node === 'object' && 'range' in node) found = node as Node
  }
  return found
}

function describe(issue: ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')} (check the spelling; sipl never ignores a key)`
  }
  if (issue.code === 'invalid_union_discriminator') {
    return `${issue.message}`
  }
  return issue.message
}

function formatIssue(
  issue: ZodIssue,
  file: string | undefined,
  doc: Document | undefined,
  lines: LineCounter,
  overrides: Override[],
): string {
  const unknownKey = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined
  const keyPath = [...issue.path, ...(unknownKey === undefined ? [] : [unknownKey])].join('.') || '(top level)'
  const override = [...overrides]
    .reverse()
    .find((o) => startsWith([...issue.path, ...(unknownKey ? [unknownKey] : [])], o.path) || startsWith(o.path, issue.path.map(String)))
  if (override) return `--set ${override.text} ${keyPath}: ${describe(issue)}`
  let where = file ?? '(defaults)'
  const node = doc ? nodeAt(doc, issue.path, unknownKey) : undefined
  if (node?.range) {
    const {line, col} = lines.linePos(node.range[0])
    where = `${file}:${line}:${col}`
  }
  return `${where} ${keyPath}: ${describe(issue)}`
}

export function loadConfig(given: string | undefined, setArgs: string[] = []): LoadedConfig {
  const lines = new LineCounter()
  let doc: Document | undefined
  let raw: Record<string, unknown> = {}
  const resolved = given === undefined ? undefined : resolveConfigFile(given)
  const file = resolved?.path
  if (file !== undefined) {
    if (!existsSync(file))
      throw new UserError(`${file}: config file not found (give --config a path to a YAML file, e.g. experiments/demo.yaml)`)
    const stat = statSync(file)
    if (stat.isDirectory()) throw new UserError(`${file}: is a folder; give --config a YAML file, e.g. experiments/demo.yaml`)
    // a device (/dev/zero) would be read until memory runs out; pipes (<(…)) are fine
    if (!stat.isFile() && !stat.isFIFO()) throw new UserError(`${file}: not a regular file; give --config a YAML file`)
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (error) {
      throw new UserError(
        `${file}: cannot read the config (${(error as NodeJS.ErrnoException).code ?? String(error)}); check its permissions`,
      )
    }
    doc = parseDocument(text, {lineCounter: lines, prettyErrors: false})
    if (doc.errors.length > 0) {
      const error = doc.errors[0]
      const {line, col} = lines.linePos(error.pos[0])
      throw new UserError(`${file}:${line}:${col} YAML syntax error: ${error.message.split('\n')[0]}`)
    }
    const value = valuesOf(doc, file)
    if (value !== null && value !== undefined) {
      if (typeof value !== 'object' || Array.isArray(value))
        throw new UserError(`${file}:1:1 (top level): expected a mapping of sections (name, data, model, train, …)`)
      raw = value as Record<string, unknown>
    }
  }
  const overrides = setArgs.map(parseOverride)
  for (const override of overrides) setIn(raw, override.path, override.value, override)

  const result = experimentSchema.safeParse(raw)
  if (!result.success) {
    const messages = result.error.issues.map((issue) => formatIssue(issue, file, doc, lines, overrides))
    throw new UserError(
      messages.length === 1 ? messages[0] : `${messages[0]} (and ${messages.length - 1} more: ${messages.slice(1).join('; ')})`,
    )
  }
  return {config: deepFreeze(result.data), source: file, overrides: setArgs, ...(resolved?.shipped ? {shipped: resolved.shipped} : {})}
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

/** The resolved config as YAML, for `<run>/config.yaml`: loading it again gives the same config. */
export function configToYaml(config: ExperimentConfig): string {
  return stringify(config as unknown as Json, {lineWidth: 0})
}

/** Stable hash of the resolved config (keys sorted), recorded in every run manifest. */
export function configHash(config: ExperimentConfig): string {
  const canonical = (value: unknown): unknown =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.keys(value)
            .sort()
            .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
        )
      : Array.isArray(value)
        ? value.map(canonical)
        : value
  return createHash('sha256')
    .update(JSON.stringify(canonical(config)))
    .digest('hex')
    .slice(0, 12)
}
