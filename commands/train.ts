import {join} from 'node:path'
import {Flags} from '@oclif/core'
import {BaseCommand, backendFlag, configFlags, lockFlag} from '../src/cli/base-command.js'
import {loadConfig} from '../src/config/load.js'
import {UserError} from '../src/errors.js'
import {runDirFor, runPaths} from '../src/run/run-dir.js'
import {train, type TrainResult} from '../src/train/loop.js'

export default class Train extends BaseCommand<typeof Train> {
  static override summary = 'Train the SIPL network from an experiment config'
  static override description = `Writes the run directory (default runs/<name>, or --out): config.yaml, manifest.json, train.log, metrics.jsonl/csv, training-curve.svg, checkpoints/{last,best,epoch-N}. The preprocessed cache is made on first use (the demo's phantoms are generated). --resume continues exactly from checkpoints/last.`
  static override examples = [
    '<%= config.bin %> train --config experiments/demo.yaml',
    '<%= config.bin %> train -c experiments/btcv.yaml --set train.epochs=10 --out runs/btcv-short',
    '<%= config.bin %> train --out runs/btcv-short --resume',
  ]
  static override flags = {
    ...configFlags,
    ...backendFlag,
    ...lockFlag,
    resume: Flags.boolean({
      description: 'continue from <run>/checkpoints/last (same lr, τ, sampling stream, optimiser state)',
      default: false,
    }),
    out: Flags.string({char: 'o', description: 'run directory (default $SIPL_RUNS_DIR/<config name>)', helpValue: 'DIR'}),
  }

  async run(): Promise<TrainResult> {
    const {flags} = this
    let config
    if (flags.resume && !flags.config) {
      if (!flags.out) throw new UserError('--resume needs the run: give --out DIR (or the --config it was trained with)')
      config = loadConfig(runPaths(flags.out).config, flags.set).config
    } else {
      config = this.loadConfig().config
    }
    const runDir = runDirFor(config, flags.out)
    const log = this.logger(join(runDir, 'train.log'))
    const result = await train({
      config,
      runDir,
      resume: flags.resume,
      backend: this.backendRequest(),
      log,
      quiet: flags.quiet || this.jsonEnabled(),
      breakLock: flags['break-lock'],
    })
    if (!this.jsonEnabled()) {
      this.log(
        `trained ${result.epochs} epochs (${result.steps} steps) on ${result.backend.name} in ${result.seconds.toFixed(0)} s → ${result.runDir}`,
      )
      if (result.bestDice !== null) this.log(`best validation mean Dice ${result.bestDice.toFixed(4)} at epoch ${result.bestEpoch}`)
      this.log(`next: sipl eval --run ${result.runDir}`)
    }
    return result
  }
}
