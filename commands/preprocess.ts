import {Flags} from '@oclif/core'
import {BaseCommand, configFlags, lockFlag} from '../src/cli/base-command.js'
import {runPreprocess, type PreprocessSummary} from '../src/data/cache.js'

export default class Preprocess extends BaseCommand<typeof Preprocess> {
  static override summary = 'Reorient, resample, normalise and crop a dataset into the cache that training reads'
  static override description =
    'Reads the dataset named by data.preset / data.root (generating the synthetic phantoms first for preset synthetic), ' +
    'reorients every case to RAS, resamples to preprocess.spacing (trilinear images, nearest-neighbour labels), normalises ' +
    'intensities, crops to the foreground and pads to the patch size. Writes <cache>/<case>.{json,image.f32,label.u8}, ' +
    'plan.json and splits.json. Finished cases are skipped unless --force; an interrupted run leaves no half-written case. A second preprocess of the same cache waits for the first to finish.'
  static override examples = [
    '<%= config.bin %> preprocess --config experiments/demo.yaml',
    '<%= config.bin %> preprocess --config experiments/btcv.yaml --set data.root=/data/BTCV/RawData/Training --force',
  ]
  static override flags = {
    ...configFlags,
    ...lockFlag,
    force: Flags.boolean({description: 'redo every case (and regenerate synthetic phantoms)', default: false}),
  }

  async run(): Promise<PreprocessSummary> {
    const {config} = this.loadConfig()
    const log = this.logger()
    const summary = await runPreprocess(config, {
      force: this.flags.force,
      log,
      quiet: this.flags.quiet,
      breakLock: this.flags['break-lock'],
    })
    if (!this.jsonEnabled())
      this.log(
        `${summary.cases} cases in ${summary.cacheDir} (${summary.processed} preprocessed, ${summary.skipped} already done) in ${summary.seconds.toFixed(1)} s; ` +
          `spacing ${summary.spacing.join('×')} mm, median shape ${summary.medianShape.join('×')}; ` +
          `split ${summary.splits.train}/${summary.splits.val}/${summary.splits.test} (train/val/test)`,
      )
    return summary
  }
}
