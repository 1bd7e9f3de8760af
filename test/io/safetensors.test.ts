import {test} from 'node:test'
import assert from 'node:assert/strict'
import {inflateSync} from 'node:zlib'
import {decodeSafetensors, encodeSafetensors} from '../../src/io/safetensors.js'
import {encodePng} from '../../src/io/png.js'

test('safetensors: bytes written by hand from the format spec decode', () => {
  // header {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} padded to 8-byte alignment,
  // then 1.5, -2 as little-endian float32
  const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
  const padded = json + ' '.repeat((8 - ((8 + json.length) % 8)) % 8)
  const bytes = Buffer.alloc(8 + padded.length + 8)
  bytes.writeBigUInt64LE(BigInt(padded.length), 0)
  bytes.write(padded, 8, 'utf8')
  bytes.writeFloatLE(1.5, 8 + padded.length)
  bytes.writeFloatLE(-2, 12 + padded.length)
  const file = decodeSafetensors(new Uint8Array(bytes))
  assert.deepEqual(file.tensors.get('a')!.shape, [2])
  assert.deepEqual([...file.tensors.get('a')!.data], [1.5, -2])
  // and the encoder produces exactly these bytes
  assert.deepEqual(Buffer.from(encodeSafetensors(new Map([['a', {shape: [2], data: Float32Array.from([1.5, -2])}]]))), bytes)
})

test('safetensors: round trip of several dtypes with metadata; corrupt files are user errors', () => {
  const tensors = new Map<string, {shape: number[]; data: Float32Array | Int32Array | Uint8Array | Float64Array}>([
    ['backbone.stem.kernel', {shape: [2, 2, 2, 1, 3], data: Float32Array.from({length: 24}, (_, i) => i / 7)}],
    ['step', {shape: [], data: Int32Array.from([42])}],
    ['mask', {shape: [3], data: Uint8Array.from([1, 0, 255])}],
    ['f64', {shape: [1, 2], data: Float64Array.from([Math.PI, -1e300])}],
  ])
  const bytes = encodeSafetensors(tensors, {format: 'sipl', layout: 'DHWIO'})
  assert.equal((8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))) % 8, 0, 'header is 8-byte aligned')
  const back = decodeSafetensors(bytes)
  assert.deepEqual(back.metadata, {format: 'sipl', layout: 'DHWIO'})
  for (const [name, t] of tensors) {
    assert.deepEqual(back.tensors.get(name)!.shape, t.shape)
    assert.deepEqual([...back.tensors.get(name)!.data], [...t.data])
  }
  assert.throws(() => decodeSafetensors(bytes.subarray(0, 20)), /not a valid safetensors file/)
  assert.throws(() => decodeSafetensors(new Uint8Array(4)), /shorter than 8 bytes/)
})

test('PNG: signature, IHDR, CRCs, and the pixels inflate back', () => {
  const rgb = Uint8Array.from({length: 2 * 3 * 3}, (_, i) => (i * 37) % 256)
  const png = encodePng(2, 3, rgb)
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  assert.equal(png.toString('ascii', 12, 16), 'IHDR')
  assert.equal(png.readUInt32BE(16), 2)
  assert.equal(png.readUInt32BE(20), 3)
  // the IEND chunk is constant: length 0, 'IEND', CRC 0xAE426082 (PNG spec example)
  assert.deepEqual([...png.subarray(png.length - 12)], [0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82])
  const idatLength = png.readUInt32BE(33)
  assert.equal(png.toString('ascii', 37, 41), 'IDAT')
  const raw = inflateSync(png.subarray(41, 41 + idatLength))
  assert.equal(raw.length, 3 * (1 + 6))
  for (let y = 0; y < 3; y++) {
    assert.equal(raw[y * 7], 0)
    assert.deepEqual([...raw.subarray(y * 7 + 1, y * 7 + 7)], [...rgb.subarray(y * 6, y * 6 + 6)])
  }
})
