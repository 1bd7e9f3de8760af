/**
 * Temporaries of a kernel call, recycled across calls. Each new typed array cost 6–10 µs here at
 * 4–128 KiB (the allocation, its zeroing, the garbage collections its external memory brings;
 * 50 µs at 512 KiB), and a kMaX layer made ~40 per call: on the 2³–8³ grids of the demo net that
 * was a large part of each layer's time (docs/bench/2026-12-07-full-resolution-end.md).
 *
 * `take` hands out an array of exactly that length with stale values: the caller writes every
 * element before reading it. `release`, at the end of the call, takes them all back. Nothing
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

  release(): void {
    for (const array of this.taken) {
      const list = this.free.get(array.length)
      if (list) list.push(array)
      else this.free.set(array.length, [array])
    }
    this.taken.length = 0
  }
}
