/**
 * Nothing half-written (DESIGN §8): every output goes to a temporary name in the same folder
 * and is renamed when complete, so a crash or SIGKILL leaves either the old file or the new one.
 *
 * Temporaries are named `.<name>.tmp-<host>-<pid>-<stamp>` (the old copy during a folder swap:
 * the same with `.old`), so that their owner is known: a later command that holds the folder's
 * lock (src/util/lock.ts) removes those of processes that are gone (removeStaleTemporaries).
 *
 * A folder cannot replace a non-empty folder in one rename, so writeDirAtomic swaps with two:
 * `name → .name.tmp-….old`, `.name.tmp-… → name`. A kill between them leaves no `name` but two
 * complete copies; recoverDir puts the newer one back.
 */
import {existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {basename, dirname, join} from 'node:path'

/** This machine's short host name as it appears in temporary names ([A-Za-z0-9_-]). */
export const TEMP_HOST =
  hostname()
    .split('.')[0]
    .replace(/[^A-Za-z0-9-]/g, '_') || 'host'

let sequence = 0

export function tempName(path: string): string {
  // the sequence keeps two temporaries of one process apart within a millisecond
  const stamp = `${Date.now()}${String(sequence++ % 1000).padStart(3, '0')}`
  return join(dirname(path), `.${basename(path)}.tmp-${TEMP_HOST}-${process.pid}-${stamp}`)
}

/** A temporary left in a folder, parsed from its name; `host` is undefined for names written before hosts were recorded. */
export interface Temporary {
  path: string
  /** the name it stands in for */
  base: string
  host?: string
  pid: number
  stamp: number
  /** the previous copy moved aside by a folder swap */
  old: boolean
}

const TEMPORARY = /^\.(.+)\.tmp-(?:([A-Za-z0-9_-]+)-)?(\d+)-(\d+)(\.old)?$/

export function parseTemporary(dir: string, name: string): Temporary | undefined {
  const m = TEMPORARY.exec(name)
  if (!m) return undefined
  return {path: join(dir, name), base: m[1], host: m[2], pid: Number(m[3]), stamp: Number(m[4]), old: m[5] !== undefined}
}

export function listTemporaries(dir: string): Temporary[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  return names.map((name) => parseTemporary(dir, name)).filter((t): t is Temporary => t !== undefined)
}

/** True when `pid` names a running process on this machine (EPERM: it runs, as another user). */
export function processIsAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** This process's own temporaries, and those of live processes on this machine (not ours to remove). */
function ownerIsAlive(t: Temporary): boolean {
  if (t.host !== undefined && t.host !== TEMP_HOST) return false
  return t.pid === process.pid || processIsAlive(t.pid)
}

/**
 * Removes the temporaries in `dir` (not below it) whose process is gone: on this machine a pid
 * that no longer runs; from another machine any, since the caller holds the folder's lock and so
 * no other sipl writes there. `only` limits it to the temporaries it accepts. Returns the removed paths.
 */
export function removeStaleTemporaries(dir: string, only?: (t: Temporary) => boolean): string[] {
  const removed: string[] = []
  for (const t of listTemporaries(dir)) {
    if ((only && !only(t)) || ownerIsAlive(t)) continue
    rmSync(t.path, {recursive: true, force: true})
    removed.push(t.path)
  }
  return removed
}

/** Errors from writing a temporary name the path the user knows (the final one). */
function naming(error: unknown, path: string): unknown {
  if (error && typeof error === 'object' && 'code' in error) {
    const e = error as NodeJS.ErrnoException & {dest?: string}
    e.path = path
    delete e.dest
  }
  return error
}

export function writeFileAtomic(path: string, data: string | NodeJS.ArrayBufferView): void {
  mkdirSync(dirname(path), {recursive: true})
  const temp = tempName(path)
  try {
    writeFileSync(temp, data)
    renameSync(temp, path)
  } catch (error) {
    rmSync(temp, {force: true})
    throw naming(error, path)
  }
}

/** A new, empty folder beside `path` to build its replacement in (see replaceDir). */
export function stagingDir(path: string): string {
  mkdirSync(dirname(path), {recursive: true})
  const temp = tempName(path)
  mkdirSync(temp)
  return temp
}

/** Puts the complete folder `staging` (from stagingDir) in place of `path` and removes the previous `path`. */
export function replaceDir(staging: string, path: string): void {
  const old = `${staging}.old`
  let moved = false
  try {
    renameSync(path, old)
    moved = true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw naming(error, path)
  }
  // a kill here leaves no `path`: recoverDir finds `staging` (complete) and `old`
  try {
    renameSync(staging, path)
  } catch (error) {
    if (moved) renameSync(old, path)
    throw naming(error, path)
  }
  rmSync(old, {recursive: true, force: true})
}

/**
 * Builds a whole directory under a temporary name, then swaps it in (checkpoints, cache cases).
 * `fill` writes into the folder it is given; if it fails, `path` is left as it was.
 */
export function writeDirAtomic(path: string, fill: (dir: string) => void): void {
  const temp = stagingDir(path)
  try {
    fill(temp)
    replaceDir(temp, path)
  } catch (error) {
    rmSync(temp, {recursive: true, force: true})
    throw naming(error, path)
  }
}

/**
 * The complete copy to use when `path` is missing after a kill between replaceDir's two renames:
 * the new copy (a temporary) before the old one, newest first. Reads only.
 */
export function recoverableCopy(path: string, isComplete: (dir: string) => boolean): string | undefined {
  if (existsSync(path)) return undefined
  const name = basename(path)
  const candidates = listTemporaries(dirname(path))
    .filter((t) => t.base === name && isDirectory(t.path) && isComplete(t.path))
    .sort((a, b) => Number(a.old) - Number(b.old) || b.stamp - a.stamp)
  return candidates[0]?.path
}

/** Renames recoverableCopy back to `path` (call it while holding the folder's lock); returns the copy it used. */
export function recoverDir(path: string, isComplete: (dir: string) => boolean): string | undefined {
  const copy = recoverableCopy(path, isComplete)
  if (copy !== undefined) renameSync(copy, path)
  return copy
}

export function isDirectory(path: string): boolean {
  try {
    return lstatSync(path).isDirectory() && statSync(path).isDirectory()
  } catch {
    return false
  }
}
