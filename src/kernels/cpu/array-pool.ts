/**
 * Output arrays of sipl's `cpu` kernels, taken back when their tensors are disposed and handed to
 * the next output of the same length.
 *
 * Why: every kernel call gives tfjs a new array per output, tens of MB per training step or
 * inference batch of the demo net. A fresh large array is memory the process has not touched, so
 * each of its pages costs a fault (on the shared VMs of docs/bench/2026-12-07-array-pool.md, faults
 * were ~11 % of an inference run's CPU samples), and the volume of discarded arrays drives V8's
 * garbage collector.
 *
 * When reuse is safe: an array goes back to the pool only when no tensor of the backend views its
 * buffer any more (tfjs's slices and reshapes share buffers) and no one outside the backend was
 * given it — `readSync` (dataSync, data, arraySync, bufferSync, a move to another backend) marks
 * its buffer as escaped, never to be reused. Kernels read their inputs' arrays only during a call.
 * An array from `take` holds stale values: the kernel must write every element.
 */

/** arrays below this many elements are cheap to allocate (and small ones live on V8's heap) */
const SMALLEST_POOLED = 4096
/**
 * Free arrays hold at most this much, or the most memory the pool's arrays ever held in use at once
 * if that is more: a training step of the BTCV config has ~8 GB of them in use, and with the free
 * arrays capped at 1 GiB most went to the GC and were faulted in again (its step 11.5–16.6 s; bounded
 * by the peak in use 5.2–6.6 s, at the same peak RSS: docs/bench/2026-12-07-array-pool.md). Free and
 * in-use arrays together can approach twice that peak when new lengths follow old ones (evaluation
 * after training), until the old lengths go stale.
 */
const FREE_BYTES_FLOOR = 256 * 1024 ** 2
/** a length not taken within this many `take` calls (a few training steps) has its free arrays dropped */
const STALE_TAKES = 8192

interface TensorData {
  values?: unknown
}

/** the parts of tfjs-backend-cpu's MathBackendCPU the pool hooks into */
interface CpuBackendInternals {
  data: {
    set(dataId: object, value: TensorData): void
    delete(dataId: object): boolean
    has(dataId: object): boolean
    get(dataId: object): TensorData
  }
  readSync(dataId: object): unknown
}

export class ArrayPool {
  /** free arrays by length */
  private readonly free = new Map<number, Float32Array[]>()
  private freeBytes = 0
  /** bytes of the pool's arrays in use (taken, not yet back or escaped), and their most so far */
  private liveBytes = 0
  private peakLiveBytes = 0
  /** `take` calls so far, and the call that last asked for each length */
  private takes = 0
  private readonly lastTaken = new Map<number, number>()
  /** buffers the pool handed out that no one outside the backend has seen → the pool's array on it */
  private readonly owned = new WeakMap<ArrayBuffer | SharedArrayBuffer, Float32Array>()
  /** how many tensor data entries view each owned buffer */
  private readonly views = new WeakMap<ArrayBuffer | SharedArrayBuffer, number>()
  /** how many tensor data entries view each buffer, the pool's or not (while attached) */
  private readonly entries = new WeakMap<ArrayBuffer | SharedArrayBuffer, number>()
  /** buffers whose values someone outside the backend was given (`readSync`) */
  private readonly readOut = new WeakSet<ArrayBuffer | SharedArrayBuffer>()
  /** false: every `take` allocates (the tests compare both) */
  enabled = true
  /** tests: fill released arrays with NaN, so that a read after release shows */
  poison = false
  /** how many `take` calls were served from the free arrays (for the tests) */
  reused = 0

  /** the bounds of the free arrays (tests use small ones) */
  constructor(private readonly bounds = {freeBytesFloor: FREE_BYTES_FLOOR, staleTakes: STALE_TAKES}) {}

  /** An array of `length` floats with undefined contents. */
  take(length: number): Float32Array {
    if (length < SMALLEST_POOLED || !this.enabled) return new Float32Array(length)
    if (++this.takes % this.bounds.staleTakes === 0) this.dropStale()
    this.lastTaken.set(length, this.takes)
    const array = this.free.get(length)?.pop()
    if (array) {
      this.freeBytes -= array.byteLength
      this.reused++
    }
    const out = array ?? new Float32Array(length)
    this.owned.set(out.buffer, out)
    this.views.set(out.buffer, 0)
    this.liveBytes += out.byteLength
    this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes)
    return out
  }

  /** Drops every free array (memory back to the GC). */
  clear(): void {
    this.free.clear()
    this.freeBytes = 0
  }

  get freeArrayBytes(): number {
    return this.freeBytes
  }

  /** bytes of the pool's arrays in use: taken, and neither back nor read out */
  get liveArrayBytes(): number {
    return this.liveBytes
  }

  /** free arrays of the lengths no `take` asked for in the last `staleTakes` calls: to the GC */
  private dropStale(): void {
    for (const [length, taken] of this.lastTaken) {
      if (this.takes - taken < this.bounds.staleTakes) continue
      this.freeBytes -= (this.free.get(length)?.length ?? 0) * length * 4
      this.free.delete(length)
      this.lastTaken.delete(length)
    }
  }

  /**
   * True when `values` may be written in place (AdamW's new parameters, src/kernels/adamw.ts): the
   * one tensor data entry on its buffer since the pool was attached (a slice or a checkpoint
   * loaded into one buffer shares it), and never read out (whoever holds a read-out array keeps
   * what it read).
   */
  soleUnreadEntry(values: unknown): boolean {
    const buffer = bufferOf(values)
    return buffer !== undefined && this.entries.get(buffer) === 1 && !this.readOut.has(buffer)
  }

  private viewed(values: unknown): void {
    const buffer = bufferOf(values)
    if (!buffer) return
    this.entries.set(buffer, (this.entries.get(buffer) ?? 0) + 1)
    if (this.owned.has(buffer)) this.views.set(buffer, (this.views.get(buffer) ?? 0) + 1)
  }

  /** a tensor data entry on `values` is gone: when it was the last on an owned buffer, the array is out of use and goes onto the free list (or to the GC beyond the bound) */
  private released(values: unknown): void {
    const buffer = bufferOf(values)
    if (!buffer) return
    const entries = this.entries.get(buffer)
    if (entries !== undefined) this.entries.set(buffer, entries - 1)
    const array = this.owned.get(buffer)
    if (!array) return
    const left = (this.views.get(buffer) ?? 1) - 1
    this.views.set(buffer, left)
    if (left > 0) return
    this.owned.delete(buffer)
    this.liveBytes -= array.byteLength
    if (this.freeBytes + array.byteLength > Math.max(this.bounds.freeBytesFloor, this.peakLiveBytes)) return
    if (this.poison) array.fill(NaN)
    const list = this.free.get(array.length)
    if (list) list.push(array)
    else this.free.set(array.length, [array])
    this.freeBytes += array.byteLength
  }

  private escaped(values: unknown): void {
    const buffer = bufferOf(values)
    const array = buffer && this.owned.get(buffer)
    if (!array) return
    // handed out: never reused, and no longer the pool's to count
    this.owned.delete(buffer)
    this.liveBytes -= array.byteLength
  }

  /** Watches the backend's tensor data: new entries, deleted ones, and reads that hand arrays out. */
  attach(backend: CpuBackendInternals): void {
    const data = backend.data
    const set = data.set.bind(data)
    const remove = data.delete.bind(data)
    const readSync = backend.readSync.bind(backend)
    data.set = (dataId, value) => {
      // an id set again (tfjs's `move`): the new values are counted before the old ones are
      // released, so that values on the same buffer never take its count to zero in between
      const previous = data.has(dataId) ? data.get(dataId).values : undefined
      set(dataId, value)
      this.viewed(value.values)
      if (previous !== undefined) this.released(previous)
    }
    data.delete = (dataId) => {
      if (data.has(dataId)) this.released(data.get(dataId).values)
      return remove(dataId)
    }
    backend.readSync = (dataId) => {
      if (data.has(dataId)) {
        const values = data.get(dataId).values
        this.escaped(values)
        const buffer = bufferOf(values)
        if (buffer) this.readOut.add(buffer)
      }
      return readSync(dataId)
    }
  }
}

function bufferOf(values: unknown): ArrayBuffer | SharedArrayBuffer | undefined {
  return ArrayBuffer.isView(values) ? values.buffer : undefined
}

const pools = new WeakMap<object, ArrayPool>()

/** The pool of this cpu backend, attached on first use. */
export function arrayPool(backend: unknown): ArrayPool {
  let pool = pools.get(backend as object)
  if (!pool) {
    pool = new ArrayPool()
    pool.attach(backend as CpuBackendInternals)
    pools.set(backend as object, pool)
  }
  return pool
}
