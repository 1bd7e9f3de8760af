/**
 * Configs by name, as a user outside the repository types them: every command run from an empty
 * temporary folder, where `--config btcv.yaml` can only mean the shipped experiments/btcv.yaml.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'

const SHIPPED = ['brats', 'btcv', 'demo', 'lungs']
const shippedText = (name: string): string => readFileSync(join(PROJECT_ROOT, 'experiments', `${name}.yaml`), 'utf8')
const elsewhere = (): string => mkdtempSync(join(tmpdir(), 'sipl-cwd-'))

test('a bare config name not in the working directory is the shipped config, and the log says so', () => {
  const cwd = elsewhere()
  const model = sipl(['model', '--config', 'btcv.yaml', '--json'], {cwd, env: {SIPL_LOG_LEVEL: 'info'}})
  assert.equal(model.code, 0, model.stderr)
  assert.equal((JSON.parse(model.stdout) as {numClasses: number}).numClasses, 13, "BTCV's 13 organs")
  assert.match(model.stderr, /--config btcv\.yaml: not in the working directory, so the shipped config 'btcv' is used/)
  assert.ok(model.stderr.includes(join(PROJECT_ROOT, 'experiments', 'btcv.yaml')), 'the log names the file read')
  // without the extension, and the README's experiments/NAME.yaml typed outside the repository
  for (const name of ['btcv', 'experiments/btcv.yaml']) {
    const run = sipl(['sweep', '--config', name, '--grid', 'seed=1,2', '--dry-run', '--json'], {cwd, env: {SIPL_LOG_LEVEL: 'info'}})
    assert.equal(run.code, 0, `${name}: ${run.stderr}`)
    assert.equal((JSON.parse(run.stdout) as {dir: string}).dir, join(cwd, 'runs', 'btcv-sweep'))
    assert.match(run.stderr, new RegExp(`--config ${name}: not in the working directory, so the shipped config 'btcv' is used`))
  }
})

test('train, preprocess, sweep and ablate take a shipped config by name from any folder', () => {
  const cwd = elsewhere()
  const env = {SIPL_DATA_DIR: join(cwd, 'data'), SIPL_RUNS_DIR: join(cwd, 'runs'), SIPL_BACKEND: 'cpu'}
  const sets = [
    'data.synthetic.cases=4',
    'data.synthetic.shape=[24,24,16]',
    'data.splitFractions=[0.5,0.25,0.25]',
    'preprocess.patch=[16,16,16]',
    'model.backbone.widths=[8,16,32]',
    'model.backbone.depths=[1,1,1]',
  ].flatMap((s) => ['--set', s])
  const pre = sipl(['preprocess', '--config', 'demo.yaml', ...sets, '--json'], {cwd, env})
  assert.equal(pre.code, 0, pre.stderr)
  assert.ok(existsSync(join(cwd, 'data', 'demo')), 'the phantoms go to SIPL_DATA_DIR, not next to the shipped config')

  const train = sipl(
    [
      'train',
      '--config',
      'demo.yaml',
      ...sets,
      ...['train.epochs=1', 'train.itersPerEpoch=1', 'train.valEvery=0', 'train.checkpointEvery=0'].flatMap((s) => ['--set', s]),
      '--json',
    ],
    {cwd, env},
  )
  assert.equal(train.code, 0, train.stderr)
  assert.equal((JSON.parse(train.stdout) as {runDir: string}).runDir, join(cwd, 'runs', 'demo'))
  assert.match(readFileSync(join(cwd, 'runs', 'demo', 'config.yaml'), 'utf8'), /^name: demo$/m)

  const sweep = sipl(['sweep', '--config', 'demo', '--grid', 'model.queries=4,8', '--dry-run', '--json'], {cwd, env})
  assert.equal(sweep.code, 0, sweep.stderr)
  assert.equal((JSON.parse(sweep.stdout) as {trials: unknown[]}).trials.length, 2)
  const ablate = sipl(['ablate', '--config', 'demo.yaml', '--remove', 'ipl', '--dry-run', '--json'], {cwd, env})
  assert.equal(ablate.code, 0, ablate.stderr)
})

test('a config file in the working directory wins over the shipped one of the same name', () => {
  const cwd = elsewhere()
  writeFileSync(join(cwd, 'demo.yaml'), shippedText('demo').replace(/^name: demo$/m, 'name: mine'))
  for (const name of ['demo.yaml', 'demo']) {
    const run = sipl(['config', 'show', name, '--resolved'], {cwd, env: {SIPL_LOG_LEVEL: 'info'}})
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^name: mine$/m, name)
    const model = sipl(['model', '--config', name], {cwd, env: {SIPL_LOG_LEVEL: 'info'}})
    assert.equal(model.code, 0, model.stderr)
    assert.doesNotMatch(model.stderr, /shipped/, `${name}: the local file is read, so no note about the shipped one`)
  }
})

test('a config found nowhere: exit 2, one line that lists the shipped configs', () => {
  const cwd = elsewhere()
  for (const command of [['train'], ['eval', '--pred', cwd, '--labels', cwd], ['sweep', '--grid', 'model.queries=4,8']]) {
    const run = sipl([...command, '--config', 'btvc.yaml'], {cwd})
    assert.equal(run.code, 2, `${command[0]}: ${run.stderr}`)
    assert.equal(run.stderr.trim().split('\n').length, 1)
    assert.match(
      run.stderr,
      /^Error: btvc\.yaml: config file not found in .* and not a shipped config; shipped configs: brats, btcv, demo, lungs /,
    )
  }
})

test('sipl config list and show', () => {
  const cwd = elsewhere()
  const list = sipl(['config', 'list', '--json'], {cwd})
  assert.equal(list.code, 0, list.stderr)
  const doc = JSON.parse(list.stdout) as {dir: string; configs: {name: string; file: string; summary: string}[]}
  assert.deepEqual(
    doc.configs.map((c) => c.name),
    SHIPPED,
  )
  assert.equal(doc.configs[1].summary, 'BTCV multi-organ CT, 13 organs (paper §4.1, Table 1).')
  const text = sipl(['config', 'list'], {cwd})
  for (const name of SHIPPED) assert.match(text.stdout, new RegExp(`^${name}\\s+\\S`, 'm'))

  const show = sipl(['config', 'show', 'btcv'], {cwd})
  assert.equal(show.code, 0, show.stderr)
  assert.equal(show.stdout, shippedText('btcv'), 'printed as shipped, comments included')
  const resolved = sipl(['config', 'show', 'demo.yaml', '--resolved', '--set', 'train.epochs=5'], {cwd})
  assert.match(resolved.stdout, /^ {2}epochs: 5$/m)
  assert.match(resolved.stdout, /^ {2}surfaceTolerance: /m, '--resolved fills in defaults the file does not set')
})

test('sipl config init copies a shipped config out and never overwrites an edit without --force', () => {
  const cwd = elsewhere()
  const init = sipl(['config', 'init', 'btcv'], {cwd})
  assert.equal(init.code, 0, init.stderr)
  const copy = join(cwd, 'btcv.yaml')
  assert.equal(readFileSync(copy, 'utf8'), shippedText('btcv'))

  writeFileSync(copy, 'name: edited\n')
  const again = sipl(['config', 'init', 'btcv'], {cwd})
  assert.equal(again.code, 2)
  assert.equal(again.stderr.trim(), `Error: ${copy}: already exists, left as it is; choose another place, or overwrite it with --force`)
  assert.equal(readFileSync(copy, 'utf8'), 'name: edited\n', 'the edit is kept')
  const forced = sipl(['config', 'init', 'btcv', '--force'], {cwd})
  assert.equal(forced.code, 0, forced.stderr)
  assert.equal(readFileSync(copy, 'utf8'), shippedText('btcv'))

  // into a folder (made if missing), or to a file name
  assert.equal(sipl(['config', 'init', 'demo', 'configs'], {cwd}).code, 0)
  assert.equal(readFileSync(join(cwd, 'configs', 'demo.yaml'), 'utf8'), shippedText('demo'))
  mkdirSync(join(cwd, 'x'))
  const named = sipl(['config', 'init', 'lungs', 'x/my-lungs.yaml', '--json'], {cwd})
  assert.equal(named.code, 0, named.stderr)
  assert.deepEqual(JSON.parse(named.stdout), {from: join(PROJECT_ROOT, 'experiments', 'lungs.yaml'), to: join(cwd, 'x', 'my-lungs.yaml')})

  const unknown = sipl(['config', 'init', 'btvc'], {cwd})
  assert.equal(unknown.code, 2)
  assert.equal(unknown.stderr.trim(), 'Error: btvc: not a shipped config; shipped configs: brats, btcv, demo, lungs (sipl config list)')
})
