import {BaseCommand, backendFlag, configFlags} from '../src/cli/base-command.js'
import {UserError} from '../src/errors.js'

export default class Train extends BaseCommand<typeof Train> {
  static override summary = 'Train the SIPL network from an experiment config'
  static override examples = ['<%= config.bin %> train --config experiments/demo.yaml']
  static override flags = {...configFlags, ...backendFlag}

  async run(): Promise<unknown> {
    this.loadConfig()
    throw new UserError("the 'train' stage is not built yet (issue 5); 'sipl doctor' works now")
  }
}
