/**
 * `sipl bench --net sipl`: the SIPL network (src/model/sipl.ts) behind the benchmark's BenchNet
 * interface, built from an experiment config (defaults, or --config / --set) with its classes,
 * channels, optimiser and training batch size, on a labelled batch of --size³ patches (a few balls
 * per class: src/bench/twin.ts labelledBatch, the batch the PyTorch twin gets too). The loss is the
 * training loss (Eq. 13) at τ's final value, so the Eq. 10 filtering runs as it does for most of
 * a training run.
 */
import {tf} from '../backend/tf.js'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {siplLoss, targetsFromLabels} from '../model/losses.js'
import {SiplNet} from '../model/sipl.js'
import {createOptimizer} from '../train/optimizers.js'
import {Rng} from '../util/rng.js'
import type {BenchNet, NetFactory} from './bench.js'
import {labelledBatch} from './twin.js'

/** the config as the benchmark runs it: weights from the bench seed, patches of --size³ */
export function benchConfig(config: ExperimentConfig, size: number, seed: number): ExperimentConfig {
  return {...config, seed, preprocess: {...config.preprocess, patch: [size, size, size]}}
}

/** the epoch the benchmark's steps run at: the end of τ's ramp (Eq. 11) */
export function benchEpoch(config: ExperimentConfig): number {
  return config.smg.tau.rampEpochs
}

export function siplNetFactory(config: ExperimentConfig, size: number): NetFactory {
  return (seed: number): BenchNet => {
    const c = benchConfig(config, size, seed)
    const numClasses = c.data.classes.length
    const channels = c.data.channels
    const overlappingRegions = c.data.overlappingRegions
    const net = new SiplNet({model: c.model, smg: c.smg, inChannels: channels, numClasses, seed, overlappingRegions})
    if (size % net.maxStride !== 0) {
      net.dispose()
      throw new UserError(`--size ${size}: the SIPL network's deepest stride is ${net.maxStride}; use a multiple of it`)
    }
    const epoch = benchEpoch(c)
    return {
      classes: numClasses,
      channels,
      variables: () => net.trainableVariables(),
      batch: (n, batchSeed) => {
        const batch = c.train.batchSize
        const {x, labels} = labelledBatch(new Rng(batchSeed), batch, [n, n, n], channels, numClasses)
        return {x: tf.tensor5d(x, [batch, n, n, n, channels]), target: tf.tensor4d(labels, [batch, n, n, n], 'int32')}
      },
      loss: (x, labels) =>
        tf.tidy(() => {
          const out = net.apply(x, {training: true, epoch})
          return siplLoss(out, targetsFromLabels(labels as tf.Tensor4D, numClasses, overlappingRegions), c.loss).total
        }),
      probabilities: (x) => net.probabilities(x, epoch),
      optimizer: () => createOptimizer(c.train.optimizer),
      // a few of its gradients move by more than 1e-4 under float32 rounding (LeakyReLU's kink,
      // ill-conditioned decoder gradients); the twin check (--torch) compares each with its own bound
      gradientCheck: 'global',
      dispose: () => net.dispose(),
    }
  }
}
