/**
 * Imports point one way (issue 17 item 3): scripts/check-imports.mjs finds no import cycle among the
 * files of src/ and commands/ (type-only and dynamic imports included) and no import from a lower
 * stage to a higher one; it does find both in small made-up graphs. And every test file that loads
 * tf takes it from test/helpers/tf.ts, so it computes with sipl's cpu kernels (importing tf installs
 * none since issue 17 item 1).
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {test} from 'node:test'
import {pathToFileURL} from 'node:url'
import {PROJECT_ROOT} from '../helpers/cli.js'

type Graph = Map<string, {to: string}[]>
const check = (await import(pathToFileURL(join(PROJECT_ROOT, 'scripts/check-imports.mjs')).href)) as {
  importsOf(text: string): string[]
  resolveImport(file: string, spec: string): string
  sourceFiles(dir: string): string[]
  importGraph(): Graph
  cycles(graph: Graph): string[][]
  wrongWay(graph: Graph): string[]
}

const graphOf = (edges: Record<string, string[]>): Graph =>
  new Map(Object.entries(edges).map(([file, to]) => [file, to.map((t) => ({to: t}))]))

test('src/ and commands/ have no import cycle and no import from a lower stage to a higher one', () => {
  const graph = check.importGraph()
  assert.ok(graph.size > 100, `only ${graph.size} files found`)
  assert.deepEqual(check.cycles(graph), [])
  assert.deepEqual(check.wrongWay(graph), [])
})

test('the import list counts type-only, multi-line, re-exported and dynamic imports, and nothing in comments or strings', () => {
  const text = [
    "import type {A} from './a.js'",
    'import {',
    '  b,',
    "} from '../b.js'",
    "export * from './c.js'",
    "import './d.js'",
    "const e = await import('./e.js')",
    "// import {f} from './f.js'",
    "const script = `import {g} from './g.js'`",
    "import {readFileSync} from 'node:fs'",
  ].join('\n')
  assert.deepEqual(check.importsOf(text).sort(), ['../b.js', './a.js', './c.js', './d.js', './e.js'])
  assert.equal(check.resolveImport('src/model/sipl.ts', '../backend/tf.js'), 'src/backend/tf.ts')
})

test('a cycle and an import up the stages are both found', () => {
  const cyclic = graphOf({'src/model/a.ts': ['src/model/b.ts'], 'src/model/b.ts': ['src/model/c.ts'], 'src/model/c.ts': ['src/model/a.ts']})
  assert.deepEqual(check.cycles(cyclic), [['src/model/a.ts', 'src/model/b.ts', 'src/model/c.ts']])
  assert.deepEqual(check.cycles(graphOf({'src/model/a.ts': ['src/model/a.ts']})), [['src/model/a.ts']])
  const upward = graphOf({'src/evaluate/predict.ts': ['src/train/checkpoint.ts'], 'src/train/checkpoint.ts': []})
  assert.deepEqual(check.cycles(upward), [])
  assert.deepEqual(check.wrongWay(upward), ['src/evaluate/predict.ts (evaluate) imports src/train/checkpoint.ts (train), a higher stage'])
  assert.match(check.wrongWay(graphOf({'src/new-folder/x.ts': []}))[0], /in no stage/)
})

test('every test file that loads tf takes it from test/helpers/tf.ts (sipl cpu kernels installed)', () => {
  const files = [...check.sourceFiles('src'), ...check.sourceFiles('commands'), ...check.sourceFiles('test')]
  const imports = new Map(
    files.map((f) => [f, check.importsOf(readFileSync(join(PROJECT_ROOT, f), 'utf8')).map((s) => check.resolveImport(f, s))]),
  )
  const loadsTf = (file: string, seen = new Set<string>()): boolean => {
    if (file === 'src/backend/tf.ts') return true
    if (seen.has(file)) return false
    seen.add(file)
    return (imports.get(file) ?? []).some((to) => loadsTf(to, seen))
  }
  const tfTests = files.filter((f) => f.endsWith('.test.ts') && loadsTf(f))
  assert.ok(tfTests.length > 10, `only ${tfTests.length} test files load tf`)
  const without = tfTests.filter((f) => !imports.get(f)!.includes('test/helpers/tf.ts'))
  assert.deepEqual(without, [], 'these load tf without test/helpers/tf.ts: import tf from there (or import it for its effect)')
})
