#!/usr/bin/env node
// Runs node's test runner on the compiled test files. Node 20's `--test` takes no globs, so the
// files are listed here. Extra arguments are passed through (e.g. a path filter: `npm test -- nifti`).
// `--unit` (npm run test:unit) leaves out *.integration.test.js, the files that run the CLI, Slurm or
// a real training, and makes test/helpers/cli.ts refuse to start the CLI (README, Development).
import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, statSync} from 'node:fs'
import {join} from 'node:path'

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? find(path) : name.endsWith('.test.js') ? [path] : []
  })
}

const args = process.argv.slice(2)
const unit = args.includes('--unit')
const filters = args.filter((a) => !a.startsWith('-'))
const flags = args.filter((a) => a.startsWith('-') && a !== '--unit')
const files = find('dist/test')
  // tsc leaves the output of a renamed or deleted test file behind: run only those with a source
  .filter((f) => existsSync(f.replace(/^dist[/\\]/, '').replace(/\.js$/, '.ts')))
  .filter((f) => !unit || !f.endsWith('.integration.test.js'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`)
  process.exit(1)
}
// one file at a time: the machine has 2 cores and several tests use both
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...flags, ...files], {
  stdio: 'inherit',
  env: unit ? {...process.env, SIPL_TEST_TIER: 'unit'} : process.env,
})
process.exit(result.status ?? 1)
