import {readFileSync} from 'node:fs'
import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../src/cli/base-command.js'
import {configToYaml, loadConfig} from '../../src/config/load.js'
import {resolveConfigFile} from '../../src/config/shipped.js'

export default class ConfigShow extends BaseCommand<typeof ConfigShow> {
  static override summary = 'Print an experiment config: a shipped one by name, or any file'
  static override description = `NAME is found the way --config finds it: a file in the working directory first, then the shipped configs (btcv, btcv.yaml). The file is printed as it is, comments included; --resolved prints instead the config every command would use, with each default filled in and the --set overrides applied.`
  static override examples = ['<%= config.bin %> config show btcv', '<%= config.bin %> config show demo --resolved --set train.epochs=5']
  static override args = {name: Args.string({description: 'shipped config name (btcv) or a YAML file', required: true})}
  static override flags = {
    resolved: Flags.boolean({description: 'print the resolved config: defaults filled in, --set applied', default: false}),
    set: Flags.string({
      char: 's',
      description: 'with --resolved: override one config value, dotted.key=value (repeatable)',
      multiple: true,
      default: [],
      helpValue: 'KEY=VALUE',
    }),
  }

  async run(): Promise<{file: string; shipped: boolean; text: string}> {
    const {args} = await this.parse(ConfigShow)
    const {path, shipped} = resolveConfigFile(args.name)
    this.logger().debug({file: path}, 'config')
    const text = this.flags.resolved ? configToYaml(loadConfig(path, this.flags.set).config) : readFileSync(path, 'utf8')
    if (!this.jsonEnabled()) process.stdout.write(text)
    return {file: path, shipped: shipped !== undefined, text}
  }
}
