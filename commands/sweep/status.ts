import {Args} from '@oclif/core'
import {BaseCommand} from '../../src/cli/base-command.js'
import {readExperiment} from '../../src/experiments/layout.js'
import {stateCounts, trialStatuses, type TrialState, type TrialStatus} from '../../src/experiments/status.js'
import {neverStartsLine, statusLines} from '../../src/experiments/summary-text.js'

export default class SweepStatus extends BaseCommand<typeof SweepStatus> {
  static override summary = 'Show the state of every trial of a sweep or ablation directory'
  static override description = `States: pending (not started), queued (waiting in Slurm), running, done, failed (non-zero exit, interrupted, lost or never started) and cancelled (SIGTERM: scancel, preemption or time limit). A queued Slurm task shows Slurm's pending reason, and whether it is one that never resolves on its own (PartitionConfig, PartitionTimeLimit, InvalidAccount, per-job QOS limits, …; docs/experiments.md). Works for 'sipl ablate' directories too.`
  static override examples = ['<%= config.bin %> sweep status runs/btcv-sweep', '<%= config.bin %> sweep status runs/btcv-ablation --json']
  static override args = {dir: Args.directory({description: 'the experiment directory (--out of sipl sweep/ablate)', required: true})}

  async run(): Promise<{dir: string; counts: Record<TrialState, number>; trials: TrialStatus[]}> {
    const {args} = await this.parse(SweepStatus)
    const record = readExperiment(args.dir)
    const trials = trialStatuses(args.dir, record)
    const counts = stateCounts(trials)
    if (!this.jsonEnabled()) {
      this.log(`${args.dir}: ${record.kind} '${record.name}', ${trials.length} trials`)
      for (const line of statusLines(trials)) this.log(line)
      const stuck = neverStartsLine(trials, args.dir, record.kind)
      if (stuck !== undefined) this.log(stuck)
      this.log(
        Object.entries(counts)
          .filter(([, n]) => n > 0)
          .map(([s, n]) => `${n} ${s}`)
          .join(', '),
      )
    }
    return {dir: args.dir, counts, trials}
  }
}
