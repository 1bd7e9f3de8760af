/**
 * Holding back what native code (Dawn) writes to file descriptor 2 while sipl loads it in-process.
 *
 * Node has no dup2, but POSIX gives every new descriptor the lowest free number: closing 2 and
 * opening a file makes that file descriptor 2 for native code, and reopening the original target
 * through /proc/self/fd (Linux; /dev/fd on macOS) puts it back. A terminal, a character device
 * such as /dev/null, a pipe (opened O_NONBLOCK: a pipe without a reader would otherwise block;
 * libuv keeps Node's own stderr pipe non-blocking anyway) and a regular file opened for appending
 * (`2>>log`) can be reopened so. A file opened for writing at an offset (`> log 2>&1`) cannot: the
 * new descriptor would not share its offset. Nor can a socket, nor anything on Windows: there the
 * function runs unguarded and says so (`held: false`), so that the caller can explain what was printed.
 */
import {closeSync, constants, fstatSync, mkdtempSync, openSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

export interface NativeStderr<T> {
  value: T
  /** what native code wrote to descriptor 2 meanwhile ('' when not held) */
  text: string
  /** false when descriptor 2 could not be swapped, so anything written went through */
  held: boolean
}

const FD_DIR = process.platform === 'linux' ? '/proc/self/fd' : process.platform === 'darwin' ? '/dev/fd' : undefined
const REOPEN = constants.O_WRONLY | constants.O_APPEND | constants.O_NOCTTY
let reopenFlags = REOPEN

function swappable(): boolean {
  if (FD_DIR === undefined) return false
  try {
    // with 0 or 1 closed, the lowest free descriptor would not be 2
    fstatSync(0)
    fstatSync(1)
    const s = fstatSync(2)
    reopenFlags = s.isFIFO() ? REOPEN | constants.O_NONBLOCK : REOPEN
    return s.isCharacterDevice() || s.isFIFO() || (s.isFile() && appendOnly(2))
  } catch {
    return false
  }
}

/**
 * Whether a file descriptor was opened with O_APPEND (`>>`), from /proc/self/fdinfo (Linux). A
 * regular file opened without it has an offset that the reopened descriptor would not share with
 * stdout (`> log 2>&1`) or the parent shell: their next writes would overwrite what was appended.
 */
function appendOnly(fd: number): boolean {
  try {
    const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1]
    return flags !== undefined && (parseInt(flags, 8) & constants.O_APPEND) !== 0
  } catch {
    return false
  }
}

/** Opens `${FD_DIR}/${fd}` again right after 2 was closed; with 0 and 1 open, the new descriptor is 2. */
function reopenAsStderr(fd: number): void {
  const opened = openSync(`${FD_DIR}/${fd}`, reopenFlags)
  if (opened !== 2) {
    closeSync(opened)
    throw new Error(`descriptor ${opened} instead of 2`)
  }
}

/**
 * Runs `work` (synchronous: native code writes during the call) with descriptor 2 pointing at a
 * temporary file, then restores it and returns what was written. If `work` throws, descriptor 2 is
 * restored before the error goes on.
 */
export function holdNativeStderr<T>(work: () => T): NativeStderr<T> {
  if (!swappable()) return {value: work(), text: '', held: false}
  let original: number
  let dir: string
  let capture: number
  try {
    original = openSync(`${FD_DIR}/2`, reopenFlags)
    dir = mkdtempSync(join(tmpdir(), 'sipl-native-'))
    capture = openSync(join(dir, 'stderr'), 'w+')
  } catch {
    return {value: work(), text: '', held: false}
  }
  const file = join(dir, 'stderr')
  try {
    closeSync(2)
    reopenAsStderr(capture)
  } catch {
    reopenAsStderr(original)
    closeSync(original)
    closeSync(capture)
    rmSync(dir, {recursive: true, force: true})
    return {value: work(), text: '', held: false}
  }
  let value: T
  let text = ''
  try {
    value = work()
  } finally {
    closeSync(2)
    reopenAsStderr(original)
    closeSync(original)
    closeSync(capture)
    text = readFileSync(file, 'utf8')
    rmSync(dir, {recursive: true, force: true})
  }
  return {value, text, held: true}
}

/** Dawn's stderr as messages: "Warning: " and the "    at f (/path/File.cpp:368)" lines dropped. */
export function nativeMessages(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^at .*:\d+\)?$/.test(l))
    .map((l) => l.replace(/^(Warning|Error):\s*/, ''))
}
