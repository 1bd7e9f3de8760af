import {BaseCommand, backendFlag, configFlags} from '../src/cli/base-command.js'
import {UserError} from '../src/errors.js'

export default class Preprocess extends BaseCommand<typeof Preprocess> {
  static override summary = 'Reorient, resample, normalise and crop a dataset into the cache that training reads'
  static override examples = ['<%= config.bin %> preprocess --config experiments/demo.yaml']
  static override flags = {...configFlags, ...backendFlag}

  async run(): Promise<unknown> {
    this.loadConfig()
    throw new UserError("the 'preprocess' stage is not built yet (issue 3); 'sipl doctor' works now")
  }
}
