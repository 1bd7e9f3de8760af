/**
 * Paired comparison of methods on the same cases (DESIGN §5, the paper's Tables 2/3): the
 * evaluated method (`main`, or --name) against each --compare method, on per-case mean Dice,
 * with the two-sided paired t-test and/or the Wilcoxon signed-rank test, and optionally Holm's
 * correction over all comparisons of one test.
 */
import {UserError} from '../errors.js'
import {holm, pairedTTest, wilcoxonSignedRank} from './stats.js'

export interface MethodScores {
  name: string
  meanDice: number
  perCase: Record<string, number>
  /** null for a class the protocol scored in no case */
  perClass: Record<string, number | null>
  source: string
}

export interface TestResult {
  a: string
  b: string
  test: 'ttest' | 'wilcoxon'
  p: number
  /** Holm-adjusted p (only with --holm) */
  pHolm?: number
  statistic: number
  df?: number
  n: number
  /** mean of a − b per-case Dice */
  meanDifference: number
}

/** Every method must score exactly the same cases; otherwise a UserError lists what is missing where. */
export function checkSameCases(methods: MethodScores[]): string[] {
  const reference = Object.keys(methods[0].perCase).sort()
  const problems: string[] = []
  for (const m of methods.slice(1)) {
    const have = new Set(Object.keys(m.perCase))
    const missing = reference.filter((id) => !have.has(id))
    const extra = [...have].filter((id) => !reference.includes(id)).sort()
    if (missing.length > 0) problems.push(`${m.name} lacks ${missing.join(', ')}`)
    if (extra.length > 0) problems.push(`${m.name} has cases ${methods[0].name} lacks: ${extra.join(', ')}`)
  }
  if (problems.length > 0)
    throw new UserError(`the methods were not evaluated on the same cases (${problems.join('; ')}); paired tests need identical case sets`)
  return reference
}

export function compareMethods(methods: MethodScores[], which: {ttest: boolean; wilcoxon: boolean; holm: boolean}): TestResult[] {
  if (methods.length < 2) return []
  const cases = checkSameCases(methods)
  const [main, ...others] = methods
  const a = cases.map((id) => main.perCase[id])
  const results: TestResult[] = []
  for (const other of others) {
    const b = cases.map((id) => other.perCase[id])
    const meanDifference = a.reduce((s, v, i) => s + v - b[i], 0) / a.length
    if (which.ttest) {
      const t = pairedTTest(a, b)
      results.push({a: main.name, b: other.name, test: 'ttest', p: t.p, statistic: t.t, df: t.df, n: a.length, meanDifference})
    }
    if (which.wilcoxon) {
      const w = wilcoxonSignedRank(a, b)
      results.push({a: main.name, b: other.name, test: 'wilcoxon', p: w.p, statistic: w.statistic, n: a.length, meanDifference})
    }
  }
  if (which.holm)
    for (const test of ['ttest', 'wilcoxon'] as const) {
      const group = results.filter((r) => r.test === test)
      holm(group.map((r) => r.p)).forEach((p, i) => (group[i].pHolm = p))
    }
  return results
}
