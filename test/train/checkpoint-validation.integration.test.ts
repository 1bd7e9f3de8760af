/**
 * A damaged checkpoint is a user error (issue 14 item 8): state.json is validated with a schema
 * ("epoch": "two" resumed and reported "trained 3 epochs" without training), malformed JSON and
 * malformed safetensors headers exit 2 with one line instead of an internal error.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import '../helpers/tf.js'
import {sipl} from '../helpers/cli.js'
import {TINY} from '../e2e/tiny.js'
import {readLoopState} from '../../src/run/checkpoint.js'
import {decodeSafetensors, encodeSafetensors} from '../../src/io/safetensors.js'
import {UserError} from '../../src/errors.js'

/** state.json as saveCheckpoint writes it (the text of the file, as resume reads it) */
const valid = JSON.parse(
  '{"epoch": 3, "step": 30, "rng": [1, 2, 3, 4], "tau": 0.2, "lr": 0.001, "bestDice": null, "bestEpoch": null, ' +
    '"configHash": "abc", "optimizer": {"name": "adamw", "iterations": 1}, "valSource": null, "savedAt": "now"}',
) as Record<string, unknown>

function stateDir(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-state-'))
  writeFileSync(join(dir, 'state.json'), content)
  return dir
}

test('readLoopState: the schema refuses wrong types and missing fields, names the field; later keys pass through', () => {
  const refused: [Record<string, unknown>, RegExp][] = [
    [{...valid, epoch: 'two'}, /state\.json: not a valid checkpoint state \(epoch: Expected number, received string\)/],
    [{...valid, epoch: 2.5}, /\(epoch: Expected integer, received float\)/],
    [{...valid, step: -1}, /\(step: Number must be greater than or equal to 0\)/],
    [{...valid, rng: [1, 2, 3]}, /\(rng: Array must contain at least 4 element/],
    [{...valid, optimizer: {name: 'adamw'}}, /\(optimizer\.iterations: Required\)/],
    [{...valid, valSource: 'test'}, /\(valSource: Invalid literal value/],
  ]
  for (const [state, expected] of refused)
    assert.throws(
      () => readLoopState(stateDir(JSON.stringify(state))),
      (e: unknown) => e instanceof UserError && expected.test(e.message) && !e.message.includes('\n'),
      JSON.stringify(state),
    )
  assert.throws(
    () => readLoopState(stateDir('{"epoch": 1,')),
    (e: unknown) => e instanceof UserError && /not a valid checkpoint state/.test(e.message),
  )
  assert.throws(() => readLoopState(stateDir('[]')), /\(top level: Expected object, received array\)/)
  assert.deepEqual(readLoopState(stateDir(JSON.stringify({...valid, addedLater: 1}))), {...valid, addedLater: 1})
})

test('decodeSafetensors: a header that is JSON but not the format is a UserError naming the entry', () => {
  const good = encodeSafetensors(new Map([['w', {shape: [2], data: Float32Array.from([1, 2])}]]))
  const withHeader = (header: unknown) => {
    const json = Buffer.from(JSON.stringify(header))
    const out = Buffer.alloc(8 + json.length + 8)
    out.writeBigUInt64LE(BigInt(json.length), 0)
    json.copy(out, 8)
    return new Uint8Array(out)
  }
  assert.equal(decodeSafetensors(good).tensors.get('w')!.data[1], 2)
  const cases: [unknown, RegExp][] = [
    [{w: null}, /header: w: Expected object, received null/],
    [{w: {dtype: 'F32', shape: '2', data_offsets: [0, 8]}}, /header: w\.shape: Expected array, received string/],
    [{w: {dtype: 'F32', shape: [2]}}, /header: w\.data_offsets: Required/],
    [{w: {dtype: 'F32', shape: [-2], data_offsets: [0, 8]}}, /header: w\.shape\.0: Number must be greater than or equal to 0/],
    [[1, 2], /header: Expected object, received array/],
    [{__metadata__: {epoch: 3}}, /header: __metadata__\.epoch: Expected string, received number/],
  ]
  for (const [header, expected] of cases)
    assert.throws(
      () => decodeSafetensors(withHeader(header), 'model.safetensors'),
      (e: unknown) =>
        e instanceof UserError && /^model\.safetensors: not a valid safetensors file/.test(e.message) && expected.test(e.message),
      JSON.stringify(header),
    )
})

/** every file called `name` below `dir` (wherever the checkpoint layout keeps them) */
function filesNamed(dir: string, name: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    return statSync(path).isDirectory() ? filesNamed(path, name) : entry === name ? [path] : []
  })
}

test('sipl train --resume and sipl eval --run on a damaged checkpoint: exit 2, one line, nothing trained', () => {
  const root = mkdtempSync(join(tmpdir(), 'sipl-damaged-'))
  const env = {SIPL_DATA_DIR: join(root, 'data')}
  const run = join(root, 'run')
  const args = (out: string) => [
    'train',
    '-c',
    'experiments/demo.yaml',
    ...TINY,
    '--set',
    'train.epochs=1',
    '--set',
    'train.itersPerEpoch=1',
    '--backend',
    'cpu',
    '--out',
    out,
  ]
  const trained = sipl(args(run), {env})
  assert.equal(trained.code, 0, trained.stderr)

  const damage = (name: string, edit: (text: Buffer) => Buffer): string => {
    const copy = join(root, `run-${name}-${Math.random().toString(36).slice(2)}`)
    cpSync(run, copy, {recursive: true})
    for (const file of filesNamed(join(copy, 'checkpoints'), name)) writeFileSync(file, edit(readFileSync(file)))
    return copy
  }
  const resume = (dir: string) => sipl(['train', '-c', join(dir, 'config.yaml'), '--resume', '--backend', 'cpu', '--out', dir], {env})
  const oneLine = (r: {code: number | null; stderr: string}, expected: RegExp) => {
    assert.equal(r.code, 2, r.stderr)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, expected)
  }

  const epochTwo = damage('state.json', (b) => Buffer.from(b.toString().replace(/"epoch": \d+/, '"epoch": "two"')))
  const metrics = readFileSync(join(epochTwo, 'metrics.jsonl'), 'utf8')
  oneLine(resume(epochTwo), /state\.json: not a valid checkpoint state \(epoch: Expected number, received string\)/)
  assert.equal(readFileSync(join(epochTwo, 'metrics.jsonl'), 'utf8'), metrics, 'the refused resume trained nothing')
  oneLine(sipl(['eval', '--run', epochTwo, '--backend', 'cpu'], {env}), /state\.json: not a valid checkpoint state \(epoch:/)

  oneLine(resume(damage('state.json', (b) => b.subarray(0, 20))), /state\.json: not a valid checkpoint state/)

  const nullEntry = damage('model.safetensors', (b) => {
    const n = Number(b.readBigUInt64LE(0))
    const header = JSON.parse(b.subarray(8, 8 + n).toString()) as Record<string, unknown>
    const name = Object.keys(header).find((k) => k !== '__metadata__')!
    const text = JSON.stringify({...header, [name]: null})
    return Buffer.concat([b.subarray(0, 8), Buffer.from(text.padEnd(n, ' ')), b.subarray(8 + n)])
  })
  oneLine(resume(nullEntry), /model\.safetensors: not a valid safetensors file \(header: [\w.]+: Expected object, received null\)/)
})
