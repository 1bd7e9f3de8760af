// The issue-7 benchmark net "unet-ref" (channels-last, 'same' padding, He-uniform weights), as
// /work/shared/reference/gpu/model.mjs defines it, for the self-contained GPU device check.
// Once src/bench's unet-ref exists the device check could import that; this copy keeps the
// bundle independent of the cpu kernels (wasm + worker files that a single-file bundle cannot carry).
//
// e1 = relu(conv3 1→16)            n
// e2 = relu(conv3 s2 16→32)        n/2
// e3 = relu(conv3 s2 32→64)        n/4
// b  = relu(conv3 64→64)           n/4
// u1 = convT k2 s2 64→32, concat e2, d1 = relu(conv3 64→32)   n/2
// u2 = convT k2 s2 32→16, concat e1, d2 = relu(conv3 32→16)   n
// logits = conv1 16→4
// loss = softmax CE (mean over voxels) + (1 − mean soft Dice over 4 classes); Adam lr 1e-3

export const LAYERS = [
  ['enc1', 'conv', 3, 1, 16],
  ['enc2', 'conv', 3, 16, 32],
  ['enc3', 'conv', 3, 32, 64],
  ['bott', 'conv', 3, 64, 64],
  ['up1', 'convT', 2, 64, 32],
  ['dec1', 'conv', 3, 64, 32],
  ['up2', 'convT', 2, 32, 16],
  ['dec2', 'conv', 3, 32, 16],
  ['head', 'conv', 1, 16, 4],
]

/** deterministic uniform [0, 1) (mulberry32) */
export function uniform(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** He-uniform weights (bound √(6 / fan_in)); conv filters [k,k,k,in,out], transposed-conv filters [k,k,k,out,in] */
export function makeParams(tf, seed = 1234) {
  const rand = uniform(seed)
  const P = {}
  for (const [name, kind, k, cin, cout] of LAYERS) {
    const bound = Math.sqrt(6 / (cin * k ** 3))
    const shape = kind === 'conv' ? [k, k, k, cin, cout] : [k, k, k, cout, cin]
    const w = Float32Array.from({length: k ** 3 * cin * cout}, () => (2 * rand() - 1) * bound)
    const b = Float32Array.from({length: cout}, () => (2 * rand() - 1) * 0.05)
    P[name] = {
      kind,
      cout,
      w: tf.variable(tf.tensor(w, shape), true, `${name}_w${seed}`),
      b: tf.variable(tf.tensor1d(b), true, `${name}_b${seed}`),
    }
  }
  return P
}

/** the reference generator's phantom: two nested spheres and a bar, 4 classes, plus texture and noise */
export function makeData(tf, n, seed = n) {
  const rand = uniform(seed)
  const img = new Float32Array(n ** 3)
  const onehot = new Float32Array(n ** 3 * 4)
  const c = (i) => -1 + (2 * i) / (n - 1)
  for (let z = 0, v = 0; z < n; z++)
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n; x++, v++) {
        const [X, Y, Z] = [c(x), c(y), c(z)]
        const r = Math.hypot(X, Y, Z)
        let label = r < 0.5 ? 2 : r < 0.8 ? 1 : 0
        if (Math.abs(X - 0.3) < 0.2 && Math.abs(Y) < 0.2) label = 3
        img[v] = label * 0.3 + 0.1 * Math.sin(5 * X) * Math.cos(3 * Y) + 0.05 * (rand() + rand() + rand() - 1.5)
        onehot[v * 4 + label] = 1
      }
  return {x: tf.tensor5d(img, [1, n, n, n, 1]), y: tf.tensor5d(onehot, [1, n, n, n, 4])}
}

// Bias as a rank-5 [1,1,1,1,C] tensor: tfjs-backend-webgpu 4.22 compiles a broken shader for a
// rank-1 bias added to a rank-5 tensor (docs/gpu.md, "known traps").
const bias5 = (tf, b) => tf.reshape(b, [1, 1, 1, 1, b.shape[0]])
const conv = (tf, P, name, x, stride = 1) => tf.add(tf.conv3d(x, P[name].w, stride, 'same'), bias5(tf, P[name].b))
const up = (tf, P, name, x) => {
  const [b, d, h, w] = x.shape
  return tf.add(tf.conv3dTranspose(x, P[name].w, [b, 2 * d, 2 * h, 2 * w, P[name].cout], 2, 'valid'), bias5(tf, P[name].b))
}

export function forward(tf, P, x) {
  const e1 = tf.relu(conv(tf, P, 'enc1', x))
  const e2 = tf.relu(conv(tf, P, 'enc2', e1, 2))
  const e3 = tf.relu(conv(tf, P, 'enc3', e2, 2))
  const bt = tf.relu(conv(tf, P, 'bott', e3))
  const u1 = up(tf, P, 'up1', bt)
  const d1 = tf.relu(conv(tf, P, 'dec1', tf.concat([u1, e2], -1)))
  const u2 = up(tf, P, 'up2', d1)
  const d2 = tf.relu(conv(tf, P, 'dec2', tf.concat([u2, e1], -1)))
  return conv(tf, P, 'head', d2)
}

export function lossFn(tf, logits, y) {
  const logp = tf.logSoftmax(logits, -1)
  const ce = tf.neg(tf.mean(tf.sum(tf.mul(y, logp), -1)))
  const p = tf.exp(logp)
  const axes = [0, 1, 2, 3]
  const inter = tf.sum(tf.mul(p, y), axes)
  const denom = tf.add(tf.sum(p, axes), tf.sum(y, axes))
  const dice = tf.div(tf.add(tf.mul(inter, 2), 1e-5), tf.add(denom, 1e-5))
  return tf.add(ce, tf.sub(1, tf.mean(dice)))
}

export function variables(P) {
  return Object.values(P).flatMap((p) => [p.w, p.b])
}
