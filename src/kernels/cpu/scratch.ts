/**
 * Temporaries of a kernel call, recycled across calls. A new typed array costs its allocation, its
 * zeroing and the garbage collections its external memory brings, and a kMaX layer made ~40 per
 * call: on the demo net's small grids that was a large part of each layer's time
 * (docs/bench/2026-12-07-full-resolution-end.md has the measurements).
 *
 * `take` hands out an array of exactly that length with stale values: the caller writes every
 * element before reading it. `around` runs a call's body and takes them all back at its end. Nothing
 * taken may leave the call: a kernel's outputs come from the backend's array pool or are new.
 */
export class Scratch {
  private readonly free = new Map<number, Float32Array[]>()
  private readonly taken: Float32Array[] = []

  take(length: number): Float32Array {
    const array = this.free.get(length)?.pop() ?? new Float32Array(length)
    this.taken.push(array)
    return array
  }

  /** fn(this), then every array it took back: a kernel call's body */
  around<T>(fn: (s: Scratch) => T): T {
    try {
      return fn(this)
    } finally {
      this.release()
    }
  }

  private release(): void {
    for (const array of this.taken) {
      const list = this.free.get(array.length)
      if (list) list.push(array)
      else this.free.set(array.length, [array])
    }
    this.taken.length = 0
  }
}
