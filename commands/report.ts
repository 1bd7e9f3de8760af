import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../src/cli/base-command.js'
import {writeReport, type ReportResult} from '../src/report/report-page.js'

export default class Report extends BaseCommand<typeof Report> {
  static override summary = 'One self-contained HTML page for a run, an evaluation, a sweep or an ablation'
  static override description = `Writes DIR/report.html (or --out FILE): the config, training curves, per-class Dice and HD95 tables, the paper-layout tables with p-values, the sweep plots and the overlay figures, all inline. The page loads nothing from anywhere: open it offline, mail it, archive it.`
  static override examples = [
    '<%= config.bin %> report runs/demo',
    '<%= config.bin %> report runs/btcv/eval --out btcv-eval.html',
    '<%= config.bin %> report runs/demo-sweep',
  ]
  static override args = {
    dir: Args.directory({description: 'a run folder (sipl train), an eval folder (sipl eval), or a sweep/ablation folder', required: true}),
  }
  static override flags = {
    out: Flags.string({char: 'o', description: 'the HTML file to write (default DIR/report.html)', helpValue: 'FILE'}),
  }

  async run(): Promise<ReportResult> {
    const {args} = await this.parse(Report)
    const result = writeReport(args.dir, this.flags.out)
    if (!this.jsonEnabled())
      this.log(
        `${result.file}: ${result.kind} report, ${result.sections.length} sections, ${result.tables} tables, ${result.images} images`,
      )
    return result
  }
}
