/**
 * Optimisers written out on tf ops so that their whole state is a set of named tensors that a
 * checkpoint stores and a resumed run restores exactly (tf.train's optimisers hide theirs, and
 * have no decoupled weight decay).
 * - AdamW (Loshchilov & Hutter 2019; PyTorch torch.optim.AdamW semantics, eps 1e-8): the decay
 *   p ← p − lr·λ·p is applied to the weights directly, not added to the gradient; bias-corrected
 *   moments. Like PyTorch's default, every parameter is decayed.
 * - SGD with momentum and optional Nesterov (PyTorch torch.optim.SGD, dampening 0): the L2
 *   penalty λ·p is added to the gradient, buf ← μ·buf + g, step g + μ·buf (Nesterov) or buf.
 * The learning rate is passed to every step, so the schedule stays a pure lr(step).
 */
import {tf} from '../backend/tf.js'
import type {TrainConfig} from '../config/schema.js'
import {adamwStep} from '../kernels/adamw.js'

export type OptimizerConfig = TrainConfig['optimizer']

export interface Optimizer {
  readonly name: string
  /** one update of `variables` (by name) with `grads` (same names) at learning rate lr */
  step(variables: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void
  /** completed steps */
  iterations: number
  /** named state tensors (moments, momentum buffers) for a checkpoint */
  stateTensors(): Map<string, tf.Tensor>
  /** restores state written by stateTensors(); unknown or missing names are errors */
  loadState(tensors: Map<string, tf.Tensor>, iterations: number): void
  dispose(): void
}

abstract class Stateful {
  protected slots = new Map<string, tf.Variable>()
  iterations = 0

  protected slot(key: string, like: tf.Tensor): tf.Variable {
    let v = this.slots.get(key)
    if (!v) {
      // the variable holds its own reference to the zeros: tidy disposes the tensor it was made from
      v = tf.tidy(() => tf.variable(tf.zerosLike(like), false))
      this.slots.set(key, v)
    }
    return v
  }

  stateTensors(): Map<string, tf.Tensor> {
    return new Map(this.slots)
  }

  loadState(tensors: Map<string, tf.Tensor>, iterations: number): void {
    this.dispose()
    for (const [key, value] of tensors) {
      const slot = tf.tidy(() => tf.variable(value.clone(), false))
      this.slots.set(key, slot)
    }
    this.iterations = iterations
  }

  dispose(): void {
    for (const v of this.slots.values()) v.dispose()
    this.slots.clear()
  }
}

export class AdamW extends Stateful implements Optimizer {
  readonly name = 'adamw'
  constructor(
    private readonly beta1: number,
    private readonly beta2: number,
    private readonly weightDecay: number,
    private readonly epsilon = 1e-8,
  ) {
    super()
  }

  step(variables: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.iterations++
    const t = this.iterations
    const c1 = 1 - this.beta1 ** t
    const c2 = 1 - this.beta2 ** t
    const names = [...variables.keys()].filter((name) => grads.has(name))
    const operands = names.map((name) => {
      const p = variables.get(name)!
      return {p, g: grads.get(name)!, m: this.slot(`${name}.exp_avg`, p), v: this.slot(`${name}.exp_avg_sq`, p)}
    })
    const step = {lr, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon, weightDecay: this.weightDecay, c1, c2}
    adamwStep(operands, step)
  }
}

export class Sgd extends Stateful implements Optimizer {
  readonly name = 'sgd'
  constructor(
    private readonly momentum: number,
    private readonly nesterov: boolean,
    private readonly weightDecay: number,
  ) {
    super()
  }

  step(variables: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.iterations++
    for (const [name, p] of variables) {
      const g0 = grads.get(name)
      if (!g0) continue
      const buf = this.momentum > 0 ? this.slot(`${name}.momentum_buffer`, p) : undefined
      tf.tidy(() => {
        const g = this.weightDecay > 0 ? g0.add(p.mul(this.weightDecay)) : g0
        let update: tf.Tensor = g
        if (buf) {
          const b = buf.mul(this.momentum).add(g)
          buf.assign(b)
          update = this.nesterov ? g.add(b.mul(this.momentum)) : b
        }
        p.assign(p.sub(update.mul(lr)))
      })
    }
  }
}

export function createOptimizer(config: OptimizerConfig): Optimizer {
  if (config.name === 'adamw') return new AdamW(config.betas[0], config.betas[1], config.weightDecay)
  return new Sgd(config.momentum, config.nesterov, config.weightDecay)
}

/**
 * Global-norm gradient clipping (PyTorch clip_grad_norm_): scale all gradients by
 * max/(‖g‖ + 1e-6) when ‖g‖ > max. Returns the norm before clipping. max = 0 turns it off.
 */
export async function clipByGlobalNorm(grads: Map<string, tf.Tensor>, max: number): Promise<{grads: Map<string, tf.Tensor>; norm: number}> {
  const normT = tf.tidy(() => tf.addN([...grads.values()].map((g) => g.square().sum())).sqrt())
  // async read: webgpu in Node cannot dataSync (it needs OffscreenCanvas)
  const norm = (await normT.data())[0]
  normT.dispose()
  if (max <= 0 || norm <= max) return {grads, norm}
  const scale = max / (norm + 1e-6)
  const clipped = new Map<string, tf.Tensor>()
  for (const [k, g] of grads) {
    clipped.set(k, g.mul(scale))
    g.dispose()
  }
  return {grads: clipped, norm}
}
