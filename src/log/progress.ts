/**
 * Progress on a terminal is a cli-progress bar on stderr; elsewhere (CI, Slurm, pipes) the bar
 * would be invisible, so the same updates become a log line at most every `everySeconds`.
 */
import cliProgress from 'cli-progress'
import type {Logger} from './logger.js'

export interface Progress {
  update(done: number, fields?: Record<string, number | string>): void
  stop(): void
}

export function progress(log: Logger, label: string, total: number, options: {everySeconds?: number; quiet?: boolean} = {}): Progress {
  const everyMs = (options.everySeconds ?? 30) * 1000
  if (process.stderr.isTTY && !options.quiet) {
    const bar = new cliProgress.SingleBar(
      {format: `${label} [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted} {extra}`, hideCursor: true, stream: process.stderr},
      cliProgress.Presets.shades_classic,
    )
    bar.start(total, 0, {extra: ''})
    return {
      update(done, fields = {}) {
        bar.update(done, {extra: formatFields(fields)})
      },
      stop() {
        bar.stop()
      },
    }
  }
  const started = Date.now()
  let last = 0
  return {
    update(done, fields = {}) {
      const now = Date.now()
      if (now - last < everyMs && done < total) return
      last = now
      const elapsed = (now - started) / 1000
      const eta = done > 0 ? Math.round((elapsed / done) * (total - done)) : undefined
      log.info({...fields, done, total, eta_s: eta}, label)
    },
    stop() {},
  }
}

function formatFields(fields: Record<string, number | string>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toPrecision(4)) : v}`)
    .join(' ')
}
