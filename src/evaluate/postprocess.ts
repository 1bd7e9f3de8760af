/**
 * Optional post-processing of predicted label maps: keep only the largest 26-connected
 * component of each class (the official SIPL test.py does this, `organ_post_process` /
 * `keep_topk_largest_connected_object`, for single-instance organs). Voxels of the dropped
 * components become background. Not applied to nested regions (BraTS), where a region is not one
 * object.
 */
import type {Vec3} from '../util/vec3.js'

export function keepLargestComponent(labels: Uint8Array, shape: Vec3, numClasses: number): Uint8Array {
  const [X, Y, Z] = shape
  const out = new Uint8Array(labels)
  const component = new Int32Array(labels.length).fill(-1)
  const queue = new Int32Array(labels.length)
  for (let k = 1; k <= numClasses; k++) {
    const sizes: number[] = []
    for (let seed = 0; seed < labels.length; seed++) {
      if (labels[seed] !== k || component[seed] !== -1) continue
      const id = sizes.length
      let head = 0
      let tail = 0
      queue[tail++] = seed
      component[seed] = id
      while (head < tail) {
        const i = queue[head++]
        const x = i % X
        const y = Math.floor(i / X) % Y
        const z = Math.floor(i / (X * Y))
        for (let dz = -1; dz <= 1; dz++) {
          const zz = z + dz
          if (zz < 0 || zz >= Z) continue
          for (let dy = -1; dy <= 1; dy++) {
            const yy = y + dy
            if (yy < 0 || yy >= Y) continue
            for (let dx = -1; dx <= 1; dx++) {
              const xx = x + dx
              if (xx < 0 || xx >= X) continue
              const j = xx + X * (yy + Y * zz)
              if (labels[j] === k && component[j] === -1) {
                component[j] = id
                queue[tail++] = j
              }
            }
          }
        }
      }
      sizes.push(tail)
    }
    if (sizes.length <= 1) continue
    const largest = sizes.indexOf(Math.max(...sizes))
    for (let i = 0; i < labels.length; i++) if (labels[i] === k && component[i] !== largest) out[i] = 0
  }
  return out
}
