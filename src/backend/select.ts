/**
 * Choosing the compute backend (DESIGN §7). Order for `auto`: tensorflow (tfjs-node-gpu, then
 * tfjs-node, when the user installed one) → webgpu (when a GPU adapter is found) → wasm (only
 * if its conv3d gradient check passes; 4.22 fails it) → cpu. A backend that cannot start is
 * reported with its reason; `tf.setBackend`'s return value is checked because after a failed
 * start `tf.getBackend()` still names the backend.
 */
import {execFile} from 'node:child_process'
import {createRequire} from 'node:module'
import {pathToFileURL} from 'node:url'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {threadsCapped} from '../paths.js'
import {tf} from './tf.js'
import {activeCpuKernels, fastKernelsUnavailable, installCpuKernels} from '../kernels/register.js'
import {conv3dSelfCheck, type SelfCheck} from './self-check.js'
import {holdNativeStderr, nativeMessages} from './native-stderr.js'
import {installWebgpuKernels} from '../kernels/webgpu/index.js'
import {BACKENDS, type BackendName, type BackendRequest} from './names.js'

export interface BackendProbe {
  name: BackendName
  /** the tfjs backend id once registered ('tensorflow', 'webgpu', 'wasm', 'cpu') */
  loadable: boolean
  /** why it is or is not usable, in words */
  detail: string
  check?: SelfCheck
}

export interface BackendChoice {
  name: BackendName
  reason: string
  probes: BackendProbe[]
}

const require = createRequire(import.meta.url)

async function tryImport(specifier: string): Promise<unknown> {
  return import(specifier)
}

async function loadTensorflow(): Promise<string> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require.resolve(pkg)
    } catch {
      continue
    }
    await tryImport(pkg)
    return pkg
  }
  throw new Error(
    'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed (npm install @tensorflow/tfjs-node-gpu@4.22.0 for CUDA)',
  )
}

/** What a separate process found when it asked Dawn for a WebGPU adapter. */
export interface WebgpuAdapterProbe {
  found: boolean
  /** vendor, architecture, device, description */
  name?: string
  /** a software renderer on the CPU (lavapipe, SwiftShader) */
  software?: boolean
  /** what Dawn wrote to stderr, one entry per message, without its C++ source locations */
  native: string[]
  /** why the probe itself failed (package missing, process crashed or hung) */
  failure?: string
}

// Runs in a child process: Dawn writes its loader failures ("Couldn't load Vulkan: libvulkan.so.1 …
// BackendVk.cpp:368") from C++ straight to file descriptor 2, where no JavaScript can intercept them.
const ADAPTER_PROBE_SCRIPT = `
const {create} = await import(process.argv[1])
const adapter = await create([]).requestAdapter()
const info = (adapter && adapter.info) || {}
const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown'
const fallback = Boolean(adapter && (adapter.isFallbackAdapter || info.isFallbackAdapter))
process.stdout.write(JSON.stringify(adapter ? {found: true, name, fallback} : {found: false}) + '\\n')
process.exit(0)
`

let adapterProbe: Promise<WebgpuAdapterProbe> | undefined

/**
 * Whether Dawn finds a WebGPU adapter here, asked once per process in a child process, so that Dawn's
 * native messages are captured (they go into the probe's detail, and so into the log and `sipl doctor`)
 * instead of reaching the terminal, and so that Dawn is only loaded into sipl when there is an adapter.
 */
export function probeWebgpuAdapter(): Promise<WebgpuAdapterProbe> {
  adapterProbe ??= new Promise((done) => {
    let entry: string
    try {
      entry = pathToFileURL(require.resolve('webgpu')).href
    } catch {
      done({found: false, native: [], failure: "the optional package 'webgpu' (Dawn) is not installed"})
      return
    }
    execFile(
      process.execPath,
      ['--input-type=module', '-e', ADAPTER_PROBE_SCRIPT, entry],
      {timeout: 60_000, encoding: 'utf8'},
      (error, stdout, stderr) => {
        const native = nativeMessages(stderr)
        const line = stdout.split('\n').find((l) => l.startsWith('{'))
        if (line !== undefined) {
          const r = JSON.parse(line) as {found: boolean; name?: string; fallback?: boolean}
          done({
            found: r.found,
            native,
            ...(r.found ? {name: r.name, software: Boolean(r.fallback) || SOFTWARE_ADAPTER.test(r.name ?? '')} : {}),
          })
          return
        }
        const how = error?.killed
          ? 'did not answer within 60 s'
          : error?.signal
            ? `crashed (${error.signal})`
            : `failed (exit ${error?.code ?? '?'})`
        done({found: false, native, failure: `the WebGPU probe process ${how}`})
      },
    )
  })
  return adapterProbe
}

/** The probe's outcome in words, e.g. "no WebGPU adapter (Dawn: Couldn't load Vulkan: …; needs Vulkan: …)". */
export function describeAdapterProbe(probe: WebgpuAdapterProbe): string {
  const dawn = probe.native.length > 0 ? `Dawn: ${probe.native.join('; ')}` : ''
  if (probe.found) return `adapter ${probe.name}${probe.software ? ' (software renderer on the CPU)' : ''}`
  const parts = [probe.failure, dawn, 'needs Vulkan: a GPU driver, or Mesa ≥ 25 lavapipe on CPU'].filter((p) => p)
  return `no WebGPU adapter (${parts.join('; ')})`
}

/** What Dawn printed while sipl loaded it, for the adapter's detail (so for the log's backend line and `sipl doctor`). */
export function describeDawnNotes(notes: string[], held: boolean): string {
  if (notes.length === 0) return ''
  return held ? `; Dawn said, kept off the terminal: ${notes.join('; ')}` : `; Dawn printed to stderr (harmless): ${notes.join('; ')}`
}

let webgpuInstalled = false
async function loadWebgpu(): Promise<string> {
  let firstAdapter: Promise<GpuAdapterLike | null> | undefined
  let dawnNotes: string[] = []
  let dawnNotesHeld = false
  if (!webgpuInstalled) {
    const nav = (globalThis as {navigator?: {gpu?: unknown}}).navigator
    if (!nav?.gpu) {
      const probe = await probeWebgpuAdapter()
      if (!probe.found) throw new Error(describeAdapterProbe(probe))
      let dawn: {create: (flags: string[]) => unknown; globals: Record<string, unknown>}
      try {
        dawn = (await tryImport('webgpu')) as typeof dawn
      } catch (error) {
        throw new Error(`the optional package 'webgpu' (Dawn) does not load: ${(error as Error).message.split('\n')[0]}`)
      }
      Object.assign(globalThis, dawn.globals)
      // Dawn prints its limit notices ("maxDynamicUniformBuffersPerPipelineLayout artificially reduced …")
      // from C++ during the first requestAdapter call; they are held back and told in the adapter's detail
      const held = holdNativeStderr(() => {
        const gpu = dawn.create([]) as {requestAdapter(): Promise<GpuAdapterLike | null>}
        return {gpu, adapter: gpu.requestAdapter()}
      })
      Object.defineProperty(globalThis, 'navigator', {value: {...(nav ?? {}), gpu: held.value.gpu}, configurable: true, writable: true})
      firstAdapter = held.value.adapter
      dawnNotes = held.held ? nativeMessages(held.text) : probe.native
      dawnNotesHeld = held.held
    }
    const gpu = (globalThis as unknown as {navigator: {gpu: {requestAdapter(): Promise<GpuAdapterLike | null>}}}).navigator.gpu
    const adapter = await (firstAdapter ?? gpu.requestAdapter())
    if (!adapter) throw new Error('no WebGPU adapter (needs Vulkan: a GPU driver, or Mesa ≥ 25 lavapipe on CPU)')
    // the backend registers itself only if navigator.gpu exists when it is imported
    await tryImport('@tensorflow/tfjs-backend-webgpu')
    // sipl's tiled conv3d and rank-5 fixes replace stock kernels, so only after that import
    installWebgpuKernels()
    webgpuInstalled = true
    const info = adapter.info ?? {}
    const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown'
    webgpuSoftware = Boolean(adapter.isFallbackAdapter || info.isFallbackAdapter) || SOFTWARE_ADAPTER.test(name)
    webgpuAdapterName = `adapter ${name}${webgpuSoftware ? ' (software renderer on the CPU)' : ''}${describeDawnNotes(dawnNotes, dawnNotesHeld)}`
  }
  return webgpuAdapterName
}

interface GpuAdapterLike {
  isFallbackAdapter?: boolean
  info?: {vendor?: string; architecture?: string; description?: string; device?: string; isFallbackAdapter?: boolean}
}
// Vulkan on the CPU (Mesa lavapipe/llvmpipe, SwiftShader) is slower than sipl's own CPU kernels,
// so `auto` does not pick it; `--backend webgpu` still can.
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i
let webgpuSoftware = false
let webgpuAdapterName = ''

async function loadWasm(): Promise<string> {
  await tryImport('@tensorflow/tfjs-backend-wasm')
  return '@tensorflow/tfjs-backend-wasm'
}

const LOADERS: Record<BackendName, () => Promise<string>> = {
  tensorflow: loadTensorflow,
  webgpu: loadWebgpu,
  wasm: loadWasm,
  cpu: async () => {
    const why = activeCpuKernels() === 'fast' ? undefined : (fastKernelsUnavailable() ?? 'switched to the reference kernels')
    return why
      ? `pure JavaScript (@tensorflow/tfjs-backend-cpu; fast kernels off: ${why})`
      : `@tensorflow/tfjs-backend-cpu with sipl's wasm-SIMD conv3d kernels`
  },
}

/** Starts the cpu backend with sipl's kernels, without the conv3d check (for commands that only build a model). */
export async function startCpuBackend(): Promise<void> {
  installCpuKernels()
  await tf.setBackend('cpu')
}

/** true when the WebGPU adapter found is a software renderer (known after probing webgpu) */
export function webgpuIsSoftware(): boolean {
  return webgpuSoftware
}

/** Loads and starts one backend, then runs the conv3d check against cpu. Throws only the UserError of a broken install. */
export async function probeBackend(name: BackendName, runCheck = true): Promise<BackendProbe> {
  // every backend's check compares against cpu, so the cpu kernels are installed whichever is probed
  installCpuKernels()
  let detail: string
  try {
    detail = await LOADERS[name]()
    const started = await tf.setBackend(name)
    if (!started) return {name, loadable: false, detail: `${detail}: tf.setBackend('${name}') failed to initialise`}
    await tf.ready()
  } catch (error) {
    return {name, loadable: false, detail: (error as Error).message.split('\n')[0]}
  }
  if (!runCheck) return {name, loadable: true, detail}
  const check = await conv3dSelfCheck(name)
  return {name, loadable: true, detail, check}
}

/** Starts the backend a command will use and says why it was chosen. */
export async function selectBackend(request: BackendRequest, log?: Logger): Promise<BackendChoice> {
  if (!BACKENDS.includes(request)) throw new UserError(`--backend ${request}: unknown backend (use one of ${BACKENDS.join(', ')})`)
  installCpuKernels()
  const capped = threadsCapped()
  if (capped)
    log?.warn(
      capped,
      `SIPL_THREADS=${capped.requested} is more than the ${capped.cores} cores; the cpu kernels use ${capped.cores} threads`,
    )
  const probes: BackendProbe[] = []
  if (request !== 'auto') {
    const probe = await probeBackend(request)
    probes.push(probe)
    if (!probe.loadable)
      throw new UserError(`backend '${request}' cannot start: ${probe.detail} (run 'sipl doctor' to see what loads, or use --backend cpu)`)
    if (probe.check && !probe.check.pass) {
      throw new UserError(
        `backend '${request}' computes wrong conv3d results (max relative error ${probe.check.maxRelError.toExponential(2)} vs cpu); use --backend cpu or webgpu`,
      )
    }
    await tf.setBackend(request)
    const choice = {name: request, reason: `requested (${probe.detail})`, probes}
    log?.info({backend: choice.name, reason: choice.reason}, 'backend')
    return choice
  }
  for (const name of ['tensorflow', 'webgpu', 'wasm'] as const) {
    if (name === 'webgpu' && !webgpuInstalled) {
      // auto does not choose a software adapter, so Dawn is not even loaded for one
      const adapter = await probeWebgpuAdapter()
      if (adapter.found && adapter.software) {
        probes.push({name, loadable: true, detail: describeAdapterProbe(adapter)})
        continue
      }
    }
    const probe = await probeBackend(name)
    probes.push(probe)
    if (name === 'webgpu' && probe.loadable && webgpuSoftware) continue
    if (probe.loadable && (probe.check === undefined || probe.check.pass)) {
      await tf.setBackend(name)
      const choice = {name, reason: `auto: ${probe.detail}`, probes}
      log?.info({backend: name, reason: choice.reason}, 'backend')
      return choice
    }
  }
  await tf.setBackend('cpu')
  const skipped = probes.map(
    (p) =>
      `${p.name}: ${!p.loadable ? p.detail : p.check && !p.check.pass ? `conv3d check failed (rel. error ${p.check.maxRelError.toExponential(1)})` : `${p.detail}, not chosen by auto`}`,
  )
  const choice: BackendChoice = {name: 'cpu', reason: `auto: fallback (${skipped.join('; ')})`, probes}
  log?.info({backend: 'cpu', reason: choice.reason}, 'backend')
  return choice
}
