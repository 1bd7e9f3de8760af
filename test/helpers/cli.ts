/**
 * Runs the real CLI (bin/run.js) in a child process, the way a user does, and captures
 * stdout, stderr and the exit code.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {dirname, resolve} from 'node:path'

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const SHARED = resolve(PROJECT_ROOT, '../shared')

export interface CliResult {
  stdout: string
  stderr: string
  code: number | null
}

export function sipl(
  args: string[],
  options: {cwd?: string; env?: Record<string, string>; timeoutMs?: number; input?: string} = {},
): CliResult {
  if (process.env.SIPL_TEST_TIER === 'unit')
    throw new Error(`npm run test:unit starts no CLI (sipl ${args[0]}): a test that does belongs in a *.integration.test.ts file`)
  const result = spawnSync(process.execPath, [resolve(PROJECT_ROOT, 'bin/run.js'), ...args], {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: {...process.env, SIPL_LOG_LEVEL: 'warn', ...options.env},
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 600_000,
    input: options.input,
  })
  return {stdout: result.stdout, stderr: result.stderr, code: result.status}
}

export interface BackgroundCli {
  child: ChildProcess
  /** resolves with the exit code */
  exited: Promise<number | null>
  /** what it has written so far */
  output: () => {stdout: string; stderr: string}
}

/** The real CLI started in the background, for tests that act while it runs (cancel, edit, inspect). */
export function siplInBackground(args: string[], options: {cwd?: string; env?: Record<string, string>} = {}): BackgroundCli {
  const child = spawn(process.execPath, [resolve(PROJECT_ROOT, 'bin/run.js'), ...args], {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: {...process.env, SIPL_LOG_LEVEL: 'warn', ...options.env},
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((r) => child.on('exit', r))
  return {child, exited, output: () => ({stdout, stderr})}
}
