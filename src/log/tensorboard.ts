/**
 * TensorBoard event files, written natively: `events.out.tfevents.<time>.<host>` in a run
 * directory, so that `tensorboard --logdir runs/` shows sipl's runs beside MONAI's and the
 * official SIPL code's. No npm package writes these files, and the format is small:
 *
 *   file   = record*          (TFRecord framing, tensorflow/core/lib/io/record_writer.cc)
 *   record = uint64 length (LE) · uint32 masked CRC-32C of those 8 bytes (LE)
 *            · data · uint32 masked CRC-32C of data (LE)
 *   masked = ((crc >>> 15) | (crc << 17)) + 0xa282ead8 (mod 2³²)
 *   data   = one `tensorboard.Event` protocol buffer; the first has file_version "brain.Event:2"
 *
 * The messages are hand-encoded from TensorBoard's .proto files (commit 70b76c92 of
 * tensorflow/tensorboard): compat/proto/{event,summary,tensor,tensor_shape}.proto,
 * plugins/hparams/{api,plugin_data}.proto, plugins/text/plugin_data.proto, and
 * google/protobuf/struct.proto for hparam values. Scalars use `simple_value`, images the legacy
 * `Summary.Image` (PNG bytes), text a DT_STRING tensor with the "text" plugin's metadata, hparams
 * an `HParamsPluginData` in the "hparams" plugin's metadata over hparams' null tensor — each as
 * TensorBoard's own summary functions write it, so its readers migrate them as usual.
 */
import {closeSync, existsSync, mkdirSync, openSync, writeSync} from 'node:fs'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {writeFileAtomic} from '../util/atomic.js'

// ---------------------------------------------------------------- CRC-32C (Castagnoli)

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    // the reflected Castagnoli polynomial 0x1EDC6F41
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** TFRecord's masked CRC: a CRC stored inside CRC'd data would otherwise be hard to check */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data)
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0
}

/** One TFRecord: length, its masked CRC, the data, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(16 + data.length)
  out.writeBigUInt64LE(BigInt(data.length), 0)
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8)
  out.set(data, 12)
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length)
  return out
}

// ---------------------------------------------------------------- protocol buffer encoding

type Bytes = Uint8Array

function varint(value: number): number[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`protobuf varint: ${value} is not a non-negative integer`)
  const out: number[] = []
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80)
    value = Math.floor(value / 0x80)
  }
  out.push(value)
  return out
}

const concat = (parts: Bytes[]): Bytes => Buffer.concat(parts)
const fieldKey = (field: number, wire: 0 | 1 | 2 | 5): number[] => varint(field * 8 + wire)
/** int32, int64, uint, enum and bool fields (non-negative values) */
const uintField = (field: number, value: number): Bytes => Uint8Array.from([...fieldKey(field, 0), ...varint(value)])
function doubleField(field: number, value: number): Bytes {
  const out = Buffer.alloc(fieldKey(field, 1).length + 8)
  out.set(fieldKey(field, 1))
  out.writeDoubleLE(value, out.length - 8)
  return out
}
function floatField(field: number, value: number): Bytes {
  const out = Buffer.alloc(fieldKey(field, 5).length + 4)
  out.set(fieldKey(field, 5))
  out.writeFloatLE(value, out.length - 4)
  return out
}
const bytesField = (field: number, data: Bytes): Bytes => concat([Uint8Array.from([...fieldKey(field, 2), ...varint(data.length)]), data])
const stringField = (field: number, text: string): Bytes => bytesField(field, Buffer.from(text, 'utf8'))
const messageField = (field: number, ...parts: Bytes[]): Bytes => bytesField(field, concat(parts))
/** proto3 leaves fields at their default out; a oneof member is written even when it is 0 */
const optional = (present: boolean, make: () => Bytes): Bytes[] => (present ? [make()] : [])

// ---------------------------------------------------------------- summaries (summary.proto)

/** SummaryMetadata.DataClass */
const DATA_CLASS_TENSOR = 2
/** types.proto DataType */
const DT_FLOAT = 1
const DT_STRING = 7

const pluginMetadata = (pluginName: string, content: Bytes, dataClass?: number): Bytes =>
  concat([
    messageField(1, stringField(1, pluginName), ...optional(content.length > 0, () => bytesField(2, content))),
    ...optional(dataClass !== undefined, () => uintField(4, dataClass!)),
  ])

/** Summary.Value: tag = 1, simple_value = 2, image = 4, tensor = 8, metadata = 9 */
const scalarValue = (tag: string, value: number): Bytes => concat([stringField(1, tag), floatField(2, value)])

const imageValue = (tag: string, png: Bytes, width: number, height: number): Bytes =>
  // Summary.Image: height = 1, width = 2, colorspace = 3 (3 = RGB), encoded_image_string = 4
  concat([stringField(1, tag), messageField(4, uintField(1, height), uintField(2, width), uintField(3, 3), bytesField(4, png))])

/** TensorBoard's text plugin reads a DT_STRING tensor (scalar shape) tagged with plugin "text" */
const textValue = (tag: string, markdown: string): Bytes =>
  concat([
    stringField(1, tag),
    // TextPluginData{version: 0} serialises to no bytes
    messageField(9, pluginMetadata('text', new Uint8Array(0), DATA_CLASS_TENSOR)),
    // TensorProto: dtype = 1, tensor_shape = 2 (no dims: a scalar), string_val = 8
    messageField(8, uintField(1, DT_STRING), messageField(2), bytesField(8, Buffer.from(markdown, 'utf8'))),
  ])

// ---------------------------------------------------------------- hparams (plugins/hparams)

export type HParamValue = string | number | boolean

/** google.protobuf.Value: number_value = 2, string_value = 3, bool_value = 4 */
function protoValue(value: HParamValue): Bytes {
  if (typeof value === 'number') return doubleField(2, value)
  if (typeof value === 'boolean') return uintField(4, value ? 1 : 0)
  return stringField(3, value)
}

export interface HParamInfo {
  name: string
  description?: string
  /** the values tried; their type gives the hparam's type */
  values: HParamValue[]
}

export interface MetricInfo {
  tag: string
  /** run sub-folder of the session the scalar is in ('' = the session's own folder) */
  group?: string
  displayName?: string
  description?: string
  dataset?: 'training' | 'validation'
}

/** api.proto DataType */
function hparamType(values: HParamValue[]): number {
  if (values.every((v) => typeof v === 'number')) return 3 // DATA_TYPE_FLOAT64
  if (values.every((v) => typeof v === 'boolean')) return 2 // DATA_TYPE_BOOL
  return 1 // DATA_TYPE_STRING
}

const hparamsValue = (tag: string, pluginData: Bytes): Bytes =>
  concat([
    stringField(1, tag),
    messageField(9, pluginMetadata('hparams', pluginData, DATA_CLASS_TENSOR)),
    // hparams' NULL_TENSOR: DT_FLOAT, shape (0,)
    messageField(8, uintField(1, DT_FLOAT), messageField(2, messageField(2))),
  ])

/** HParamsPluginData (version 0 = absent) with its oneof data: experiment = 2, session_start_info = 3, session_end_info = 4 */
export interface HParamsExperiment {
  name: string
  description?: string
  createdSecs: number
  hparams: HParamInfo[]
  metrics: MetricInfo[]
}

function experimentValue(experiment: HParamsExperiment): Bytes {
  const info = (h: HParamInfo): Bytes => {
    const values = hparamType(h.values) === 1 ? h.values.map(String) : h.values
    return concat([
      stringField(1, h.name),
      ...optional(h.description !== undefined, () => stringField(3, h.description!)),
      uintField(4, hparamType(h.values)),
      // domain_discrete: google.protobuf.ListValue{values = 1}
      messageField(5, ...values.map((v) => messageField(1, protoValue(v)))),
    ])
  }
  const metric = (m: MetricInfo): Bytes =>
    concat([
      messageField(1, ...optional(!!m.group, () => stringField(1, m.group!)), stringField(2, m.tag)),
      ...optional(m.displayName !== undefined, () => stringField(3, m.displayName!)),
      ...optional(m.description !== undefined, () => stringField(4, m.description!)),
      ...optional(m.dataset !== undefined, () => uintField(5, m.dataset === 'training' ? 1 : 2)),
    ])
  const body = concat([
    ...optional(experiment.description !== undefined, () => stringField(1, experiment.description!)),
    doubleField(3, experiment.createdSecs),
    ...experiment.hparams.map((h) => messageField(4, info(h))),
    ...experiment.metrics.map((m) => messageField(5, metric(m))),
    stringField(6, experiment.name),
  ])
  return hparamsValue('_hparams_/experiment', messageField(2, body))
}

function sessionStartValue(hparams: Record<string, HParamValue>, startSecs: number, groupName?: string): Bytes {
  // map<string, Value> hparams = 1: one entry message {key = 1, value = 2} per pair
  const entries = Object.entries(hparams).map(([k, v]) => messageField(1, stringField(1, k), messageField(2, protoValue(v))))
  const body = concat([...entries, ...optional(!!groupName, () => stringField(4, groupName!)), doubleField(5, startSecs)])
  return hparamsValue('_hparams_/session_start_info', messageField(3, body))
}

function sessionEndValue(status: 'success' | 'failure' | 'running', endSecs: number): Bytes {
  const code = {success: 1, failure: 2, running: 3}[status] // api.proto Status
  return hparamsValue('_hparams_/session_end_info', messageField(4, uintField(1, code), doubleField(2, endSecs)))
}

// ---------------------------------------------------------------- events (event.proto)

/** Event: wall_time = 1, step = 2, file_version = 3, summary = 5, session_log = 7 */
function event(wallSecs: number, step: number, what: Bytes): Bytes {
  return concat([doubleField(1, wallSecs), ...optional(step !== 0, () => uintField(2, step)), what])
}
const summaryEvent = (wallSecs: number, step: number, values: Bytes[]): Bytes =>
  event(wallSecs, step, messageField(5, ...values.map((v) => messageField(1, v))))

const nowSecs = (): number => Date.now() / 1000

/**
 * One events file. By default a new file per process, appended record by record (one write each,
 * so a killed process leaves at most a cut last record, which TensorBoard's readers wait on and
 * then ignore); a resumed run gets a second file, and TensorBoard reads a folder's files as one
 * run. With `name`, the records are kept and `close()` replaces that file whole (a sweep's
 * hparams files, rewritten at every collection).
 */
export class EventFileWriter {
  readonly file: string
  private fd: number | null = null
  private kept: Buffer[] | null = null
  private closed = false

  constructor(dir: string, options: {name?: string; wallSecs?: number} = {}) {
    mkdirSync(dir, {recursive: true})
    const wall = options.wallSecs ?? nowSecs()
    const stem = `events.out.tfevents.${Math.floor(wall)}.${hostname()}`
    let file = join(dir, options.name ?? stem)
    if (options.name === undefined) {
      for (let n = 1; existsSync(file); n++) file = join(dir, `${stem}.${n}`)
      this.fd = openSync(file, 'wx')
    } else this.kept = []
    this.file = file
    this.write(event(wall, 0, stringField(3, 'brain.Event:2')))
  }

  private write(data: Bytes): void {
    if (this.closed) throw new Error(`${this.file}: written after close`)
    if (this.kept) this.kept.push(tfRecord(data))
    else writeSync(this.fd!, tfRecord(data))
  }

  /** tag → value; non-finite values are left out (a gap in TensorBoard's curve) */
  scalars(step: number, values: Record<string, number>, wallSecs = nowSecs()): void {
    const finite = Object.entries(values).filter(([, v]) => Number.isFinite(v))
    if (finite.length > 0)
      this.write(
        summaryEvent(
          wallSecs,
          step,
          finite.map(([tag, v]) => scalarValue(tag, v)),
        ),
      )
  }

  image(step: number, tag: string, png: Bytes, wallSecs = nowSecs()): void {
    const {width, height} = pngSize(png)
    this.write(summaryEvent(wallSecs, step, [imageValue(tag, png, width, height)]))
  }

  /** Markdown, as TensorBoard's text tab renders it */
  text(step: number, tag: string, markdown: string, wallSecs = nowSecs()): void {
    this.write(summaryEvent(wallSecs, step, [textValue(tag, markdown)]))
  }

  /**
   * SessionLog START at `step`: TensorBoard drops the points at or after it that an earlier,
   * interrupted process wrote, so a resumed run's curves do not double back.
   */
  sessionStart(step: number, wallSecs = nowSecs()): void {
    this.write(event(wallSecs, step, messageField(7, uintField(1, 1))))
  }

  hparamsExperiment(experiment: HParamsExperiment, wallSecs = nowSecs()): void {
    this.write(summaryEvent(wallSecs, 0, [experimentValue(experiment)]))
  }

  hparamsSessionStart(hparams: Record<string, HParamValue>, startSecs: number, groupName?: string): void {
    this.write(summaryEvent(startSecs, 0, [sessionStartValue(hparams, startSecs, groupName)]))
  }

  hparamsSessionEnd(status: 'success' | 'failure' | 'running', endSecs: number, step = 0): void {
    this.write(summaryEvent(endSecs, step, [sessionEndValue(status, endSecs)]))
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.fd !== null) closeSync(this.fd)
    if (this.kept) writeFileAtomic(this.file, Buffer.concat(this.kept))
  }
}

/** PNG width and height from its IHDR chunk */
function pngSize(png: Bytes): {width: number; height: number} {
  const view = Buffer.from(png.buffer, png.byteOffset, png.byteLength)
  if (view.length < 24 || view.toString('latin1', 1, 4) !== 'PNG') throw new Error('TensorBoard image: not a PNG')
  return {width: view.readUInt32BE(16), height: view.readUInt32BE(20)}
}
