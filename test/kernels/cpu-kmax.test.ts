/**
 * The fused kMaX layer (src/kernels/kmax.ts, one kernel each way on `cpu`) against KmaxLayer's
 * composition of tfjs ops on the reference kernels: the updated queries, the mask logits, the
 * assignment and the filter, and the gradients of the pixels, the queries and all 32 parameters,
 * with and without the Eq. 10 filter, batch 1 and 2.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {tf} from '../helpers/tf.js'
import {relError} from '../../src/util/rel-error.js'
import {withReferenceCpuKernels} from '../../src/kernels/register.js'
import {fusedKernelsActive} from '../../src/kernels/fused.js'
import {ParamStore} from '../../src/model/init.js'
import {KmaxLayer} from '../../src/model/smg.js'
import {gelu, geluBackward} from '../../src/kernels/cpu/activations.js'
import {Rng} from '../../src/util/rng.js'
import {expectNoLeakedTensors} from '../helpers/tensors.js'
import {arrayPool} from '../../src/kernels/cpu/array-pool.js'

await tf.setBackend('cpu')

interface Case {
  name: string
  batch: number
  voxels: number
  channels: number
  queries: number
  dq: number
  heads: number
  ffn: number
  classes: number
  filter: boolean
  tau: number
  /** how often a voxel of `previous` is foreground class 1 (the rest is spread evenly over the other classes) */
  classOneShare?: number
  /** false: the layer without its cross-attention update */
  crossAttention?: boolean
}

const CASES: Case[] = [
  {
    name: 'no filter, batch 1',
    batch: 1,
    voxels: 60,
    channels: 12,
    queries: 6,
    dq: 16,
    heads: 2,
    ffn: 32,
    classes: 2,
    filter: false,
    tau: 0,
  },
  {
    name: 'filter τ = 0.5, no cross-attention',
    batch: 1,
    voxels: 48,
    channels: 12,
    queries: 6,
    dq: 16,
    heads: 2,
    ffn: 24,
    classes: 3,
    filter: true,
    tau: 0.5,
    crossAttention: false,
  },
  {
    name: 'filter τ = 0.5, batch 2',
    batch: 2,
    voxels: 64,
    channels: 12,
    queries: 6,
    dq: 16,
    heads: 4,
    ffn: 24,
    classes: 3,
    filter: true,
    tau: 0.5,
  },
  // the demo config's last layer: 8³ voxels, 8 queries of width 32, 2 heads, 3 classes
  // class 1 on ~30% of the voxels puts each cluster's ratio near τ, so some clusters pass and some do not
  {
    name: 'demo-sized, filter τ = 0.3',
    batch: 1,
    voxels: 512,
    channels: 8,
    queries: 8,
    dq: 32,
    heads: 2,
    ffn: 64,
    classes: 3,
    filter: true,
    tau: 0.3,
    classOneShare: 0.3,
  },
]

/** random values for every parameter (zeros and ones would hide a wrong bias or γ gradient) */
function layerWithRandomParameters(c: Case, seed: number): {layer: KmaxLayer; store: ParamStore} {
  const store = new ParamStore(new Rng(seed))
  const layer = new KmaxLayer(store, 'smg.layer.0', c.channels, c.dq, c.heads, c.ffn, c.classes)
  const rng = new Rng(seed + 1)
  for (const v of store.named().values()) {
    const scale = v.shape.length === 1 ? 0.3 : Math.sqrt(1 / v.shape[0])
    v.assign(
      tf.tensor(
        Float32Array.from({length: v.size}, () => scale * rng.normal()),
        v.shape,
      ),
    )
  }
  return {layer, store}
}

function previousClass(c: Case, rng: Rng): number {
  if (c.classOneShare === undefined) return Math.floor(rng.next() * (c.classes + 1))
  if (rng.next() < c.classOneShare) return 1
  const other = Math.floor(rng.next() * c.classes) // 0, 2, 3, …
  return other === 0 ? 0 : other + 1
}

interface Result {
  queries: Float32Array
  masks: Float32Array
  assignment: Float32Array
  keep: Float32Array | null
  grads: Float32Array[]
  /** pixels, queries, then the parameters' names, in the order of grads */
  names: string[]
}

function run(c: Case, seed: number): Result {
  const {layer, store} = layerWithRandomParameters(c, seed)
  const rng = new Rng(seed + 2)
  const normal = (n: number) => Float32Array.from({length: n}, () => rng.normal())
  try {
    return expectNoLeakedTensors(() => {
      let result: Result | undefined
      tf.tidy(() => {
        const pixels = tf.tensor3d(normal(c.batch * c.voxels * c.channels), [c.batch, c.voxels, c.channels])
        const queries = tf.tensor3d(normal(c.batch * c.queries * c.dq), [c.batch, c.queries, c.dq])
        const classes = Int32Array.from({length: c.batch * c.voxels}, () => previousClass(c, rng))
        const previous = c.filter
          ? (tf
              .oneHot(tf.tensor1d(classes, 'int32'), c.classes + 1)
              .toFloat()
              .reshape([c.batch, c.voxels, c.classes + 1]) as tf.Tensor3D)
          : null
        const weightQueries = tf.tensor3d(normal(c.batch * c.queries * c.dq), [c.batch, c.queries, c.dq])
        const weightMasks = tf.tensor3d(normal(c.batch * c.voxels * (c.classes + 1)), [c.batch, c.voxels, c.classes + 1])
        const variables = [...store.named().values()]
        const out = layer.apply({pixels, queries, previous, tau: c.tau, crossAttention: c.crossAttention})
        const loss = (p: tf.Tensor, q: tf.Tensor) => {
          const o = layer.apply({
            pixels: p as tf.Tensor3D,
            queries: q as tf.Tensor3D,
            previous,
            tau: c.tau,
            crossAttention: c.crossAttention,
          })
          return tf.add(tf.sum(tf.mul(o.queries, weightQueries)), tf.sum(tf.mul(o.maskLogits, weightMasks))) as tf.Scalar
        }
        const inputGrads = tf.grads(loss)([pixels, queries])
        const {grads} = tf.variableGrads(() => loss(pixels, queries), variables)
        result = {
          queries: out.queries.dataSync() as Float32Array,
          masks: out.maskLogits.dataSync() as Float32Array,
          assignment: out.assignment.dataSync() as Float32Array,
          keep: out.keep ? (out.keep.dataSync() as Float32Array) : null,
          // without cross-attention its parameters take no part, and tfjs gives them no gradient: zeros
          grads: [...inputGrads, ...variables.map((v) => grads[v.name] ?? tf.zerosLike(v))].map((g) => g.dataSync() as Float32Array),
          names: ['pixels', 'queries', ...store.named().keys()],
        }
      })
      return result!
    })
  } finally {
    store.dispose()
  }
}

for (const c of CASES) {
  test(`fused kMaX layer equals the composition: ${c.name}`, () => {
    assert.ok(fusedKernelsActive(), 'the fused kernels run on cpu')
    const fused = run(c, 11)
    const reference = withReferenceCpuKernels(() => run(c, 11))
    assert.deepEqual(Array.from(fused.assignment), Array.from(reference.assignment), 'the same filtered assignment')
    if (c.filter) {
      assert.deepEqual(Array.from(fused.keep!), Array.from(reference.keep!), 'the same clusters kept')
      assert.ok(fused.keep!.includes(0) && fused.keep!.includes(1), `some clusters kept, some not: ${Array.from(fused.keep!)}`)
    } else assert.equal(fused.keep, null)
    assert.ok(relError(fused.queries, reference.queries) <= 1e-5, `queries: ${relError(fused.queries, reference.queries)}`)
    assert.ok(relError(fused.masks, reference.masks) <= 1e-5, `mask logits: ${relError(fused.masks, reference.masks)}`)
    const names = fused.names
    const unused = (name: string) => c.crossAttention === false && /\.(valueProj|crossNorm|crossOut)\./.test(name)
    fused.grads.forEach((g, i) => {
      if (unused(names[i])) {
        assert.ok(g.every((v) => v === 0) && reference.grads[i].every((v) => v === 0), `${names[i]}: no gradient without cross-attention`)
        return
      }
      const err = relError(g, reference.grads[i])
      assert.ok(err <= 1e-4, `gradient of ${names[i]}: relative error ${err}`)
      assert.ok(
        reference.grads[i].some((v) => v !== 0),
        `gradient of ${names[i]} is not all zero`,
      )
    })
  })
}

test("the kMaX layer's GELU and its gradient (wasm, with the loss's σ): within 1e-5 of float64 over −12…12, NaN kept, tails alike, no overflow far out", () => {
  const n = 10003
  const x = Float32Array.from({length: n}, (_, i) => -12 + (24 * i) / (n - 1))
  x[500] = NaN
  const dy = Float32Array.from({length: n}, (_, i) => 0.5 + (i % 7) / 4)
  const c = Math.sqrt(2 / Math.PI)
  const s = (v: number) => 1 / (1 + Math.exp(-2 * c * (v + 0.044715 * v ** 3)))
  const y = gelu(x)
  const dx = geluBackward(dy.slice(), x)
  const close = (got: number, want: number, what: string) =>
    assert.ok(Math.abs(got - want) <= 1e-5 * Math.abs(want) + 1e-7, `${what}: ${got} vs ${want}`)
  x.forEach((v, i) => {
    if (Number.isNaN(v)) {
      assert.ok(Number.isNaN(y[i]) && Number.isNaN(dx[i]), 'GELU(NaN)')
      return
    }
    close(y[i], v * s(v), `GELU(${v})`)
    close(dx[i], dy[i] * (s(v) + 2 * v * s(v) * (1 - s(v)) * c * (1 + 3 * 0.044715 * v * v)), `GELU′(${v})`)
  })
  // an element's bits do not depend on its place (the last values run through the scalar tail)
  assert.deepEqual([...gelu(x.subarray(n - 5))], [...y.subarray(n - 5)])
  // far out (v² and 2v overflow float32 from ~1.8e19): GELU′ is 1 or 0, never NaN
  const far = Float32Array.of(1e20, -1e20, 3e38, -3e38, 20, -20)
  assert.deepEqual([...geluBackward(Float32Array.of(2, 2, 2, 2, 2, 2), far)], [2, 0, 2, 0, 2, 0])
})

test("a kMaX layer's outputs and gradients keep their values through later calls (its temporaries are recycled, its outputs never)", () => {
  const c = CASES[0]
  const {layer, store} = layerWithRandomParameters(c, 5)
  const rng = new Rng(6)
  const normal = (n: number) => Float32Array.from({length: n}, () => rng.normal())
  try {
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const inputs = [0, 1].map(() => ({
          pixels: tf.tensor3d(normal(c.batch * c.voxels * c.channels), [c.batch, c.voxels, c.channels]),
          queries: tf.tensor3d(normal(c.batch * c.queries * c.dq), [c.batch, c.queries, c.dq]),
          previous: null,
          tau: c.tau,
        }))
        // the outputs of the forward and of the backward (the pixels', the queries' and a parameter's gradient)
        const outputs = (i: number) => {
          const first = layer.apply(inputs[i])
          const loss = (p: tf.Tensor, q: tf.Tensor) => {
            const o = layer.apply({...inputs[i], pixels: p as tf.Tensor3D, queries: q as tf.Tensor3D})
            return tf.add(tf.sum(tf.square(o.queries)), tf.sum(tf.square(o.maskLogits))) as tf.Scalar
          }
          const [dPixels, dQueries] = tf.grads(loss)([inputs[i].pixels, inputs[i].queries])
          return [first.queries, first.maskLogits, first.assignment, dPixels, dQueries]
        }
        const first = outputs(0)
        const copies = first.map((t) => Array.from(t.dataSync()))
        // the same calls again: a recycled output would now hold the second calls' values
        outputs(1)
        first.forEach((t, i) => assert.deepEqual(Array.from(t.dataSync()), copies[i], `output ${i} of the first calls`))
      }),
    )
  } finally {
    store.dispose()
  }
})

test("a kMaX layer's outputs from the backend's array pool hold none of a released array's values (released arrays poisoned)", () => {
  // demo-sized: its assignment (512 voxels × 8 clusters) is long enough to come from the pool
  const c = CASES.find((k) => k.name.startsWith('demo-sized'))!
  const {layer, store} = layerWithRandomParameters(c, 9)
  const rng = new Rng(10)
  const normal = (n: number) => Float32Array.from({length: n}, () => rng.normal())
  const pixels = tf.tensor3d(normal(c.batch * c.voxels * c.channels), [c.batch, c.voxels, c.channels])
  const queries = tf.tensor3d(normal(c.batch * c.queries * c.dq), [c.batch, c.queries, c.dq])
  const forward = () =>
    tf.tidy(() => {
      const out = layer.apply({pixels, queries, previous: null, tau: 0})
      return [out.queries, out.maskLogits, out.assignment]
    })
  const pool = arrayPool(tf.backend())
  try {
    pool.enabled = false
    const fresh = forward()
    const expected = fresh.map((t) => Array.from(t.dataSync()))
    tf.dispose(fresh)
    pool.enabled = true
    pool.poison = true
    // the outputs of one call go back to the pool, NaN-filled, and the next call takes them
    tf.dispose(forward())
    const reusedBefore = pool.reused
    const again = forward()
    assert.ok(pool.reused > reusedBefore, 'the second call took arrays from the pool')
    again.forEach((t, i) => assert.deepEqual(Array.from(t.dataSync()), expected[i], `output ${i}`))
    tf.dispose(again)
  } finally {
    pool.poison = false
    pool.enabled = true
    tf.dispose([pixels, queries])
    store.dispose()
  }
})
