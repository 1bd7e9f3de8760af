/**
 * `sipl bench --net sipl`: the SIPL network (src/model/sipl.ts) behind the benchmark's BenchNet
 * interface, built from an experiment config (defaults, or --config / --set). The benchmark's
 * 4-class one-hot label becomes background + 3 foreground classes: the main head predicts the
 * 3 classes (sigmoid, as in training) and the loss is the training loss (siplLoss, Eq. 13).
 */
import {tf} from '../backend/tf.js'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {siplLoss, targetsFromLabels} from '../model/losses.js'
import {SiplNet} from '../model/sipl.js'
import type {BenchNet, NetFactory} from './bench.js'

export function siplNetFactory(config: ExperimentConfig, size: number): NetFactory {
  return (seed: number): BenchNet => {
    const net = new SiplNet({model: config.model, smg: config.smg, inChannels: 1, numClasses: 3, seed})
    if (size % net.maxStride !== 0) {
      net.dispose()
      throw new UserError(`--size ${size}: the SIPL network's deepest stride is ${net.maxStride}; use a multiple of it`)
    }
    return {
      classes: 3,
      variables: () => net.trainableVariables(),
      loss: (x, oneHot) =>
        tf.tidy(() => {
          const labels = tf.argMax(oneHot, 4) as tf.Tensor4D // [B, D, H, W] exclusive 0..3
          const out = net.apply(x, {training: true, epoch: 0})
          return siplLoss(out, targetsFromLabels(labels, 3, false), config.loss).total
        }),
      probabilities: (x) => tf.sigmoid(net.apply(x, {training: false, epoch: 0}).logits) as tf.Tensor5D,
      dispose: () => net.dispose(),
    }
  }
}
