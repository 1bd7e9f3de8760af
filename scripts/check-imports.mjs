#!/usr/bin/env node
// Checks that the imports among src/ and commands/ point one way (README, Layout; docs/decisions.md):
// no import cycle (type-only and dynamic imports included) and no import from a lower stage to a higher one.
// `node scripts/check-imports.mjs` prints every cycle and every wrong-way import and exits 1 if there
// is one; `--graph` prints the file graph. test/scripts/check-imports.test.ts runs it.
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {dirname, join, relative, resolve} from 'node:path'
import {createRequire} from 'node:module'
import {fileURLToPath} from 'node:url'

const ts = createRequire(import.meta.url)('typescript')

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * The stages from the bottom up. A file may import files of its own stage (without a cycle) and of
 * any stage below it, never one above. The first prefix that matches a file's path names its stage.
 */
const STAGES = [
  {stage: 'foundation', prefixes: ['src/errors.ts', 'src/paths.ts', 'src/project-root.ts', 'src/util/', 'src/log/']},
  {stage: 'compute', prefixes: ['src/backend/', 'src/kernels/']},
  {stage: 'config', prefixes: ['src/config/']},
  {stage: 'io', prefixes: ['src/io/']},
  // drawing and table primitives: training, evaluation and collection all write figures and tables
  {stage: 'render', prefixes: ['src/report/figures.ts', 'src/report/line-plot.ts', 'src/report/html.ts', 'src/report/tables.ts']},
  {stage: 'data', prefixes: ['src/data/']},
  {stage: 'model', prefixes: ['src/model/']},
  {stage: 'run', prefixes: ['src/run/']},
  // training validates with evaluate's sliding-window prediction and metrics; evaluate needs nothing of training
  {stage: 'evaluate', prefixes: ['src/evaluate/']},
  {stage: 'train', prefixes: ['src/train/']},
  {stage: 'experiments', prefixes: ['src/experiments/']},
  {stage: 'report', prefixes: ['src/report/']},
  {stage: 'bench', prefixes: ['src/bench/']},
  {stage: 'cli', prefixes: ['src/cli/', 'src/index.ts']},
  {stage: 'commands', prefixes: ['commands/']},
]

function stageOf(file) {
  const i = STAGES.findIndex((s) => s.prefixes.some((p) => file === p || (p.endsWith('/') && file.startsWith(p))))
  return i < 0 ? undefined : {index: i, name: STAGES[i].stage}
}

function sources(dir) {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(join(ROOT, path)).isDirectory()) return sources(path)
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : []
  })
}

/**
 * The relative module names a source file imports, as TypeScript's own pre-processor lists them:
 * `import`, `import type`, `export … from` and `import('…')` with a literal name; nothing inside
 * comments or strings.
 */
export function importsOf(text) {
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((name) => name.startsWith('.'))
}

/** `spec` imported by `file` (both relative to the root) as a root-relative .ts path */
export function resolveImport(file, spec) {
  return relative(ROOT, resolve(ROOT, dirname(file), spec))
    .split('\\')
    .join('/')
    .replace(/\.js$/, '.ts')
}

export function sourceFiles(dir) {
  return sources(dir).map((f) => f.split('\\').join('/'))
}

/** The files of src/ and commands/, each with the files of src/ and commands/ it imports: {file: [{to}]}. */
export function importGraph() {
  const files = ['src', 'commands'].flatMap(sourceFiles).sort()
  const known = new Set(files)
  const graph = new Map()
  for (const file of files) {
    const edges = []
    for (const spec of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
      const to = resolveImport(file, spec)
      if (!known.has(to)) throw new Error(`${file}: imports ${spec}, which is not a source file under src/ or commands/`)
      if (!edges.some((e) => e.to === to)) edges.push({to})
    }
    graph.set(file, edges)
  }
  return graph
}

/** Strongly connected components of more than one file (or a file importing itself), over all imports. */
export function cycles(graph) {
  let next = 0
  const index = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const found = []
  const visit = (v) => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const {to} of graph.get(v)) {
      if (!index.has(to)) {
        visit(to)
        low.set(v, Math.min(low.get(v), low.get(to)))
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v), index.get(to)))
    }
    if (low.get(v) === index.get(v)) {
      const scc = []
      let w
      do {
        w = stack.pop()
        onStack.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1 || graph.get(v).some((e) => e.to === v)) found.push(scc.sort())
    }
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return found
}

/** Imports from a file to a file of a higher stage, and files that belong to no stage. */
export function wrongWay(graph) {
  const problems = []
  for (const [file, edges] of graph) {
    const from = stageOf(file)
    if (!from) {
      problems.push(`${file}: in no stage of scripts/check-imports.mjs (add it to STAGES)`)
      continue
    }
    for (const {to} of edges) {
      const target = stageOf(to)
      if (target && target.index > from.index) problems.push(`${file} (${from.name}) imports ${to} (${target.name}), a higher stage`)
    }
  }
  return problems
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const graph = importGraph()
  if (process.argv.includes('--graph'))
    for (const [file, edges] of graph) console.log(`${file} -> ${edges.map((e) => e.to).join(' ') || '-'}`)
  const found = cycles(graph)
  const wrong = wrongWay(graph)
  for (const c of found) console.log(`cycle of ${c.length} files: ${c.join(', ')}`)
  for (const w of wrong) console.log(`wrong way: ${w}`)
  const edges = [...graph.values()].reduce((n, e) => n + e.length, 0)
  console.log(`${graph.size} files, ${edges} imports: ${found.length} cycle(s), ${wrong.length} wrong-way import(s)`)
  process.exit(found.length + wrong.length > 0 ? 1 : 0)
}
