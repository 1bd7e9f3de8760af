import {Flags} from '@oclif/core'
import {BaseCommand} from '../src/cli/base-command.js'
import {runDoctor, type DoctorReport} from '../src/backend/doctor.js'

export default class Doctor extends BaseCommand<typeof Doctor> {
  static override summary = 'Check this machine: Node version and which tfjs backends load and compute conv3d correctly'
  static override description = `For every backend (tensorflow via tfjs-node-gpu / tfjs-node when installed, webgpu via the 'webgpu' package, wasm, cpu) it tries to start it and, when it starts, runs a tiny conv3d forward + gradient + conv3dTranspose check against cpu, reporting the max relative error.`
  static override examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json']
  static override flags = {
    'skip-check': Flags.boolean({description: 'only try to load each backend, no numerical check', default: false}),
  }

  async run(): Promise<DoctorReport> {
    const report = await runDoctor(!this.flags['skip-check'])
    if (!this.jsonEnabled()) {
      this.log(`sipl ${report.sipl} on Node ${report.node} (${report.platform}, ${report.cpus} cores)`)
      for (const b of report.backends) {
        const check = b.check
          ? ` conv3d check ${b.check.pass ? 'PASS' : 'FAIL'} (max rel. error ${b.check.maxRelError.toExponential(2)})`
          : ''
        this.log(`  ${b.name.padEnd(10)} ${b.loadable ? 'loads' : 'no   '}  ${b.detail}${check}`)
      }
      this.log(`default backend ('auto'): ${report.autoChoice}`)
      this.log(
        `settings: ${Object.entries(report.environment)
          .map(([k, v]) =>
            k === 'threads' && report.threadsCapped
              ? `${k}=${v} (SIPL_THREADS=${report.threadsCapped.requested} capped at the ${report.threadsCapped.cores} cores)`
              : `${k}=${v}`,
          )
          .join(' ')}`,
      )
    }
    return report
  }
}
