/**
 * One seeded generator for sampling, augmentation and initialisation (DESIGN §8). sfc32: fast,
 * 128 bits of state, and the state is four integers, so a checkpoint can store it and a
 * resumed run continues the exact same stream.
 */
export type RngState = [number, number, number, number]

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number | RngState) {
    if (Array.isArray(seed)) {
      ;[this.a, this.b, this.c, this.d] = seed.map((v) => v >>> 0)
      return
    }
    // splitmix32 spreads one integer seed over the four state words
    let s = seed >>> 0
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next()
    this.b = next()
    this.c = next()
    this.d = next()
    for (let i = 0; i < 12; i++) this.nextUint32()
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** uniform in [0, 1) */
  next(): number {
    return this.nextUint32() / 4294967296
  }

  uniform(low: number, high: number): number {
    return low + (high - low) * this.next()
  }

  /** integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** standard normal (Box–Muller; one draw per call keeps the state simple to save) */
  normal(): number {
    const u = 1 - this.next()
    const v = this.next()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[items[i], items[j]] = [items[j], items[i]]
    }
    return items
  }

  /** an independent generator derived from this one (e.g. one per worker or per case) */
  fork(): Rng {
    return new Rng([this.nextUint32(), this.nextUint32(), this.nextUint32(), this.nextUint32()])
  }

  getState(): RngState {
    return [this.a, this.b, this.c, this.d]
  }
}
