import {BaseCommand} from '../../src/cli/base-command.js'
import {SHIPPED_CONFIG_DIR, shippedConfigs, type ShippedConfig} from '../../src/config/shipped.js'

export default class ConfigList extends BaseCommand<typeof ConfigList> {
  static override summary = 'List the experiment configs shipped with sipl'
  static override description = `Any command's --config takes these by name (--config btcv.yaml, or just btcv) when no file of that name is in the working directory. 'sipl config show NAME' prints one; 'sipl config init NAME' copies one out to edit.`
  static override examples = ['<%= config.bin %> config list', '<%= config.bin %> config list --json']

  async run(): Promise<{dir: string; configs: ShippedConfig[]}> {
    const configs = shippedConfigs()
    if (!this.jsonEnabled()) {
      const width = Math.max(4, ...configs.map((c) => c.name.length))
      for (const c of configs) this.log(`${c.name.padEnd(width)}  ${c.summary}`)
      this.log(`(in ${SHIPPED_CONFIG_DIR})`)
    }
    return {dir: SHIPPED_CONFIG_DIR, configs}
  }
}
