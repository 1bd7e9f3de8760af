// The WGSL that the tiled webgpu conv3d programs generate, and the launch fields that go with it
// (shader key, workgroup size, dispatch, output shape, uniforms), compared with the snapshot in
// test/fixtures/wgsl-programs.json, made from the code before it was split into one file per program: a
// refactoring that changes one character of a shader fails here, without a GPU. After an
// intended change, regenerate with SIPL_UPDATE_SNAPSHOTS=1 and review the diff.
import assert from 'node:assert/strict'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {test} from 'node:test'
import {
  Conv3DBackpropFilterTiledProgram,
  Conv3DBackpropInputTiledProgram,
  Conv3DTiledProgram,
  parityClasses,
  SumPartialsProgram,
  type ConvGeometry,
  type WebGPUProgramLike,
} from '../../src/kernels/webgpu/programs.js'
import {PROJECT_ROOT} from '../helpers/cli.js'

const SNAPSHOT = join(PROJECT_ROOT, 'test/fixtures/wgsl-programs.json')
const update = process.env.SIPL_UPDATE_SNAPSHOTS === '1'

/** A cubic layer: every spatial axis has the same size, kernel, stride and padding. */
function layer(
  batch: number,
  inSize: number,
  inC: number,
  outSize: number,
  outC: number,
  k: number,
  stride: number,
  pad: number,
): ConvGeometry {
  return {
    ...{batch, inD: inSize, inH: inSize, inW: inSize, inC},
    ...{outD: outSize, outH: outSize, outW: outSize, outC},
    ...{kD: k, kH: k, kW: k, sD: stride, sH: stride, sW: stride, padD: pad, padH: pad, padW: pad},
  }
}

// the network's kinds of layer: a 3³ stride-1 conv, a 3³ stride-2 down-sampling conv, the 2³
// stride-2 transposed up-sampling, a 1³ projection, and a wide layer that picks the largest tiling
const GEOMETRIES: Record<string, ConvGeometry> = {
  k3s1: layer(1, 8, 4, 8, 8, 3, 1, 1),
  k3s2: layer(2, 8, 8, 4, 16, 3, 2, 1),
  k2s2: layer(1, 4, 16, 2, 8, 2, 2, 0),
  k1s1: layer(1, 8, 32, 8, 3, 1, 1, 0),
  wide: layer(1, 16, 64, 16, 128, 3, 1, 1),
}

interface ProgramSnapshot {
  shaderKey: string
  workgroupSize: number[]
  dispatch: number[]
  dispatchLayout: WebGPUProgramLike['dispatchLayout']
  outputShape: number[]
  variableNames: string[]
  uniforms?: string
  uniformData: number[][]
  wgsl: string
}

function describe(p: WebGPUProgramLike & {uniformData(): {type: string; data: number[]}[]}): ProgramSnapshot {
  return {
    shaderKey: p.shaderKey,
    workgroupSize: p.workgroupSize,
    dispatch: p.dispatch,
    dispatchLayout: p.dispatchLayout,
    outputShape: p.outputShape,
    variableNames: p.variableNames,
    uniforms: p.uniforms,
    uniformData: p.uniformData().map((u) => u.data),
    wgsl: p.getUserCode(),
  }
}

function programs(): Map<string, ProgramSnapshot> {
  const out = new Map<string, ProgramSnapshot>()
  for (const [name, g] of Object.entries(GEOMETRIES)) {
    out.set(`${name}.forward`, describe(new Conv3DTiledProgram(g)))
    parityClasses(g).forEach((c, i) => out.set(`${name}.input-grad.class${i}`, describe(new Conv3DBackpropInputTiledProgram(g, c))))
    const filter = new Conv3DBackpropFilterTiledProgram(g)
    out.set(`${name}.filter-grad`, describe(filter))
    const sum = new SumPartialsProgram([g.kD, g.kH, g.kW, g.inC, g.outC], filter.splits)
    out.set(`${name}.filter-grad-sum`, describe(sum))
  }
  return out
}

/** The first line where two shaders differ, for a readable failure. */
function firstDifference(actual: string, expected: string): string {
  const a = actual.split('\n')
  const e = expected.split('\n')
  const i = a.findIndex((line, k) => line !== e[k])
  const at = i === -1 ? a.length : i
  return `line ${at + 1}: generated ${JSON.stringify(a[at])}, snapshot ${JSON.stringify(e[at])}`
}

test('the generated WGSL of every tiled conv3d program matches its snapshot', () => {
  // one JSON file (a shader is one string in it), not a .wgsl file per program: the programs share
  // most of their lines, which as separate files would read as hundreds of duplicated code blocks
  const generated = Object.fromEntries(programs())
  if (update) writeFileSync(SNAPSHOT, JSON.stringify(generated, null, 2) + '\n')
  assert.ok(existsSync(SNAPSHOT), `${SNAPSHOT} is missing; make it with SIPL_UPDATE_SNAPSHOTS=1 and review it`)
  const expected = JSON.parse(readFileSync(SNAPSHOT, 'utf8')) as Record<string, ProgramSnapshot>
  assert.deepEqual(Object.keys(generated).sort(), Object.keys(expected).sort())
  for (const [name, program] of Object.entries(generated)) {
    const {wgsl, ...fields} = program
    const {wgsl: expectedWgsl, ...expectedFields} = expected[name]
    assert.deepEqual(fields, expectedFields, `${name}: launch fields differ from the snapshot`)
    assert.ok(wgsl === expectedWgsl, `${name}: the generated WGSL differs from the snapshot at ${firstDifference(wgsl, expectedWgsl)}`)
  }
})

test('the snapshots cover every program: forward, each parity class of the input gradient, filter gradient and its sum', () => {
  const names = [...programs().keys()]
  // k3s2: 2 parity classes per axis → 8; k2s2: 8; stride-1 geometries: 1
  assert.equal(names.filter((n) => n.startsWith('k3s2.input-grad')).length, 8)
  assert.equal(names.filter((n) => n.startsWith('k2s2.input-grad')).length, 8)
  assert.equal(names.filter((n) => n.startsWith('k3s1.input-grad')).length, 1)
  assert.equal(new Set(names).size, names.length)
})
