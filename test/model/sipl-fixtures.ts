/** What the SIPL network tests share: configs by name, the parameter count from the architecture alone, a phantom and a training step. */
import {tf} from '../helpers/tf.js'
import {loadConfig} from '../../src/config/load.js'
import type {ExperimentConfig} from '../../src/config/schema.js'
import {siplLoss, targetsFromLabels} from '../../src/model/losses.js'
import type {SiplNet} from '../../src/model/sipl.js'

export const configOf = (name: string, sets: string[] = []) => loadConfig(`experiments/${name}.yaml`, sets).config

/** Trainable parameters of the config's network, counted from the architecture description alone. */
export function expectedParameterCount(c: ExperimentConfig): number {
  const {widths, depths, patchStride: p, embedDim: e} = c.model.backbone
  const cin = c.data.channels
  const k = c.data.classes.length
  const conv = (size: number, i: number, o: number) => size ** 3 * i * o
  const norm = (ch: number) => 2 * ch
  const dense = (i: number, o: number, bias = true) => i * o + (bias ? o : 0)
  let n = conv(3, cin, e) + norm(e) // full-resolution branch
  n += conv(p, cin, widths[0]) + norm(widths[0]) // stem
  widths.forEach((w, i) => {
    if (i > 0) n += conv(3, widths[i - 1], w) + norm(w) // stride-2 downsampling
    n += depths[i] * 2 * (conv(3, w, w) + norm(w)) // residual blocks
  })
  for (let i = widths.length - 2; i >= 0; i--)
    n += conv(2, widths[i + 1], widths[i]) + widths[i] + conv(3, 2 * widths[i], widths[i]) + norm(widths[i])
  n += conv(p, widths[0], e) + e + norm(e) + dense(e, e) // out: upsampling, norm, 1×1×1 projection
  const dq = c.smg.queryDim
  const strides = widths.map((_, i) => p * 2 ** i)
  if (c.model.smg) {
    n += c.model.queries * dq
    for (const s of c.smg.scales) {
      const ch = widths[strides.indexOf(s)]
      const layer =
        dense(ch, dq) +
        norm(dq) +
        dense(dq, dq) + // pixel projection, its LN, pixel head
        norm(dq) +
        dense(dq, dq) + // mask-kernel LN and projection
        dense(dq, dq) +
        dq +
        dense(dq, dq, false) + // values, RMS norm, cross-attention output
        norm(dq) +
        dense(dq, 3 * dq) +
        dense(dq, dq) + // self-attention
        norm(dq) +
        dense(dq, c.smg.ffnHidden) +
        dense(c.smg.ffnHidden, dq) + // FFN
        norm(dq) +
        dense(dq, dq) +
        dense(dq, k + 1) // cluster-to-class MLP
      n += c.smg.layersPerScale * layer
    }
  } else {
    n += dense(widths[strides.indexOf(Math.min(...c.smg.scales))], k + 1)
  }
  const di = widths.at(-1)!
  if (c.model.ipl) {
    n += c.model.cpp.init === 'random' ? k * di : dense(k, di) // onehot: K → d_i map
    n += dense(2 * di, c.model.prototypeHidden) + dense(c.model.prototypeHidden, e)
    n += c.model.classBias ? k : 0
  } else {
    n += k * e + (c.model.classBias ? k : 0)
  }
  return n
}

/** a 32³ phantom: background, a bright sphere (1), a mid-grey box (2), a dark ellipsoid (3), mild texture */
export function phantom(): {image: tf.Tensor5D; labels: tf.Tensor4D} {
  const n = 32
  const image = new Float32Array(n ** 3)
  const labels = new Int32Array(n ** 3)
  for (let z = 0; z < n; z++)
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n; x++) {
        const i = x + n * (y + n * z)
        let label = 0
        if ((x - 10) ** 2 + (y - 10) ** 2 + (z - 16) ** 2 < 49) label = 1
        else if (Math.abs(x - 22) < 5 && Math.abs(y - 21) < 6 && Math.abs(z - 12) < 5) label = 2
        else if (((x - 19) / 7) ** 2 + ((y - 7) / 4) ** 2 + ((z - 25) / 5) ** 2 < 1) label = 3
        labels[i] = label
        image[i] = [0, 1, 0.66, 0.33][label] + 0.05 * Math.sin(0.9 * x + 1.7 * y + 2.3 * z)
      }
  return {image: tf.tensor5d(image, [1, n, n, n, 1]), labels: tf.tensor4d(labels, [1, n, n, n], 'int32')}
}

export function trainingStep(
  net: SiplNet,
  config: ExperimentConfig,
  x: tf.Tensor5D,
  t: ReturnType<typeof targetsFromLabels>,
  epoch: number,
) {
  return tf.variableGrads(() => siplLoss(net.apply(x, {training: true, epoch}), t, config.loss).total, net.trainableVariables())
}
