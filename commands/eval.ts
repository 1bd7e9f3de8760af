import {BaseCommand, backendFlag, configFlags} from '../src/cli/base-command.js'
import {UserError} from '../src/errors.js'

export default class Eval extends BaseCommand<typeof Eval> {
  static override summary = "Evaluate a run or any tool's predicted masks: Dice, HD95, surface Dice, paired tests, tables"
  static override examples = ['<%= config.bin %> eval --config experiments/demo.yaml']
  static override flags = {...configFlags, ...backendFlag}

  async run(): Promise<unknown> {
    this.loadConfig()
    throw new UserError("the 'eval' stage is not built yet (issue 5); 'sipl doctor' works now")
  }
}
