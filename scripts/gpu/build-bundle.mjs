#!/usr/bin/env node
// Builds the self-contained GPU check folder build/gpu/ (git-ignored) for a machine that has a
// GPU driver but no npm, no network and no node_modules (docs/gpu.md, "Device check"):
//   build/gpu/device-check.mjs   one esbuild bundle: tfjs-core + gradients + cpu + webgpu backends,
//                                sipl's webgpu kernels, src/model/unet-ref and the check itself
//   build/gpu/dawn.node.xz       the 'webgpu' package's Dawn binding (linux-x64)
//   build/gpu/node.xz            this Node binary
//   .gl/*.deb                    Vulkan/GL loader packages (amd64), unpacked on the device
// Usage: node scripts/gpu/build-bundle.mjs [--no-node] [--no-gl]
import {execFileSync} from 'node:child_process'
import {copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {build} from 'esbuild'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const out = join(root, 'build/gpu')
const flags = new Set(process.argv.slice(2))
mkdirSync(out, {recursive: true})

// src/backend/tf.ts also loads sipl's cpu kernels (wasm files + worker threads), which a one-file
// bundle cannot carry; inside the bundle it is replaced by tf-shim.mjs, and the '@tensorflow/tfjs'
// union by tfjs-core + gradients + cpu (tf-lite.mjs)
const redirect = {
  name: 'sipl-gpu-bundle',
  setup(b) {
    b.onResolve({filter: /(^|\/)backend\/tf\.js$/}, () => ({path: join(root, 'scripts/gpu/tf-shim.mjs')}))
    b.onResolve({filter: /^@tensorflow\/tfjs$/}, () => ({path: join(root, 'scripts/gpu/tf-lite.mjs')}))
    // sipl's cpu kernels (src/kernels/register.ts, not the webgpu one) → reference-only stand-in
    b.onResolve({filter: /^\.\/register\.js$/}, (a) =>
      a.resolveDir === join(root, 'src/kernels') ? {path: join(root, 'scripts/gpu/cpu-kernels-shim.mjs')} : undefined,
    )
  },
}
await build({
  entryPoints: [join(root, 'scripts/gpu/device-check.mjs')],
  outfile: join(out, 'device-check.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // one copy of tfjs-core (its ESM build, which register_all_gradients also uses)
  mainFields: ['module', 'main'],
  plugins: [redirect],
  banner: {js: "import {createRequire as __siplCreateRequire} from 'node:module'; const require = __siplCreateRequire(import.meta.url);"},
  logLevel: 'warning',
})

// worker threads and wasm files cannot live in a one-file bundle: fail here, not on the device
const bundled = readFileSync(join(out, 'device-check.mjs'), 'utf8')
for (const marker of ['new Worker(', '.wasm']) {
  if (bundled.includes(marker))
    throw new Error(
      `build/gpu/device-check.mjs contains '${marker}': a new import pulls in sipl's cpu kernels; redirect it in scripts/gpu/build-bundle.mjs`,
    )
}

const xz = (from, to) => writeFileSync(to, execFileSync('xz', ['-c', '-6', '-T0', from], {maxBuffer: 1 << 30}))
const dawn = join(root, 'node_modules/webgpu/dist/linux-x64/dawn.node')
if (!existsSync(dawn)) throw new Error(`${dawn} is missing: npm install (the optional dependency 'webgpu')`)
xz(dawn, join(out, 'dawn.node.xz'))
if (!flags.has('--no-node') && !existsSync(join(out, 'node.xz'))) xz(process.execPath, join(out, 'node.xz'))
copyFileSync(join(root, 'scripts/gpu/run-device-check.sh'), join(out, 'run-device-check.sh'))

// loader packages: libvulkan1 alone is not enough, the NVIDIA ICD needs the glvnd libraries
const gl = join(root, '.gl')
const packages = ['libvulkan1', 'libegl1', 'libglvnd0', 'libopengl0', 'libgl1', 'libglx0', 'libgles2']
if (!flags.has('--no-gl')) {
  mkdirSync(gl, {recursive: true})
  const have = readdirSync(gl).filter((f) => f.endsWith('.deb'))
  const missing = packages.filter((p) => !have.some((f) => f.startsWith(`${p}_`)))
  if (missing.length > 0) {
    const o = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', '-oDir::State::Lists=/tmp/amd64-lists']
    mkdirSync('/tmp/amd64-lists/partial', {recursive: true})
    execFileSync('apt-get', [...o, 'update', '-qq'], {stdio: 'inherit'})
    execFileSync('apt-get', [...o, 'download', ...missing], {cwd: gl, stdio: 'inherit'})
  }
}

const size = (dir) => readdirSync(dir).reduce((s, f) => s + statSync(join(dir, f)).size, 0)
console.log(`build/gpu: ${(size(out) / 2 ** 20).toFixed(1)} MiB; .gl: ${existsSync(gl) ? (size(gl) / 2 ** 20).toFixed(1) : 0} MiB`)
console.log(readdirSync(out).join(' '))
