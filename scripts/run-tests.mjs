#!/usr/bin/env node
// Runs node's test runner on the compiled test files. Node 20's `--test` takes no globs, so the
// files are listed here. Extra arguments are passed through (e.g. a path filter: `npm test -- nifti`).
import {spawnSync} from 'node:child_process'
import {readdirSync, statSync} from 'node:fs'
import {join} from 'node:path'

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? find(path) : name.endsWith('.test.js') ? [path] : []
  })
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'))
const files = find('dist/test')
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`)
  process.exit(1)
}
// one file at a time: the machine has 2 cores and several tests use both
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...flags, ...files], {stdio: 'inherit'})
process.exit(result.status ?? 1)
