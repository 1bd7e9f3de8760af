/**
 * The TensorBoard event writer (src/log/tensorboard.ts): CRC-32C against RFC 3720's test
 * vectors, the masked CRC and a whole TFRecord against what TensorBoard's own Python writer
 * produces, and every kind of event decoded by `protoc --decode_raw` with TensorBoard's field
 * numbers (compat/proto/event.proto, summary.proto, tensor.proto; plugins/hparams/api.proto,
 * plugin_data.proto; google/protobuf/struct.proto).
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {crc32c, EventFileWriter, maskedCrc32c, tfRecord} from '../../src/log/tensorboard.js'
import {encodePng} from '../../src/io/png.js'
import {all, bytes, decodeRaw, double, float, int, message, one, protocMissing, readRecords, text, type Field} from '../helpers/tfevents.js'

test('CRC-32C: RFC 3720 B.4 test vectors', () => {
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa) // 32 bytes of zeros
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43) // 32 bytes of 0xFF
  assert.equal(crc32c(Uint8Array.from({length: 32}, (_, i) => i)), 0x46dd794e) // 0..31 ascending
  assert.equal(crc32c(Uint8Array.from({length: 32}, (_, i) => 31 - i)), 0x113fdb5c) // 31..0 descending
  assert.equal(crc32c(new Uint8Array(0)), 0)
})

test('masked CRC and TFRecord framing equal TensorBoard’s own writer (tensorboard 2.21 RecordWriter)', () => {
  // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"sipl") and (bytes(32))
  assert.equal(maskedCrc32c(Buffer.from('sipl')), 0x725c1976)
  assert.equal(maskedCrc32c(new Uint8Array(32)), 0x0fd7fffa)
  // tensorboard.summary.writer.record_writer.RecordWriter(f).write(b"sipl tensorboard")
  assert.equal(
    tfRecord(Buffer.from('sipl tensorboard')).toString('hex'),
    '100000000000000095fbfe187369706c2074656e736f72626f617264d5e56684',
  )
})

const decodeSkip = protocMissing()

function writeAndDecode(fill: (w: EventFileWriter) => void, name?: string): {file: string; events: Field[][]} {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-tb-'))
  try {
    const w = new EventFileWriter(dir, {wallSecs: 1_700_000_000.25, ...(name ? {name} : {})})
    fill(w)
    w.close()
    const files = readdirSync(dir).filter((f) => !f.startsWith('.'))
    assert.equal(files.length, 1)
    if (!name) assert.match(files[0], /^events\.out\.tfevents\.1700000000\.[^/]+$/)
    return {file: files[0], events: decodeRaw(readRecords(join(dir, files[0])))}
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}

/** Event.summary (5) → its Summary.Value (1) entries */
const values = (event: Field[]): Field[][] => all(message(event, 5), 1).map((f) => f.value as Field[])

test('scalars, image, text and the restart marker decode as TensorBoard Events', {skip: decodeSkip}, () => {
  const png = encodePng(3, 2, new Uint8Array(18).fill(200))
  const {events} = writeAndDecode((w) => {
    w.scalars(7, {'loss/total': 0.75, 'train/lr': 4e-4, skipped: NaN}, 1_700_000_001.5)
    w.scalars(8_000_000_000, {big: -2.5}, 1_700_000_002)
    w.image(9, 'val/overlay', png, 1_700_000_003)
    w.text(0, 'config', '```yaml\nname: demo\n```\n', 1_700_000_004)
    w.sessionStart(12, 1_700_000_005)
  })
  assert.equal(events.length, 6)
  // Event: wall_time = 1 (double), step = 2, file_version = 3
  assert.equal(double(events[0], 1), 1_700_000_000.25)
  assert.equal(text(events[0], 3), 'brain.Event:2')
  assert.equal(one(events[0], 2), undefined, 'step 0 is left out (proto3 default)')

  const [scalars, big, image, config, restart] = events.slice(1)
  assert.deepEqual([double(scalars, 1), int(scalars, 2)], [1_700_000_001.5, 7])
  // Summary.Value: tag = 1, simple_value = 2 (float); the NaN is left out
  assert.deepEqual(
    values(scalars).map((v) => [text(v, 1), float(v, 2)]),
    [
      ['loss/total', 0.75],
      ['train/lr', Math.fround(4e-4)],
    ],
  )
  assert.equal(int(big, 2), 8_000_000_000, 'an int64 step past 2^32')
  assert.equal(float(values(big)[0], 2), -2.5)

  // Summary.Value.image = 4: Image{height = 1, width = 2, colorspace = 3, encoded_image_string = 4}
  const img = message(values(image)[0], 4)
  assert.deepEqual([int(img, 1), int(img, 2), int(img, 3)], [2, 3, 3])
  assert.deepEqual(bytes(img, 4), png)

  // text: metadata = 9 {plugin_data = 1 {plugin_name = 1}, data_class = 4 (TENSOR)}, tensor = 8 {dtype = 1 (DT_STRING = 7), string_val = 8}
  const t = values(config)[0]
  assert.equal(text(t, 1), 'config')
  const meta = message(t, 9)
  assert.equal(text(message(meta, 1), 1), 'text')
  assert.equal(int(meta, 4), 2)
  const tensor = message(t, 8)
  assert.equal(int(tensor, 1), 7)
  assert.equal(text(tensor, 8), '```yaml\nname: demo\n```\n')

  // Event.session_log = 7: SessionLog{status = 1 (START = 1)} at the resumed step
  assert.equal(int(restart, 2), 12)
  assert.equal(int(message(restart, 7), 1), 1)
})

/** Summary.Value with the hparams plugin's metadata → the HParamsPluginData it carries (decoded) */
function hparamsData(value: Field[], tag: string): Field[] {
  assert.equal(text(value, 1), tag)
  const pluginData = message(message(value, 9), 1)
  assert.equal(text(pluginData, 1), 'hparams')
  // hparams' NULL_TENSOR: dtype DT_FLOAT (1), shape (0,)
  const tensor = message(value, 8)
  assert.equal(int(tensor, 1), 1)
  assert.equal(all(message(tensor, 2), 2).length, 1)
  const content = one(pluginData, 2)
  assert.ok(content && Array.isArray(content.value), 'plugin_data.content is a serialised HParamsPluginData')
  assert.equal(one(content.value, 1), undefined, 'version 0 (PLUGIN_DATA_VERSION)')
  return content.value
}

test('hparams experiment, session start and session end decode as HParamsPluginData', {skip: decodeSkip}, () => {
  const {file, events} = writeAndDecode((w) => {
    w.hparamsExperiment(
      {
        name: 'demo sweep',
        createdSecs: 1_700_000_000,
        hparams: [
          {name: 'model.queries', values: [4, 8]},
          {name: 'variant', values: ['full', 'no-ipl']},
          {name: 'flag', values: [true, false]},
        ],
        metrics: [
          {tag: 'eval/mean_dice', displayName: 'test mean Dice'},
          {tag: 'val/mean_dice', dataset: 'validation'},
        ],
      },
      1_700_000_000,
    )
    w.hparamsSessionStart({'model.queries': 0, variant: 'full', flag: false}, 1_700_000_010)
    w.hparamsSessionEnd('failure', 1_700_000_020)
  }, 'events.out.tfevents.1700000000.sipl-hparams')
  assert.equal(file, 'events.out.tfevents.1700000000.sipl-hparams')

  // HParamsPluginData.experiment = 2: Experiment{time_created_secs = 3, hparam_infos = 4, metric_infos = 5, name = 6}
  const experiment = message(hparamsData(values(events[1])[0], '_hparams_/experiment'), 2)
  assert.equal(text(experiment, 6), 'demo sweep')
  assert.equal(double(experiment, 3), 1_700_000_000)
  // HParamInfo{name = 1, type = 4 (FLOAT64 3, STRING 1, BOOL 2), domain_discrete = 5: ListValue{values = 1: Value}}
  const infos = all(experiment, 4).map((f) => f.value as Field[])
  assert.deepEqual(
    infos.map((h) => [text(h, 1), int(h, 4)]),
    [
      ['model.queries', 3],
      ['variant', 1],
      ['flag', 2],
    ],
  )
  // Value: number_value = 2 (double), string_value = 3, bool_value = 4
  const domain = (h: Field[]): Field[][] => all(message(h, 5), 1).map((f) => f.value as Field[])
  assert.deepEqual(
    domain(infos[0]).map((v) => double(v, 2)),
    [4, 8],
  )
  assert.deepEqual(
    domain(infos[1]).map((v) => text(v, 3)),
    ['full', 'no-ipl'],
  )
  assert.deepEqual(
    domain(infos[2]).map((v) => [one(v, 4)?.value]),
    [['1'], ['0']],
  )
  // MetricInfo{name = 1: MetricName{group = 1, tag = 2}, display_name = 3, dataset_type = 5 (VALIDATION 2)}
  const metrics = all(experiment, 5).map((f) => f.value as Field[])
  assert.deepEqual(
    metrics.map((m) => [text(message(m, 1), 2), one(m, 3) ? text(m, 3) : '', int(m, 5)]),
    [
      ['eval/mean_dice', 'test mean Dice', 0],
      ['val/mean_dice', '', 2],
    ],
  )

  // session_start_info = 3: SessionStartInfo{hparams = 1 (map entries {key = 1, value = 2}), start_time_secs = 5}
  const start = message(hparamsData(values(events[2])[0], '_hparams_/session_start_info'), 3)
  const entries = all(start, 1).map((f) => f.value as Field[])
  assert.deepEqual(
    entries.map((e) => text(e, 1)),
    ['model.queries', 'variant', 'flag'],
  )
  // a oneof member at its default is still written: 0 and false are values, not absences
  assert.equal(double(message(entries[0], 2), 2), 0)
  assert.ok(one(message(entries[0], 2), 2) !== undefined)
  assert.equal(text(message(entries[1], 2), 3), 'full')
  assert.equal(one(message(entries[2], 2), 4)?.value, '0')
  assert.equal(double(start, 5), 1_700_000_010)

  // session_end_info = 4: SessionEndInfo{status = 1 (FAILURE 2), end_time_secs = 2}
  const end = message(hparamsData(values(events[3])[0], '_hparams_/session_end_info'), 4)
  assert.deepEqual([int(end, 1), double(end, 2)], [2, 1_700_000_020])
})

test('a named events file is replaced whole on close; an unnamed one never overwrites another', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-tb-'))
  try {
    const a = new EventFileWriter(dir, {wallSecs: 1_700_000_000})
    const b = new EventFileWriter(dir, {wallSecs: 1_700_000_000})
    assert.notEqual(a.file, b.file)
    a.close()
    b.close()
    for (const n of [3, 1]) {
      const w = new EventFileWriter(dir, {name: 'events.out.tfevents.1.sipl-hparams'})
      for (let i = 0; i < n; i++) w.scalars(i + 1, {x: i})
      w.close()
    }
    assert.equal(readRecords(join(dir, 'events.out.tfevents.1.sipl-hparams')).length, 2)
    assert.equal(readdirSync(dir).length, 3)
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})
