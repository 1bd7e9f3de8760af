/**
 * The job layout's one source (src/kernels/cpu/job.ts) and its checksum: the generated
 * AssemblyScript constants equal it, the built module carries its checksum, and a module built
 * from another layout is refused when it loads.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {JOB, JOB_WORDS, KIND, layoutChecksum} from '../../src/kernels/cpu/job.js'
import {ConvRuntime, checkJobLayout, wasmFiles} from '../../src/kernels/cpu/runtime.js'
import {wasm, type WasmModule} from '../../src/kernels/cpu/wasm-api.js'
import {UserError} from '../../src/errors.js'
import {PROJECT_ROOT} from '../helpers/cli.js'

/** signed LEB128 of an i32, as `i32.const` takes it */
function sleb128(value: number): number[] {
  const bytes: number[] = []
  let v = value | 0
  for (;;) {
    const byte = v & 0x7f
    v >>= 7
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) return [...bytes, byte]
    bytes.push(byte | 0x80)
  }
}

/** A wasm module whose only export is `name`, a function returning the i32 `value`. */
function moduleReturning(value: number, name = 'layoutChecksum'): WasmModule {
  const body = [0x00, 0x41, ...sleb128(value), 0x0b]
  const exportEntry = [1, name.length, ...Buffer.from(name), 0x00, 0x00]
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f], // type: () → i32
    ...[0x03, 0x02, 0x01, 0x00], // one function of that type
    ...[0x07, exportEntry.length, ...exportEntry],
    ...[0x0a, body.length + 2, 0x01, body.length, ...body],
  ]
  return new wasm.Module(new Uint8Array(bytes))
}
const exportsOf = (module: WasmModule) => new wasm.Instance(module, {}).exports

test('the generated AssemblyScript layout (assembly/generated/job-layout.ts) has every job word and kind of src/kernels/cpu/job.ts, and its checksum', () => {
  const generated = readFileSync(join(PROJECT_ROOT, 'assembly/generated/job-layout.ts'), 'utf8')
  const constants = new Map([...generated.matchAll(/^export const (\w+): \w+ = (0x[0-9a-f]+|\d+)$/gm)].map((m) => [m[1], Number(m[2])]))
  const snake = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()
  const expected = new Map<string, number>([
    ...Object.entries(JOB).map(([name, word]): [string, number] => [`J_${name}`, word]),
    ...Object.entries(KIND).map(([name, kind]): [string, number] => [`KIND_${snake(name)}`, kind]),
    ['LAYOUT_CHECKSUM', layoutChecksum()],
  ])
  assert.deepEqual(constants, expected)
  // the layout as issue 17 counted it (51 words, 14 kinds), and since (issue 16) the norm's LeakyReLU gradient, the inference σ, the GELU, the resize pass, the pooled product (+ 2 words) and the direct first-layer and up-sampling convolutions: 21 kinds; each word and kind used once
  assert.equal(JOB_WORDS, 53)
  assert.equal(Object.keys(KIND).length, 21)
  assert.equal(new Set(Object.values(JOB)).size, Object.keys(JOB).length)
  assert.equal(new Set(Object.values(KIND)).size, Object.keys(KIND).length)
})

test('the built modules carry the checksum of this layout, and load', () => {
  for (const file of Object.values(wasmFiles())) {
    const bytes = readFileSync(file)
    if (!wasm.validate(bytes)) continue // relaxed SIMD where this V8 lacks it
    const module = new wasm.Module(bytes)
    const memory = new wasm.Memory({initial: 1, maximum: 65536, shared: true})
    const {exports} = new wasm.Instance(module, {env: {memory, abort: () => undefined}})
    assert.equal((exports.layoutChecksum as () => number)() >>> 0, layoutChecksum(), file)
    assert.doesNotThrow(() => checkJobLayout(exports, file))
  }
  assert.doesNotThrow(() => new ConvRuntime(1))
})

test('a module with another checksum, or none, is refused with the file and the fix', () => {
  const expected = layoutChecksum()
  assert.doesNotThrow(() => checkJobLayout(exportsOf(moduleReturning(expected)), 'build/x.wasm'))
  // checksums with the top bit set come back from wasm as negative numbers: the same one still passes
  assert.doesNotThrow(() => checkJobLayout({layoutChecksum: () => expected | 0}, 'build/x.wasm'))
  const other = (expected ^ 0x80000001) >>> 0
  assert.throws(
    () => checkJobLayout(exportsOf(moduleReturning(other)), 'build/x.wasm'),
    (error: unknown) =>
      error instanceof UserError &&
      error.message ===
        `build/x.wasm has job layout checksum 0x${other.toString(16).padStart(8, '0')}, this sipl's job layout is ` +
          `0x${expected.toString(16).padStart(8, '0')}: rebuild the kernels with 'npm run build'`,
  )
  assert.throws(
    () => checkJobLayout(exportsOf(moduleReturning(expected, 'runJob')), 'build/old.wasm'),
    /build\/old\.wasm has no job layout checksum/,
  )
})

test('the runtime refuses the real module with its checksum changed (a build from another layout)', () => {
  const bytes = readFileSync(wasmFiles().simd)
  const constant = Buffer.from([0x41, ...sleb128(layoutChecksum())])
  const at = bytes.indexOf(constant)
  assert.ok(at > 0 && bytes.indexOf(constant, at + 1) === -1, 'the checksum constant appears once in the module')
  const changed = Buffer.from([0x41, ...sleb128(layoutChecksum() ^ 0x10000)])
  assert.equal(changed.length, constant.length)
  const patched = Buffer.from(bytes)
  changed.copy(patched, at)
  const dir = mkdtempSync(join(tmpdir(), 'sipl-layout-'))
  writeFileSync(join(dir, 'kernels.simd.wasm'), patched)
  assert.throws(
    () => new ConvRuntime(1, {relaxed: join(dir, 'absent.wasm'), simd: join(dir, 'kernels.simd.wasm')}),
    (error: unknown) => {
      assert.ok(error instanceof UserError)
      assert.match(
        error.message,
        /kernels\.simd\.wasm has job layout checksum 0x[0-9a-f]{8}, this sipl's job layout is 0x[0-9a-f]{8}: rebuild/,
      )
      return true
    },
  )
})

test('the checksum follows the layout: a moved word, a renumbered kind or a new word change it; the order of declaration does not', () => {
  const job: Record<string, number> = {...JOB}
  const base = layoutChecksum(job, KIND)
  assert.equal(base, layoutChecksum())
  assert.notEqual(layoutChecksum({...job, X: JOB.W, W: JOB.X}, KIND), base)
  assert.notEqual(layoutChecksum(job, {...KIND, adamw: 15}), base)
  assert.notEqual(layoutChecksum({...job, EXTRA: JOB_WORDS}, KIND), base)
  assert.equal(layoutChecksum(Object.fromEntries(Object.entries(job).reverse()), KIND), base)
})
