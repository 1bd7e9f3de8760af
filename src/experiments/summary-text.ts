/** Plain-text lines for the terminal: per-trial status and where the results went. */
import type {CollectResult} from './collect.js'
import type {TrialStatus} from './status.js'

export function statusLines(statuses: TrialStatus[]): string[] {
  const width = Math.max(5, ...statuses.map((s) => s.name.length))
  return statuses.map(
    (s) =>
      `  ${String(s.index).padStart(3)}  ${s.name.padEnd(width)}  ${s.state.padEnd(9)}${s.job ? ` ${s.job}` : ''}${s.detail ? `  ${s.detail}` : ''}`,
  )
}

/** One line when Slurm holds trials that it will never start, with the way out; undefined otherwise. */
export function neverStartsLine(statuses: TrialStatus[], dir: string, kind: 'sweep' | 'ablate'): string | undefined {
  const stuck = statuses.filter((s) => s.neverStarts)
  if (stuck.length === 0) return undefined
  const reasons = [...new Set(stuck.map((s) => s.pendingReason))].join(', ')
  const jobs = [...new Set(stuck.map((s) => s.job?.split('_')[0]).filter((j) => j !== undefined))].join(' ')
  return `${stuck.length} of ${statuses.length} trials will never start as submitted (Slurm: ${reasons}): scancel ${jobs}, then sipl ${kind} --out ${dir} --retry-failed with the request changed (see each trial above)`
}

export function collectLines(result: CollectResult): string[] {
  const c = result.counts
  const lines = [
    `${c.done} done, ${c.failed + c.cancelled} failed${c.running + c.queued + c.pending > 0 ? `, ${c.running + c.queued + c.pending} not finished` : ''} (${result.rows.length} trials)`,
  ]
  for (const row of result.rows) {
    const score = row.meanDice === null ? '' : ` mean Dice ${row.meanDice.toFixed(4)}`
    const extra = 'p' in row && row.p !== null ? ` Δ ${row.delta!.toFixed(4)} p ${row.p.toPrecision(3)}` : ''
    lines.push(`  ${row.label}: ${row.state === 'cancelled' ? 'failed (cancelled)' : row.state}${score}${extra}`)
  }
  for (const note of result.notes) lines.push(`  note: ${note}`)
  lines.push(`tables: ${result.files.filter((f) => /results\.(md|csv|json)$/.test(f)).join(', ')}`)
  if (result.plots.length > 0) lines.push(`plots: ${result.plots.join(', ')}`)
  return lines
}
