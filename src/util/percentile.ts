/** numpy.percentile(values, q) with linear interpolation, of values already sorted ascending. */
export function percentileOfSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN
  const pos = (q / 100) * (sorted.length - 1)
  const lo = Math.floor(pos)
  // at a whole position hi is lo: no (0 × an infinite difference) to make a NaN
  const hi = Math.ceil(pos)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
}

/** numpy.percentile(values, q) with linear interpolation; values are not reordered. */
export function percentile(values: readonly number[], q: number): number {
  return percentileOfSorted(
    [...values].sort((a, b) => a - b),
    q,
  )
}
