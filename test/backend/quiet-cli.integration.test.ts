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
import {nativeMessages} from '../../src/backend/native-stderr.js'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'
import {skipUnless} from '../helpers/needs.js'
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

// ------------------------------------------------------------ with an adapter (lavapipe in CI)

/** What Dawn prints when it finds the adapter here (lavapipe: two "artificially reduced" limit notices). */
function rawDawnWithAdapter(): {found: boolean; stderr: string} {
  if (dawn === undefined) return {found: false, stderr: ''}
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const {create} = await import(${JSON.stringify(dawn)}); console.log(JSON.stringify({found: Boolean(await create([]).requestAdapter())})); process.exit(0)`,
    ],
    {encoding: 'utf8', timeout: 60_000},
  )
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'))
  return {found: line !== undefined && (JSON.parse(line) as {found: boolean}).found, stderr: r.stderr}
}
const raw = rawDawnWithAdapter()
const noAdapter = skipUnless(
  'Dawn loaded in-process with an adapter',
  raw.found ? undefined : 'no WebGPU adapter here (Vulkan: a GPU driver or lavapipe)',
)
const said = nativeMessages(raw.stderr)
if (!noAdapter && said.length === 0)
  console.log('# Dawn prints nothing with this adapter: the tests below prove less here than on lavapipe')

/** `sipl ARGS` under sh, its stderr into a pipe (as in `sipl … 2>&1 | tee log`) or appended to a file (2>>); stdout into a file. */
function siplInShell(args: string, stderrTo: 'pipe' | 'file'): {stdout: string; stderr: string; code: number | null} {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-quiet-'))
  const [out, err] = [join(dir, 'stdout'), join(dir, 'stderr')]
  const command = `'${process.execPath}' '${join(PROJECT_ROOT, 'bin/run.js')}' ${args}`
  const r = spawnSync('sh', ['-c', stderrTo === 'pipe' ? `${command} 2>&1 >'${out}' | cat` : `${command} >'${out}' 2>>'${err}'`], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: {...process.env, SIPL_LOG_LEVEL: 'info'},
    timeout: 300_000,
  })
  return {stdout: readFileSync(out, 'utf8'), stderr: stderrTo === 'pipe' ? r.stdout : readFileSync(err, 'utf8'), code: r.status}
}

test('with an adapter: Dawn loaded in-process prints nothing (doctor); doctor reports what it said, once', {skip: noAdapter}, () => {
  // the precondition: Dawn itself prints this here (lavapipe: "Warning: maxDynamic…PerPipelineLayout artificially reduced …")
  if (process.env.CI === 'true') assert.match(raw.stderr, /^Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced/m)
  const json = siplInShell('doctor --skip-check --json', 'pipe')
  assert.equal(json.code, 0, json.stderr)
  assert.doesNotMatch(json.stderr, /^Warning: |artificially reduced/m, json.stderr)
  const webgpu = (JSON.parse(json.stdout) as {backends: {name: string; loadable: boolean; detail: string}[]}).backends.find(
    (b) => b.name === 'webgpu',
  )!
  assert.equal(webgpu.loadable, true, webgpu.detail)
  if (said.length > 0) {
    assert.ok(webgpu.detail.includes(`; Dawn said, kept off the terminal: ${said.join('; ')}`), webgpu.detail)
    for (const note of said) assert.equal(webgpu.detail.split(note).length, 2, `said once: ${note}`)
  }
  const file = siplInShell('doctor --skip-check', 'file')
  assert.equal(file.code, 0, file.stderr)
  assert.doesNotMatch(file.stderr, /^Warning: |artificially reduced/m, file.stderr)
  assert.match(file.stdout, /^ {2}webgpu +loads +adapter /m)
})

test(
  'with an adapter: sipl doctor (with its checks) in a terminal, and bench --backend webgpu, print no Dawn warning',
  {skip: noAdapter},
  () => {
    const script = spawnSync('script', ['--version'])
    if (script.error === undefined) {
      const out = join(mkdtempSync(join(tmpdir(), 'sipl-quiet-')), 'stdout')
      // inside `script`, the pty is stderr only: stdout goes to a file
      const r = spawnSync(
        'script',
        ['-qec', `'${process.execPath}' '${join(PROJECT_ROOT, 'bin/run.js')}' doctor > '${out}'`, '/dev/null'],
        {
          cwd: PROJECT_ROOT,
          encoding: 'utf8',
          timeout: 300_000,
        },
      )
      assert.equal(r.status, 0, r.stdout)
      assert.doesNotMatch(r.stdout, /Warning: |artificially reduced/, r.stdout)
      assert.match(readFileSync(out, 'utf8'), /^ {2}webgpu +loads +adapter .*conv3d check/m)
    } else if (process.env.CI === 'true') assert.fail("CI=true: util-linux's script (a pty for this test) is missing")
    const bench = siplInShell('bench --backend webgpu --size 16 --steps 1 --warmup 0 --infer-size 0 --no-check', 'pipe')
    assert.equal(bench.code, 0, bench.stderr)
    assert.doesNotMatch(bench.stderr, /^Warning: /m, bench.stderr)
    // bench's one line on what loaded carries what Dawn said
    const notes = bench.stderr.split('\n').filter((l) => /artificially reduced/.test(l))
    assert.ok(notes.length <= 1, bench.stderr)
    if (said.length > 0) assert.match(notes[0] ?? '', /^webgpu: adapter .*; Dawn said, kept off the terminal: /)
    assert.match(bench.stdout, /webgpu/)
  },
)
