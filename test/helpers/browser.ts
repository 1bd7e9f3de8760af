/**
 * A real headless browser for page tests: Debian's Chromium driven over the Chrome DevTools
 * Protocol on `--remote-debugging-pipe` (fd 3: commands in, fd 4: replies and events out, each
 * message JSON ended by a NUL byte), with no npm package. A page load reports every console
 * error, uncaught exception, browser log error and network request it caused, what a script
 * measured in the page, and a full-page screenshot.
 */
import assert from 'node:assert/strict'
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import type {Readable, Writable} from 'node:stream'

export function chromiumPath(): string | undefined {
  for (const name of ['chromium', 'chromium-browser']) {
    const found = spawnSync('which', [name], {encoding: 'utf8'})
    if (found.status === 0) return found.stdout.trim()
  }
  return undefined
}

/** Skip reason when Chromium is missing; under CI=true a missing Chromium fails instead (.ci/run installs it). */
export function chromiumMissing(): string | false {
  if (chromiumPath()) return false
  if (process.env.CI === 'true') throw new Error('chromium not found; .ci/run installs it (apt-get install chromium)')
  return 'chromium not found (apt-get install chromium); the browser tests are skipped'
}

interface Message {
  id?: number
  method?: string
  params?: Record<string, unknown>
  result?: Record<string, unknown>
  error?: {message: string}
  sessionId?: string
}

export interface PageLoad<T> {
  /** console.error/assert calls, uncaught exceptions, browser log entries at level error */
  errors: string[]
  /** every URL the page asked for, itself and data: URLs included */
  requests: string[]
  /** what `measure` returned, evaluated in the page after load and after every image decoded */
  measured: T
  /** full page, PNG */
  screenshot: Buffer
}

export class Browser {
  private child: ChildProcess
  private toBrowser: Writable
  private nextId = 1
  private pending = new Map<number, {resolve: (m: Message) => void; reject: (e: Error) => void}>()
  private listeners: ((m: Message) => void)[] = []
  private profile: string
  private exited: Promise<void>

  private constructor(executable: string) {
    this.profile = mkdtempSync(join(tmpdir(), 'sipl-chromium-'))
    this.child = spawn(
      executable,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--user-data-dir=${this.profile}`,
        // nothing a page asks for leaves the machine, whatever it is
        '--host-resolver-rules=MAP * ~NOTFOUND',
        '--remote-debugging-pipe',
        'about:blank',
      ],
      {stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe']},
    )
    this.child.stderr!.resume()
    this.toBrowser = this.child.stdio[3] as Writable
    let buffer = Buffer.alloc(0)
    ;(this.child.stdio[4] as Readable).on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      for (let end = buffer.indexOf(0); end >= 0; end = buffer.indexOf(0)) {
        const message = JSON.parse(buffer.subarray(0, end).toString('utf8')) as Message
        buffer = buffer.subarray(end + 1)
        if (message.id !== undefined) {
          const waiting = this.pending.get(message.id)
          this.pending.delete(message.id)
          if (message.error) waiting?.reject(new Error(`CDP: ${message.error.message}`))
          else waiting?.resolve(message)
        } else for (const listener of this.listeners) listener(message)
      }
    })
    this.exited = new Promise((resolve) => this.child.on('exit', () => resolve()))
    this.child.on('exit', () => {
      for (const w of this.pending.values()) w.reject(new Error('chromium exited'))
      this.pending.clear()
    })
  }

  static async launch(): Promise<Browser> {
    const executable = chromiumPath()
    assert.ok(executable, 'chromium not found')
    const browser = new Browser(executable)
    await browser.send('Browser.getVersion')
    return browser
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++
    const reply = new Promise<Message>((resolve, reject) => {
      this.pending.set(id, {resolve, reject})
      setTimeout(() => {
        if (this.pending.delete(id)) reject(new Error(`CDP ${method}: no reply in 60 s`))
      }, 60_000).unref()
    })
    this.toBrowser.write(JSON.stringify({id, method, params, ...(sessionId ? {sessionId} : {})}) + '\0')
    return reply.then((m) => m.result ?? {})
  }

  /** Opens `file` in a fresh tab and reports everything it did. */
  async load<T>(file: string, measure: string): Promise<PageLoad<T>> {
    const {targetId} = (await this.send('Target.createTarget', {url: 'about:blank'})) as {targetId: string}
    const {sessionId} = (await this.send('Target.attachToTarget', {targetId, flatten: true})) as {sessionId: string}
    const errors: string[] = []
    const requests: string[] = []
    let loaded!: () => void
    const loadFired = new Promise<void>((resolve) => (loaded = resolve))
    const listener = (m: Message): void => {
      if (m.sessionId !== sessionId || !m.params) return
      // CDP event payloads, read by their documented field names
      const p = m.params as Record<string, any>
      if (m.method === 'Runtime.consoleAPICalled' && ['error', 'assert'].includes(p.type))
        errors.push(`console.${p.type}: ${p.args.map((a: {value?: unknown; description?: string}) => a.value ?? a.description).join(' ')}`)
      if (m.method === 'Runtime.exceptionThrown')
        errors.push(`exception: ${p.exceptionDetails.exception?.description ?? p.exceptionDetails.text}`)
      if (m.method === 'Log.entryAdded' && p.entry.level === 'error')
        errors.push(`log (${p.entry.source}): ${p.entry.text} ${p.entry.url ?? ''}`)
      if (m.method === 'Network.requestWillBeSent') requests.push(p.request.url)
      if (m.method === 'Page.loadEventFired') loaded()
    }
    this.listeners.push(listener)
    try {
      for (const domain of ['Page', 'Runtime', 'Log', 'Network']) await this.send(`${domain}.enable`, {}, sessionId)
      await this.send('Emulation.setDeviceMetricsOverride', {width: 1200, height: 900, deviceScaleFactor: 1, mobile: false}, sessionId)
      await this.send('Page.navigate', {url: pathToFileURL(file).href}, sessionId)
      await loadFired
      const evaluated = (await this.send(
        'Runtime.evaluate',
        {
          expression: `(async () => { await Promise.all([...document.images].map((i) => i.decode().catch(() => null))); return (${measure})() })()`,
          awaitPromise: true,
          returnByValue: true,
        },
        sessionId,
      )) as {result: {value: T}; exceptionDetails?: {text: string}}
      assert.equal(evaluated.exceptionDetails, undefined, `measuring the page: ${evaluated.exceptionDetails?.text}`)
      const metrics = (await this.send('Page.getLayoutMetrics', {}, sessionId)) as {cssContentSize: {width: number; height: number}}
      const {width, height} = metrics.cssContentSize
      const shot = (await this.send(
        'Page.captureScreenshot',
        {format: 'png', captureBeyondViewport: true, clip: {x: 0, y: 0, width: Math.ceil(width), height: Math.ceil(height), scale: 1}},
        sessionId,
      )) as {data: string}
      // late console messages of the load arrive before the replies above; give stragglers a moment
      await new Promise((r) => setTimeout(r, 200))
      return {errors: [...errors], requests: [...requests], measured: evaluated.result.value, screenshot: Buffer.from(shot.data, 'base64')}
    } finally {
      this.listeners = this.listeners.filter((l) => l !== listener)
      await this.send('Target.closeTarget', {targetId}).catch(() => undefined)
    }
  }

  async close(): Promise<void> {
    await this.send('Browser.close').catch(() => undefined)
    const timeout = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await this.exited
    clearTimeout(timeout)
    rmSync(this.profile, {recursive: true, force: true})
  }
}
