import {Flags} from '@oclif/core'
import {BaseCommand, backendFlag, checkpointFlag} from '../src/cli/base-command.js'
import {runPredict, type PredictSummary} from '../src/evaluate/predict-files.js'

export default class Predict extends BaseCommand<typeof Predict> {
  static override summary = 'Segment new scans with a trained run: NIfTI in, label maps on the same grid out'
  static override description = `Each input (one NIfTI file, or every case in a folder; nnU-Net channel files <case>_0000, <case>_0001, … form one multi-channel case) is preprocessed with the run's own plan (RAS, spacing, intensity statistics, crop), segmented by the sliding window with the run's eval settings (TTA, largest component) and written as <output>/<case>.nii.gz on the input's original grid and header. No labels are needed. <output>/predict.json records the run, checkpoint and per-class volumes.`
  static override examples = [
    '<%= config.bin %> predict --run runs/demo -i scans/ -o predictions/',
    '<%= config.bin %> predict --run runs/btcv --checkpoint last -i ct_0001.nii.gz -o out/ --set eval.tta=false --json',
  ]
  static override flags = {
    ...backendFlag,
    run: Flags.string({char: 'r', description: 'a run directory written by sipl train', helpValue: 'DIR', required: true}),
    ...checkpointFlag,
    input: Flags.string({char: 'i', description: 'a NIfTI file or a folder of them', helpValue: 'FILE|DIR', required: true}),
    output: Flags.string({char: 'o', description: 'folder for the predicted label maps', helpValue: 'DIR', required: true}),
    set: Flags.string({
      char: 's',
      description: "change one of the run's inference settings: eval.key=value (repeatable), e.g. eval.tta=false",
      multiple: true,
      default: [],
      helpValue: 'KEY=VALUE',
    }),
  }

  async run(): Promise<PredictSummary> {
    const f = this.flags
    const summary = await runPredict({
      run: f.run,
      checkpoint: f.checkpoint,
      input: f.input,
      outDir: f.output,
      set: f.set,
      backend: this.backendRequest(),
      log: this.logger(),
      quiet: f.quiet || this.jsonEnabled(),
    })
    if (!this.jsonEnabled()) {
      for (const c of summary.cases)
        this.log(
          `${c.id}: ${c.shape.join('×')} → ${c.output} (${summary.classes.map((k) => `${k} ${c.volumes[k].ml.toFixed(1)} ml`).join(', ')})`,
        )
      this.log(
        `${summary.cases.length} case(s) in ${summary.seconds.toFixed(1)} s with ${summary.run} (${summary.checkpoint}, epoch ${summary.checkpointEpoch})`,
      )
    }
    return summary
  }
}
