/**
 * One writer per folder. A command that writes a folder (a run, an eval folder, a sweep, a
 * preprocessed cache) first creates the lock file `.<folder name>.sipl-lock` beside it, holding
 * the pid, host, command and start time; a second command finds it and stops with exit 2 naming
 * the holder (the cache's lock is waited for instead: see docs/guarantees.md).
 *
 * Creation is atomic on a local disk and on NFS: the record is written to a private temporary
 * file, which is then hard-linked to the lock name. link() fails with EEXIST when the name
 * exists, on every NFS version (O_EXCL was not reliable before NFSv3), and when the server's
 * reply is lost the temporary's link count (2) still tells whether it worked.
 *
 * A lock whose holder is gone is taken over, with a warning:
 *  - same machine (host name, boot id and pid namespace): its pid no longer runs, or runs another
 *    program (the process start time differs);
 *  - the same Slurm job after a requeue (SLURM_JOB_ID equal, SLURM_RESTART_COUNT higher);
 *  - another machine: its liveness cannot be seen, so only when the holder has not refreshed it
 *    for LOCK_STALE_MS (holders touch it at least every few minutes of work), or with
 *    --break-lock.
 * Two processes that find the same stale lock serialise the takeover on `<lock>.break`, and the
 * winner checks that the lock is still the one it judged, so a fresh lock is never removed.
 *
 * Locks are released when the command ends, also on SIGINT, SIGTERM and SIGHUP; a SIGKILL leaves
 * the lock, which the rules above then take over.
 */
import {randomBytes} from 'node:crypto'
import {linkSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {basename, dirname, join, resolve} from 'node:path'
import {UserError} from '../errors.js'
import type {Logger} from '../log/logger.js'
import {processIsAlive, tempName} from './atomic.js'

/** Another machine's lock counts as abandoned after this long without a refresh. */
export const LOCK_STALE_MS = 60 * 60 * 1000
/** How often a holder refreshes its lock's time while it works. */
export const LOCK_REFRESH_MS = 60 * 1000
/** A takeover guard older than this was left by a killed takeover (it lives for microseconds). */
const BREAK_GUARD_STALE_MS = 60 * 1000

export interface LockRecord {
  pid: number
  host: string
  /** host name, boot id and pid namespace: equal means "the same process table" */
  machine: string
  /** the process's start time in clock ticks since boot (Linux), to tell a reused pid apart */
  processStart?: string
  command: string
  started: string
  slurmJob?: string
  slurmRestart?: number
  /** identifies this acquisition, so that release never removes someone else's lock */
  token: string
}

export interface FolderLock {
  folder: string
  file: string
  record: LockRecord
  /** refreshes the lock's time if LOCK_REFRESH_MS has passed (cheap: call it often) */
  refresh(): void
  release(): void
}

export interface LockOptions {
  /** what the folder is, for messages: 'run folder', 'eval folder', … */
  what?: string
  log?: Logger
  /** take over a lock held on another machine even if it looks alive (after a node failure) */
  breakLock?: boolean
  /** wait for a live holder instead of failing (the shared preprocessed cache) */
  wait?: boolean
  /** the flag that chooses another folder, for the message */
  outFlag?: string
}

export function lockFileOf(folder: string): string {
  const full = resolve(folder)
  return join(dirname(full), `.${basename(full)}.sipl-lock`)
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return fallback
  }
}

/** Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined off Linux. */
function processStartOf(pid: number): string | undefined {
  const stat = readOr(`/proc/${pid}/stat`, '')
  if (stat === '') return undefined
  // the command name (field 2) is in parentheses and may hold spaces
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

let machineId: string | undefined
function thisMachine(): string {
  if (machineId === undefined) {
    let pidNamespace = ''
    try {
      pidNamespace = readlinkSync('/proc/self/ns/pid')
    } catch {
      // not Linux: the host name alone
    }
    machineId = [hostname(), readOr('/proc/sys/kernel/random/boot_id', ''), pidNamespace].join('|')
  }
  return machineId
}

function newRecord(): LockRecord {
  const restart = Number(process.env.SLURM_RESTART_COUNT ?? '0')
  return {
    pid: process.pid,
    host: hostname(),
    machine: thisMachine(),
    processStart: processStartOf(process.pid),
    command: ['sipl', ...process.argv.slice(2)].join(' ').slice(0, 2000),
    started: new Date().toISOString(),
    ...(process.env.SLURM_JOB_ID ? {slurmJob: process.env.SLURM_JOB_ID, slurmRestart: Number.isFinite(restart) ? restart : 0} : {}),
    token: randomBytes(8).toString('hex'),
  }
}

/**
 * Creates `file` holding `content` only if it does not exist: hard link of a complete private
 * file, so the name never holds a partial record. False when it exists.
 */
function createExclusive(file: string, content: string): boolean {
  const temp = tempName(file)
  try {
    writeFileSync(temp, content)
  } catch (error) {
    rmSync(temp, {force: true})
    // a read-only or full disk is reported with the lock's own name
    throw Object.assign(error as Error, {path: file})
  }
  try {
    linkSync(temp, file)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    // NFS: the link may have been made although the reply was lost
    try {
      if (statSync(temp).nlink === 2) return true
    } catch {
      // fall through to the original error
    }
    throw error
  } finally {
    rmSync(temp, {force: true})
  }
}

interface Found {
  record: LockRecord | undefined
  text: string
  ino: number
  mtimeMs: number
}

function readLock(file: string): Found | undefined {
  try {
    const text = readFileSync(file, 'utf8')
    const {ino, mtimeMs} = statSync(file)
    let record: LockRecord | undefined
    try {
      const parsed = JSON.parse(text) as LockRecord
      record = typeof parsed.pid === 'number' && typeof parsed.machine === 'string' ? parsed : undefined
    } catch {
      record = undefined
    }
    return {record, text, ino, mtimeMs}
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** Why the lock's holder is known to be gone, or undefined while it may be alive. */
function goneBecause(found: Found, breakLock: boolean): string | undefined {
  const held = found.record
  const age = Date.now() - found.mtimeMs
  if (held === undefined) return age > LOCK_STALE_MS ? `an unreadable lock not refreshed for ${minutes(age)}` : undefined
  if (held.machine === thisMachine()) {
    if (!processIsAlive(held.pid)) return `its process ${held.pid} is gone`
    const start = processStartOf(held.pid)
    if (held.processStart !== undefined && start !== undefined && start !== held.processStart)
      return `its pid ${held.pid} now belongs to another process`
    // alive on this machine: --break-lock does not apply, the process is plainly there
    return undefined
  }
  const job = process.env.SLURM_JOB_ID
  const restart = Number(process.env.SLURM_RESTART_COUNT ?? '0')
  if (job !== undefined && held.slurmJob === job && restart > (held.slurmRestart ?? 0)) return `Slurm requeued job ${job}`
  if (age > LOCK_STALE_MS) return `it was not refreshed for ${minutes(age)} (holders refresh it every ${minutes(LOCK_REFRESH_MS)})`
  if (breakLock) return '--break-lock'
  return undefined
}

function minutes(ms: number): string {
  return ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`
}

/**
 * Removes `file` if it still is the lock `judged`; the guard makes the check and the removal one
 * step. 'removed': this process removed it; 'absent': it was gone already; false: another process
 * holds the guard or the lock changed.
 */
function removeIfUnchanged(file: string, judged: Found): 'removed' | 'absent' | false {
  const guard = `${file}.break`
  try {
    if (Date.now() - statSync(guard).mtimeMs > BREAK_GUARD_STALE_MS) rmSync(guard, {force: true})
  } catch {
    // no guard
  }
  if (!createExclusive(guard, String(process.pid))) return false
  try {
    const now = readLock(file)
    if (now === undefined) return 'absent'
    if (now.ino !== judged.ino || now.text !== judged.text) return false
    unlinkSync(file)
    return 'removed'
  } finally {
    rmSync(guard, {force: true})
  }
}

function describeHolder(found: Found): string {
  const held = found.record
  if (held === undefined) return `an unreadable lock (${lockAge(found)})`
  // the start and the end of a long command line (its --set list) say which command it is
  const command = held.command.length > 120 ? `${held.command.slice(0, 60)} … ${held.command.slice(-50)}` : held.command
  return `pid ${held.pid} on ${held.host} (${command}), since ${held.started}, ${lockAge(found)}`
}

function lockAge(found: Found): string {
  return `last refreshed ${minutes(Math.max(0, Date.now() - found.mtimeMs))} ago`
}

const held = new Set<FolderLock>()
let timer: NodeJS.Timeout | undefined

function releaseAll(): void {
  for (const lock of [...held]) lock.release()
}

function onSignal(signal: NodeJS.Signals): void {
  releaseAll()
  // then die of the signal as if it had not been caught (exit status 128 + n for the parent)
  process.removeListener(signal, onSignal)
  process.kill(process.pid, signal)
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

function watch(lock: FolderLock): void {
  if (held.size === 0) {
    process.on('exit', releaseAll)
    for (const signal of SIGNALS) process.on(signal, onSignal)
    // refreshes while the process waits (a sweep waiting for its trials); busy loops call refreshLocks
    timer = setInterval(refreshLocks, LOCK_REFRESH_MS)
    timer.unref()
  }
  held.add(lock)
}

function unwatch(lock: FolderLock): void {
  held.delete(lock)
  if (held.size === 0) {
    process.removeListener('exit', releaseAll)
    for (const signal of SIGNALS) process.removeListener(signal, onSignal)
    if (timer) clearInterval(timer)
    timer = undefined
  }
}

/** Refreshes every lock this process holds (at most once per LOCK_REFRESH_MS each): call it from long loops. */
export function refreshLocks(): void {
  for (const lock of held) lock.refresh()
}

/**
 * Takes the lock of `folder` for this process, or throws a UserError naming the holder (with
 * `wait`, waits for a live holder to finish). Release it with `release()` (also done on exit).
 */
export async function lockFolder(folder: string, options: LockOptions = {}): Promise<FolderLock> {
  const file = lockFileOf(folder)
  const what = options.what ?? 'folder'
  mkdirSync(dirname(file), {recursive: true})
  const record = newRecord()
  const content = JSON.stringify(record, null, 2) + '\n'
  let waitingSaid = false
  // the abandoned lock this process found last; said when it gets the lock (of several processes
  // that find it, the one that removes it need not be the one that gets the lock)
  let abandoned: {found: Found; gone: string} | undefined
  // the abandoned lock this process removed itself, said if another process then gets the lock
  let removedByUs: {found: Found; gone: string} | undefined
  for (;;) {
    if (createExclusive(file, content)) {
      if (abandoned !== undefined)
        options.log?.warn(
          {lock: file, holder: abandoned.found.record ?? abandoned.found.text},
          `took over the lock of ${folder}: ${abandoned.gone}`,
        )
      break
    }
    const found = readLock(file)
    if (found === undefined) continue
    const gone = goneBecause(found, options.breakLock ?? false)
    if (gone !== undefined) {
      abandoned = {found, gone}
      const removal = removeIfUnchanged(file, found)
      if (removal === 'removed') removedByUs = {found, gone}
      // false: another process is taking it over at this moment; look again shortly
      if (removal === false) await new Promise((r) => setTimeout(r, 50))
      continue
    }
    abandoned = undefined
    const holder = describeHolder(found)
    if (removedByUs !== undefined) {
      // this process cleared the abandoned lock and another took the folder first: say so, since
      // the winner may never have seen the abandoned lock
      options.log?.warn(
        {lock: file, holder: removedByUs.found.record ?? removedByUs.found.text},
        `removed the abandoned lock of ${folder} (${removedByUs.gone}); another sipl took the folder first`,
      )
      removedByUs = undefined
    }
    if (!options.wait) {
      const elsewhere = found.record !== undefined && found.record.machine !== thisMachine()
      throw new UserError(
        `${what} ${folder} is being written by another sipl: ${holder}; wait for it to finish or write elsewhere${options.outFlag ? ` (${options.outFlag})` : ''}` +
          (elsewhere
            ? `; if that process is gone (its node failed), add --break-lock (a lock from another host is also taken over after ${minutes(LOCK_STALE_MS)} without a refresh)`
            : ''),
      )
    }
    if (!waitingSaid) options.log?.info({lock: file}, `waiting for ${holder} to finish with ${folder}`)
    waitingSaid = true
    await new Promise((r) => setTimeout(r, 1000))
  }
  let refreshed = Date.now()
  const lock: FolderLock = {
    folder,
    file,
    record,
    refresh() {
      const now = Date.now()
      if (now - refreshed < LOCK_REFRESH_MS) return
      refreshed = now
      try {
        utimesSync(file, now / 1000, now / 1000)
      } catch {
        // a lock removed by hand or broken by --break-lock elsewhere: nothing to refresh
      }
    },
    release() {
      if (!held.has(lock)) return
      unwatch(lock)
      try {
        if (readLock(file)?.record?.token === record.token) rmSync(file, {force: true})
      } catch {
        // unreadable now (permissions changed, disk gone): the next command judges it as stale
      }
    },
  }
  watch(lock)
  return lock
}

/** Runs `work` holding the lock of `folder`. */
export async function withFolderLock<T>(folder: string, options: LockOptions, work: () => Promise<T> | T): Promise<T> {
  const lock = await lockFolder(folder, options)
  try {
    return await work()
  } finally {
    lock.release()
  }
}
