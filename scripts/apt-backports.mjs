#!/usr/bin/env node
// The apt source for <codename>-backports, derived from the machine's own Debian source: the same
// mirror URI (and Signed-By) as the entry that serves <codename> itself, so the repository names no
// mirror host and a machine behind its own mirror keeps using it. .ci/run installs Mesa from it.
//
//   node scripts/apt-backports.mjs <codename> [<apt dir, default /etc/apt>]
//
// Prints a deb822 stanza for sources.list.d/*.sources when a backports source has to be added,
// nothing when one is already configured; exits 1 with the reason when no source serves <codename>.
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

/** The apt source files in the order apt reads them: sources.list, then sources.list.d/ by name. */
export function readAptSources(aptDir) {
  const files = []
  const list = join(aptDir, 'sources.list')
  if (existsSync(list)) files.push({name: list, text: readFileSync(list, 'utf8')})
  const dir = join(aptDir, 'sources.list.d')
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith('.list') || name.endsWith('.sources'))
        files.push({name: join(dir, name), text: readFileSync(join(dir, name), 'utf8')})
    }
  }
  return files
}

/** One-line format: `deb [opt=value …] URI suite component…`; comments after `#`. */
function oneLineEntries(text) {
  const entries = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') continue
    const options = {}
    const bracket = line.match(/^(\S+)\s+\[([^\]]*)\]\s*(.*)$/)
    const [type, ...rest] = bracket ? [bracket[1], ...bracket[3].split(/\s+/)] : line.split(/\s+/)
    if (bracket) {
      for (const option of bracket[2].trim().split(/\s+/)) {
        const [key, value] = option.split('=')
        if (value !== undefined) options[key.toLowerCase()] = value
      }
    }
    const [uri, suite, ...components] = rest
    if (uri === undefined || suite === undefined) continue
    entries.push({types: [type], uris: [uri], suites: [suite], components, signedBy: options['signed-by']})
  }
  return entries
}

/** deb822 format: stanzas of `Field: value` separated by blank lines; continuation lines start with a space. */
function deb822Entries(text) {
  const entries = []
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = {}
    let last
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue
      if (/^[ \t]/.test(line) && last) {
        fields[last] += '\n' + line
        continue
      }
      const field = line.match(/^([A-Za-z0-9-]+):\s*(.*)$/)
      if (!field) continue
      last = field[1].toLowerCase()
      fields[last] = field[2].trim()
    }
    if (!fields.types || !fields.uris || !fields.suites) continue
    if (/^(no|false|0)$/i.test(fields.enabled ?? '')) continue
    const words = (value) => (value ?? '').split(/\s+/).filter(Boolean)
    entries.push({
      types: words(fields.types),
      uris: words(fields.uris),
      suites: words(fields.suites),
      components: words(fields.components),
      signedBy: fields['signed-by'],
    })
  }
  return entries
}

export function aptEntries(files) {
  return files.flatMap((file) => (file.name.endsWith('.sources') ? deb822Entries(file.text) : oneLineEntries(file.text)))
}

/**
 * What to add for `<codename>-backports`: {present: true} when a binary source for it exists;
 * {stanza} (deb822) with the URI and Signed-By of the first binary source of `<codename>` with
 * `main`; {missing: reason} when there is none.
 */
export function backportsSource(files, codename) {
  const binary = aptEntries(files).filter((e) => e.types.includes('deb'))
  const backports = `${codename}-backports`
  if (binary.some((e) => e.suites.includes(backports))) return {present: true}
  for (const entry of binary) {
    if (!entry.suites.includes(codename) || !entry.components.includes('main')) continue
    const uri = entry.uris.find((u) => !u.startsWith('cdrom:'))
    if (uri === undefined) continue
    const lines = ['Types: deb', `URIs: ${uri}`, `Suites: ${backports}`, 'Components: main']
    // an inline key block starts on the next line (continuation lines), a keyring path on this one
    if (entry.signedBy) lines.push(`Signed-By:${entry.signedBy.startsWith('\n') ? '' : ' '}${entry.signedBy}`)
    return {stanza: lines.join('\n') + '\n'}
  }
  const read = files.map((f) => f.name).join(', ') || 'no source files'
  return {missing: `no apt source serves '${codename}' with component main (read: ${read})`}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [codename, aptDir = '/etc/apt'] = process.argv.slice(2)
  if (!codename) {
    console.error('usage: node scripts/apt-backports.mjs <codename> [<apt dir>]')
    process.exit(2)
  }
  const result = backportsSource(readAptSources(aptDir), codename)
  if (result.missing) {
    console.error(result.missing)
    process.exit(1)
  }
  if (result.stanza) process.stdout.write(result.stanza)
}
