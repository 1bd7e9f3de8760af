/**
 * Finding the cases of a raw dataset (DESIGN §3). Each preset knows its layout:
 *   - btcv:      <root>/img/imgXXXX.nii.gz + <root>/label/labelXXXX.nii.gz, or a MONAI-style
 *                dataset_0.json ({training: [{image, label}], validation: [...]}) in <root>
 *   - lungs, brats, synthetic: an MSD-style dataset.json ({training: [{image, label}], test: [...]})
 *   - folder:    <root>/<imagesDir>/*.nii.gz with labels of the same name in <root>/<labelsDir>;
 *                nnU-Net channel files (case_0000.nii.gz, case_0001.nii.gz, …) become channels
 * Only labelled cases are listed: they are what preprocessing, training and evaluation use.
 */
import {existsSync, readdirSync, readFileSync, statSync} from 'node:fs'
import {basename, isAbsolute, join, resolve} from 'node:path'
import type {ExperimentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {isNiftiPath, niftiStem} from '../io/nifti.js'
import {environment} from '../paths.js'

export interface CaseSource {
  id: string
  /** one file (possibly 4-D: channels in dim 4) or one file per channel */
  images: string[]
  label?: string
}

/** config.data.root, absolute (relative roots live under SIPL_DATA_DIR). */
export function dataRoot(config: ExperimentConfig): string {
  return isAbsolute(config.data.root) ? config.data.root : resolve(environment().dataDir, config.data.root)
}

const visible = (name: string) => !name.startsWith('.') && !name.startsWith('._')

/** The NIfTI files of a folder (no hidden files, no `.img` halves of pairs), sorted by name. */
export function niftiFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => visible(n) && isNiftiPath(n) && !/\.img(\.gz)?$/i.test(n))
    .sort()
}

function isDir(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory()
}

function requireRoot(root: string, preset: string, expect: string): void {
  if (!isDir(root))
    throw new UserError(
      `data.root ${root} does not exist (preset '${preset}' expects ${expect}); set data.root or SIPL_DATA_DIR to the dataset folder`,
    )
}

interface JsonPair {
  image: string | string[]
  label?: string
}

/** Labelled entries of the lists `keys` (the first one required) in an MSD / MONAI dataset JSON. */
function fromJson(root: string, file: string, keys: string[]): CaseSource[] {
  let doc: Record<string, unknown>
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  } catch (error) {
    throw new UserError(`${file}: not valid JSON (${(error as Error).message})`)
  }
  if (!Array.isArray(doc[keys[0]])) throw new UserError(`${file}: no '${keys[0]}' list of {image, label} entries`)
  const cases: CaseSource[] = []
  for (const key of keys.filter((k) => Array.isArray(doc[k]))) {
    for (const entry of doc[key] as JsonPair[]) {
      if (!entry || (typeof entry.image !== 'string' && !Array.isArray(entry.image)))
        throw new UserError(`${file}: every '${key}' entry needs an "image" path (got ${JSON.stringify(entry)})`)
      if (!entry.label) continue
      const images = (Array.isArray(entry.image) ? entry.image : [entry.image]).map((p) => resolve(root, p))
      cases.push({id: niftiStem(basename(images[0])).replace(/_0000$/, ''), images, label: resolve(root, entry.label)})
    }
  }
  return cases
}

function btcvCases(root: string): CaseSource[] {
  requireRoot(root, 'btcv', 'img/ and label/ folders or dataset_0.json')
  const base = ['', 'Training', 'RawData/Training'].map((s) => join(root, s)).find((d) => isDir(join(d, 'img')))
  if (base) {
    const labelDir = join(base, 'label')
    return niftiFiles(join(base, 'img')).flatMap((name) => {
      const id = niftiStem(name)
      const labelName = name.replace(/^img/, 'label')
      const label = join(labelDir, labelName)
      return existsSync(label) ? [{id, images: [join(base, 'img', name)], label}] : []
    })
  }
  const json = join(root, 'dataset_0.json')
  if (existsSync(json)) return fromJson(root, json, ['training', 'validation'])
  throw new UserError(`${root}: no img/ folder and no dataset_0.json; point data.root at BTCV's RawData/Training`)
}

function msdCases(root: string, preset: string): CaseSource[] {
  requireRoot(root, preset, 'dataset.json with imagesTr/ and labelsTr/')
  const json = join(root, 'dataset.json')
  if (!existsSync(json)) throw new UserError(`${root}: no dataset.json (preset '${preset}' reads the MSD layout: dataset.json, imagesTr/, labelsTr/)`)
  return fromJson(root, json, ['training'])
}

function folderCases(root: string, imagesDir: string, labelsDir: string): CaseSource[] {
  requireRoot(root, 'folder', `${imagesDir}/ and ${labelsDir}/`)
  const images = join(root, imagesDir)
  const labels = join(root, labelsDir)
  if (!isDir(images)) throw new UserError(`${images}: images folder missing (data.imagesDir)`)
  if (!isDir(labels)) throw new UserError(`${labels}: labels folder missing (data.labelsDir)`)
  const groups = caseFiles(images, niftiFiles(images))
  const labelFiles = new Map(niftiFiles(labels).map((f) => [niftiStem(f), join(labels, f)]))
  return [...groups.entries()].flatMap(([id, paths]) => {
    const label = labelFiles.get(id)
    return label ? [{id, images: paths, label}] : []
  })
}

/**
 * Case id → its image files (paths under `dir`, sorted): when every name ends in a 4-digit channel
 * suffix (nnU-Net's `case_0000.nii.gz`, `case_0001.nii.gz`, …) the files of one case are grouped
 * as its channels; otherwise each file is one case, named by its stem.
 */
export function caseFiles(dir: string, names: string[]): Map<string, string[]> {
  const channelSuffix = names.length > 0 && names.every((f) => /_\d{4}$/.test(niftiStem(f)))
  const groups = new Map<string, string[]>()
  for (const f of names) {
    const id = channelSuffix ? niftiStem(f).slice(0, -5) : niftiStem(f)
    groups.set(id, [...(groups.get(id) ?? []), join(dir, f)].sort())
  }
  return groups
}

/** The labelled cases of the configured dataset, sorted by id. */
export function listCases(config: ExperimentConfig): CaseSource[] {
  const root = dataRoot(config)
  const {preset} = config.data
  const cases =
    preset === 'btcv'
      ? btcvCases(root)
      : preset === 'folder'
        ? folderCases(root, config.data.imagesDir, config.data.labelsDir)
        : msdCases(root, preset)
  const seen = new Set<string>()
  for (const c of cases) {
    if (seen.has(c.id)) throw new UserError(`${root}: two cases share the id '${c.id}' (${c.images[0]}); case file names must be unique`)
    seen.add(c.id)
    for (const f of [...c.images, c.label!]) if (!existsSync(f)) throw new UserError(`case ${c.id}: ${f} listed but missing`)
  }
  if (cases.length === 0) throw new UserError(`${root}: no labelled cases found for preset '${preset}'`)
  return cases.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/**
 * MSD Task01_BrainTumour labels are exclusive (1 edema, 2 non-enhancing tumour, 3 enhancing
 * tumour); the evaluated targets are overlapping regions made of them.
 */
export const BRATS_REGIONS: Record<string, number[]> = {WT: [1, 2, 3], TC: [2, 3], ET: [3]}

/** Region k (0-based, in `regions` order) as a 0/1 mask of an exclusive label map. */
export function regionMask(labels: Uint8Array, values: number[]): Uint8Array {
  const member = new Uint8Array(256)
  for (const v of values) member[v] = 1
  const out = new Uint8Array(labels.length)
  for (let i = 0; i < labels.length; i++) out[i] = member[labels[i]]
  return out
}
