/** `sipl preprocess` through the CLI on the demo config; preprocess.test.ts tests the stage in-process. */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {sipl} from '../helpers/cli.js'
import {loadConfig} from '../../src/config/load.js'
import {ensurePreprocessed, runPreprocess} from '../../src/data/cache.js'
import {loadCase, loadPlan, loadSplits} from '../../src/data/cache-files.js'
import {cacheIsComplete} from '../../src/data/cache-staleness.js'

const tmp = (tag: string) => mkdtempSync(join(tmpdir(), `sipl-pre-${tag}-`))

test('sipl preprocess on the demo config: phantoms + cache; finished cases are skipped, --force and changed settings redo them', async () => {
  const dataDir = tmp('demo')
  const env = {SIPL_DATA_DIR: dataDir}
  const first = sipl(['preprocess', '--config', 'experiments/demo.yaml', '--json'], {env})
  assert.equal(first.code, 0, first.stderr)
  const summary = JSON.parse(first.stdout) as {cacheDir: string; cases: number; processed: number; skipped: number}
  assert.equal(summary.cacheDir, join(dataDir, 'demo', 'preprocessed'))
  assert.deepEqual([summary.cases, summary.processed, summary.skipped], [8, 8, 0])
  const {config} = loadConfig('experiments/demo.yaml', [`data.root=${join(dataDir, 'demo')}`])
  const plan = loadPlan(summary.cacheDir)
  assert.deepEqual(plan.classes, ['liver', 'spleen', 'kidney'])
  assert.equal(plan.cases.length, 8)
  const splits = loadSplits(config, summary.cacheDir)
  assert.deepEqual([splits.train.length, splits.val.length, splits.test.length], [6, 0, 2])
  const c = loadCase(summary.cacheDir, plan.cases[0])
  assert.ok(c.shape.every((s, a) => s >= plan.patch[a]), 'padded to the patch')
  assert.ok(c.image.every((v) => v >= 0 && v <= 1))
  assert.ok(new Set(c.label).size === 4, 'all three organs and background present')
  assert.ok(cacheIsComplete(config))

  // ensurePreprocessed on a complete cache: no work, just a look at plan.json and the headers
  const started = process.hrtime.bigint()
  assert.equal(await ensurePreprocessed(config), summary.cacheDir)
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  assert.ok(ms < 200, `ensurePreprocessed took ${ms} ms on a complete cache`)

  // an interrupted run: one case lost its header (it is written last) → only that case is redone
  rmSync(join(summary.cacheDir, `${plan.cases[3]}.json`))
  const again = await runPreprocess(config)
  assert.deepEqual([again.processed, again.skipped], [1, 7])
  const forced = await runPreprocess(config, {force: true})
  assert.deepEqual([forced.processed, forced.skipped], [8, 0])
  const changed = loadConfig('experiments/demo.yaml', [`data.root=${join(dataDir, 'demo')}`, 'preprocess.spacing=[3, 3, 3]']).config
  assert.ok(!cacheIsComplete(changed))
  assert.equal(await ensurePreprocessed(changed), summary.cacheDir)
  assert.equal(loadPlan(summary.cacheDir).spacing[0], 3)
  assert.deepEqual(
    readdirSync(summary.cacheDir).filter((f) => f.includes('.tmp-')),
    [],
    'no temporary files left',
  )
})
