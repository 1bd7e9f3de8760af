/**
 * Reading is bounded by what the header promises (issue 14 item 1): a gzip bomb, an endless
 * device or a header promising more than Node can hold end in one-line errors, and memory stays
 * near the promised size. Every file is generated here; the bomb is concatenated gzip members
 * (each the same 16 MiB of zeros), so a 1 GiB stream costs one small compression.
 */
import {test} from 'node:test'
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {gzipSync} from 'node:zlib'
import {PROJECT_ROOT, sipl} from '../helpers/cli.js'
import {readNifti} from '../../src/io/nifti.js'
import {writeNifti, geometryFromAffine} from '../../src/io/nifti-writer.js'
import {UserError} from '../../src/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'sipl-nifti-bounds-'))
const affine = [
  [2, 0, 0, 0],
  [0, 2, 0, 0],
  [0, 0, 2, 0],
  [0, 0, 0, 1],
]

/** A valid uncompressed 64³ uint8 NIfTI: 352 header bytes + 262 144 voxel bytes. */
function plainNifti(): Buffer {
  const file = join(dir, 'plain.nii')
  writeNifti(file, {shape: [64, 64, 64], data: new Uint8Array(64 ** 3).fill(7), geometry: geometryFromAffine(affine)})
  return readFileSync(file)
}

/** The valid file followed by `extraMiB` MiB of zeros, as gzip members: about 16 KiB per 16 MiB. */
function bomb(extraMiB: number): Buffer {
  const zeros = gzipSync(Buffer.alloc(16 * 1024 * 1024), {level: 9})
  return Buffer.concat([gzipSync(plainNifti()), ...Array.from({length: extraMiB / 16}, () => zeros)])
}

const oneLine = (stderr: string) => stderr.trim().split('\n').length === 1

test('a .nii.gz whose header promises 64³ but whose stream inflates to 1 GiB is refused, with memory near the promise', () => {
  const file = join(dir, 'bomb.nii.gz')
  writeFileSync(file, bomb(1024))
  assert.throws(
    () => readNifti(file),
    (e: unknown) => e instanceof UserError && /inflates to more than the 262496 bytes its header promises/.test(e.message),
  )
  // peak memory of a process that only tries to read it (Node alone is ~50 MB; the unbounded reader held the whole GiB)
  const script = `import {readNifti} from ${JSON.stringify(resolve(PROJECT_ROOT, 'dist/src/io/nifti.js'))}
try { readNifti(${JSON.stringify(file)}) } catch {}
console.log(process.resourceUsage().maxRSS)`
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {encoding: 'utf8', timeout: 120_000})
  assert.equal(child.status, 0, child.stderr)
  const peakMiB = Number(child.stdout.trim()) / 1024
  assert.ok(peakMiB < 200, `peak RSS ${peakMiB.toFixed(0)} MiB while refusing a 1 GiB gzip bomb`)

  const {code, stderr} = sipl(['inspect', file])
  assert.equal(code, 2, stderr)
  assert.ok(oneLine(stderr), stderr)
  assert.match(stderr, /^Error: .*bomb\.nii\.gz: the gzip stream inflates to more than/)
})

test('a gzip stream with even a few bytes beyond the promise is refused; the exact file reads', () => {
  const plain = plainNifti()
  const exact = join(dir, 'exact.nii.gz')
  writeFileSync(exact, gzipSync(plain))
  assert.equal(readNifti(exact).data.length, 64 ** 3)
  const longer = join(dir, 'longer.nii.gz')
  writeFileSync(longer, gzipSync(Buffer.concat([plain, Buffer.alloc(8)])))
  assert.throws(() => readNifti(longer), /inflates to more than the 262496 bytes/)
})

test('an uncompressed file with bytes after the voxels reads only the voxels (as nibabel)', () => {
  const file = join(dir, 'trailing.nii')
  writeFileSync(file, Buffer.concat([plainNifti(), Buffer.alloc(4096, 1)]))
  const image = readNifti(file)
  assert.equal(image.data.length, 64 ** 3)
  assert.ok(image.data.every((v) => v === 7))
})

test('sipl inspect /dev/zero ends at once with one line and exit 2 (it read until memory ran out)', () => {
  const started = Date.now()
  const {code, stderr} = sipl(['inspect', '/dev/zero'], {timeoutMs: 60_000})
  assert.equal(code, 2, stderr)
  assert.ok(oneLine(stderr), stderr)
  assert.match(stderr, /\/dev\/zero: not a NIfTI file/)
  assert.ok(Date.now() - started < 30_000)
})

test('a header promising more than Node can hold, or a NaN vox_offset, is refused before anything is read', () => {
  const plain = plainNifti()
  const huge = Buffer.from(plain.subarray(0, 352))
  // dim = [3, 32767, 32767, 32767]: 32 TiB of uint8
  for (let i = 1; i <= 3; i++) huge.writeInt16LE(32767, 40 + 2 * i)
  const hugeFile = join(dir, 'huge.nii.gz')
  writeFileSync(hugeFile, gzipSync(huge))
  assert.throws(
    () => readNifti(hugeFile),
    (e: unknown) => e instanceof UserError && /promises \d+\.\d GiB of voxels .*sipl reads volumes up to 4 GiB/.test(e.message),
  )
  const nanOffset = Buffer.from(plain)
  nanOffset.writeFloatLE(NaN, 108)
  const nanFile = join(dir, 'nan-offset.nii')
  writeFileSync(nanFile, nanOffset)
  assert.throws(() => readNifti(nanFile), /invalid NIfTI header \(vox_offset NaN\)/)
})

test('a folder given as a NIfTI file is a one-line error', () => {
  const {code, stderr} = sipl(['inspect', dir])
  assert.equal(code, 2, stderr)
  assert.match(stderr, /is a folder, not a NIfTI file/)
})
