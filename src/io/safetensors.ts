/**
 * safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length
 * N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`,
 * then the raw little-endian tensor bytes, offsets relative to the end of the header. PyTorch
 * (`safetensors.torch.load_file`), JAX and numpy open these files directly.
 *
 * Layout note for PyTorch users: sipl's tensors are tfjs tensors, channels-last. A 3-D conv
 * kernel is stored as DHWIO `[kd, kh, kw, in, out]`; PyTorch's Conv3d weight is OIDHW
 * `[out, in, kd, kh, kw]`, i.e. `w.permute(4, 3, 0, 1, 2)`. A dense kernel is `[in, out]`
 * (PyTorch Linear: `[out, in]`, transpose). Tensor names are the model's stable variable names
 * (docs/training.md lists them).
 */
import {readFileSync} from 'node:fs'
import {z} from 'zod'
import {UserError} from '../errors.js'
import {writeFileAtomic} from '../util/atomic.js'

export type Dtype = 'F32' | 'I32' | 'F64' | 'U8'
type Data = Float32Array | Int32Array | Float64Array | Uint8Array

export interface NamedTensor {
  dtype: Dtype
  shape: number[]
  data: Data
}

const BYTES: Record<Dtype, number> = {F32: 4, I32: 4, F64: 8, U8: 1}

function dtypeOf(data: Data): Dtype {
  if (data instanceof Float32Array) return 'F32'
  if (data instanceof Int32Array) return 'I32'
  if (data instanceof Float64Array) return 'F64'
  return 'U8'
}

/** Serialises tensors (sorted by name, 8-byte aligned header) with optional string metadata. */
export function encodeSafetensors(tensors: Map<string, {shape: number[]; data: Data}>, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort()
  const header: Record<string, unknown> = {}
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata
  let offset = 0
  for (const name of names) {
    const {shape, data} = tensors.get(name)!
    const size = shape.reduce((a, b) => a * b, 1)
    if (size !== data.length) throw new Error(`tensor ${name}: shape [${shape}] holds ${size} values, data has ${data.length}`)
    header[name] = {dtype: dtypeOf(data), shape, data_offsets: [offset, offset + data.byteLength]}
    offset += data.byteLength
  }
  let json = JSON.stringify(header)
  // the format recommends padding the header with spaces to a multiple of 8 bytes
  const jsonBytes = Buffer.byteLength(json)
  json += ' '.repeat((8 - ((8 + jsonBytes) % 8)) % 8)
  const headerBytes = Buffer.from(json, 'utf8')
  const out = new Uint8Array(8 + headerBytes.length + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  let at = 8 + headerBytes.length
  for (const name of names) {
    const {data} = tensors.get(name)!
    // typed arrays are little-endian on every platform Node runs on (x64, arm64)
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at)
    at += data.byteLength
  }
  return out
}

export interface SafetensorsFile {
  tensors: Map<string, NamedTensor>
  metadata: Record<string, string>
}

const count = z.number().int().nonnegative()
/** The header as the format defines it; anything else (null entries, string shapes, …) is a damaged file, not a bug. */
const headerSchema = z.record(z.unknown()).superRefine((header, ctx) => {
  for (const [name, entry] of Object.entries(header)) {
    const schema =
      name === '__metadata__'
        ? z.record(z.string())
        : z.object({dtype: z.string(), shape: z.array(count), data_offsets: z.tuple([count, count])}).strict()
    const result = schema.safeParse(entry)
    if (!result.success) {
      const issue = result.error.issues[0]
      ctx.addIssue({code: z.ZodIssueCode.custom, message: `${[name, ...issue.path].join('.')}: ${issue.message}`})
      return
    }
  }
})
type Header = Record<string, {dtype: string; shape: number[]; data_offsets: [number, number]} | Record<string, string>>

export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const bad = (why: string) => new UserError(`${source}: not a valid safetensors file (${why}); re-create it or point to the right file`)
  if (bytes.length < 8) throw bad('shorter than 8 bytes')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const n = Number(view.getBigUint64(0, true))
  if (n > bytes.length - 8) throw bad(`header length ${n} exceeds the file`)
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'))
  } catch {
    throw bad('header is not JSON')
  }
  const parsed = headerSchema.safeParse(json)
  if (!parsed.success) throw bad(`header: ${parsed.error.issues[0].message}`)
  const header = parsed.data as Header
  const body = bytes.subarray(8 + n)
  const tensors = new Map<string, NamedTensor>()
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const {dtype, shape, data_offsets: offsets} = entry as {dtype: string; shape: number[]; data_offsets: [number, number]}
    if (!(dtype in BYTES)) throw bad(`tensor ${name} has dtype ${dtype}; sipl reads F32, F64, I32, U8`)
    const [begin, end] = offsets
    const count = shape.reduce((a, b) => a * b, 1)
    if (end - begin !== count * BYTES[dtype as Dtype] || end > body.length || begin < 0)
      throw bad(`tensor ${name} has inconsistent offsets`)
    // copy into a fresh, aligned buffer
    const raw = body.slice(begin, end)
    const data =
      dtype === 'F32'
        ? new Float32Array(raw.buffer, 0, count)
        : dtype === 'I32'
          ? new Int32Array(raw.buffer, 0, count)
          : dtype === 'F64'
            ? new Float64Array(raw.buffer, 0, count)
            : new Uint8Array(raw.buffer, 0, count)
    tensors.set(name, {dtype: dtype as Dtype, shape, data})
  }
  return {tensors, metadata: (header.__metadata__ as Record<string, string>) ?? {}}
}

export function writeSafetensors(
  path: string,
  tensors: Map<string, {shape: number[]; data: Data}>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata))
}

export function readSafetensors(path: string): SafetensorsFile {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UserError(
      code === 'ENOENT'
        ? `${path}: file not found (is this a sipl checkpoint folder?)`
        : `${path}: cannot read (${code ?? String(error)}); check the checkpoint folder`,
    )
  }
  return decodeSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path)
}
