import {BaseCommand, backendFlag, configFlags} from '../src/cli/base-command.js'
import {UserError} from '../src/errors.js'

export default class Ablate extends BaseCommand<typeof Ablate> {
  static override summary = "Run the paper's ablations (Tables 4-5) as full train+eval runs and collect one table"
  static override examples = ['<%= config.bin %> ablate --config experiments/demo.yaml']
  static override flags = {...configFlags, ...backendFlag}

  async run(): Promise<unknown> {
    this.loadConfig()
    throw new UserError("the 'ablate' stage is not built yet (issue 6); 'sipl doctor' works now")
  }
}
