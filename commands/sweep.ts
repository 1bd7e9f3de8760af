import {Flags} from '@oclif/core'
import {BaseCommand, backendFlag, configFlags, lockFlag} from '../src/cli/base-command.js'
import {executorFlags, launchOptionsFromFlags} from '../src/experiments/cli-flags.js'
import {launch, type LaunchResult} from '../src/experiments/launch.js'
import {parseAxis, parseIntList} from '../src/experiments/plan.js'
import {collectLines} from '../src/experiments/summary-text.js'

export default class Sweep extends BaseCommand<typeof Sweep> {
  static override summary = 'Run a hyper-parameter grid (Fig. 5) locally or as a Slurm job array and collect the results'
  static override description = `Every combination of the --grid values (or, with --zip, the i-th value of each) × --seeds × --folds is one trial: an ordinary run directory under <out>/trials/ made by 'sipl train' then 'sipl eval'. The results go to <out>/results.{md,csv,json} and <out>/plots/<key>.svg. Follow a Slurm sweep with 'sipl sweep status DIR'; 'sipl sweep collect DIR' rebuilds the table from whatever has finished.`
  static override examples = [
    '<%= config.bin %> sweep --config experiments/btcv.yaml --grid model.queries=8,16,32,64 --grid smg.tau.end=0.1,0.3,0.5,0.7',
    '<%= config.bin %> sweep --config experiments/demo.yaml --grid model.queries=4,8 --seeds 1,2,3 --parallel 2',
    '<%= config.bin %> sweep --config experiments/btcv.yaml --grid model.queries=16,32 --executor slurm --partition gpu --time 24:00:00 --dry-run',
    '<%= config.bin %> sweep --out runs/btcv-sweep --retry-failed --executor slurm',
  ]
  static override flags = {
    ...configFlags,
    ...backendFlag,
    grid: Flags.string({
      char: 'g',
      description: 'a swept config key and its values: dotted.key=v1,v2,… (repeatable; values typed as YAML)',
      multiple: true,
      default: [],
      helpValue: 'KEY=V1,V2',
    }),
    zip: Flags.boolean({description: 'pair the i-th values of every --grid instead of taking all combinations', default: false}),
    seeds: Flags.string({description: 'repeat every setting with these seeds (sets seed)', helpValue: '1,2,3'}),
    folds: Flags.integer({
      description: 'K-fold cross-validation: repeat every setting on folds 0..K-1 of train+val (test unchanged; sets data.splitsFile)',
      min: 2,
      helpValue: 'K',
    }),
    ...executorFlags,
    ...lockFlag,
  }

  async run(): Promise<LaunchResult> {
    const f = this.flags
    const log = this.logger()
    const result = await launch(
      {
        kind: 'sweep',
        ...launchOptionsFromFlags(f),
        sweep: {
          grid: f.grid.map((g) => parseAxis(g)),
          zip: f.zip,
          seeds: f.seeds === undefined ? [] : parseIntList(f.seeds, '--seeds'),
          folds: f.folds ?? 0,
        },
      },
      log,
    )
    if (!this.jsonEnabled()) printLaunch(this, result)
    return result
  }
}

export function printLaunch(command: {log: (s: string) => void}, result: LaunchResult): void {
  if (result.dryRun) {
    command.log(result.script ?? '')
    return
  }
  if (result.submission) {
    const s = result.submission
    command.log(
      `${result.dir}: submitted ${s.indices.length} trials as Slurm job array ${s.jobId}; collect job ${s.collectJobId} (afterany)`,
    )
    command.log(`follow: sipl sweep status ${result.dir}`)
  }
  if (result.collected) for (const line of collectLines(result.collected)) command.log(line)
}
