import {BaseCommand, configFlags} from '../src/cli/base-command.js'
import {startCpuBackend} from '../src/backend/select.js'
import {summarizeModel, type ModelSummary} from '../src/model/summary.js'

export default class Model extends BaseCommand<typeof Model> {
  static override summary = 'Describe the SIPL network of a config: parameters per module, output shapes, FLOPs'
  static override description = `Builds the network the config describes (no data needed) and prints the trainable parameter count of each module, the tensor shapes for one preprocess.patch ([B, D, H, W, C], D = z), and an estimate of the forward FLOPs per patch (convolutions and matrix products; a training step is about 3×). Runs on the cpu backend; nothing is computed at full size.`
  static override examples = [
    '<%= config.bin %> model --config experiments/btcv.yaml',
    '<%= config.bin %> model -c experiments/demo.yaml --set model.ipl=false --json',
  ]
  static override flags = {...configFlags}

  async run(): Promise<ModelSummary> {
    await startCpuBackend()
    const summary = summarizeModel(this.loadConfig().config)
    if (!this.jsonEnabled()) {
      const fmt = (n: number) => n.toLocaleString('en-US')
      const {ipl, smg, cppInit} = summary.ablation
      this.log(
        `SIPL network: ${summary.inChannels} input channel(s), ${summary.numClasses} class(es); IPL ${ipl ? 'on' : 'off'}, SMG ${smg ? 'on' : 'off'}, CPP init ${cppInit}`,
      )
      this.log(`parameters: ${fmt(summary.parameters.total)}`)
      for (const [module, n] of Object.entries(summary.parameters.modules)) this.log(`  ${module.padEnd(20)} ${fmt(n).padStart(12)}`)
      this.log(`shapes for patch ${summary.patch.join('×')} (x×y×z), as [B, D, H, W, C]:`)
      for (const [name, shape] of Object.entries(summary.shapes)) this.log(`  ${name.padEnd(8)} [${shape.join(', ')}]`)
      this.log(
        `forward: ${summary.flops.forwardGFlops.toFixed(2)} GFLOP per patch; training step ≈ ${summary.flops.trainStepGFlops.toFixed(1)} GFLOP (${summary.flops.note})`,
      )
    }
    return summary
  }
}
