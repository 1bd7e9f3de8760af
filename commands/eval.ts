import {Flags} from '@oclif/core'
import {BaseCommand, backendFlag, checkpointFlag, configFlags, lockFlag} from '../src/cli/base-command.js'
import {runEval, type EvalJson} from '../src/evaluate/eval-command.js'
import {PROTOCOLS} from '../src/evaluate/evaluate.js'

type EvalCommandProtocol = (typeof PROTOCOLS)[number] | undefined

export default class Eval extends BaseCommand<typeof Eval> {
  static override summary = "Evaluate a run or any tool's predicted masks: Dice, HD95, surface Dice, paired tests, tables"
  static override description = `--run DIR predicts the test split with the run's best checkpoint (sliding window), writes eval/predictions/*.nii.gz in the original geometry, eval/per-case.csv, eval/summary.json, tables (Markdown, CSV, LaTeX) and figures. --pred DIR --labels DIR scores any tool's masks, matched by case id in the file names. --compare NAME=DIR (a run directory or a folder of masks) adds methods for the paired tests. The outputs are built in a fresh folder that replaces the old one only when complete.`
  static override examples = [
    '<%= config.bin %> eval --run runs/demo',
    '<%= config.bin %> eval --run runs/btcv --compare nnunet=preds/nnunet --labels BTCV/labelsTs --paired-ttest --wilcoxon --holm',
    '<%= config.bin %> eval --run runs/demo --protocol sipl',
    '<%= config.bin %> eval --pred preds/sipl --labels labelsTs --name SIPL --compare UNETR++=preds/unetrpp --paired-ttest --json',
    '<%= config.bin %> eval --pred preds/totalseg --labels labelsTs -c experiments/mine.yaml --pred-label-map totalseg-map.yaml',
  ]
  static override flags = {
    ...configFlags,
    ...backendFlag,
    ...lockFlag,
    run: Flags.string({char: 'r', description: 'a run directory written by sipl train', helpValue: 'DIR', exclusive: ['pred']}),
    ...checkpointFlag,
    pred: Flags.string({description: 'folder of predicted label maps (.nii/.nii.gz), any tool', helpValue: 'DIR'}),
    labels: Flags.string({description: 'folder of reference label maps, matched to predictions by case id', helpValue: 'DIR'}),
    'label-map': Flags.string({
      description:
        "source label values → classes for --labels (and --pred, --compare masks): YAML/JSON {spleen: 1, kidney: [2, 3]}; default the config's data.labelMap",
      helpValue: 'FILE',
    }),
    'pred-label-map': Flags.string({
      description:
        "the predictions' own label map when it differs from the references', or 'identity' for masks already 1..K (sipl predict's)",
      helpValue: 'FILE|identity',
    }),
    compare: Flags.string({
      description: 'another method: NAME=DIR, DIR a run directory or a folder of masks (repeatable)',
      multiple: true,
      default: [],
      helpValue: 'NAME=DIR',
    }),
    name: Flags.string({description: 'name of the evaluated method in tables and --json', default: 'main'}),
    protocol: Flags.string({
      description:
        "scoring protocol (eval.protocol): 'sipl' = the official SIPL test (a class absent from a case's reference is not scored there; largest component per class), 'strict' = every class in every case (both empty 1, a false positive on an absent class 0)",
      options: [...PROTOCOLS],
    }),
    'paired-ttest': Flags.boolean({
      description: 'two-sided paired t-test on per-case mean Dice against every --compare method',
      default: false,
    }),
    wilcoxon: Flags.boolean({description: 'Wilcoxon signed-rank test on per-case mean Dice', default: false}),
    holm: Flags.boolean({description: 'Holm correction over the comparisons of each test', default: false}),
    out: Flags.string({char: 'o', description: 'output folder (default <run>/eval, or <pred>/eval)', helpValue: 'DIR'}),
    figures: Flags.integer({description: 'cases that get a qualitative PNG (--run only)', default: 3}),
  }

  async run(): Promise<EvalJson> {
    const f = this.flags
    const result = await runEval({
      run: f.run,
      checkpoint: f.checkpoint,
      pred: f.pred,
      labels: f.labels,
      compare: f.compare,
      name: f.name,
      protocol: f.protocol as EvalCommandProtocol,
      ttest: f['paired-ttest'],
      wilcoxon: f.wilcoxon,
      holm: f.holm,
      out: f.out,
      figures: f.figures,
      configFile: f.config,
      labelMap: f['label-map'],
      predLabelMap: f['pred-label-map'],
      set: f.set,
      backend: this.backendRequest(),
      makeLogger: (file) => this.logger(file),
      quiet: f.quiet || this.jsonEnabled(),
      breakLock: f['break-lock'],
    })
    if (!this.jsonEnabled()) this.log(result.text)
    return result.json
  }
}
