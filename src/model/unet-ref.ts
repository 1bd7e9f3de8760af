/**
 * `unet-ref`: the small 3-D U-Net of issue 7, the yardstick for sipl's convolution speed
 * against PyTorch (the issue measured the same network in PyTorch 1.13 on this machine's size:
 * 140 ms / 490 ms median per training step at 32³ / 64³ on 2 CPU threads).
 *
 * Channels-last, `same` padding, He-uniform weights (bound √(6 / fan_in)), zero biases:
 *   e1 = ReLU(conv3 1→16)                 [B, n, n, n, 16]
 *   e2 = ReLU(conv3 stride 2, 16→32)      [B, n/2, …, 32]
 *   e3 = ReLU(conv3 stride 2, 32→64)      [B, n/4, …, 64]
 *   b  = ReLU(conv3 64→64)
 *   d2 = ReLU(conv3 64→32 (concat(convT k2 s2 64→32 (b), e2)))
 *   d1 = ReLU(conv3 32→16 (concat(convT k2 s2 32→16 (d2), e1)))
 *   logits = conv1 16→4 (d1)
 * loss = softmax cross-entropy (mean over voxels) + (1 − mean soft Dice over the 4 classes);
 * Adam, lr 1e-3; input n³×1 with a one-hot 4-class label.
 * Each conv + bias (+ ReLU) is one fused op on sipl's cpu kernels (src/kernels/fused.ts) and
 * the plain tfjs composition everywhere else.
 */
import {tf} from '../backend/tf.js'
import {Rng} from '../util/rng.js'
import {conv3dBiasAct, conv3dTransposeBias} from '../kernels/fused.js'
import {diceCrossEntropy} from './losses.js'

export const UNET_REF_CLASSES = 4
const DICE_SMOOTH = 1e-5

interface ConvParam {
  kernel: tf.Variable
  bias: tf.Variable
}

function heUniform(rng: Rng, shape: number[], fanIn: number, name: string): tf.Variable {
  const bound = Math.sqrt(6 / fanIn)
  const size = shape.reduce((a, b) => a * b, 1)
  const values = new Float32Array(size)
  for (let i = 0; i < size; i++) values[i] = rng.uniform(-bound, bound)
  return tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), true, name))
}

function zeros(n: number, name: string): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zeros([n]), true, name))
}

export class UnetRef {
  private readonly params = new Map<string, ConvParam>()

  constructor(seed: number) {
    const rng = new Rng(seed)
    // [name, kernel size, in, out, transposed]
    const layers: [string, number, number, number, boolean][] = [
      ['e1', 3, 1, 16, false],
      ['e2', 3, 16, 32, false],
      ['e3', 3, 32, 64, false],
      ['b', 3, 64, 64, false],
      ['up2', 2, 64, 32, true],
      ['d2', 3, 64, 32, false],
      ['up1', 2, 32, 16, true],
      ['d1', 3, 32, 16, false],
      ['head', 1, 16, UNET_REF_CLASSES, false],
    ]
    for (const [name, k, cin, cout, transposed] of layers) {
      // tfjs filter layouts: conv3d [k, k, k, in, out]; conv3dTranspose [k, k, k, out, in]
      const shape = transposed ? [k, k, k, cout, cin] : [k, k, k, cin, cout]
      this.params.set(name, {kernel: heUniform(rng, shape, k * k * k * cin, `${name}.kernel`), bias: zeros(cout, `${name}.bias`)})
    }
  }

  variables(): tf.Variable[] {
    return [...this.params.values()].flatMap((p) => [p.kernel, p.bias])
  }

  /** x: the input, or [up-sampled, skip] that the convolution reads concatenated along channels */
  private conv(name: string, x: tf.Tensor5D | [tf.Tensor5D, tf.Tensor5D], stride: number, relu: boolean): tf.Tensor5D {
    const p = this.params.get(name)!
    // the first layer's input is data: no gradient needed for it
    return conv3dBiasAct(x, p.kernel as tf.Tensor5D, p.bias as tf.Tensor1D, {strides: stride, pad: 'same', relu, inputGrad: name !== 'e1'})
  }

  private up(name: string, x: tf.Tensor5D): tf.Tensor5D {
    const p = this.params.get(name)!
    const [b, d, h, w] = x.shape
    const cout = p.kernel.shape[3] as number
    return conv3dTransposeBias(x, p.kernel as tf.Tensor5D, p.bias as tf.Tensor1D, [b, 2 * d, 2 * h, 2 * w, cout], 2, 'same')
  }

  /** logits [B, n, n, n, 4] for x [B, n, n, n, 1]; n a multiple of 4 */
  apply(x: tf.Tensor5D): tf.Tensor5D {
    const e1 = this.conv('e1', x, 1, true)
    const e2 = this.conv('e2', e1, 2, true)
    const e3 = this.conv('e3', e2, 2, true)
    const b = this.conv('b', e3, 1, true)
    const d2 = this.conv('d2', [this.up('up2', b), e2], 1, true)
    const d1 = this.conv('d1', [this.up('up1', d2), e1], 1, true)
    return this.conv('head', d1, 1, false)
  }

  dispose(): void {
    for (const p of this.params.values()) {
      p.kernel.dispose()
      p.bias.dispose()
    }
  }
}

/** softmax cross-entropy (mean over voxels) + 1 − mean over classes of soft Dice (Σp + Σy denominators) */
export function unetRefLoss(logits: tf.Tensor5D, oneHot: tf.Tensor5D): tf.Scalar {
  return diceCrossEntropy(logits, oneHot, {activation: 'softmax', squared: false, smooth: DICE_SMOOTH})
}

/** A seeded input volume [1, n, n, n, 1] (smooth blobs + noise) and a one-hot label [1, n, n, n, 4] of intensity bands. */
export function unetRefBatch(n: number, seed: number): {x: tf.Tensor5D; oneHot: tf.Tensor5D} {
  const rng = new Rng(seed)
  const voxels = n * n * n
  const image = new Float32Array(voxels)
  const label = new Int32Array(voxels)
  const centres = Array.from({length: 3}, () => [rng.next() * n, rng.next() * n, rng.next() * n, (0.15 + 0.2 * rng.next()) * n])
  for (let z = 0, i = 0; z < n; z++)
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n; x++, i++) {
        let cls = 0
        centres.forEach(([cx, cy, cz, r], k) => {
          if ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < r * r) cls = k + 1
        })
        label[i] = cls
        image[i] = cls * 0.5 + 0.3 * (rng.next() - 0.5)
      }
  return tf.tidy(() => ({
    x: tf.tensor5d(image, [1, n, n, n, 1]),
    oneHot: tf.oneHot(tf.tensor1d(label, 'int32'), UNET_REF_CLASSES).reshape([1, n, n, n, UNET_REF_CLASSES]) as tf.Tensor5D,
  }))
}
