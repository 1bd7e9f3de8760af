import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../src/cli/base-command.js'
import {copyShipped} from '../../src/config/shipped.js'

export default class ConfigInit extends BaseCommand<typeof ConfigInit> {
  static override summary = 'Copy a shipped experiment config out, to edit it'
  static override description = `Writes NAME.yaml into DIR (default: the working directory), or to DIR itself when it ends in .yaml. An existing file is left as it is unless --force. The copy in the working directory then shadows the shipped config of the same name for --config.`
  static override examples = [
    '<%= config.bin %> config init btcv',
    '<%= config.bin %> config init demo configs/',
    '<%= config.bin %> config init btcv my-btcv.yaml --force',
  ]
  static override args = {
    name: Args.string({description: 'shipped config name, e.g. btcv (sipl config list)', required: true}),
    dir: Args.string({description: 'folder to copy it into, or a .yaml file name (default: the working directory)'}),
  }
  static override flags = {
    force: Flags.boolean({description: 'overwrite the file if it exists', default: false}),
  }

  async run(): Promise<{from: string; to: string}> {
    const {args} = await this.parse(ConfigInit)
    const result = copyShipped(args.name, args.dir, this.flags.force)
    if (!this.jsonEnabled()) {
      this.log(`wrote ${result.to} (a copy of ${result.from})`)
      this.log(`edit it, then: sipl train --config ${result.to}`)
    }
    return result
  }
}
