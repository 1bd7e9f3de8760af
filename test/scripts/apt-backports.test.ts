/**
 * scripts/apt-backports.mjs, which .ci/run uses to add `<codename>-backports` from the machine's
 * own Debian mirror: sample apt directories in both formats (test/fixtures/apt/).
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'
import {test} from 'node:test'
import {pathToFileURL} from 'node:url'
import {PROJECT_ROOT} from '../helpers/cli.js'

const SCRIPT = join(PROJECT_ROOT, 'scripts/apt-backports.mjs')
const FIXTURES = join(PROJECT_ROOT, 'test/fixtures/apt')

interface SourceFile {
  name: string
  text: string
}
type Derived = {present: true} | {stanza: string} | {missing: string}
const {backportsSource, readAptSources} = (await import(pathToFileURL(SCRIPT).href)) as {
  backportsSource(files: SourceFile[], codename: string): Derived
  readAptSources(aptDir: string): SourceFile[]
}

const derive = (dir: string, codename = 'bookworm') => backportsSource(readAptSources(join(FIXTURES, dir)), codename)
/** the deb822 stanza expected for bookworm-backports on `uri` */
const expected = (uri: string, signedBy: string) =>
  `Types: deb\nURIs: ${uri}\nSuites: bookworm-backports\nComponents: main\nSigned-By: ${signedBy}\n`

test('deb822 (.sources): the URI and Signed-By of the stanza that serves the codename; disabled stanzas and other suites are skipped', () => {
  assert.deepEqual(derive('deb822'), {
    stanza: expected('http://mirror.example.org/debian', '/usr/share/keyrings/debian-archive-keyring.gpg'),
  })
})

test('one-line (.list): options in brackets, trailing comments, deb-src and commented-out cdrom lines', () => {
  assert.deepEqual(derive('one-line'), {stanza: expected('https://mirror.example.net/debian/', '/etc/apt/keyrings/site.gpg')})
})

test('a configured backports source is left as it is', () => {
  assert.deepEqual(derive('backports-present'), {present: true})
})

test('no source for the codename itself (only another release, only -updates): the reason names the codename and the files read', () => {
  const result = derive('other-release')
  assert.ok('missing' in result, JSON.stringify(result))
  assert.match(result.missing, /no apt source serves 'bookworm'/)
  assert.match(result.missing, /other-release\/sources\.list/)
  assert.deepEqual(derive('other-release', 'trixie'), {
    stanza: 'Types: deb\nURIs: http://mirror.example.org/debian\nSuites: trixie-backports\nComponents: main\n',
  })
})

test('an inline Signed-By key block (deb822 continuation lines) is carried over whole', () => {
  const text = [
    'Types: deb',
    'URIs: http://mirror.example.org/debian',
    'Suites: bookworm',
    'Components: main contrib',
    'Signed-By:',
    ' -----BEGIN PGP PUBLIC KEY BLOCK-----',
    ' .',
    ' mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR2lsD1i5NK3B7Xp2nB',
    ' -----END PGP PUBLIC KEY BLOCK-----',
  ].join('\n')
  const result = backportsSource([{name: 'inline.sources', text}], 'bookworm')
  assert.ok('stanza' in result, JSON.stringify(result))
  assert.ok(result.stanza.endsWith(`Signed-By:\n${text.split('Signed-By:\n')[1]}\n`), result.stanza)
})

test('the command line: prints the stanza, prints nothing when present, exits 1 with the reason when nothing serves the codename', () => {
  const run = (dir: string) => spawnSync(process.execPath, [SCRIPT, 'bookworm', join(FIXTURES, dir)], {encoding: 'utf8'})
  const derived = run('deb822')
  assert.equal(derived.status, 0, derived.stderr)
  assert.match(derived.stdout, /^URIs: http:\/\/mirror\.example\.org\/debian$/m)
  const present = run('backports-present')
  assert.equal(present.status, 0, present.stderr)
  assert.equal(present.stdout, '')
  const missing = run('other-release')
  assert.equal(missing.status, 1)
  assert.equal(missing.stdout, '')
  assert.match(missing.stderr, /no apt source serves 'bookworm'/)
})
