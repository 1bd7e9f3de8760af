/**
 * What `sipl sweep` and `sipl ablate` do: expand the plan into an experiment directory, run it with
 * the chosen executor (or print what would run), and collect. `--retry-failed` reruns only the
 * trials that failed, were cancelled or never ran, in an existing directory.
 */
import {existsSync, rmSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {isUserError, UserError} from '../errors.js'
import {removeStaleTemporaries, writeFileAtomic} from '../util/atomic.js'
import {lockFolder, type FolderLock} from '../util/lock.js'
import type {Logger} from '../log/logger.js'
import {configToYaml, loadConfig} from '../config/load.js'
import type {ExperimentConfig} from '../config/schema.js'
import {foldFile, writeFoldFiles} from './folds.js'
import {collect, type CollectResult} from './collect.js'
import {writeHParams} from './hparams.js'
import {experimentFile, readExperiment, trialDir, writeExperiment, type ExperimentRecord} from './layout.js'
import {runLocal} from './local.js'
import {ablationVariants, resolveTrials, sweepTrials, type AblationRequest, type SweepRequest, type TrialSpec} from './plan.js'
import {arrayScript, arraySpec, queueStates, resourceLines, submitSlurm, type SlurmOptions, type Submission} from './slurm.js'
import {checkRequestFits, pendingVerdict, runningJobsOfUser} from './slurm-check.js'
import {isFailed, trialStatuses} from './status.js'

export interface LaunchOptions {
  kind: ExperimentRecord['kind']
  /** experiment directory; default <runsDir>/<config name>-<sweep|ablation> */
  dir?: string
  runsDir: string
  configFile?: string
  sets: string[]
  sweep?: SweepRequest
  ablation?: AblationRequest
  executor?: 'local' | 'slurm'
  parallel?: number
  slurm?: Partial<SlurmOptions>
  dryRun: boolean
  retryFailed: boolean
  wait: boolean
  /** command a trial runs instead of `node bin/run.js` (tests) */
  sipl: string[]
  /** environment for every trial (SIPL_BACKEND from --backend) */
  env?: Record<string, string>
  /** the real sipl, for the Slurm collect job */
  collectSipl: string[]
  /** seconds between squeue polls with --wait */
  pollSeconds?: number
  /** take over the experiment folder's lock from another host (--break-lock) */
  breakLock?: boolean
}

export interface LaunchResult {
  dir: string
  kind: ExperimentRecord['kind']
  executor: 'local' | 'slurm'
  trials: {index: number; name: string; label: string; invalid?: string}[]
  ran: number[]
  skipped: ExperimentRecord['skipped']
  dryRun: boolean
  /** --dry-run: the sbatch script (slurm) or the commands (local) */
  script?: string
  submission?: Submission
  collected?: CollectResult
}

function samePlan(a: ExperimentRecord, b: ExperimentRecord): boolean {
  const key = (r: ExperimentRecord): string =>
    JSON.stringify({kind: r.kind, base: r.base, trials: r.trials.map((t) => [t.name, t.overrides]), sipl: r.sipl})
  return key(a) === key(b)
}

function buildPlan(options: LaunchOptions): {record: ExperimentRecord; configs: Map<number, string>; dir: string; base: ExperimentConfig} {
  const {config: base} = loadConfig(options.configFile, options.sets)
  const dir = resolve(options.dir ?? join(options.runsDir, `${base.name}-${options.kind === 'ablate' ? 'ablation' : 'sweep'}`))
  let specs: Omit<TrialSpec, 'configHash' | 'invalid'>[]
  let skipped: ExperimentRecord['skipped']
  if (options.kind === 'ablate') {
    const {variants, skipped: s} = ablationVariants(options.ablation ?? {remove: [], cppInit: [], cppFiles: {}}, base)
    specs = variants.map((v, index) => ({...v, index}))
    skipped = s
    if (specs.length < 2) throw new UserError('nothing to ablate: give --remove ipl|smg, --cpp-init onehot,biobert,clip,random or --all')
  } else {
    const request = options.sweep ?? {grid: [], zip: false, seeds: [], folds: 0}
    if (request.grid.length === 0 && request.seeds.length === 0 && request.folds === 0)
      throw new UserError('nothing to sweep: give --grid key=v1,v2 (repeatable), --seeds 1,2,3 or --folds 5')
    specs = sweepTrials(request, (k) => foldFile(dir, k))
  }
  const resolved = resolveTrials(specs, options.configFile, options.sets)
  // an ablation variant that equals the full model (e.g. --cpp-init random when the base is random)
  // would be a second, identical run: keep the full model's row and say so
  const fullHash = resolved[0]?.trial.configHash
  const kept = resolved.filter(
    (r, i) => !(options.kind === 'ablate' && i > 0 && r.trial.configHash !== undefined && r.trial.configHash === fullHash),
  )
  for (const r of resolved.filter((x) => !kept.includes(x)))
    (skipped ??= []).push({variant: r.trial.name, reason: 'identical to the full model (same resolved config); its row is the full model'})
  const trials = kept.map((r, index) => ({...r.trial, index}))
  const configs = new Map<number, string>()
  kept.forEach((r, index) => {
    if (r.config) configs.set(index, configToYaml(r.config))
  })
  const record: ExperimentRecord = {
    format: 1,
    kind: options.kind,
    name: base.name,
    createdAt: new Date().toISOString(),
    sipl: options.sipl,
    cwd: process.cwd(),
    ...(options.env && Object.keys(options.env).length > 0 ? {env: options.env} : {}),
    base: {config: options.configFile === undefined ? undefined : resolve(options.configFile), sets: options.sets},
    classes: [...base.data.classes],
    ...(options.kind === 'sweep'
      ? {
          axes: options.sweep?.grid ?? [],
          zip: options.sweep?.zip ?? false,
          seeds: options.sweep?.seeds ?? [],
          folds: options.sweep?.folds ?? 0,
        }
      : {}),
    ...(skipped && skipped.length > 0 ? {skipped} : {}),
    trials,
  }
  return {record, configs, dir, base}
}

function slurmSettings(options: LaunchOptions, configSlurm: SlurmOptions): SlurmOptions {
  const merged = {...configSlurm}
  for (const [key, value] of Object.entries(options.slurm ?? {})) {
    if (value !== undefined && !(Array.isArray(value) && value.length === 0)) (merged as Record<string, unknown>)[key] = value
  }
  // a retry starts from the settings it was submitted with, so the same --sbatch lines must not double
  if ((options.slurm?.extra?.length ?? 0) > 0) merged.extra = [...new Set([...configSlurm.extra, ...options.slurm!.extra!])]
  return merged
}

const ACTIVE = /^(PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|RESIZING|SUSPENDED|STAGE_OUT|SIGNALING|REQUEUE_HOLD|REQUEUE_FED)/

async function waitForJobs(dir: string, jobIds: string[], pollSeconds: number, log: Logger): Promise<void> {
  let last = ''
  let stuckBefore = ''
  for (;;) {
    const states = queueStates(jobIds)
    if (states === undefined)
      throw new UserError('squeue is not available here, so --wait cannot follow the jobs; use sipl sweep status DIR')
    const active = [...states.entries()].filter(([, e]) => ACTIVE.test(e.state))
    if (active.length === 0) return
    // a task that Slurm will never start would keep --wait here for ever; seen twice in a row, so that
    // a reason in the middle of changing is not taken for one that stays
    let running: number | undefined | null = null
    const userRunning = (): number => (running === null ? (running = runningJobsOfUser()) : running) ?? 1
    const stuck = active
      .filter(([, e]) => e.reason !== undefined && pendingVerdict(e.reason, /PerUser/.test(e.reason) ? userRunning() : 1).neverStarts)
      .map(([id, e]) => ({id, reason: e.reason!}))
    const key = stuck.map((t) => `${t.id}:${t.reason}`).join(',')
    if (stuck.length > 0 && key === stuckBefore) {
      const reason = stuck[0].reason
      const ids = stuck.filter((t) => t.reason === reason).map((t) => t.id)
      const why = pendingVerdict(reason, /PerUser/.test(reason) ? userRunning() : 1).explanation.replace(/^never starts: /, '')
      throw new UserError(
        `Slurm will never start ${ids.length === 1 ? 'task' : 'tasks'} ${ids.join(', ')} (pending reason ${reason}): ${why}; the other tasks go on (sipl sweep status ${dir})`,
      )
    }
    stuckBefore = key
    const summary = active.map(([id, e]) => `${id}:${e.state}${e.reason ? `(${e.reason})` : ''}`).join(' ')
    if (summary !== last) log.info({jobs: summary}, 'waiting for Slurm')
    last = summary
    await new Promise((r) => setTimeout(r, pollSeconds * 1000))
  }
}

/**
 * For the Slurm executor: the request compared with the partition and `sbatch --test-only` before
 * submitting (slurm-check.ts). A dry run only warns, since it may be run away from the cluster it is for.
 */
function checkSlurmRequest(
  options: LaunchOptions,
  record: ExperimentRecord,
  config: ExperimentConfig,
  indices: number[],
  log: Logger,
): void {
  if ((options.executor ?? record.executor?.kind ?? config.executor.kind) !== 'slurm' || indices.length === 0) return
  const slurm = slurmSettings(options, record.executor?.slurm ?? config.executor.slurm)
  const args = [
    ...resourceLines(slurm),
    ...slurm.extra.map((line) => line.replace(/^#SBATCH\s+/, '')),
    `--array=${arraySpec(indices, options.parallel)}`,
  ]
  try {
    const fit = checkRequestFits(slurm, args)
    for (const warning of fit.warnings) log.warn(warning)
    if (fit.testOnly) log.debug({sbatch: fit.testOnly}, 'sbatch --test-only accepts the request')
  } catch (error) {
    if (!(options.dryRun && isUserError(error))) throw error
    log.warn(`on this cluster the submission would be refused: ${(error as Error).message}`)
  }
}

/**
 * One writer per experiment folder: its lock is held while this command writes it (a dry run
 * writes nothing and takes none). A Slurm submission gives it back once submitted, so that the
 * collect job can take it; --wait takes it again for the final collection.
 */
export async function launch(options: LaunchOptions, log: Logger): Promise<LaunchResult> {
  const lock: {held?: FolderLock} = {}
  const take = async (dir: string): Promise<void> => {
    if (options.dryRun) return
    lock.held = await lockFolder(dir, {what: 'experiment folder', log, breakLock: options.breakLock, outFlag: '--out'})
    removeStaleTemporaries(dir)
    removeStaleTemporaries(join(dir, 'plots'))
  }
  const giveBack = (): void => {
    lock.held?.release()
    lock.held = undefined
  }
  try {
    return await launchLocked(options, log, take, giveBack)
  } finally {
    giveBack()
  }
}

async function launchLocked(
  options: LaunchOptions,
  log: Logger,
  take: (dir: string) => Promise<void>,
  giveBack: () => void,
): Promise<LaunchResult> {
  let record: ExperimentRecord
  let dir: string
  let indices: number[]
  if (options.retryFailed) {
    if (options.dir === undefined) throw new UserError('--retry-failed needs --out DIR, the experiment directory to retry')
    dir = resolve(options.dir)
    await take(dir)
    record = readExperiment(dir)
    if (record.kind !== options.kind)
      throw new UserError(
        `${dir} holds an ${record.kind === 'ablate' ? 'ablation' : 'sweep'}; use 'sipl ${record.kind} --retry-failed --out ${options.dir}'`,
      )
    const statuses = trialStatuses(dir, record)
    const busy = statuses.filter((s) => s.state === 'running' || s.state === 'queued')
    if (busy.length > 0 && !options.dryRun)
      log.warn({trials: busy.map((s) => s.name).join(',')}, 'these trials are still queued or running and are left alone')
    const invalid = record.trials.filter((t) => t.invalid !== undefined)
    for (const t of invalid) log.warn({trial: t.name}, `not retried: its config is invalid (${t.invalid})`)
    indices = statuses
      .filter((s) => (isFailed(s) || s.state === 'pending') && record.trials[s.index].invalid === undefined)
      .map((s) => s.index)
    if (indices.length === 0) {
      log.info('no failed trials to retry')
      return {
        dir,
        kind: record.kind,
        executor: options.executor ?? record.executor?.kind ?? 'local',
        trials: record.trials,
        ran: [],
        skipped: record.skipped,
        dryRun: options.dryRun,
        collected: collect(dir, record),
      }
    }
    checkSlurmRequest(options, record, loadConfig(record.base.config, record.base.sets).config, indices, log)
    if (!options.dryRun) for (const i of indices) rmSync(join(trialDir(dir, record.trials[i]), 'trial.json'), {force: true})
  } else {
    const plan = buildPlan(options)
    dir = plan.dir
    record = plan.record
    await take(dir)
    if (existsSync(experimentFile(dir))) {
      const existing = readExperiment(dir)
      const same = samePlan(existing, record)
      const what = same ? 'already holds this experiment' : 'holds a different experiment'
      if (!(same && options.dryRun))
        throw new UserError(
          `${dir} ${what}; see 'sipl sweep status ${dir}', rerun failed trials with --retry-failed --out ${dir}, or choose another --out`,
        )
    }
    indices = record.trials.filter((t) => t.invalid === undefined).map((t) => t.index)
    // refused before anything is written, so that the corrected command can use the same --out
    checkSlurmRequest(options, record, plan.base, indices, log)
    // a dry run writes nothing: it prints what would be submitted, with the paths it would use
    if (!options.dryRun) {
      if ((record.folds ?? 0) > 0) await writeFoldFiles(dir, plan.base, record.folds!, log)
      writeExperiment(dir, record, plan.configs)
      writeHParams(dir, record)
    }
    for (const t of record.trials.filter((t) => t.invalid !== undefined))
      log.warn({trial: t.name}, `trial recorded as failed, not run: invalid config (${t.invalid})`)
    for (const s of record.skipped ?? []) log.warn({variant: s.variant}, `skipped: ${s.reason}`)
  }

  const {config} = loadConfig(record.base.config, record.base.sets)
  const executor = options.executor ?? record.executor?.kind ?? config.executor.kind
  const result: LaunchResult = {
    dir,
    kind: record.kind,
    executor,
    trials: record.trials.map(({index, name, label, invalid}) => ({index, name, label, ...(invalid ? {invalid} : {})})),
    ran: indices,
    skipped: record.skipped,
    dryRun: options.dryRun,
  }
  // remember how it ran, so that --retry-failed submits the same way unless told otherwise
  const remember = (slurm?: SlurmOptions): void => {
    record.executor = {kind: executor, ...(slurm ? {slurm} : {})}
    writeFileAtomic(experimentFile(dir), JSON.stringify(record, null, 2) + '\n')
  }

  if (executor === 'slurm') {
    const slurm = slurmSettings(options, record.executor?.slurm ?? config.executor.slurm)
    const throttle = options.parallel
    if (options.dryRun) {
      result.script = arrayScript(dir, record, indices, slurm, throttle)
      return result
    }
    remember(slurm)
    const submission = submitSlurm(dir, record, indices, slurm, throttle, options.collectSipl)
    result.submission = submission
    log.info(
      {job: submission.jobId, collect: submission.collectJobId, trials: indices.length},
      `submitted; follow with: sipl sweep status ${dir}`,
    )
    // the collect job takes the lock when it runs
    giveBack()
    if (options.wait) {
      const jobs = [submission.jobId, ...(submission.collectJobId !== undefined ? [submission.collectJobId] : [])]
      await waitForJobs(dir, jobs, options.pollSeconds ?? 5, log)
      await take(dir)
      result.collected = collect(dir, record)
    }
    return result
  }

  if (options.dryRun) {
    result.script = indices.map((i) => `bash ${join(dir, 'trial.sh')} ${i}   # ${record.trials[i].label}`).join('\n') + '\n'
    return result
  }
  remember()
  await runLocal(dir, record, indices, options.parallel ?? config.executor.parallel, log)
  result.collected = collect(dir, record)
  return result
}
