// IPL (Eq. 2), the CPP initialisations and their embedding files; ipl.integration.test.ts runs the `sipl model` command.
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {tf} from '../helpers/tf.js'
import {loadConfig} from '../../src/config/load.js'
import {UserError} from '../../src/errors.js'
import {ParamStore} from '../../src/model/init.js'
import {headMasks, Ipl, PlainPrototypes, readNpyMatrix} from '../../src/model/ipl.js'
import {Conv3d} from '../../src/model/layers.js'
import type {VoxelEmbeddings} from '../../src/model/backbone.js'
import {buildNet} from '../../src/model/summary.js'
import {Rng} from '../../src/util/rng.js'
import {expectNoLeakedTensors, expectNoLeakedTensorsInTidy} from '../helpers/tensors.js'

await tf.setBackend('cpu')

const dir = mkdtempSync(join(tmpdir(), 'sipl-model-'))

/** A class-embedding file (a K×e matrix as JSON) in the test folder; returns its path. */
function embeddingFile(name: string, rows: number[][]): string {
  const file = join(dir, name)
  writeFileSync(file, JSON.stringify(rows))
  return file
}

/** a float32 .npy file written by hand (v1.0 header padded to 64 bytes) */
function npy(rows: number[][], dtype: '<f4' | '<f8' = '<f4'): Uint8Array {
  const header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': (${rows.length}, ${rows[0].length}), }`.padEnd(64 - 10 - 1) + '\n'
  const width = dtype === '<f4' ? 4 : 8
  const bytes = new Uint8Array(10 + header.length + rows.length * rows[0].length * width)
  bytes.set([0x93, ...Buffer.from('NUMPY'), 1, 0, header.length, 0])
  bytes.set(Buffer.from(header, 'latin1'), 10)
  const view = new DataView(bytes.buffer)
  rows
    .flat()
    .forEach((v, i) =>
      width === 4 ? view.setFloat32(10 + header.length + 4 * i, v, true) : view.setFloat64(10 + header.length + 8 * i, v, true),
    )
  return bytes
}

test('Eq. 2: IPP_k is the voxel mean of softmax(M)_k · F', () => {
  const config = loadConfig('experiments/demo.yaml', []).config
  const store = new ParamStore(new Rng(1))
  const ipl = new Ipl(store, config.model, 2, 3, false)
  const rng = new Rng(2)
  const f = Array.from({length: 8 * 3}, () => rng.normal())
  const m = Array.from({length: 8 * 3}, () => 2 * rng.normal())
  const features = tf.tensor5d(f, [1, 2, 2, 2, 3])
  const masks = tf.tensor5d(m, [1, 2, 2, 2, 3])
  const ipp = expectNoLeakedTensorsInTidy(() => ipl.instanceProposals(features, masks)).dataSync()
  for (let k = 1; k <= 2; k++) {
    for (let c = 0; c < 3; c++) {
      let sum = 0
      for (let v = 0; v < 8; v++) {
        const logits = m.slice(3 * v, 3 * v + 3)
        const z = logits.reduce((s, l) => s + Math.exp(l), 0)
        sum += (Math.exp(logits[k]) / z) * f[3 * v + c]
      }
      assert.ok(Math.abs(ipp[(k - 1) * 3 + c] - sum / 8) < 1e-5, `k=${k} c=${c}`)
    }
  }
  // BraTS regions from exclusive class probabilities: WT = p1+p2+p3, TC = p2+p3, ET = p3
  const probabilities = tf.tensor5d([0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1, 4])
  const regions = expectNoLeakedTensorsInTidy(() => headMasks(probabilities, 3, true)).dataSync()
  ;[0.9, 0.7, 0.4].forEach((v, i) => assert.ok(Math.abs(regions[i] - v) < 1e-6))
  ipl.dispose()
  store.dispose()
})

test('CPP from a class-embedding file (JSON or .npy) goes through a learnable K×e → d_i map', () => {
  const json = embeddingFile('clip.json', [
    [1, 0, 0.5, 0, 1],
    [0, 1, 0, 2, 0],
    [3, 0, 1, 0, 0],
  ])
  const npyFile = join(dir, 'biobert.npy')
  const matrix = [
    [0.5, -1, 2, 0.25],
    [1, 1, 1, 1],
    [0, 0, 0, 1],
  ]
  writeFileSync(npyFile, npy(matrix))
  assert.deepEqual(readNpyMatrix(npy(matrix, '<f8'), 'x'), matrix)
  for (const [init, file, e] of [
    ['clip', json, 5],
    ['biobert', npyFile, 4],
  ] as const) {
    const config = loadConfig('experiments/demo.yaml', [`model.cpp.init=${init}`, `model.cpp.file=${file}`]).config
    // building, a forward pass and dispose leave nothing behind
    expectNoLeakedTensors(() => {
      const net = buildNet(config)
      assert.deepEqual(net.namedVariables().get('ipl.cpp.proj.kernel')!.shape, [e, 64])
      assert.equal(net.namedVariables().has('ipl.cpp'), false, 'the embedding itself is fixed, not a variable')
      const shape = tf.tidy(() => net.apply(tf.randomNormal([1, 32, 32, 32, 1]) as tf.Tensor5D, {training: true, epoch: 0}).logits.shape)
      assert.deepEqual(shape, [1, 32, 32, 32, 3])
      net.dispose()
    })
  }
})

test('a missing, malformed or mis-shaped embedding file is a one-line UserError naming it', () => {
  const wrongK = embeddingFile('two-rows.json', [
    [1, 2],
    [3, 4],
  ])
  const ragged = embeddingFile('ragged.json', [[1, 2], [3], [4, 5]])
  const notNpy = join(dir, 'bad.npy')
  writeFileSync(notNpy, 'hello')
  const cases: [string[], RegExp][] = [
    [['model.cpp.init=clip'], /needs model\.cpp\.file/],
    [['model.cpp.init=file', `model.cpp.file=${join(dir, 'nope.json')}`], /nope\.json: file not found/],
    [['model.cpp.init=file', `model.cpp.file=${wrongK}`], /2 rows but the task has 3 classes/],
    [['model.cpp.init=file', `model.cpp.file=${ragged}`], /K×e array/],
    [['model.cpp.init=file', `model.cpp.file=${notNpy}`], /not a \.npy file/],
  ]
  for (const [sets, message] of cases) {
    const config = loadConfig('experiments/demo.yaml', sets).config
    // a refused build leaves no variables behind
    expectNoLeakedTensors(() =>
      assert.throws(
        () => buildNet(config),
        (e: unknown) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n'),
        sets.join(' '),
      ),
    )
  }
})

test("the head's folded prototypes equal F_o computed literally (1×1×1 projection, then the prototype product), random biases, batch 1 and 2, values and gradients", () => {
  const config = loadConfig('experiments/demo.yaml', ['model.ipl=false']).config
  const e = config.model.backbone.embedDim
  // u narrower than F_o: g and b live in the projection's output width, u in its input width
  const cin = e - 3
  const store = new ParamStore(new Rng(3))
  const projection = new Conv3d(store, 'proj', cin, e, 1, 1, true)
  const head = new PlainPrototypes(store, config.model, 3)
  // every parameter random and non-zero: the biases' terms b·g_k and b_k count
  tf.tidy(() => {
    for (const [i, v] of [...store.named().values()].entries()) v.assign(tf.randomNormal(v.shape, 0, 1, 'float32', 20 + i))
  })
  const params = [...store.named().values()]
  for (const batch of [1, 2]) {
    expectNoLeakedTensors(() =>
      tf.tidy(() => {
        const u = tf.randomNormal([batch, 4, 5, 6, cin], 0, 1, 'float32', 9) as tf.Tensor5D
        const embeddings = (x: tf.Tensor): VoxelEmbeddings => ({
          shape: x.shape as [number, number, number, number, number],
          projection,
          unprojected: () => x as tf.Tensor5D,
          probabilities: () => assert.fail('a logits head asks for no probabilities'),
        })
        const folded = (x: tf.Tensor) => head.apply(embeddings(x))
        const literal = (x: tf.Tensor) => {
          const fo = tf.reshape(projection.apply(x as tf.Tensor5D), [batch, 120, e])
          const prototypes = tf.reshape(store.named().get('head.prototypes')!, [1, 3, e])
          const logits = tf.add(tf.matMul(fo, tf.tile(prototypes, [batch, 1, 1]), false, true), store.named().get('head.classBias')!)
          return tf.reshape(logits, [batch, 4, 5, 6, 3])
        }
        const a = folded(u).dataSync() as Float32Array
        const b = literal(u).dataSync() as Float32Array
        const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
        assert.ok(scale > 1, 'logits of some size')
        assert.ok(
          a.every((v, i) => Math.abs(v - b[i]) <= 1e-5 * scale),
          `batch ${batch}: the folded head is F_o's`,
        )
        const gradsOf = (f: (x: tf.Tensor) => tf.Tensor) =>
          tf.variableGrads(() => tf.sum(tf.mul(f(u), tf.randomNormal([batch, 4, 5, 6, 3], 0, 1, 'float32', 5))) as tf.Scalar, params).grads
        const ga = gradsOf(folded)
        const gb = gradsOf(literal)
        for (const v of params) {
          const x = ga[v.name].dataSync() as Float32Array
          const y = gb[v.name].dataSync() as Float32Array
          const s = y.reduce((m, t) => Math.max(m, Math.abs(t)), 0)
          assert.ok(s > 0 && x.every((t, i) => Math.abs(t - y[i]) <= 1e-5 * s), `batch ${batch}: gradient of ${v.name}`)
        }
      }),
    )
  }
  store.dispose()
})
