/**
 * Qualitative figure (like the paper's Fig. 4): one axial slice per case, three panels side by
 * side — the image, the ground truth overlaid in class colours, the prediction overlaid in the
 * same colours — written as PNG. The slice is the one with the most reference foreground (the
 * prediction's when the reference is empty). Rows run from anterior (top) to posterior, as
 * radiology viewers show an axial RAS slice.
 */
import {encodePng} from '../io/png.js'

/** class k (1-based) → RGB; distinct hues for the 13 BTCV organs, then repeated */
export const CLASS_COLOURS: [number, number, number][] = [
  [230, 25, 75],
  [60, 180, 75],
  [0, 130, 200],
  [255, 225, 25],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
  [210, 245, 60],
  [250, 190, 212],
  [0, 128, 128],
  [170, 110, 40],
  [128, 0, 0],
]

export interface SliceInput {
  /** channels-last, x fastest; channel 0 is shown */
  image: Float32Array
  channels: number
  /** [X, Y, Z] */
  shape: [number, number, number]
  reference: Uint8Array
  prediction: Uint8Array
}

export function busiestSlice(labels: Uint8Array, shape: [number, number, number]): number {
  const [X, Y, Z] = shape
  let best = Math.floor(Z / 2)
  let bestCount = 0
  for (let z = 0; z < Z; z++) {
    let n = 0
    for (let i = z * X * Y; i < (z + 1) * X * Y; i++) if (labels[i] > 0) n++
    if (n > bestCount) {
      bestCount = n
      best = z
    }
  }
  return best
}

export function qualitativePng(
  input: SliceInput,
  options: {scale?: number; alpha?: number; slice?: number} = {},
): {png: Buffer; slice: number} {
  const [X, Y] = input.shape
  const scale = options.scale ?? Math.max(1, Math.ceil(160 / Math.max(X, Y)))
  const alpha = options.alpha ?? 0.5
  const refHasForeground = input.reference.some((v) => v > 0)
  const z = options.slice ?? busiestSlice(refHasForeground ? input.reference : input.prediction, input.shape)
  // grey levels: the slice's 1st–99th percentile of channel 0
  const values: number[] = []
  for (let i = 0; i < X * Y; i++) values.push(input.image[(z * X * Y + i) * input.channels])
  const sorted = [...values].sort((a, b) => a - b)
  const lo = sorted[Math.floor(0.01 * (sorted.length - 1))]
  const hi = sorted[Math.ceil(0.99 * (sorted.length - 1))]
  const grey = (v: number) => (hi > lo ? Math.max(0, Math.min(255, ((v - lo) / (hi - lo)) * 255)) : 128)
  const gap = 2 * scale
  const W = 3 * X * scale + 2 * gap
  const H = Y * scale
  const rgb = new Uint8Array(W * H * 3).fill(255)
  for (let panel = 0; panel < 3; panel++) {
    const labels = panel === 1 ? input.reference : panel === 2 ? input.prediction : null
    for (let y = 0; y < Y; y++)
      for (let x = 0; x < X; x++) {
        const i = z * X * Y + x + X * y
        const g = grey(input.image[i * input.channels])
        let colour: [number, number, number] = [g, g, g]
        const k = labels ? labels[i] : 0
        if (k > 0) {
          const c = CLASS_COLOURS[(k - 1) % CLASS_COLOURS.length]
          colour = [0, 1, 2].map((j) => (1 - alpha) * g + alpha * c[j]) as [number, number, number]
        }
        const row0 = (Y - 1 - y) * scale
        const col0 = panel * (X * scale + gap) + x * scale
        for (let dy = 0; dy < scale; dy++)
          for (let dx = 0; dx < scale; dx++) {
            const o = ((row0 + dy) * W + col0 + dx) * 3
            rgb[o] = colour[0]
            rgb[o + 1] = colour[1]
            rgb[o + 2] = colour[2]
          }
      }
  }
  return {png: encodePng(W, H, rgb), slice: z}
}
