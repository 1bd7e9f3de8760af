#!/usr/bin/env node
// Writes oclif.manifest.json (run by `npm run build`, after tsc). With it oclif reads every command's
// summary and flags from one file; without it oclif imports every command module at each start, and
// with them TensorFlow.js, even for `sipl --help` or `sipl config list` (docs/decisions.md).
import {writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Plugin} from '@oclif/core'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const plugin = new Plugin({root, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true})
await plugin.load()
writeFileSync(join(root, 'oclif.manifest.json'), JSON.stringify(plugin.manifest, null, 2) + '\n')
