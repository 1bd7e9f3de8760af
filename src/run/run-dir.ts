/**
 * A run directory (DESIGN §2, §8): everything one `sipl train` produced, self-contained enough
 * to repeat the run from its own folder.
 *
 *   <run>/config.yaml        the resolved config (load it again and get the same config)
 *   <run>/plan.json          the preprocessing plan of the cache it was trained on (sipl predict reads it)
 *   <run>/manifest.json      sipl version, git commit, backend + reason, seed, config hash,
 *                            Node version, start/end (updated at the end of each command)
 *   <run>/train.log          pino JSON lines
 *   <run>/metrics.jsonl|csv  one row per epoch
 *   <run>/events.out.tfevents.<time>.<host>  TensorBoard, one file per invocation (src/log/tensorboard.ts)
 *   <run>/validation-overlay.png  the last validation's overlay figure
 *   <run>/checkpoints/{last,best,epoch-N}/  model.safetensors, optimizer.safetensors, state.json
 *   <run>/eval/…             written by `sipl eval --run`
 */
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {configHash, configToYaml, loadConfig} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {environment} from '../paths.js'
import {projectRoot, siplVersion} from '../project-root.js'
import {writeFileAtomic} from '../util/atomic.js'

/** The commit of the sipl checkout, with '-dirty' when it has local changes; null outside git. */
export function gitCommit(): string | null {
  try {
    const opts = {
      cwd: projectRoot(),
      encoding: 'utf8' as const,
      stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    }
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim() !== ''
    return dirty ? `${commit}-dirty` : commit
  } catch {
    return null
  }
}

export interface Manifest {
  sipl: string
  git: string | null
  command: string
  argv: string[]
  backend: {name: string; reason: string} | null
  seed: number
  configHash: string
  node: string
  platform: string
  start: string
  end: string | null
  /** earlier invocations on the same run directory (a resumed run keeps its history) */
  previous?: Omit<Manifest, 'previous'>[]
}

export const runPaths = (dir: string) => ({
  dir,
  config: join(dir, 'config.yaml'),
  plan: join(dir, 'plan.json'),
  manifest: join(dir, 'manifest.json'),
  log: join(dir, 'train.log'),
  metricsJsonl: join(dir, 'metrics.jsonl'),
  metricsCsv: join(dir, 'metrics.csv'),
  curve: join(dir, 'training-curve.svg'),
  checkpoints: join(dir, 'checkpoints'),
  checkpoint: (name: string) => join(dir, 'checkpoints', name),
  eval: join(dir, 'eval'),
})
export type RunPaths = ReturnType<typeof runPaths>

/** `--out DIR` or `$SIPL_RUNS_DIR/<config name>`. */
export function runDirFor(config: ExperimentConfig, out?: string): string {
  return resolve(out ?? join(environment().runsDir, config.name))
}

export function writeResolvedConfig(paths: RunPaths, config: ExperimentConfig): void {
  writeFileAtomic(paths.config, configToYaml(config))
}

/** The resolved config a run was trained with. */
export function readRunConfig(dir: string): ExperimentConfig {
  const file = join(dir, 'config.yaml')
  if (!existsSync(file))
    throw new UserError(`${dir}: not a sipl run directory (no config.yaml); give the folder 'sipl train' wrote, e.g. runs/demo`)
  return loadConfig(file).config
}

export function startManifest(
  paths: RunPaths,
  fields: {command: string; config: ExperimentConfig; backend: {name: string; reason: string} | null},
): Manifest {
  let previous: Manifest['previous']
  if (existsSync(paths.manifest)) {
    try {
      const old = JSON.parse(readFileSync(paths.manifest, 'utf8')) as Manifest
      const {previous: older, ...rest} = old
      previous = [...(older ?? []), rest]
    } catch {
      previous = undefined
    }
  }
  const manifest: Manifest = {
    sipl: siplVersion(),
    git: gitCommit(),
    command: fields.command,
    argv: process.argv.slice(2),
    backend: fields.backend,
    seed: fields.config.seed,
    configHash: configHash(fields.config),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    start: new Date().toISOString(),
    end: null,
    ...(previous ? {previous} : {}),
  }
  writeFileAtomic(paths.manifest, JSON.stringify(manifest, null, 2) + '\n')
  return manifest
}

export function finishManifest(paths: RunPaths, manifest: Manifest, extra: Record<string, unknown> = {}): void {
  writeFileAtomic(paths.manifest, JSON.stringify({...manifest, ...extra, end: new Date().toISOString()}, null, 2) + '\n')
}
