/**
 * Paired comparisons of per-case scores (DESIGN §5): two-sided paired t-test and Wilcoxon
 * signed-rank test from @stdlib, and Holm's step-down correction. The conventions follow
 * scipy.stats.ttest_rel / scipy.stats.wilcoxon (defaults), which is what papers report:
 * - t-test: t = mean(d) / (sd(d) / √n), d = a − b, df = n − 1, two-sided Student-t p.
 * - Wilcoxon: differences equal to 0 are dropped ('wilcox' zero method); the exact null
 *   distribution is used when n ≤ 50 with no ties and no zeros, otherwise the normal
 *   approximation WITHOUT continuity correction (scipy's default `correction=False`; @stdlib's
 *   default is `true`, so it is switched off here). The reported statistic is scipy's
 *   two-sided one, min(R+, R−).
 */
import {createRequire} from 'node:module'
import {UserError} from '../errors.js'

const require = createRequire(import.meta.url)

interface StdlibResult {
  pValue: number
  statistic: number
  df?: number
}
type TTest = (x: number[], y: number[], options?: {alternative?: string}) => StdlibResult
type Wilcoxon = (x: number[], y: number[], options?: {alternative?: string; correction?: boolean; zeroMethod?: string}) => StdlibResult

const ttest = require('@stdlib/stats-ttest') as TTest
const wilcoxon = require('@stdlib/stats-wilcoxon') as Wilcoxon

function checkPaired(a: number[], b: number[], minimum: number, what: string): void {
  if (a.length !== b.length)
    throw new UserError(`${what}: the two score lists differ in length (${a.length} vs ${b.length}); pair them by case`)
  if (a.length < minimum) throw new UserError(`${what} needs at least ${minimum} paired cases, got ${a.length}`)
  for (const v of [...a, ...b]) if (!Number.isFinite(v)) throw new UserError(`${what}: a per-case score is not a finite number (${v})`)
}

export interface TTestResult {
  t: number
  df: number
  /** two-sided; NaN when every difference is equal (zero variance), as scipy returns */
  p: number
}

/** Two-sided paired t-test of a against b (scipy.stats.ttest_rel(a, b)). */
export function pairedTTest(a: number[], b: number[]): TTestResult {
  checkPaired(a, b, 2, 'paired t-test')
  const d = a.map((v, i) => v - b[i])
  const mean = d.reduce((s, v) => s + v, 0) / d.length
  const variance = d.reduce((s, v) => s + (v - mean) ** 2, 0) / (d.length - 1)
  if (variance === 0) return {t: mean === 0 ? NaN : Math.sign(mean) * Infinity, df: d.length - 1, p: mean === 0 ? NaN : 0}
  const result = ttest(a, b, {alternative: 'two-sided'})
  return {t: result.statistic, df: result.df ?? d.length - 1, p: result.pValue}
}

export interface WilcoxonResult {
  /** min(R+, R−), scipy's two-sided statistic */
  statistic: number
  /** R+, the sum of ranks of positive differences a − b */
  rPlus: number
  p: number
  /** 'exact' or 'normal' (approximation) */
  method: 'exact' | 'normal'
  /** pairs dropped because a − b = 0 */
  zeros: number
}

/** Two-sided Wilcoxon signed-rank test of a against b (scipy.stats.wilcoxon(a, b)). */
export function wilcoxonSignedRank(a: number[], b: number[]): WilcoxonResult {
  checkPaired(a, b, 2, 'Wilcoxon test')
  const d = a.map((v, i) => v - b[i]).filter((v) => v !== 0)
  const zeros = a.length - d.length
  if (d.length === 0) return {statistic: 0, rPlus: 0, p: 1, method: 'exact', zeros}
  const result = wilcoxon(a, b, {alternative: 'two-sided', correction: false, zeroMethod: 'wilcox'})
  const n = d.length
  const abs = d.map(Math.abs)
  const ties = new Set(abs).size !== abs.length
  const method = n <= 50 && zeros === 0 && !ties ? 'exact' : 'normal'
  // @stdlib reports R+ as the statistic in the exact branch and a z-score in the normal one;
  // recompute R+ from average ranks so both branches report scipy's min(R+, R−)
  const order = abs.map((v, i) => [v, i] as const).sort((x, y) => x[0] - y[0])
  const ranks = new Array<number>(n)
  for (let i = 0; i < n;) {
    let j = i
    while (j + 1 < n && order[j + 1][0] === order[i][0]) j++
    for (let k = i; k <= j; k++) ranks[order[k][1]] = (i + j) / 2 + 1
    i = j + 1
  }
  const rPlus = d.reduce((s, v, i) => s + (v > 0 ? ranks[i] : 0), 0)
  const rMinus = (n * (n + 1)) / 2 - rPlus
  return {statistic: Math.min(rPlus, rMinus), rPlus, p: Math.min(1, result.pValue), method, zeros}
}

/**
 * Holm–Bonferroni step-down adjusted p-values, in the input order: sort ascending, multiply the
 * i-th smallest (0-based) by (m − i), take the running maximum, cap at 1. NaN stays NaN.
 */
export function holm(ps: number[]): number[] {
  const indexed = ps.map((p, i) => [p, i] as const).filter(([p]) => !Number.isNaN(p))
  indexed.sort((x, y) => x[0] - y[0])
  const m = indexed.length
  const adjusted = ps.map(() => NaN)
  let running = 0
  indexed.forEach(([p, i], rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p))
    adjusted[i] = running
  })
  return adjusted
}
