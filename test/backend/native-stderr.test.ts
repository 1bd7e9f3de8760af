/**
 * holdNativeStderr: what is written to file descriptor 2 itself (as Dawn's C++ does, here with
 * fs.writeSync(2)) during the call is returned instead of printed, and descriptor 2 is the
 * original one afterwards, whether stderr is a pipe, a regular file or a terminal (a pty from
 * util-linux's `script`) or a file opened for appending, and when the work throws. A socket, and a
 * file written at an offset, are the documented exceptions.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {closeSync, mkdtempSync, openSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

const MODULE = new URL('../../src/backend/native-stderr.js', import.meta.url).href

// prints the held text as JSON on stdout; 'before' and 'after' go to descriptor 2 around the call
const CHILD = `
import {writeSync} from 'node:fs'
const {holdNativeStderr} = await import(${JSON.stringify(MODULE)})
writeSync(2, 'before\\n')
const r = holdNativeStderr(() => { writeSync(2, 'native noise 1\\nnative noise 2\\n'); return 42 })
let thrown = ''
try {
  holdNativeStderr(() => { writeSync(2, 'noise before a throw\\n'); throw new Error('boom') })
} catch (e) { thrown = e.message }
writeSync(2, 'after\\n')
process.stderr.write('after, through process.stderr\\n')
console.log(JSON.stringify({...r, thrown}))
`

function childFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sipl-hold-')), 'child.mjs')
  writeFileSync(file, CHILD)
  return file
}

interface Held {
  value: number
  text: string
  held: boolean
  thrown: string
}

const EXPECTED_STDERR = 'before\nafter\nafter, through process.stderr\n'

test("a pipe (a shell's |): the native lines are held and returned, descriptor 2 works again afterwards, also after a throw", () => {
  const out = join(mkdtempSync(join(tmpdir(), 'sipl-hold-')), 'stdout.json')
  const r = spawnSync('sh', ['-c', `'${process.execPath}' '${childFile()}' 2>&1 >'${out}' | cat`], {encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout, EXPECTED_STDERR)
  const held = JSON.parse(readFileSync(out, 'utf8')) as Held
  assert.deepEqual(held, {value: 42, text: 'native noise 1\nnative noise 2\n', held: true, thrown: 'boom'})
})

test("a socket (what Node's child_process gives a child for stderr) cannot be reopened: the lines go through, and the result says so", () => {
  const r = spawnSync(process.execPath, [childFile()], {encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stderr, 'before\nnative noise 1\nnative noise 2\nnoise before a throw\nafter\nafter, through process.stderr\n')
  assert.deepEqual(JSON.parse(r.stdout), {value: 42, text: '', held: false, thrown: 'boom'})
})

/** The child with its stderr in a regular file opened with `flags`, sharing it with stdout when `shared`. */
function childIntoFile(flags: 'a' | 'w', shared: boolean): {file: string; stdout: string} {
  const log = join(mkdtempSync(join(tmpdir(), 'sipl-hold-')), 'stderr.txt')
  const fd = openSync(log, flags)
  const r = spawnSync(process.execPath, [childFile()], {encoding: 'utf8', stdio: ['ignore', shared ? fd : 'pipe', fd]})
  closeSync(fd)
  assert.equal(r.status, 0)
  return {file: readFileSync(log, 'utf8'), stdout: r.stdout ?? ''}
}

test('a regular file opened for appending (2>>log): held, and the file has only what was written outside the call', () => {
  const {file, stdout} = childIntoFile('a', false)
  assert.equal(file, EXPECTED_STDERR)
  assert.equal((JSON.parse(stdout) as Held).text, 'native noise 1\nnative noise 2\n')
})

test('a regular file opened at an offset and shared with stdout (> log 2>&1): not held, so nothing is overwritten', () => {
  const {file} = childIntoFile('w', true)
  const lines = file.trim().split('\n')
  // every line arrives whole and in order: a reopened O_APPEND descriptor would have let stdout overwrite them
  assert.deepEqual(lines.slice(0, -1), [
    'before',
    'native noise 1',
    'native noise 2',
    'noise before a throw',
    'after',
    'after, through process.stderr',
  ])
  assert.deepEqual(JSON.parse(lines[lines.length - 1]), {value: 42, text: '', held: false, thrown: 'boom'})
})

const script = spawnSync('script', ['--version'], {encoding: 'utf8'})
test(
  'a terminal (a pty): nothing of the held lines reaches it',
  {skip: script.error ? "util-linux's script is not installed" : false},
  () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sipl-hold-')), 'stdout.json')
    // the child's stdout goes to a file, its stderr to the pty that `script` copies to our stdout
    const r = spawnSync('script', ['-qec', `'${process.execPath}' '${childFile()}' > '${out}'`, '/dev/null'], {encoding: 'utf8'})
    assert.equal(r.status, 0, r.stdout + r.stderr)
    assert.equal(r.stdout.replace(/\r\n/g, '\n'), EXPECTED_STDERR)
    const held = JSON.parse(readFileSync(out, 'utf8')) as Held
    assert.equal(held.held, true)
    assert.equal(held.text, 'native noise 1\nnative noise 2\n')
  },
)
