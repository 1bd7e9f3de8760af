/**
 * pino for everything: JSON lines into the run's log file (train.log, eval.log, …) and concise
 * human lines on stderr. stdout stays free for --json results.
 */
import {mkdirSync} from 'node:fs'
import {dirname} from 'node:path'
import {Writable} from 'node:stream'
import pino from 'pino'

export type Logger = pino.Logger
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const LEVEL_NAMES: Record<number, string> = {10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal'}
const QUIET_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'stage'])

function humanLine(json: string): string {
  const record = JSON.parse(json) as Record<string, unknown>
  const level = LEVEL_NAMES[record.level as number] ?? 'info'
  const time = new Date(record.time as number).toISOString().slice(11, 19)
  const extras = Object.entries(record)
    .filter(([key]) => !QUIET_KEYS.has(key))
    .map(
      ([key, value]) =>
        `${key}=${typeof value === 'number' ? formatNumber(value) : typeof value === 'string' ? value : JSON.stringify(value)}`,
    )
  const prefix = level === 'info' ? '' : `${level.toUpperCase()} `
  return `${time} ${prefix}${record.msg ?? ''}${extras.length > 0 ? ' ' + extras.join(' ') : ''}\n`
}

function formatNumber(value: number): string {
  return Number.isInteger(value)
    ? String(value)
    : Math.abs(value) >= 1e-3 && Math.abs(value) < 1e5
      ? value.toFixed(4)
      : value.toExponential(3)
}

export interface LoggerOptions {
  level?: LogLevel
  /** JSON-lines file; created with its folder */
  file?: string
  /** no console lines at all (the file still gets everything) */
  quiet?: boolean
  console?: NodeJS.WritableStream
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info'
  const streams: pino.StreamEntry[] = []
  if (!options.quiet && level !== 'silent') {
    const out = options.console ?? process.stderr
    const human = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.write(humanLine(chunk.toString()))
        done()
      },
    })
    streams.push({level, stream: human})
  }
  if (options.file) {
    mkdirSync(dirname(options.file), {recursive: true})
    // sync so that a SIGKILL loses at most the line being written
    const destination = pino.destination({dest: options.file, sync: true, append: true})
    const file = options.file
    const stream = {
      write(line: string) {
        try {
          destination.write(line)
        } catch (error) {
          // a full disk is reported with the file it hit (a write error names no path)
          if (error && typeof error === 'object' && 'code' in error) Object.assign(error, {path: file})
          throw error
        }
      },
    }
    streams.push({level: 'debug', stream})
  }
  if (streams.length === 0) return pino({level: 'silent'})
  return pino({level: options.file ? 'debug' : level, base: undefined}, pino.multistream(streams))
}

/** A logger that drops everything: for library calls made without one. */
export const silentLogger: Logger = pino({level: 'silent'})
