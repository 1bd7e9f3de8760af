/**
 * The paired tests against reference values computed independently of @stdlib (no scipy on this
 * machine, so scipy's ttest_rel / wilcoxon formulas are re-derived here):
 * - t-test: t = mean(d) / (sd(d)/√n) by hand; the two-sided p from the closed-form Student-t
 *   series of Abramowitz & Stegun 26.7.3/26.7.4 (integer df), itself checked against the
 *   published critical values t(0.975; 9) = 2.262, t(0.995; 9) = 3.250, t(0.975; 5) = 2.571.
 * - Wilcoxon (exact, n ≤ 50, no ties or zeros: scipy's 'auto' choice): the null distribution of
 *   R+ by enumerating all 2^n sign patterns, p = 2·P(W ≤ min(R+, R−)), capped at 1.
 * - Wilcoxon with ties: scipy's normal approximation with tie correction and no continuity
 *   correction, Φ from the Taylor series of erf.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {holm, pairedTTest, wilcoxonSignedRank} from '../../src/evaluate/stats.js'

// per-case Dice of two methods on 10 cases; differences have distinct magnitudes, one negative
const A = [0.812, 0.845, 0.779, 0.901, 0.856, 0.823, 0.79, 0.868, 0.84, 0.877]
const B = [0.801, 0.829, 0.785, 0.88, 0.842, 0.81, 0.77, 0.861, 0.818, 0.869]

/** two-sided P(|T| ≥ t) for Student's t with integer df ν (A&S 26.7.3 odd ν, 26.7.4 even ν) */
function studentTwoSided(t: number, nu: number): number {
  const theta = Math.atan(Math.abs(t) / Math.sqrt(nu))
  const c2 = Math.cos(theta) ** 2
  let a: number
  if (nu % 2 === 1) {
    // A = (2/π)[θ + sinθ(cosθ + (2/3)cos³θ + … + (2·4…(ν−3))/(1·3…(ν−2)) cos^(ν−2)θ)], ν > 1
    let term = Math.cos(theta)
    let sum = nu > 1 ? term : 0
    for (let k = 3; k <= nu - 2; k += 2) {
      term *= ((k - 1) / k) * c2
      sum += term
    }
    a = (2 / Math.PI) * (theta + Math.sin(theta) * sum)
  } else {
    // A = sinθ[1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + … + (1·3…(ν−3))/(2·4…(ν−2)) cos^(ν−2)θ]
    let term = 1
    let sum = 1
    for (let k = 2; k <= nu - 2; k += 2) {
      term *= ((k - 1) / k) * c2
      sum += term
    }
    a = Math.sin(theta) * sum
  }
  return 1 - a
}

function erf(x: number): number {
  let sum = 0
  let term = x
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1)
    term *= (-x * x) / (n + 1)
  }
  return (2 / Math.sqrt(Math.PI)) * sum
}

test('the Student-t series reproduces published critical values', () => {
  assert.ok(Math.abs(studentTwoSided(2.262, 9) - 0.05) < 2e-4)
  assert.ok(Math.abs(studentTwoSided(3.25, 9) - 0.01) < 1e-4)
  assert.ok(Math.abs(studentTwoSided(2.571, 5) - 0.05) < 1e-4)
  assert.ok(Math.abs(studentTwoSided(2.228, 10) - 0.05) < 2e-4)
})

test('paired t-test equals scipy.stats.ttest_rel on the fixture', () => {
  const d = A.map((v, i) => v - B[i])
  const mean = d.reduce((s, v) => s + v, 0) / d.length
  const sd = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / (d.length - 1))
  const t = mean / (sd / Math.sqrt(d.length))
  // Σd = 0.126, mean(d) = 0.0126
  assert.ok(Math.abs(mean - 0.0126) < 1e-12)
  const got = pairedTTest(A, B)
  assert.equal(got.df, 9)
  assert.ok(Math.abs(got.t - t) < 1e-9, `t ${got.t} vs ${t}`)
  const p = studentTwoSided(t, 9)
  assert.ok(Math.abs(got.p - p) < 1e-9, `p ${got.p} vs ${p}`)
  // symmetric in the order of the arguments, t flips sign
  const back = pairedTTest(B, A)
  assert.ok(Math.abs(back.t + t) < 1e-9 && Math.abs(back.p - p) < 1e-12)
})

test('Wilcoxon signed-rank (exact) equals scipy.stats.wilcoxon on the fixture', () => {
  // |d| ranks: 0.006→1 (the only negative), 0.007→2, 0.008→3, 0.011→4, 0.013→5, 0.014→6,
  // 0.016→7, 0.020→8, 0.021→9, 0.022→10; R− = 1, R+ = 54, statistic = min = 1.
  // Exact: subsets of {1..10} with rank sum ≤ 1 are {} and {1}: p = 2 · 2 / 2^10 = 0.00390625.
  const got = wilcoxonSignedRank(A, B)
  assert.equal(got.method, 'exact')
  assert.equal(got.statistic, 1)
  assert.equal(got.rPlus, 54)
  assert.ok(Math.abs(got.p - 4 / 1024) < 1e-12, `p ${got.p}`)
  // a second fixture by enumeration: n = 8, mixed signs
  const a = [0.5, 0.61, 0.72, 0.4, 0.9, 0.33, 0.64, 0.81]
  const b = [0.45, 0.68, 0.6, 0.41, 0.82, 0.36, 0.5, 0.79]
  const d = a.map((v, i) => v - b[i])
  const order = d.map((v, i) => [Math.abs(v), i]).sort((x, y) => x[0] - y[0])
  const rank = new Array<number>(8)
  order.forEach(([, i], r) => (rank[i] = r + 1))
  const rPlus = d.reduce((s, v, i) => s + (v > 0 ? rank[i] : 0), 0)
  const stat = Math.min(rPlus, 36 - rPlus)
  let atMost = 0
  for (let mask = 0; mask < 256; mask++) {
    let sum = 0
    for (let r = 1; r <= 8; r++) if (mask & (1 << (r - 1))) sum += r
    if (sum <= stat) atMost++
  }
  const second = wilcoxonSignedRank(a, b)
  assert.equal(second.statistic, stat)
  assert.ok(Math.abs(second.p - Math.min(1, (2 * atMost) / 256)) < 1e-12, `p ${second.p} vs ${(2 * atMost) / 256}`)
})

test('Wilcoxon with tied differences uses the normal approximation like scipy (tie correction, no continuity correction)', () => {
  // binary fractions, so the differences are exact and the ties are real ties
  const b = [0.5, 0.25, 0.75, 0.5, 0.25, 0.375, 0.625]
  const d = [0.125, 0.125, -0.0625, -0.0625, 0.0625, 0.0625, 0.0625]
  const a = b.map((v, i) => v + d[i])
  // |d| ranks: five 0.0625 → average rank 3, two 0.125 → 6.5; R+ = 3+3+3 + 6.5+6.5 = 22, R− = 6
  const n = 7
  const rPlus = 22
  const mn = (n * (n + 1)) / 4
  const tieTerm = 5 * (25 - 1) + 2 * (4 - 1)
  const se = Math.sqrt((n * (n + 1) * (2 * n + 1) - 0.5 * tieTerm) / 24)
  const z = (rPlus - mn) / se
  const p = 1 - erf(Math.abs(z) / Math.SQRT2)
  const got = wilcoxonSignedRank(a, b)
  assert.equal(got.method, 'normal')
  assert.equal(got.statistic, 6)
  assert.ok(Math.abs(got.p - p) < 1e-9, `p ${got.p} vs ${p}`)
})

test('Holm step-down adjustment (hand example)', () => {
  // sorted 0.01, 0.02, 0.04 → ×3, ×2, ×1 = 0.03, 0.04, 0.04 (running max); order restored
  assert.deepEqual(
    holm([0.04, 0.01, 0.02]).map((p) => Math.round(p * 1e12) / 1e12),
    [0.04, 0.03, 0.04],
  )
  assert.deepEqual(holm([0.5, 0.6]), [1, 1])
  assert.ok(Number.isNaN(holm([NaN, 0.01])[0]))
  assert.equal(holm([NaN, 0.01])[1], 0.01)
})

test('mismatched or too short score lists are user errors', () => {
  assert.throws(() => pairedTTest([1, 2], [1]), /differ in length/)
  assert.throws(() => wilcoxonSignedRank([1], [2]), /at least 2/)
})
