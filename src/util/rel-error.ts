// No imports on purpose: the GPU device-check bundle uses it without pulling in tfjs or sipl's kernels.

/** max |a − e| / max |e|: robust to entries near zero */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0
  let scale = 0
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]))
    scale = Math.max(scale, Math.abs(expected[i]))
  }
  if (actual.length !== expected.length || Number.isNaN(diff)) return Infinity
  return scale === 0 ? diff : diff / scale
}
