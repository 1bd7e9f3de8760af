import {Flags} from '@oclif/core'
import {BaseCommand, backendFlag, configFlags, lockFlag} from '../src/cli/base-command.js'
import {UserError} from '../src/errors.js'
import {executorFlags, launchOptionsFromFlags} from '../src/experiments/cli-flags.js'
import {launch, type LaunchResult} from '../src/experiments/launch.js'
import {CPP_INITS} from '../src/experiments/plan.js'
import {printLaunch} from './sweep.js'

export default class Ablate extends BaseCommand<typeof Ablate> {
  static override summary = "Run the paper's ablations (Tables 4-5) as full train+eval runs and collect one table"
  static override description = `The full model (the config as given) and one variant per --remove module (Table 4) and per --cpp-init (Table 5) each become a trial: an ordinary run directory under <out>/trials/ made by 'sipl train' then 'sipl eval'. <out>/results.{md,csv,json} lists the full model first, then each variant with its per-class Dice, mean, the difference to the full model and a paired t-test p-value on per-case Dice. clip and biobert need a K×e embedding file (--cpp-file clip=PATH); without one they are skipped with a message.`
  static override examples = [
    '<%= config.bin %> ablate --config experiments/btcv.yaml --remove ipl --remove smg',
    '<%= config.bin %> ablate --config experiments/btcv.yaml --cpp-init onehot,clip,random --cpp-file clip=embeddings/clip-btcv.json',
    '<%= config.bin %> ablate --config experiments/btcv.yaml --all --executor slurm --partition gpu',
  ]
  static override flags = {
    ...configFlags,
    ...backendFlag,
    remove: Flags.string({
      description: 'remove one module per variant (Table 4; repeatable)',
      options: ['ipl', 'smg'],
      multiple: true,
      default: [],
    }),
    'cpp-init': Flags.string({description: `CPP initialisations to compare (Table 5): ${CPP_INITS.join(',')}`, helpValue: 'LIST'}),
    'cpp-file': Flags.string({
      description: 'embedding file (K×e JSON or .npy) for one init: clip=PATH or biobert=PATH (repeatable)',
      multiple: true,
      default: [],
      helpValue: 'INIT=PATH',
    }),
    all: Flags.boolean({description: 'Tables 4 and 5: --remove ipl --remove smg --cpp-init onehot,biobert,clip,random', default: false}),
    ...executorFlags,
    ...lockFlag,
  }

  async run(): Promise<LaunchResult> {
    const f = this.flags
    const cppFiles: Record<string, string> = {}
    for (const entry of f['cpp-file']) {
      const eq = entry.indexOf('=')
      if (eq <= 0) throw new UserError(`--cpp-file ${entry}: expected INIT=PATH, e.g. --cpp-file clip=embeddings/clip.json`)
      cppFiles[entry.slice(0, eq).toLowerCase()] = entry.slice(eq + 1)
    }
    const remove = f.all ? [...new Set(['ipl', 'smg', ...f.remove])] : f.remove
    const cppInit = f.all
      ? [...CPP_INITS]
      : (f['cpp-init']
          ?.split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '') ?? [])
    const result = await launch({kind: 'ablate', ...launchOptionsFromFlags(f), ablation: {remove, cppInit, cppFiles}}, this.logger())
    if (!this.jsonEnabled()) printLaunch(this, result)
    return result
  }
}
