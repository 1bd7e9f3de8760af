/**
 * Nothing half-written (DESIGN §8): every output goes to a temporary name in the same folder
 * and is renamed when complete, so a crash or SIGKILL leaves either the old file or the new one.
 */
import {mkdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {basename, dirname, join} from 'node:path'

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`)
}

export function writeFileAtomic(path: string, data: string | NodeJS.ArrayBufferView): void {
  mkdirSync(dirname(path), {recursive: true})
  const temp = tempName(path)
  try {
    writeFileSync(temp, data)
    renameSync(temp, path)
  } catch (error) {
    rmSync(temp, {force: true})
    throw error
  }
}

/**
 * Builds a whole directory under a temporary name, then swaps it in (checkpoints, cache cases).
 * `fill` writes into the folder it is given.
 */
export function writeDirAtomic(path: string, fill: (dir: string) => void): void {
  mkdirSync(dirname(path), {recursive: true})
  const temp = tempName(path)
  const old = `${temp}.old`
  mkdirSync(temp, {recursive: true})
  try {
    fill(temp)
    try {
      renameSync(path, old)
    } catch {
      // no previous version
    }
    renameSync(temp, path)
    rmSync(old, {recursive: true, force: true})
  } catch (error) {
    rmSync(temp, {recursive: true, force: true})
    throw error
  }
}
