/** Copies n floats (unaligned), 4 at a time. */
export function copyFloats(dst: usize, src: usize, n: i32): void {
  let i = 0
  for (; i + 4 <= n; i += 4) v128.store(dst + ((<usize>i) << 2), v128.load(src + ((<usize>i) << 2)))
  for (; i < n; i++) store<f32>(dst + ((<usize>i) << 2), load<f32>(src + ((<usize>i) << 2)))
}

/** The four float64 sums at `at` += the four float32 lanes of `v`: a chunk's float32 sums into a job's float64 slot. */
export function addPromoted(at: usize, v: v128): void {
  v128.store(at, f64x2.add(v128.load(at), f64x2.promote_low_f32x4(v)))
  v128.store(at, f64x2.add(v128.load(at, 16), f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1))), 16)
}

/** The float64 sum at `at` += the float32 `v`: addPromoted for one channel. */
export function addPromotedScalar(at: usize, v: f32): void {
  store<f64>(at, load<f64>(at) + <f64>v)
}
