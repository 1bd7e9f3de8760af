/**
 * The parameter registry. Every weight of the network is a tf.Variable created here, under a
 * stable dotted name ('backbone.enc.1.block.0.conv1.kernel') that becomes its safetensors key.
 * Values are drawn from the project's seeded `Rng` in creation order, so one seed gives the same
 * network on every backend and every machine.
 *
 * Variables are created without a tfjs name: tfjs names are global to the engine and would
 * collide when two networks exist at once (tests, cross-backend comparison, ensembling).
 */
import {tf} from '../backend/tf.js'
import type {Rng} from '../util/rng.js'

export type Init =
  /** N(0, std²) */
  | {kind: 'normal'; std: number}
  /** He/Kaiming normal, std √(2 / fanIn): convolutions followed by (leaky) ReLU */
  | {kind: 'he'; fanIn: number}
  /** LeCun normal, std √(1 / fanIn): linear maps that feed a norm, GELU or a logit */
  | {kind: 'lecun'; fanIn: number}
  | {kind: 'zeros'}
  | {kind: 'ones'}

export class ParamStore {
  private readonly variables = new Map<string, tf.Variable>()

  constructor(private readonly rng: Rng) {}

  add(name: string, shape: number[], init: Init): tf.Variable {
    if (this.variables.has(name)) throw new Error(`parameter '${name}' defined twice`)
    const size = shape.reduce((a, b) => a * b, 1)
    const values = new Float32Array(size)
    if (init.kind === 'ones') values.fill(1)
    else if (init.kind !== 'zeros') {
      const std = init.kind === 'normal' ? init.std : Math.sqrt((init.kind === 'he' ? 2 : 1) / init.fanIn)
      for (let i = 0; i < size; i++) values[i] = std * this.rng.normal()
    }
    const initial = tf.tensor(values, shape)
    const variable = tf.variable(initial, true)
    initial.dispose()
    this.variables.set(name, variable)
    return variable
  }

  named(): Map<string, tf.Variable> {
    return new Map(this.variables)
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose()
    this.variables.clear()
  }
}
