/**
 * What every sipl command shares: --json, --verbose, --log-level, --quiet, and one error policy.
 * A UserError (something the user can fix) prints one line and exits 2; its stack only with
 * --verbose. File-system failures (full disk, quota, permissions, a file in the way) are user
 * errors too. Anything else is a bug: exit 1 with the stack.
 */
import {Command, Flags, Interfaces} from '@oclif/core'
import {fileSystemUserError, isUserError} from '../errors.js'
import {createLogger, LOG_LEVELS, type Logger, type LogLevel} from '../log/logger.js'
import {environment} from '../paths.js'
import {BACKENDS, type BackendRequest} from '../backend/names.js'
import {loadConfig, type LoadedConfig} from '../config/load.js'
import {resolveConfigFile} from '../config/shipped.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>

export const configFlags = {
  config: Flags.string({char: 'c', description: 'experiment config (YAML), e.g. experiments/demo.yaml', helpValue: 'FILE'}),
  set: Flags.string({
    char: 's',
    description: 'override one config value: dotted.key=value (repeatable; values are typed as YAML: 16, true, [8,16])',
    multiple: true,
    default: [],
    helpValue: 'KEY=VALUE',
  }),
}

export const backendFlag = {
  backend: Flags.string({
    description: 'tfjs backend (env SIPL_BACKEND)',
    options: [...BACKENDS],
    helpValue: 'NAME',
  }),
}

/** For commands that write a folder (src/util/lock.ts). */
/** Which checkpoint of a run (--run) a command loads. */
export const checkpointFlag = {
  checkpoint: Flags.string({description: 'checkpoint of --run to use: best, last or epoch-N', default: 'best'}),
}

export const lockFlag = {
  'break-lock': Flags.boolean({
    description: "take over the output folder's lock from a sipl on another host that may still look alive (after that node failed)",
    default: false,
  }),
}

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true
  static override baseFlags = {
    verbose: Flags.boolean({description: 'show stack traces and debug lines', default: false, helpGroup: 'GLOBAL'}),
    'log-level': Flags.string({options: [...LOG_LEVELS], description: 'console log level (env SIPL_LOG_LEVEL)', helpGroup: 'GLOBAL'}),
    quiet: Flags.boolean({char: 'q', description: 'no console log lines (files still get them)', default: false, helpGroup: 'GLOBAL'}),
  }

  protected flags!: BaseFlags<T>

  override async init(): Promise<void> {
    await super.init()
    const {flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (this.ctor as typeof BaseCommand).baseFlags,
      args: this.ctor.args,
      enableJsonFlag: true,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    // every command that takes --config finds a bare name (btcv.yaml) among the shipped configs when
    // it is not in the working directory; the rest of the command sees the file actually read
    const f = this.flags as unknown as {config?: string}
    if (typeof f.config === 'string') {
      const resolved = resolveConfigFile(f.config)
      if (resolved.shipped)
        this.logger().info(
          {file: resolved.path},
          `--config ${f.config}: not in the working directory, so the shipped config '${resolved.shipped.name}' is used`,
        )
      f.config = resolved.path
    }
  }

  /** A logger writing JSON lines to `file` (if given) and human lines to stderr. */
  protected logger(file?: string): Logger {
    const f = this.flags as unknown as {verbose: boolean; 'log-level'?: string; quiet: boolean}
    const level = (f['log-level'] ?? (f.verbose ? 'debug' : environment().logLevel)) as LogLevel
    return createLogger({level, file, quiet: f.quiet})
  }

  protected loadConfig(): LoadedConfig {
    const f = this.flags as unknown as {config?: string; set?: string[]}
    return loadConfig(f.config, f.set ?? [])
  }

  protected backendRequest(): BackendRequest {
    const f = this.flags as unknown as {backend?: string}
    return (f.backend ?? environment().backend) as BackendRequest
  }

  protected override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    const verbose = this.argv.includes('--verbose')
    // a full disk, a quota or a file in the way is for the user to fix, not a bug
    const fileSystem = fileSystemUserError(error)
    if (fileSystem) error = Object.assign(fileSystem, {stack: `${fileSystem.stack}\ncaused by ${error.stack}`})
    if (isUserError(error)) {
      process.exitCode = 2
      if (this.jsonEnabled()) this.logJson({error: {name: error.name, message: error.message, exitCode: 2}})
      else process.stderr.write(`Error: ${error.message}\n${verbose && error.stack ? error.stack + '\n' : ''}`)
      return undefined
    }
    if (error.oclif?.exit !== undefined) {
      // oclif's own parse errors (unknown flag, bad option) are user errors too
      process.exitCode = error.oclif.exit === 0 ? 0 : 2
      if (error.oclif.exit === 0) return undefined
      if (this.jsonEnabled()) this.logJson({error: {name: error.name, message: error.message, exitCode: 2}})
      else process.stderr.write(`Error: ${error.message.split('\n').join(' ')}\n`)
      return undefined
    }
    process.exitCode = 1
    if (this.jsonEnabled()) this.logJson({error: {name: error.name, message: error.message, stack: error.stack, exitCode: 1}})
    else process.stderr.write(`Internal error (a bug in sipl; please report it with this trace): ${error.stack ?? error.message}\n`)
    return undefined
  }
}
