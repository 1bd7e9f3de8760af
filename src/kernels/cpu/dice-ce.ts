/**
 * Soft Dice + cross-entropy on logits in one pass (forward) and one pass (backward), for the
 * `cpu` backend: the loss of SIPL's main head (sigmoid, Eq. 5), of its auxiliary masks (softmax,
 * Eq. 12) and of unet-ref. As ops it is ~25 full passes over the logits (softmax, logs, products,
 * sums, and as many again for the gradient): 217 ms of a 64³ unet-ref step, more than one
 * convolution layer. Sums are taken in float64. The formulas are those of src/model/losses.ts.
 *
 * Inputs are `[B, N, C]` (sample, voxel, channel). Outputs of the forward kernel: the loss, the
 * probabilities p (kept for the backward) and per (sample, channel) [Dice, denominator].
 */
import type {tf} from '../../backend/tf.js'
import type {KernelArgs} from './elementwise.js'
import {floats, output} from './tensors.js'

export interface DiceCeAttrs {
  activation: 'softmax' | 'sigmoid'
  /** Milletari's Σp² + Σy² in the Dice denominator instead of Σp + Σy */
  squared: boolean
  smooth: number
}

export function diceCeKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo[] {
  const z = floats(backend, inputs.logits)
  const y = floats(backend, inputs.targets)
  const {activation, squared, smooth} = attrs as unknown as DiceCeAttrs
  const [B, N, C] = inputs.logits.shape
  const p = new Float32Array(z.length)
  const intersection = new Float64Array(B * C)
  const denominator = new Float64Array(B * C)
  let crossEntropy = 0
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      const row = (b * N + n) * C
      if (activation === 'softmax') {
        let max = -Infinity
        for (let c = 0; c < C; c++) max = Math.max(max, z[row + c])
        let sum = 0
        for (let c = 0; c < C; c++) {
          const e = Math.exp(z[row + c] - max)
          p[row + c] = e
          sum += e
        }
        const logSum = Math.log(sum)
        for (let c = 0; c < C; c++) {
          p[row + c] /= sum
          crossEntropy -= y[row + c] * (z[row + c] - max - logSum)
        }
      } else {
        for (let c = 0; c < C; c++) {
          const v = z[row + c]
          p[row + c] = 1 / (1 + Math.exp(-v))
          // the stable form of BCE with logits: max(v, 0) − v·y + log(1 + e^−|v|)
          crossEntropy += Math.max(v, 0) - v * y[row + c] + Math.log1p(Math.exp(-Math.abs(v)))
        }
      }
      for (let c = 0; c < C; c++) {
        const pc = p[row + c]
        const yc = y[row + c]
        intersection[b * C + c] += pc * yc
        denominator[b * C + c] += squared ? pc * pc + yc * yc : pc + yc
      }
    }
  }
  // softmax: mean over voxels of −Σ_c y log p; sigmoid: mean over every element
  const ceMean = crossEntropy / (activation === 'softmax' ? B * N : B * N * C)
  const stats = new Float32Array(B * C * 2)
  let diceSum = 0
  for (let k = 0; k < B * C; k++) {
    const d = denominator[k] + smooth
    const dice = (2 * intersection[k] + smooth) / d
    diceSum += dice
    stats[2 * k] = dice
    stats[2 * k + 1] = d
  }
  const loss = Float32Array.of(ceMean + 1 - diceSum / (B * C))
  return [output(backend, [], loss), output(backend, [B, N, C], p), output(backend, [B, C, 2], stats)]
}

/** d loss / d logits, scaled by dy (the scalar upstream gradient). */
export function diceCeGradKernel({inputs, backend, attrs}: KernelArgs): tf.TensorInfo {
  const dy = floats(backend, inputs.dy)[0]
  const p = floats(backend, inputs.p)
  const y = floats(backend, inputs.targets)
  const stats = floats(backend, inputs.stats)
  const {activation, squared} = attrs as unknown as DiceCeAttrs
  const [B, N, C] = inputs.p.shape
  const dz = new Float32Array(p.length)
  const diceScale = -1 / (B * C)
  const ceScale = 1 / (activation === 'softmax' ? B * N : B * N * C)
  const g = new Float64Array(C)
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      const row = (b * N + n) * C
      // d loss_Dice / d p: −1/(B·C) · (2y − Dice · ∂denominator/∂p) / denominator
      let pg = 0
      let ySum = 0
      for (let c = 0; c < C; c++) {
        const k = 2 * (b * C + c)
        const pc = p[row + c]
        g[c] = (diceScale * (2 * y[row + c] - stats[k] * (squared ? 2 * pc : 1))) / stats[k + 1]
        pg += pc * g[c]
        ySum += y[row + c]
      }
      for (let c = 0; c < C; c++) {
        const pc = p[row + c]
        const yc = y[row + c]
        // softmax: CE gradient (p·Σy − y)/(B·N), Dice through the softmax Jacobian p(g − p·g)
        // sigmoid: BCE gradient (p − y)/(B·N·C), Dice through σ' = p(1 − p)
        const grad = activation === 'softmax' ? (pc * ySum - yc) * ceScale + pc * (g[c] - pg) : (pc - yc) * ceScale + g[c] * pc * (1 - pc)
        dz[row + c] = dy * grad
      }
    }
  }
  return output(backend, [B, N, C], dz)
}
