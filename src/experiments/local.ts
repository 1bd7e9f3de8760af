/**
 * Local executor: runs trials as child processes (`bash <dir>/trial.sh INDEX`, the same script a
 * Slurm array task runs), one after another or N at a time. A failing trial is logged and the others
 * go on; the caller collects afterwards.
 */
import {spawn} from 'node:child_process'
import {join} from 'node:path'
import type {Logger} from '../log/logger.js'
import {trialDir, type ExperimentRecord} from './layout.js'
import {failureHint} from './status.js'

export interface LocalOutcome {
  index: number
  exitCode: number | null
  seconds: number
}

function runTrial(dir: string, index: number, cwd: string | undefined): Promise<{exitCode: number | null}> {
  return new Promise((resolve) => {
    // in the directory the experiment was created from, where its relative config paths point
    const child = spawn('bash', [join(dir, 'trial.sh'), String(index)], {stdio: 'ignore', cwd: cwd ?? process.cwd()})
    child.on('error', () => resolve({exitCode: null}))
    child.on('exit', (code, signal) => resolve({exitCode: code ?? (signal ? 128 : null)}))
  })
}

export async function runLocal(
  dir: string,
  record: ExperimentRecord,
  indices: number[],
  parallel: number,
  log: Logger,
): Promise<LocalOutcome[]> {
  const queue = [...indices]
  const outcomes: LocalOutcome[] = []
  let finished = 0
  const worker = async (): Promise<void> => {
    for (let index = queue.shift(); index !== undefined; index = queue.shift()) {
      const trial = record.trials[index]
      const start = Date.now()
      log.info({trial: trial.name}, `trial ${index + 1}/${record.trials.length} started`)
      const {exitCode} = await runTrial(dir, index, record.cwd)
      const seconds = (Date.now() - start) / 1000
      outcomes.push({index, exitCode, seconds})
      finished++
      const progress = `${finished}/${indices.length}`
      if (exitCode === 0) log.info({trial: trial.name, seconds: Math.round(seconds)}, `trial done (${progress})`)
      else {
        const hint = failureHint(join(trialDir(dir, trial), 'trial.log'))
        log.warn(
          {trial: trial.name, exitCode, log: join(trialDir(dir, trial), 'trial.log')},
          `trial failed (${progress})${hint ? `: ${hint}` : ''}`,
        )
      }
    }
  }
  await Promise.all(Array.from({length: Math.max(1, Math.min(parallel, indices.length))}, worker))
  return outcomes.sort((a, b) => a.index - b.index)
}
