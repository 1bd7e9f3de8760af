/**
 * Config files that are not configs (issue 14 item 8): a YAML alias bomb ("billion laughs") and a
 * folder or device given to -c end with one line and exit 2, not an internal error with a stack.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {loadConfig} from '../../src/config/load.js'
import {UserError} from '../../src/errors.js'

/** nine levels of nine aliases each: 9⁹ ≈ 387 million strings from 300 bytes */
function aliasBomb(): string {
  const lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
  for (const [prev, name] of ['ab', 'bc', 'cd', 'de', 'ef', 'fg', 'gh', 'hi'].map((p) => p.split(''))) {
    lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`)
  }
  return lines.join('\n') + '\n'
}

const oneLineExit2 = (r: {code: number | null; stderr: string}) => {
  assert.equal(r.code, 2, r.stderr)
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
  assert.doesNotMatch(r.stderr, /Internal error|\n\s+at /)
}

test('a YAML alias bomb is a UserError naming the file, and exit 2 with one line from the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-cfg-bomb-'))
  const file = join(dir, 'bomb.yaml')
  writeFileSync(file, aliasBomb())
  assert.throws(
    () => loadConfig(file),
    (e: unknown) => e instanceof UserError && e.message.startsWith(`${file}: the YAML cannot be turned into values (Excessive alias count`),
  )
  const r = sipl(['preprocess', '-c', file])
  oneLineExit2(r)
  assert.match(r.stderr, /bomb\.yaml: the YAML cannot be turned into values .*write the values out instead of nesting aliases/)
})

test('an alias bomb in a --set value names the --set argument', () => {
  const inner = ['&a [x, x, x, x, x, x, x, x, x]']
  for (const [prev, name] of ['ab', 'bc', 'cd', 'de', 'ef', 'fg', 'gh', 'hi'].map((p) => p.split('')))
    inner.push(`&${name} [${Array(9).fill(`*${prev}`).join(', ')}]`)
  const text = `name=[${inner.join(', ')}]`
  assert.throws(
    () => loadConfig(undefined, [text]),
    (e: unknown) => e instanceof UserError && e.message.startsWith(`--set ${text}: the YAML cannot be turned into values`),
  )
})

test('-c with a folder or a device is exit 2 with one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-cfg-dir-'))
  const folder = sipl(['preprocess', '-c', dir])
  oneLineExit2(folder)
  assert.match(folder.stderr, /sipl-cfg-dir-\w+: is a folder; give --config a YAML file/)
  const device = sipl(['preprocess', '-c', '/dev/zero'], {timeoutMs: 60_000})
  oneLineExit2(device)
  assert.match(device.stderr, /\/dev\/zero: not a regular file/)
})
