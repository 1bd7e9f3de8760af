/**
 * The package's root folder (package.json, bin/, experiments/, build/, the PyTorch scripts of
 * src/bench/): the nearest folder above this module that holds a package.json, so the same code
 * finds it from dist/src/ after `npm run build` and from src/ under tsx; and the package's version.
 */
import {existsSync, readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

let root: string | undefined

export function projectRoot(): string {
  if (root === undefined) {
    let dir = dirname(fileURLToPath(import.meta.url))
    while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
    root = dir
  }
  return root
}

/** package.json's version; 'unknown' when it cannot be read (a manifest must still be written) */
export function siplVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as {version: string}).version
  } catch {
    return 'unknown'
  }
}
