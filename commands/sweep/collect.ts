import {Args} from '@oclif/core'
import {BaseCommand, lockFlag} from '../../src/cli/base-command.js'
import {collect, type CollectResult} from '../../src/experiments/collect.js'
import {readExperiment} from '../../src/experiments/layout.js'
import {collectLines} from '../../src/experiments/summary-text.js'
import {withFolderLock} from '../../src/util/lock.js'

export default class SweepCollect extends BaseCommand<typeof SweepCollect> {
  static override summary = 'Build the results table (and plots) of a sweep or ablation from whatever trials have finished'
  static override description = `Writes <dir>/results.{md,csv,json} and, for sweeps, <dir>/plots/<key>.svg. Failed, cancelled and unfinished trials are listed with their state; they never stop the others being collected. The Slurm executor runs this as a job after the array (afterany). Works for 'sipl ablate' directories too.`
  static override examples = ['<%= config.bin %> sweep collect runs/btcv-sweep']
  static override args = {dir: Args.directory({description: 'the experiment directory (--out of sipl sweep/ablate)', required: true})}
  static override flags = {...lockFlag}

  async run(): Promise<CollectResult> {
    const {args} = await this.parse(SweepCollect)
    const options = {what: 'experiment folder', log: this.logger(), breakLock: this.flags['break-lock']}
    const result = await withFolderLock(args.dir, options, () => collect(args.dir, readExperiment(args.dir)))
    if (!this.jsonEnabled()) for (const line of collectLines(result)) this.log(line)
    return result
  }
}
