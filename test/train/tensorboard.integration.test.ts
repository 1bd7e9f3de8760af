/**
 * A real training run's TensorBoard events file: every record's framing and both CRCs, every
 * record decoded by `protoc --decode_raw` (an independent decoder), and the values equal to what
 * the run wrote in metrics.csv / metrics.jsonl, config.yaml and validation-overlay.png.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {EpochMetrics} from '../../src/train/metrics-log.js'
import {sipl} from '../helpers/cli.js'
import {all, bytes, decodeRaw, double, float, int, message, one, protocMissing, readRecords, text, type Field} from '../helpers/tfevents.js'
import {TINY} from '../e2e/tiny.js'

const CLASSES = ['liver', 'spleen', 'kidney']
const AUX_LAYERS = 6 // smg.scales [16, 8, 4], two kMaX layers each

type Row = EpochMetrics & {valDice: number; valPerClass: Record<string, number>}

/** a float32 simple_value against the float64 it was made from (or a mean of them) */
function close(actual: number, expected: number, what: string, rel = 2e-7): void {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`)
}

test(
  'a run’s events file: framing, CRCs and protoc-decoded values equal metrics.csv; a resume adds a restart marker',
  {skip: protocMissing()},
  () => {
    const root = mkdtempSync(join(tmpdir(), 'sipl-tb-run-'))
    const env = {SIPL_DATA_DIR: join(root, 'data'), SIPL_BACKEND: 'cpu'}
    const run = join(root, 'run')
    try {
      const sets = ['train.epochs=2', 'train.itersPerEpoch=2', 'eval.overlap=0'].flatMap((s) => ['--set', s])
      const t = sipl(['train', '-c', 'experiments/demo.yaml', ...TINY, ...sets, '--out', run, '--json'], {env})
      assert.equal(t.code, 0, t.stderr)

      const files = readdirSync(run).filter((f) => f.startsWith('events.out.tfevents.'))
      assert.equal(files.length, 1, files.join(' '))
      const events = decodeRaw(readRecords(join(run, files[0])))
      assert.equal(text(events[0], 3), 'brain.Event:2')

      // metrics.csv is the table a user reads; metrics.jsonl adds the per-class validation Dice
      const [header, ...lines] = readFileSync(join(run, 'metrics.csv'), 'utf8').trim().split('\n')
      const csv = lines.map((l) => Object.fromEntries(header.split(',').map((k, i) => [k, Number(l.split(',')[i])])))
      const rows = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Row)
      assert.equal(csv.length, 2)

      // Event{wall_time = 1, step = 2, summary = 5 {value = 1: Value{tag = 1, simple_value = 2, image = 4, tensor = 8}}}
      const points = new Map<string, Map<number, number>>()
      const images = new Map<number, {width: number; height: number; png: Buffer}>()
      let config = ''
      let lastWall = 0
      for (const event of events.slice(1)) {
        const wall = double(event, 1)
        assert.ok(wall >= lastWall && wall > 1.7e9, 'wall_time in seconds, non-decreasing')
        lastWall = wall
        const step = int(event, 2)
        for (const v of all(message(event, 5), 1).map((f) => f.value as Field[])) {
          const tag = text(v, 1)
          if (one(v, 2)) {
            const series = points.get(tag) ?? new Map<number, number>()
            assert.ok(!series.has(step), `${tag} twice at step ${step}`)
            points.set(tag, series.set(step, float(v, 2)))
          } else if (one(v, 4)) {
            const img = message(v, 4)
            images.set(step, {height: int(img, 1), width: int(img, 2), png: bytes(img, 4)})
          } else config = text(message(v, 8), 8)
        }
      }
      assert.equal(config, '```yaml\n' + readFileSync(join(run, 'config.yaml'), 'utf8') + '```\n')

      const perStep = ['loss/total', 'loss/seg', 'loss/aux_sum', 'train/lr', 'train/tau', 'train/grad_norm', 'train/step_seconds']
      const layers = Array.from({length: AUX_LAYERS}, (_, l) => `loss/aux/layer_${l + 1}`)
      for (const tag of [...perStep, ...layers]) assert.deepEqual([...points.get(tag)!.keys()], [1, 2, 3, 4], tag)
      assert.equal([...points.keys()].filter((k) => k.startsWith('loss/aux/')).length, AUX_LAYERS)
      const at = (tag: string, step: number): number => points.get(tag)!.get(step)!
      for (let step = 1; step <= 4; step++)
        close(
          layers.reduce((s, tag) => s + at(tag, step), 0),
          at('loss/aux_sum', step),
          `Σ layers at ${step}`,
          1e-6,
        )

      let previous = 0
      rows.forEach((row, i) => {
        const c = csv[i]
        assert.equal(c.step, row.step)
        const steps = Array.from({length: row.step - previous}, (_, k) => previous + k + 1)
        const mean = (tag: string): number => steps.reduce((s, k) => s + at(tag, k), 0) / steps.length
        // metrics.csv's epoch values are means over the epoch's steps; lr and τ are the last step's
        close(mean('loss/total'), c.loss, `loss epoch ${row.epoch}`)
        close(mean('loss/seg'), c.segLoss, `segLoss epoch ${row.epoch}`)
        close(mean('loss/aux_sum'), c.auxLoss, `auxLoss epoch ${row.epoch}`)
        close(mean('train/grad_norm'), c.gradNorm, `gradNorm epoch ${row.epoch}`)
        close(at('train/lr', row.step), c.lr, `lr epoch ${row.epoch}`)
        close(at('train/tau', row.step), c.tau, `tau epoch ${row.epoch}`)
        const stepSeconds = steps.reduce((s, k) => s + at('train/step_seconds', k), 0)
        assert.ok(stepSeconds > 0 && stepSeconds <= c.seconds, `step times ${stepSeconds} within the epoch's ${c.seconds} s`)
        // validation every epoch (TINY: valEvery 1), at the epoch's last step
        close(at('val/mean_dice', row.step), c.valDice, `val Dice epoch ${row.epoch}`)
        for (const cls of CLASSES) close(at(`val/dice/${cls}`, row.step), row.valPerClass[cls], `val ${cls} epoch ${row.epoch}`)
        assert.ok(images.has(row.step), `overlay image at step ${row.step}`)
        previous = row.step
      })
      const overlay = readFileSync(join(run, 'validation-overlay.png'))
      const last = images.get(rows[rows.length - 1].step)!
      assert.deepEqual(last.png, overlay)
      assert.deepEqual([last.width, last.height], [overlay.readUInt32BE(16), overlay.readUInt32BE(20)])

      // a resumed process writes a second file, which first tells TensorBoard to drop anything the
      // earlier process logged at or after the checkpoint's step (SessionLog{status = 1: START} = 7)
      const r = sipl(['train', '--out', run, '-c', join(run, 'config.yaml'), '--resume', '--json'], {env})
      assert.equal(r.code, 0, r.stderr)
      const second = readdirSync(run).filter((f) => f.startsWith('events.out.tfevents.') && f !== files[0])
      assert.equal(second.length, 1)
      const resumed = decodeRaw(readRecords(join(run, second[0])))
      assert.equal(text(resumed[0], 3), 'brain.Event:2')
      assert.deepEqual([int(resumed[1], 2), int(message(resumed[1], 7), 1)], [4, 1])
    } finally {
      rmSync(root, {recursive: true, force: true})
    }
  },
)
