/**
 * The preprocessed cache on disk (format fixed in the common brief), read and written case by case:
 *   <cache>/plan.json            what was done, classes, spacing, patch, intensity statistics, cases
 *   <cache>/<id>.json            per-case header (CaseHeader: grid, affine, original geometry, crop, pad)
 *   <cache>/<id>.image.f32       Float32 little-endian, channels-last: index = c + C·(x + X·(y + Y·z))
 *   <cache>/<id>.label.u8        Uint8, x-fastest, 0 = background, 1..K
 *   <cache>/splits.json          {train, val, test}
 * Raw typed arrays load with one read and no parsing. Every file is written atomically and the
 * case's .json last, so a case counts as done only when its header exists with the current
 * settings hash (cache-staleness.ts); an interrupted run leaves nothing that looks finished.
 */
import {existsSync, readFileSync, statSync} from 'node:fs'
import {isAbsolute, join, resolve} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {environment} from '../paths.js'
import {writeFileAtomic} from '../util/atomic.js'
import {dataRoot} from './datasets.js'
import type {CaseHeader} from './preprocess.js'
import {readOrCreateSplits, type Splits} from './splits.js'

export type {CaseHeader} from './preprocess.js'

export interface Plan {
  version: number
  preset: string
  classes: string[]
  /** label value → name, 0 = background */
  labels: Record<string, string>
  channels: number
  spacing: [number, number, number]
  patch: [number, number, number]
  intensity: Record<string, unknown>
  cases: string[]
  overlappingRegions: boolean
  /** BraTS: region name → the exclusive label values it unites */
  regions?: Record<string, number[]>
  /** data.labelMap as applied: class → source values, and the source values it left out → voxels over all cases */
  labelMap?: Record<string, number[]>
  unmappedLabels?: Record<string, number>
  orientation: 'RAS'
  cropForeground: boolean
  dataRoot: string
  settingsHash: string
  /** shapes after preprocessing: median and per case, [X, Y, Z] */
  medianShape: [number, number, number]
  steps: string[]
  created: string
}

export interface LoadedCase {
  id: string
  image: Float32Array
  label?: Uint8Array
  shape: [number, number, number]
  channels: number
  spacing: [number, number, number]
  header: CaseHeader
}

/** config.data.cache (relative to SIPL_DATA_DIR) or <data root>/preprocessed. */
export function cacheDirOf(config: ExperimentConfig): string {
  const cache = config.data.cache
  if (cache === undefined) return join(dataRoot(config), 'preprocessed')
  return isAbsolute(cache) ? cache : resolve(environment().dataDir, cache)
}

export const cacheFile = {
  header: (dir: string, id: string) => join(dir, `${id}.json`),
  image: (dir: string, id: string) => join(dir, `${id}.image.f32`),
  label: (dir: string, id: string) => join(dir, `${id}.label.u8`),
}

export function readJson<T>(path: string, what: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T
  } catch (error) {
    throw new UserError(`${path}: ${what} is unreadable (${(error as Error).message}); run 'sipl preprocess --force' to rebuild the cache`)
  }
}

export function loadPlan(cacheDir: string): Plan {
  const path = join(cacheDir, 'plan.json')
  if (!existsSync(path)) throw new UserError(`${cacheDir}: no plan.json, the cache is missing or incomplete; run 'sipl preprocess --config …'`)
  return readJson<Plan>(path, 'plan.json')
}

export function sizeOf(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return -1
  }
}

/** A Float32Array / Uint8Array over a file's bytes (copied only when the buffer is misaligned). */
function readTyped<T extends Float32Array | Uint8Array>(path: string, Type: {new (b: ArrayBuffer, o: number, n: number): T; BYTES_PER_ELEMENT: number}, n: number): T {
  const bytes = readFileSync(path)
  if (bytes.length !== n * Type.BYTES_PER_ELEMENT)
    throw new UserError(`${path}: ${bytes.length} bytes, expected ${n * Type.BYTES_PER_ELEMENT}; the cache is damaged, run 'sipl preprocess --force'`)
  if (bytes.byteOffset % Type.BYTES_PER_ELEMENT === 0) return new Type(bytes.buffer as ArrayBuffer, bytes.byteOffset, n)
  const copy = new Uint8Array(bytes)
  return new Type(copy.buffer, 0, n)
}

/** A case's header alone (its grids and geometry), without the voxels. */
export function loadCaseHeader(cacheDir: string, id: string): CaseHeader {
  const headerPath = cacheFile.header(cacheDir, id)
  if (!existsSync(headerPath)) throw new UserError(`${cacheDir}: case '${id}' is not in the cache; run 'sipl preprocess' or fix splits.json`)
  return readJson<CaseHeader>(headerPath, `the header of case ${id}`)
}

export function loadCase(cacheDir: string, id: string): LoadedCase {
  const header = loadCaseHeader(cacheDir, id)
  const voxels = header.shape[0] * header.shape[1] * header.shape[2]
  const image = readTyped(cacheFile.image(cacheDir, id), Float32Array, voxels * header.channels)
  const labelPath = cacheFile.label(cacheDir, id)
  const label = existsSync(labelPath) ? readTyped(labelPath, Uint8Array, voxels) : undefined
  return {id, image, label, shape: header.shape, channels: header.channels, spacing: header.spacing, header}
}

export function loadSplits(config: ExperimentConfig, cacheDir: string): Splits {
  return readOrCreateSplits(config, cacheDir, loadPlan(cacheDir).cases)
}

/** Channel-planar → channels-last interleaved (the tensor layout [Z, Y, X, C]). */
export function interleave(channels: Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0]
  const C = channels.length
  const n = channels[0].length
  const out = new Float32Array(n * C)
  for (let c = 0; c < C; c++) {
    const ch = channels[c]
    for (let i = 0; i < n; i++) out[c + C * i] = ch[i]
  }
  return out
}

export function writeCase(cacheDir: string, header: CaseHeader, channels: Float32Array[], label?: Uint8Array): void {
  const image = interleave(channels)
  writeFileAtomic(cacheFile.image(cacheDir, header.id), new Uint8Array(image.buffer, image.byteOffset, image.byteLength))
  if (label) writeFileAtomic(cacheFile.label(cacheDir, header.id), label)
  writeFileAtomic(cacheFile.header(cacheDir, header.id), JSON.stringify(header) + '\n')
}
