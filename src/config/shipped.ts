/**
 * The experiment configs shipped with sipl (`experiments/*.yaml`) and how a `--config` value finds
 * a file. Users type the name they saw in an example (`--config btcv.yaml`) from wherever their
 * data is, so a bare name that is not in the working directory falls back to the shipped folder.
 * A file in the working directory always wins: a copy made with `sipl config init` shadows the original.
 */
import {existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {basename, dirname, extname, isAbsolute, join, resolve} from 'node:path'
import {UserError} from '../errors.js'
import {projectRoot} from '../project-root.js'

export const SHIPPED_CONFIG_DIR = join(projectRoot(), 'experiments')

export interface ShippedConfig {
  /** the name without extension: btcv */
  name: string
  file: string
  /** the first sentence of the file's leading comment */
  summary: string
}

const YAML_EXTENSIONS = ['.yaml', '.yml']

/** The first sentence of the file's leading comment block. */
function summaryOf(file: string): string {
  const lines = readFileSync(file, 'utf8').split('\n')
  const end = lines.findIndex((l) => !l.startsWith('#'))
  const text = (end === -1 ? lines : lines.slice(0, end)).map((l) => l.replace(/^#+\s*/, '').trim()).join(' ')
  const stop = text.search(/\.(\s|$)/)
  return (stop === -1 ? text : text.slice(0, stop + 1)).trim()
}

export function shippedConfigs(): ShippedConfig[] {
  if (!existsSync(SHIPPED_CONFIG_DIR)) return []
  return readdirSync(SHIPPED_CONFIG_DIR)
    .filter((f) => YAML_EXTENSIONS.includes(extname(f)))
    .sort()
    .map((f) => ({name: basename(f, extname(f)), file: join(SHIPPED_CONFIG_DIR, f), summary: summaryOf(join(SHIPPED_CONFIG_DIR, f))}))
}

function shippedNames(): string {
  const names = shippedConfigs().map((c) => c.name)
  return names.length > 0 ? names.join(', ') : '(none found)'
}

/** The shipped config called `name` (btcv, btcv.yaml or experiments/btcv.yaml), if there is one. */
export function findShipped(name: string): ShippedConfig | undefined {
  const bare = name.replace(/^(\.\/)?experiments\//, '')
  if (bare.includes('/') || bare.includes('\\')) return undefined
  const stem = YAML_EXTENSIONS.includes(extname(bare)) ? basename(bare, extname(bare)) : bare
  return shippedConfigs().find((c) => c.name === stem)
}

export interface ResolvedConfigFile {
  /** the file to read */
  path: string
  /** set when the name was not found here and the shipped config was taken */
  shipped?: ShippedConfig
}

/**
 * Where a `--config` value points. In order: the path as given; for a bare name (`btcv`, `btcv.yaml`)
 * the same name with .yaml/.yml in the working directory; a shipped config of that name (also for
 * `experiments/btcv.yaml`, the form the README's examples use, typed outside the repository).
 * Anything else is a UserError that lists the shipped configs.
 */
export function resolveConfigFile(file: string): ResolvedConfigFile {
  if (existsSync(file)) {
    if (statSync(file).isDirectory())
      throw new UserError(`${file}: is a folder; give --config a YAML file, e.g. ${join(file, 'demo.yaml')}`)
    return {path: file}
  }
  const bare = !file.includes('/') && !file.includes('\\')
  if (bare && extname(file) === '') {
    for (const ext of YAML_EXTENSIONS) if (existsSync(file + ext)) return {path: file + ext}
  }
  const shipped = isAbsolute(file) ? undefined : findShipped(file)
  if (shipped !== undefined) return {path: shipped.file, shipped}
  throw new UserError(
    `${file}: config file not found in ${resolve('.')}${bare ? ' and not a shipped config' : ''}; shipped configs: ${shippedNames()} (sipl config list shows them; sipl config init NAME copies one here to edit)`,
  )
}

/**
 * `sipl config init NAME [TARGET]`: copies the shipped config NAME to TARGET (a folder, default the
 * working directory, or a .yaml/.yml file name) to be edited. An existing file is kept unless `force`.
 */
export function copyShipped(name: string, target: string | undefined, force: boolean): {from: string; to: string} {
  const shipped = findShipped(name)
  if (shipped === undefined) throw new UserError(`${name}: not a shipped config; shipped configs: ${shippedNames()} (sipl config list)`)
  const to = resolve(
    target !== undefined && YAML_EXTENSIONS.includes(extname(target)) ? target : join(target ?? '.', basename(shipped.file)),
  )
  if (existsSync(to) && statSync(to).isDirectory())
    throw new UserError(`${to}: is a folder; give a folder or a .yaml file name to copy ${shipped.name} to`)
  if (existsSync(to) && !force)
    throw new UserError(`${to}: already exists, left as it is; choose another place, or overwrite it with --force`)
  mkdirSync(dirname(to), {recursive: true})
  // written under a temporary name first; linked into place only if nothing is there (a second copy
  // started at the same time cannot be overwritten), or renamed over it with --force
  const temp = join(dirname(to), `.${basename(to)}.tmp-${process.pid}-${Date.now()}`)
  writeFileSync(temp, readFileSync(shipped.file))
  try {
    if (force) renameSync(temp, to)
    else {
      try {
        linkSync(temp, to)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST')
          throw new UserError(`${to}: already exists, left as it is; choose another place, or overwrite it with --force`)
        throw error
      }
    }
  } finally {
    rmSync(temp, {force: true})
  }
  return {from: shipped.file, to}
}
