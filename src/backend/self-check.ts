/**
 * A tiny conv3d forward + both gradients + conv3dTranspose, computed on the backend under test
 * and on `cpu`, compared by max relative error. This is what catches tfjs-backend-wasm 4.22's
 * wrong conv3d input gradient and conv3dTranspose.
 */
import {tf} from './tf.js'
import {relError} from '../util/rel-error.js'
import {activeCpuKernels, useCpuKernels} from '../kernels/register.js'
import {isUserError} from '../errors.js'

export interface SelfCheck {
  pass: boolean
  maxRelError: number
  tolerance: number
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5
  }
}

function values(n: number, seed: number): Float32Array {
  const rand = mulberry(seed)
  return Float32Array.from({length: n}, rand)
}

// async reads: webgpu's dataSync needs OffscreenCanvas, which Node lacks
async function compute(): Promise<Float32Array[]> {
  const x = tf.tensor5d(values(2 * 5 * 6 * 4 * 3, 1), [2, 5, 6, 4, 3])
  const w = tf.tensor5d(values(3 * 3 * 3 * 3 * 5, 2), [3, 3, 3, 3, 5])
  const wt = tf.tensor5d(values(2 * 2 * 2 * 4 * 3, 3), [2, 2, 2, 4, 3])
  const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
    tf
      .conv3d(a as tf.Tensor5D, b as tf.Tensor5D, [2, 1, 1], 'same')
      .square()
      .sum(),
  )
  const [dx, dw] = grads([x, w])
  const y = tf.conv3d(x, w, [2, 1, 1], 'same')
  const t = tf.conv3dTranspose(x, wt, [2, 10, 12, 8, 4], 2, 'same')
  const out = (await Promise.all([y, dx, dw, t].map((r) => r.data()))) as Float32Array[]
  tf.dispose([x, w, wt, dx, dw, y, t])
  return out
}

/**
 * The oracle is the cpu backend with tfjs's own reference kernels, so the check of `cpu` itself
 * tests sipl's fast kernels (src/kernels) against them.
 */
export async function conv3dSelfCheck(backend: string, tolerance = 1e-3): Promise<SelfCheck> {
  const previous = tf.getBackend()
  await tf.setBackend('cpu')
  const kernels = activeCpuKernels()
  useCpuKernels('reference')
  let expected: Float32Array[]
  try {
    expected = await compute()
  } finally {
    useCpuKernels(kernels)
  }
  await tf.setBackend(backend)
  let maxRelError: number
  try {
    const actual = await compute()
    maxRelError = Math.max(...expected.map((e, i) => relError(actual[i], e)))
  } catch (error) {
    // a broken install (kernels built from another job layout) says how to fix it, not "wrong results"
    if (isUserError(error)) throw error
    maxRelError = Infinity
  } finally {
    if (previous) await tf.setBackend(previous)
  }
  return {pass: maxRelError <= tolerance, maxRelError, tolerance}
}
