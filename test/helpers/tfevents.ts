/**
 * Reading TensorBoard event files back without sipl's writer: TFRecord framing checked record by
 * record (both masked CRC-32Cs), and each record's protocol buffer decoded by an independent
 * decoder, `protoc --decode_raw` (Debian's protobuf-compiler), whose text output is parsed here
 * into a tree of field numbers. The TensorBoard .proto field numbers the tests read are noted
 * where they are used.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {maskedCrc32c} from '../../src/log/tensorboard.js'

/** Skip reason when protoc is missing; under CI=true a missing protoc fails instead (.ci/run installs it). */
export function protocMissing(): string | false {
  const found = spawnSync('protoc', ['--version'], {encoding: 'utf8'}).status === 0
  if (found) return false
  if (process.env.CI === 'true') throw new Error('protoc not found; .ci/run installs protobuf-compiler (apt-get install protobuf-compiler)')
  return 'protoc not found (apt-get install protobuf-compiler); the TensorBoard decode tests are skipped'
}

/** The records' payloads, after checking every length, length CRC and data CRC. */
export function readRecords(file: string): Buffer[] {
  const bytes = readFileSync(file)
  const records: Buffer[] = []
  let at = 0
  while (at < bytes.length) {
    assert.ok(at + 12 <= bytes.length, `${file}: a record header cut at byte ${at}`)
    const length = Number(bytes.readBigUInt64LE(at))
    assert.equal(bytes.readUInt32LE(at + 8), maskedCrc32c(bytes.subarray(at, at + 8)), `${file}: length CRC of record ${records.length}`)
    assert.ok(at + 16 + length <= bytes.length, `${file}: record ${records.length} cut`)
    const data = bytes.subarray(at + 12, at + 12 + length)
    assert.equal(bytes.readUInt32LE(at + 12 + length), maskedCrc32c(data), `${file}: data CRC of record ${records.length}`)
    records.push(data)
    at += 16 + length
  }
  return records
}

export type Field = {field: number; value: string | Field[]}

/** protoc's C-escaped string literal → its bytes */
function unescape(text: string): Buffer {
  const out: number[] = []
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (ch !== '\\') {
      out.push(...Buffer.from(ch, 'utf8'))
      continue
    }
    const next = text[++i]
    if (/[0-7]/.test(next)) {
      let digits = next
      while (digits.length < 3 && /[0-7]/.test(text[i + 1])) digits += text[++i]
      out.push(parseInt(digits, 8))
    } else if (next === 'x') {
      let digits = ''
      while (digits.length < 2 && /[0-9a-fA-F]/.test(text[i + 1])) digits += text[++i]
      out.push(parseInt(digits, 16))
    } else out.push(({n: 10, r: 13, t: 9, '"': 34, "'": 39, '\\': 92} as Record<string, number>)[next] ?? next.charCodeAt(0))
  }
  return Buffer.from(out)
}

/** Many records in one protoc call: `repeated bytes` field 1 of a wrapper message holds each. */
export function decodeRaw(records: Buffer[]): Field[][] {
  const parts: Buffer[] = []
  for (const r of records) {
    const header: number[] = [0x0a]
    for (let n = r.length; ; n = Math.floor(n / 128)) {
      header.push(n >= 128 ? (n % 128) | 0x80 : n)
      if (n < 128) break
    }
    parts.push(Buffer.from(header), r)
  }
  const result = spawnSync('protoc', ['--decode_raw'], {input: Buffer.concat(parts), maxBuffer: 1 << 28})
  assert.equal(result.status, 0, `protoc --decode_raw failed: ${result.stderr?.toString()}`)
  const lines = result.stdout.toString('latin1').split('\n')
  let i = 0
  const parse = (): Field[] => {
    const fields: Field[] = []
    while (i < lines.length) {
      const line = lines[i++].trim()
      if (line === '' || line === '}') return fields
      const open = /^(\d+) \{$/.exec(line)
      if (open) {
        fields.push({field: Number(open[1]), value: parse()})
        continue
      }
      const m = /^(\d+): (.*)$/.exec(line)
      assert.ok(m, `protoc output line: ${line}`)
      fields.push({field: Number(m[1]), value: m[2]})
    }
    return fields
  }
  const top = parse()
  // each wrapper entry is a message (an Event always parses as one)
  return top.map((f) => {
    assert.ok(Array.isArray(f.value), 'a record that protoc could not read as a message')
    return f.value
  })
}

export const all = (fields: Field[], n: number): Field[] => fields.filter((f) => f.field === n)
export function one(fields: Field[], n: number): Field | undefined {
  const found = all(fields, n)
  assert.ok(found.length <= 1, `field ${n} appears ${found.length} times`)
  return found[0]
}
export function message(fields: Field[], n: number): Field[] {
  const f = one(fields, n)
  assert.ok(f && Array.isArray(f.value), `field ${n} is not a message`)
  return f.value
}
/** a string/bytes field; protoc prints bytes that happen to parse as a message as one, so those are refused */
export function bytes(fields: Field[], n: number): Buffer {
  const f = one(fields, n)
  assert.ok(f && typeof f.value === 'string' && f.value.startsWith('"'), `field ${n} is not a string: ${JSON.stringify(f?.value)}`)
  return unescape(f.value.slice(1, -1))
}
export const text = (fields: Field[], n: number): string => bytes(fields, n).toString('utf8')
export function int(fields: Field[], n: number): number {
  const f = one(fields, n)
  return f === undefined ? 0 : Number(f.value)
}
/** fixed64 (protoc prints it as 0x… hex) as a double */
export function double(fields: Field[], n: number): number {
  const f = one(fields, n)
  if (f === undefined) return 0
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(f.value as string))
  return b.readDoubleBE()
}
/** fixed32 as a float */
export function float(fields: Field[], n: number): number {
  const f = one(fields, n)
  if (f === undefined) return 0
  const b = Buffer.alloc(4)
  b.writeUInt32BE(Number(f.value))
  return b.readFloatBE()
}
