import {BaseCommand, backendFlag, configFlags} from '../src/cli/base-command.js'
import {UserError} from '../src/errors.js'

export default class Sweep extends BaseCommand<typeof Sweep> {
  static override summary = 'Run a hyper-parameter grid (Fig. 5) locally or as a Slurm job array and collect the results'
  static override examples = ['<%= config.bin %> sweep --config experiments/demo.yaml']
  static override flags = {...configFlags, ...backendFlag}

  async run(): Promise<unknown> {
    this.loadConfig()
    throw new UserError("the 'sweep' stage is not built yet (issue 6); 'sipl doctor' works now")
  }
}
