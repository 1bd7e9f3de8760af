/**
 * The multiply-accumulate meter of `sipl model` (FLOP estimates): every convolution and matrix
 * product in ops.ts reports its MACs to the meter that `metered` makes active for the length of a
 * call; in "dry" mode those ops return zeros of the right shape instead of computing, so a whole
 * forward pass can be counted in milliseconds. Without an active meter counting costs nothing.
 */

interface Meter {
  macs: number
  dry: boolean
}
let meter: Meter | null = null

/** Runs `fn` counting the multiply-accumulates of convolutions and matrix products. */
export function metered<T>(dry: boolean, fn: () => T): {value: T; macs: number} {
  const previous = meter
  meter = {macs: 0, dry}
  try {
    const value = fn()
    return {value, macs: meter.macs}
  } finally {
    meter = previous
  }
}

/** whether a meter is counting (a dry or a real pass): sipl's whole-layer kernels report nothing, so the ops' composition runs instead */
export function isMetered(): boolean {
  return meter !== null
}

export function isDryRun(): boolean {
  return meter?.dry ?? false
}

/** Adds `macs` to the active meter; true when the op should return zeros instead of computing (a dry run). */
export function countMacs(macs: number): boolean {
  if (meter) meter.macs += macs
  return meter?.dry ?? false
}
