/**
 * `sipl model`: parameter count per module, output shapes for the config's patch, and a FLOP
 * estimate, without running the network at full size.
 *
 * FLOPs: every convolution and matrix product reports its multiply-accumulates (layers.ts
 * `metered`). A "dry" forward pass — those ops return zeros of the right shape — is counted at the
 * smallest valid patch s³ (s = deepest stride) and at 2s×s×s. Every per-voxel op at every stride
 * costs a fixed amount per voxel of the patch, and the query/prototype ops cost the same at any
 * size, so MACs(V) = a·V + b exactly; the two counts give a and b, and the estimate for the real
 * patch is a·V + b. FLOPs = 2 × MACs; norms, activations and softmaxes are not counted (a few % of
 * the convolutions). A training step costs about 3× the forward pass.
 */
import {tf} from '../backend/tf.js'
import type {ExperimentConfig} from '../config/schema.js'
import {metered} from './mac-meter.js'
import {SiplNet} from './sipl.js'

export interface ModelSummary {
  inChannels: number
  numClasses: number
  /** (x, y, z) as in the config */
  patch: [number, number, number]
  parameters: {total: number; modules: Record<string, number>}
  /** tensor shapes for one patch, `[B, D, H, W, C]` with D = z, H = y, W = x */
  shapes: Record<string, number[]>
  flops: {forwardGFlops: number; trainStepGFlops: number; note: string}
  ablation: {ipl: boolean; smg: boolean; cppInit: string}
}

/** 'backbone.enc.1.block.0.conv1.kernel' → 'backbone.enc.1'; 'ipl.mlp.0.kernel' → 'ipl.mlp'; 'smg.queries' → 'smg' */
export function moduleOf(name: string): string {
  const parts = name.split('.')
  if (parts.length <= 2) return parts[0]
  return ['enc', 'dec', 'layer'].includes(parts[1]) ? parts.slice(0, 3).join('.') : parts.slice(0, 2).join('.')
}

export function buildNet(config: ExperimentConfig): SiplNet {
  return new SiplNet({
    model: config.model,
    smg: config.smg,
    inChannels: config.data.channels,
    numClasses: config.data.classes.length,
    seed: config.seed,
    overlappingRegions: config.data.overlappingRegions,
  })
}

/** MACs of one dry forward pass on a `[1, d, h, w, C]` input */
export function dryForwardMacs(net: SiplNet, grid: [number, number, number], training = true): number {
  return tf.tidy(() => {
    const x = tf.zeros([1, ...grid, net.inChannels]) as tf.Tensor5D
    return metered(true, () => net.apply(x, {training, epoch: 0})).macs
  })
}

/** Output shapes for a patch, computed from the architecture (checked against a real forward pass in the tests). */
export function outputShapes(config: ExperimentConfig, patch: [number, number, number]): Record<string, number[]> {
  const [x, y, z] = patch
  const {widths, patchStride, embedDim} = config.model.backbone
  const k = config.data.classes.length
  const deepest = patchStride * 2 ** (widths.length - 1)
  const grid = (s: number) => [1, z / s, y / s, x / s]
  const shapes: Record<string, number[]> = {
    input: [...grid(1), config.data.channels],
    F: [...grid(deepest), widths.at(-1)!],
    F_o: [...grid(1), embedDim],
    logits: [...grid(1), k],
  }
  const strides = config.model.smg
    ? config.smg.scales.flatMap((s) => Array<number>(config.smg.layersPerScale).fill(s))
    : [Math.min(...config.smg.scales)]
  strides.forEach((s, l) => (shapes[`aux.${l}`] = [...grid(s), k + 1]))
  return shapes
}

export function summarizeModel(config: ExperimentConfig): ModelSummary {
  const net = buildNet(config)
  try {
    const modules: Record<string, number> = {}
    let total = 0
    for (const [name, v] of net.namedVariables()) {
      if (!v.trainable) continue
      modules[moduleOf(name)] = (modules[moduleOf(name)] ?? 0) + v.size
      total += v.size
    }
    const s = net.maxStride
    const base = dryForwardMacs(net, [s, s, s])
    const doubled = dryForwardMacs(net, [2 * s, s, s])
    const perVoxel = (doubled - base) / s ** 3
    const constant = base - perVoxel * s ** 3
    const patch = config.preprocess.patch
    const macs = perVoxel * patch[0] * patch[1] * patch[2] + constant
    const forwardGFlops = (2 * macs) / 1e9
    return {
      inChannels: config.data.channels,
      numClasses: config.data.classes.length,
      patch,
      parameters: {total, modules},
      shapes: outputShapes(config, patch),
      flops: {
        forwardGFlops,
        trainStepGFlops: 3 * forwardGFlops,
        note: 'convolutions and matrix products, batch 1, one patch; a training step ≈ 3× forward',
      },
      ablation: {ipl: config.model.ipl, smg: config.model.smg, cppInit: config.model.cpp.init},
    }
  } finally {
    net.dispose()
  }
}
