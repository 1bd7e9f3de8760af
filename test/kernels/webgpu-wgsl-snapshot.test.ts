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

function geometry(over: Partial<ConvGeometry>): ConvGeometry {
  return {
    ...{batch: 1, inD: 8, inH: 8, inW: 8, inC: 4, outD: 8, outH: 8, outW: 8, outC: 8},
    ...{kD: 3, kH: 3, kW: 3, sD: 1, sH: 1, sW: 1, padD: 1, padH: 1, padW: 1},
    ...over,
  }
}

// the network's kinds of layer: a 3³ stride-1 conv, a 3³ stride-2 down-sampling conv, the 2³
// stride-2 transposed up-sampling, a 1³ projection, and a wide layer that picks the largest tiling
const GEOMETRIES: Record<string, ConvGeometry> = {
  k3s1: geometry({}),
  k3s2: geometry({batch: 2, inC: 8, outC: 16, outD: 4, outH: 4, outW: 4, sD: 2, sH: 2, sW: 2}),
  k2s2: geometry({
    inD: 4,
    inH: 4,
    inW: 4,
    inC: 16,
    outD: 2,
    outH: 2,
    outW: 2,
    outC: 8,
    kD: 2,
    kH: 2,
    kW: 2,
    sD: 2,
    sH: 2,
    sW: 2,
    padD: 0,
    padH: 0,
    padW: 0,
  }),
  k1s1: geometry({inC: 32, outC: 3, kD: 1, kH: 1, kW: 1, padD: 0, padH: 0, padW: 0}),
  wide: geometry({batch: 1, inD: 16, inH: 16, inW: 16, inC: 64, outD: 16, outH: 16, outW: 16, outC: 128}),
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
