/**
 * The experiment directory: one folder per ablation or sweep, holding every trial's run directory and
 * everything needed to (re)run, inspect and collect them from files alone (STYLE 6).
 *
 *   <dir>/experiment.json          the plan: base config, axes or variants, trials (index, name, overrides)
 *   <dir>/trial.sh                 runs trial INDEX: train (--resume if checkpoints/last exists), then eval
 *   <dir>/trials/<name>/           an ordinary run directory (config.yaml, checkpoints/, eval/, …) plus
 *                                  trial.json (state, written by trial.sh) and trial.log (its output)
 *   <dir>/slurm/array-<k>.sbatch   the k-th submitted job array; collect.sbatch; submissions.json
 *   <dir>/logs/                    Slurm output files
 *   <dir>/results.{csv,md,json}, <dir>/plots/*.svg   written by collection
 *   <dir>/events.out.tfevents.*, trials/<name>/events.out.tfevents.*.sipl-session-*   TensorBoard HParams (hparams.ts)
 */
import {existsSync, mkdirSync, readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {UserError} from '../errors.js'
import {projectRoot} from '../project-root.js'
import {writeFileAtomic} from '../util/atomic.js'
import type {AblationVariants, Axis, TrialSpec} from './plan.js'

export interface ExperimentRecord {
  format: 1
  kind: 'sweep' | 'ablate'
  name: string
  createdAt: string
  /** the command line a trial runs instead of `node bin/run.js` (tests use a fake) */
  sipl: string[]
  /** the working directory sipl ran in; trials run there too (relative paths in configs) */
  cwd?: string
  /** environment every trial gets (e.g. SIPL_BACKEND from --backend) */
  env?: Record<string, string>
  base: {config?: string; sets: string[]}
  classes: string[]
  axes?: Axis[]
  zip?: boolean
  seeds?: number[]
  folds?: number
  skipped?: AblationVariants['skipped']
  /** how it was last run: --retry-failed reuses it unless told otherwise */
  executor?: {kind: 'local' | 'slurm'; slurm?: SlurmSettings}
  trials: TrialSpec[]
}

/** executor.slurm as resolved for a submission (config + flags) */
export interface SlurmSettings {
  partition?: string
  account?: string
  time: string
  gpus: number
  cpusPerTask: number
  mem: string
  extra: string[]
  setup: string[]
}

export interface TrialRecord {
  state: 'running' | 'done' | 'failed' | 'cancelled'
  index: number
  job?: string
  host?: string
  pid?: number
  startedAt?: string
  updatedAt?: string
  exitCode?: number | null
  error?: string
}

export function defaultSipl(): string[] {
  return [process.execPath, join(projectRoot(), 'bin/run.js')]
}

export const experimentFile = (dir: string): string => join(dir, 'experiment.json')
export const trialDir = (dir: string, trial: Pick<TrialSpec, 'name'>): string => join(dir, 'trials', trial.name)

export function readExperiment(dir: string): ExperimentRecord {
  const file = experimentFile(dir)
  if (!existsSync(file))
    throw new UserError(
      `${dir}: not an ablation/sweep directory (no experiment.json); give the folder that 'sipl sweep' or 'sipl ablate' created`,
    )
  const record = JSON.parse(readFileSync(file, 'utf8')) as ExperimentRecord
  if (record.format !== 1) throw new UserError(`${file}: format ${String(record.format)} is not one this sipl reads (1); upgrade sipl`)
  return record
}

export function readTrialRecord(dir: string, trial: Pick<TrialSpec, 'name'>): TrialRecord | undefined {
  const file = join(trialDir(dir, trial), 'trial.json')
  if (!existsSync(file)) return undefined
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TrialRecord
  } catch {
    return undefined
  }
}

/** Writes experiment.json, each trial's resolved config.yaml and trial.sh. */
export function writeExperiment(dir: string, record: ExperimentRecord, configs: Map<number, string>): void {
  mkdirSync(join(dir, 'trials'), {recursive: true})
  mkdirSync(join(dir, 'logs'), {recursive: true})
  for (const trial of record.trials) {
    const folder = trialDir(dir, trial)
    mkdirSync(folder, {recursive: true})
    const yaml = configs.get(trial.index)
    if (yaml !== undefined) writeFileAtomic(join(folder, 'config.yaml'), yaml)
    if (trial.invalid !== undefined) {
      const failed: TrialRecord = {state: 'failed', index: trial.index, exitCode: 2, error: `invalid config: ${trial.invalid}`}
      writeFileAtomic(join(folder, 'trial.json'), JSON.stringify(failed, null, 2) + '\n')
    }
  }
  writeFileAtomic(join(dir, 'trial.sh'), trialScript(dir, record))
  writeFileAtomic(experimentFile(dir), JSON.stringify(record, null, 2) + '\n')
}

/**
 * The sipl command line in the script. For the real sipl the Node executable can be replaced per
 * cluster with SIPL_NODE (e.g. `export SIPL_NODE=$(command -v node)` after `module load` in
 * executor.slurm.setup), since compute nodes may have Node somewhere else than the login node.
 */
function siplWords(sipl: string[]): string {
  if (sipl.length === 2 && sipl[1].endsWith('bin/run.js'))
    return `"\${SIPL_NODE:-${sipl[0].replace(/(["\\$`])/g, '\\$1')}}" ${shQuote(sipl[1])}`
  return sipl.map(shQuote).join(' ')
}

/** Single-quoted for bash: safe for any path or name. */
export function shQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`
}

/**
 * The body every trial runs, locally (`bash trial.sh INDEX`) or as Slurm array task INDEX. It only
 * calls `sipl train` and `sipl eval` (STYLE 7) and records the trial's state in trial.json, so the
 * status of a trial is readable from its folder alone; SIGTERM (scancel, preemption, time limit)
 * records 'cancelled'. `--resume` when the trial has a last checkpoint, so a requeued task continues.
 * `sipl preprocess` runs first under a lock, so parallel trials never build the shared cache at once.
 */
export function trialScriptBody(dir: string, record: ExperimentRecord): string {
  const runnable = record.trials.map((t) => shQuote(t.name)).join(' ')
  const env = Object.entries(record.env ?? {})
    .map(([k, v]) => `export ${k}=${shQuote(v)}\n`)
    .join('')
  return `set -uo pipefail
${env}# use the CPUs Slurm gave the task, not every core of the node (SIPL_THREADS set by the user wins)
if [ -n "\${SLURM_CPUS_PER_TASK:-}" ] && [ -z "\${SIPL_THREADS:-}" ]; then export SIPL_THREADS=$SLURM_CPUS_PER_TASK; fi
EXPERIMENT=${shQuote(resolve(dir))}
SIPL=(${siplWords(record.sipl)})
TRIALS=(${runnable})
INDEX=\${SLURM_ARRAY_TASK_ID:-\${1:-}}
if [[ ! $INDEX =~ ^[0-9]+$ ]] || ((INDEX >= \${#TRIALS[@]})); then
  echo "usage: $0 INDEX   (a trial number 0..$((\${#TRIALS[@]} - 1)) of this experiment)" >&2
  exit 2
fi
T=$EXPERIMENT/trials/\${TRIALS[$INDEX]}
JOB=\${SLURM_ARRAY_JOB_ID:+\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}}
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CHILD=
state() { # STATE EXIT_CODE: trial.json, replaced atomically
  printf '{"state":"%s","index":%d,"job":"%s","host":"%s","pid":%d,"startedAt":"%s","updatedAt":"%s","exitCode":%s}\\n' \\
    "$1" "$INDEX" "\${JOB:-}" "$(hostname)" $$ "$STARTED" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$2" >"$T/.trial.json.tmp" &&
    mv -f "$T/.trial.json.tmp" "$T/trial.json"
}
on_term() {
  [ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD"
  echo "== $(date -u +%FT%TZ) terminated (cancelled, preempted or out of time)" >>"$T/trial.log"
  state cancelled 143
  exit 143
}
trap on_term TERM INT
# run in the background and wait, so that a signal is handled at once, not after the child ends
run() {
  "$@" >>"$T/trial.log" 2>&1 &
  CHILD=$!
  wait "$CHILD"
  local rc=$?
  CHILD=
  return $rc
}
state running null
RESUME=()
# a kill between the two renames that replace checkpoints/last leaves only a complete hidden copy, which --resume puts back
if [ -e "$T/checkpoints/last" ] || compgen -G "$T/checkpoints/.last.tmp-*/state.json" >/dev/null; then RESUME=(--resume); fi
echo "== $(date -u +%FT%TZ) trial $INDEX \${TRIALS[$INDEX]} on $(hostname)\${JOB:+ (Slurm job $JOB)}\${RESUME[*]:+, resuming}" >>"$T/trial.log"
# trials share the preprocessed cache: the first task makes it while the others wait on the lock,
# then find it complete (preprocess skips finished cases), so no two trials write it at once
if command -v flock >/dev/null 2>&1; then
  run flock "$EXPERIMENT/.preprocess.lock" "\${SIPL[@]}" preprocess --config "$T/config.yaml"
else
  run "\${SIPL[@]}" preprocess --config "$T/config.yaml"
fi
rc=$?
if [ $rc = 0 ]; then
  run "\${SIPL[@]}" train --config "$T/config.yaml" --out "$T" "\${RESUME[@]}"
  rc=$?
fi
if [ $rc = 0 ]; then
  run "\${SIPL[@]}" eval --run "$T" --json
  rc=$?
fi
if [ $rc = 0 ] && [ ! -s "$T/eval/summary.json" ]; then
  echo "== eval finished but wrote no eval/summary.json" >>"$T/trial.log"
  rc=1
fi
if [ $rc = 0 ]; then state done 0; else state failed $rc; fi
echo "== $(date -u +%FT%TZ) exit $rc" >>"$T/trial.log"
exit $rc
`
}

export function trialScript(dir: string, record: ExperimentRecord): string {
  return `#!/usr/bin/env bash
# sipl ${record.kind} '${record.name}': runs one trial of ${record.trials.length}: bash trial.sh INDEX
${trialScriptBody(dir, record)}`
}
