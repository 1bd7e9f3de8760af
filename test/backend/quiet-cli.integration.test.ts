/**
 * Native noise stays out of the terminal. Dawn (the 'webgpu' package) writes "Warning: Couldn't load
 * Vulkan … BackendVk.cpp:368" or "vkCreateInstance: Found no drivers! … VulkanError.cpp:106" from C++
 * to stderr whenever it looks for an adapter on a machine without a usable Vulkan driver. The driver
 * search is pointed at a file that does not exist, so Dawn is noisy here whatever the machine has
 * (no libvulkan, lavapipe, a GPU); the first test shows that it is, which makes the others meaningful.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {sipl} from '../helpers/cli.js'
import {TINY} from '../e2e/tiny.js'

const NO_DRIVER = {VK_ICD_FILENAMES: '/nonexistent/sipl-test-icd.json', VK_DRIVER_FILES: '/nonexistent/sipl-test-icd.json'}
const CPP_LOCATION = /\.(cpp|cc|h):\d+/

let dawn: string | undefined
try {
  dawn = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href
} catch {
  dawn = undefined
}
const inCi = process.env.CI === 'true'
if (dawn === undefined && !inCi)
  console.log("# the 'webgpu' package is not installed: Dawn cannot be noisy here, so these tests prove less")

/** No Dawn output on stderr: no "Warning: …" line, no C++ source path; Dawn's words at most once, inside sipl's own log line. */
function assertQuiet(what: string, stderr: string): void {
  assert.doesNotMatch(stderr, /^Warning: /m, `${what}: ${stderr}`)
  assert.doesNotMatch(stderr, CPP_LOCATION, `${what}: ${stderr}`)
  const mentions = stderr.split('\n').filter((l) => /Vulkan|vkCreateInstance/.test(l))
  assert.ok(mentions.length <= 1, `${what}: ${mentions.join('\n')}`)
  for (const line of mentions) assert.match(line, /^\d\d:\d\d:\d\d backend /, `${what}: only sipl's backend line may mention it`)
}

test(
  'precondition: Dawn itself writes warnings with C++ paths to stderr when it looks for an adapter here',
  {skip: dawn === undefined && !inCi},
  () => {
    assert.ok(dawn, "CI=true: the optional 'webgpu' package must be installed")
    const probe = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const {create} = await import(${JSON.stringify(dawn)}); await create([]).requestAdapter(); process.exit(0)`,
      ],
      {encoding: 'utf8', env: {...process.env, ...NO_DRIVER}, timeout: 60_000},
    )
    assert.match(probe.stderr, /Warning: /)
    assert.match(probe.stderr, CPP_LOCATION)
  },
)

test('train and eval print no native warnings, on --backend cpu and on auto (which probes WebGPU); the log has it as one line', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-quiet-'))
  const env = {...NO_DRIVER, SIPL_DATA_DIR: join(root, 'data'), SIPL_BACKEND: '', SIPL_LOG_LEVEL: 'info'}
  const short = ['--set', 'train.epochs=1', '--set', 'train.itersPerEpoch=1', '--set', 'train.valEvery=0', '--set', 'eval.overlap=0']
  const runs: Record<string, string> = {}
  for (const backend of ['cpu', 'auto']) {
    runs[backend] = join(root, `run-${backend}`)
    const train = sipl(['train', '-c', 'experiments/demo.yaml', ...TINY, ...short, '--backend', backend, '--out', runs[backend]], {env})
    assert.equal(train.code, 0, train.stderr)
    assertQuiet(`train --backend ${backend}`, train.stderr)
    const evaluated = sipl(['eval', '--run', runs[backend], '--backend', backend, '--figures', '0'], {env})
    assert.equal(evaluated.code, 0, evaluated.stderr)
    assertQuiet(`eval --backend ${backend}`, evaluated.stderr)
  }
  const backendLine = (run: string): {reason: string} =>
    readFileSync(join(run, 'train.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as {msg: string; reason: string})
      .find((r) => r.msg === 'backend')!
  // --backend cpu never looks for WebGPU; auto does, and Dawn's message is in its one backend line
  assert.doesNotMatch(backendLine(runs.cpu).reason, /webgpu/i)
  if (dawn !== undefined) {
    const reason = backendLine(runs.auto).reason
    assert.match(reason, /webgpu: no WebGPU adapter \(Dawn: [^)]*vkCreateInstance|webgpu: no WebGPU adapter \(Dawn: Couldn't load Vulkan/)
    assert.doesNotMatch(reason, CPP_LOCATION)
  }
})

test('sipl doctor reports what Dawn said, without printing it', () => {
  const run = sipl(['doctor', '--skip-check', '--json'], {env: NO_DRIVER})
  assert.equal(run.code, 0, run.stderr)
  assertQuiet('doctor', run.stderr)
  const webgpu = (JSON.parse(run.stdout) as {backends: {name: string; loadable: boolean; detail: string}[]}).backends.find(
    (b) => b.name === 'webgpu',
  )!
  assert.equal(webgpu.loadable, false)
  if (dawn !== undefined) assert.match(webgpu.detail, /^no WebGPU adapter \(Dawn: .*(vkCreateInstance|Couldn't load Vulkan)/)
  assert.doesNotMatch(webgpu.detail, CPP_LOCATION)
  const text = sipl(['doctor', '--skip-check'], {env: NO_DRIVER})
  assertQuiet('doctor', text.stderr)
  assert.match(text.stdout, /^ {2}webgpu +no +no WebGPU adapter/m)
})
