/**
 * TensorBoard HParams data of sweeps and ablations (src/experiments/hparams.ts), with the fake
 * trial command: the experiment in the folder's root events file, each trial's session start,
 * scores and end in its own folder, decoded by `protoc --decode_raw` and compared with
 * results.json; a retried trial's end is replaced.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {all, decodeRaw, double, float, int, message, one, protocMissing, readRecords, text, type Field} from '../helpers/tfevents.js'
import {writeFakeSipl} from './fake-sipl.js'

const skip = protocMissing()

/** every events file in `folder` whose name ends with `suffix`, decoded */
function eventsOf(folder: string, suffix: string): Field[][] {
  const files = readdirSync(folder).filter((f) => f.startsWith('events.out.tfevents.') && f.endsWith(suffix))
  assert.equal(files.length, 1, `${folder}: one *${suffix} (${files.join(' ')})`)
  const events = decodeRaw(readRecords(join(folder, files[0])))
  assert.equal(text(events[0], 3), 'brain.Event:2')
  return events.slice(1)
}

/** Event.summary.value[] of one event */
const values = (event: Field[]): Field[][] => all(message(event, 5), 1).map((f) => f.value as Field[])

/** the HParamsPluginData inside a summary value's metadata.plugin_data.content, checking its tag */
function pluginData(value: Field[], tag: string): Field[] {
  assert.equal(text(value, 1), tag)
  const data = message(message(value, 9), 1)
  assert.equal(text(data, 1), 'hparams')
  return message(data, 2)
}

/** {hparam: number | string} from a SessionStartInfo's map entries */
function sessionHParams(event: Field[]): Record<string, number | string> {
  const start = message(pluginData(values(event)[0], '_hparams_/session_start_info'), 3)
  return Object.fromEntries(
    all(start, 1).map((f) => {
      const entry = f.value as Field[]
      const v = message(entry, 2)
      return [text(entry, 1), one(v, 2) ? double(v, 2) : text(v, 3)]
    }),
  )
}

/** (scores by tag, end status) from a trial's end file */
function sessionEnd(events: Field[][]): {scores: Record<string, number>; status: number} {
  const scores: Record<string, number> = {}
  for (const e of events.slice(0, -1)) for (const v of values(e)) scores[text(v, 1)] = float(v, 2)
  const end = message(pluginData(values(events[events.length - 1])[0], '_hparams_/session_end_info'), 4)
  return {scores, status: int(end, 1)}
}

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`)

test('sweep: HParams experiment, one session per trial with its scores and status; a retried trial’s end is replaced', {skip}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-hparams-'))
  try {
    const {command, control} = writeFakeSipl(dir)
    const env = {FAKE_SIPL_CONTROL: control}
    const out = join(dir, 'sweep')
    writeFileSync(join(control, 'queries=16.fail'), '')
    const args = [
      'sweep',
      '-c',
      'experiments/demo.yaml',
      '--grid',
      'model.queries=8,16',
      '--out',
      out,
      '--trial-command',
      command,
      '--json',
    ]
    const first = sipl(args, {env})
    assert.equal(first.code, 0, first.stderr)

    // Experiment{hparam_infos = 4 {name = 1, type = 4, domain_discrete = 5}, metric_infos = 5 {name = 1 {tag = 2}}, name = 6}
    const experiment = message(pluginData(values(eventsOf(out, '.sipl-hparams')[0])[0], '_hparams_/experiment'), 2)
    assert.equal(text(experiment, 6), 'demo sweep')
    const infos = all(experiment, 4).map((f) => f.value as Field[])
    assert.deepEqual(
      infos.map((h) => [text(h, 1), int(h, 4), all(message(h, 5), 1).map((v) => double(v.value as Field[], 2))]),
      [['model.queries', 3, [8, 16]]],
    )
    const metricTags = all(experiment, 5).map((f) => text(message(f.value as Field[], 1), 2))
    for (const tag of ['eval/mean_dice', 'eval/mean_hd95', 'eval/dice/liver', 'eval/dice/spleen', 'eval/dice/kidney', 'val/mean_dice'])
      assert.ok(metricTags.includes(tag), tag)

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      rows: {name: string; meanDice: number; dice: Record<string, number>; meanHd95: number}[]
    }
    const trial = (name: string) => join(out, 'trials', name)
    assert.deepEqual(sessionHParams(eventsOf(trial('queries=8'), '.sipl-session-start')[0]), {'model.queries': 8})
    assert.deepEqual(sessionHParams(eventsOf(trial('queries=16'), '.sipl-session-start')[0]), {'model.queries': 16})

    // api.proto Status: SUCCESS 1, FAILURE 2
    const done = sessionEnd(eventsOf(trial('queries=8'), '.sipl-session-end'))
    assert.equal(done.status, 1)
    const row = results.rows[0]
    near(done.scores['eval/mean_dice'], row.meanDice, 'mean Dice')
    near(done.scores['eval/mean_hd95'], row.meanHd95, 'HD95')
    for (const c of ['liver', 'spleen', 'kidney']) near(done.scores[`eval/dice/${c}`], row.dice[c], c)
    const failed = sessionEnd(eventsOf(trial('queries=16'), '.sipl-session-end'))
    assert.deepEqual(failed, {scores: {}, status: 2})

    // collecting again changes nothing; a retry that succeeds replaces the failed trial's end
    const endFiles = (name: string) => readdirSync(trial(name)).filter((f) => f.endsWith('.sipl-session-end'))
    const before = endFiles('queries=16')
    assert.equal(sipl(['sweep', 'collect', out]).code, 0)
    assert.deepEqual(endFiles('queries=16'), before)
    rmSync(join(control, 'queries=16.fail'))
    const retry = sipl(['sweep', '--out', out, '--retry-failed', '--json'], {env})
    assert.equal(retry.code, 0, retry.stderr)
    assert.notDeepEqual(endFiles('queries=16'), before)
    const retried = sessionEnd(eventsOf(trial('queries=16'), '.sipl-session-end'))
    assert.equal(retried.status, 1)
    const after = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as typeof results
    near(retried.scores['eval/mean_dice'], after.rows[1].meanDice, 'retried mean Dice')
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})

test('ablation: the variant is the hparam; Δ mean Dice and the p-value against the full model are metrics', {skip}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipl-hparams-'))
  try {
    const {command, control} = writeFakeSipl(dir)
    const out = join(dir, 'ablation')
    const a = sipl(['ablate', '-c', 'experiments/demo.yaml', '--remove', 'ipl', '--out', out, '--trial-command', command, '--json'], {
      env: {FAKE_SIPL_CONTROL: control},
    })
    assert.equal(a.code, 0, a.stderr)
    const experiment = message(pluginData(values(eventsOf(out, '.sipl-hparams')[0])[0], '_hparams_/experiment'), 2)
    const infos = all(experiment, 4).map((f) => f.value as Field[])
    assert.deepEqual(
      infos.map((h) => [text(h, 1), int(h, 4), all(message(h, 5), 1).map((v) => text(v.value as Field[], 3))]),
      [['variant', 1, ['full', 'no-ipl']]],
    )
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      rows: {name: string; meanDice: number; delta: number | null; p: number | null}[]
    }
    const noIpl = results.rows.find((r) => r.name === 'no-ipl')!
    const folder = join(out, 'trials', 'no-ipl')
    assert.deepEqual(sessionHParams(eventsOf(folder, '.sipl-session-start')[0]), {variant: 'no-ipl'})
    const end = sessionEnd(eventsOf(folder, '.sipl-session-end'))
    assert.equal(end.status, 1)
    near(end.scores['ablation/delta_mean_dice'], noIpl.delta!, 'Δ')
    near(end.scores['ablation/p_value'], noIpl.p!, 'p')
    // the full model has no Δ or p against itself: left out, not written as 0
    const full = sessionEnd(eventsOf(join(out, 'trials', 'full'), '.sipl-session-end'))
    assert.ok(!('ablation/p_value' in full.scores) && 'eval/mean_dice' in full.scores)
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})
