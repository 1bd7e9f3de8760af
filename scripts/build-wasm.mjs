#!/usr/bin/env node
// Compiles assembly/conv3d.ts and the modules it imports (AssemblyScript) into build/conv3d.simd.wasm and
// build/conv3d.relaxed.wasm, the CPU convolution kernels of src/kernels/cpu (docs/kernels.md).
// Runs before tsc in `npm run build`, so `npm ci` (→ prepare → build) produces them in a clean clone.
import {spawnSync} from 'node:child_process'
import {mkdirSync, readdirSync, statSync, existsSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {createRequire} from 'node:module'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const source = join(root, 'assembly/conv3d.ts')
const outDir = join(root, 'build')
// the newest of assembly/*.ts: a change to any module rebuilds
const newestSource = Math.max(
  ...readdirSync(join(root, 'assembly'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => statSync(join(root, 'assembly', f)).mtimeMs),
)
mkdirSync(outDir, {recursive: true})
const asc = join(dirname(createRequire(import.meta.url).resolve('assemblyscript/package.json')), 'bin/asc.js')

const common = [
  source,
  '-O3',
  '--noAssert',
  '--runtime',
  'stub',
  '--importMemory',
  '--sharedMemory',
  '--initialMemory',
  '1',
  // 4 GiB: wasm32's limit; a shared memory must declare its maximum
  '--maximumMemory',
  '65536',
]
const variants = [
  {file: 'conv3d.simd.wasm', flags: ['--enable', 'simd,threads']},
  {file: 'conv3d.relaxed.wasm', flags: ['--enable', 'simd,threads,relaxed-simd']},
]
for (const v of variants) {
  const out = join(outDir, v.file)
  if (existsSync(out) && statSync(out).mtimeMs > newestSource && !process.argv.includes('--force')) continue
  const r = spawnSync(process.execPath, [asc, ...common, ...v.flags, '--outFile', out], {stdio: 'inherit'})
  if (r.status !== 0) {
    console.error(`build-wasm: asc failed for ${v.file}`)
    process.exit(r.status ?? 1)
  }
}
