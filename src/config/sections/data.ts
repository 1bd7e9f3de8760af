import {z} from 'zod'
import {positiveInt, section, triple} from '../zod-helpers.js'

export const syntheticSchema = section({
  // small enough to generate in a second, large enough to crop 32³ patches from
  cases: positiveInt.default(8),
  shape: triple(positiveInt).default([64, 64, 48]),
  spacing: triple(z.number().positive()).default([1.5, 1.5, 2.0]),
  // foreground "organs" (ellipsoids of distinct HU); class names come from data.classes
  organs: positiveInt.default(3),
  noiseHU: z.number().nonnegative().default(20),
  seed: z.number().int().default(7),
})

const labelValue = z
  .number({invalid_type_error: 'label values are whole numbers'})
  .int('label values are whole numbers')
  .positive('label value 0 is background; list only the foreground values of the class')
  .max(65535, 'label values above 65535 (uint16) are not supported')

/** class name → the source label values it takes; one value may be written without brackets: {spleen: 1, kidney: [2, 3]} */
export const labelMapSchema = z.record(
  z.string(),
  z.preprocess(
    (v) => (typeof v === 'number' ? [v] : v),
    z
      .array(labelValue, {invalid_type_error: 'expected a label value (a whole number) or a list of them'})
      .min(1, 'give at least one label value'),
  ),
)
export type LabelMapConfig = z.infer<typeof labelMapSchema>

/**
 * What is wrong with a label map for these classes: keys that are not class names, classes
 * without values, a value given twice. Paths are relative to the map.
 */
export function labelMapIssues(labelMap: LabelMapConfig, classes: readonly string[]): {path: string[]; message: string}[] {
  const issues: {path: string[]; message: string}[] = []
  const owner = new Map<number, string>()
  for (const [name, values] of Object.entries(labelMap)) {
    if (!classes.includes(name)) {
      issues.push({path: [name], message: `'${name}' is not one of data.classes [${classes.join(', ')}]; the keys are class names`})
      continue
    }
    for (const v of values) {
      const first = owner.get(v)
      if (first !== undefined)
        issues.push({
          path: [name],
          message: `label value ${v} is mapped twice (${first === name ? `listed twice in ${name}` : `also ${first}`}); give each value one class`,
        })
      else owner.set(v, name)
    }
  }
  const missing = classes.filter((c) => !(c in labelMap))
  if (missing.length > 0)
    issues.push({path: [], message: `no label values for ${missing.join(', ')}; give every class in data.classes its source value(s)`})
  return issues
}

export const dataSchema = section({
  // which reader and defaults apply: BTCV layout, MSD task, plain folders, or generated phantoms
  preset: z.enum(['btcv', 'lungs', 'brats', 'folder', 'synthetic']).default('synthetic'),
  // raw dataset folder; relative paths resolve against SIPL_DATA_DIR
  root: z.string().default('synthetic'),
  // preprocessed cache folder; default <root>/preprocessed
  cache: z.string().optional(),
  // folder layout: images and labels subfolders (preset 'folder' only)
  imagesDir: z.string().default('imagesTr'),
  labelsDir: z.string().default('labelsTr'),
  // foreground class names, in label-value order 1..K (background 0 is implicit)
  classes: z.array(z.string().min(1)).min(1).default(['organ1', 'organ2', 'organ3']),
  // the source label value(s) of each class when the dataset's values are not 1..K in data.classes
  // order (TotalSegmentator, AMOS, FLARE, WORD): {spleen: 1, kidney: [2, 3]}; other values become
  // background. Absent: the labels must already be 0..K
  labelMap: labelMapSchema.optional(),
  // input channels (BraTS: 4 MRI modalities)
  channels: positiveInt.default(1),
  // BraTS predicts overlapping regions (WT, TC, ET) with sigmoids; aux masks use exclusive labels
  overlappingRegions: z.boolean().default(false),
  // named split (btcv: 'sipl' 24/6, 'synapse' 18/12; lungs: 'unetrpp' 50/13; brats: 'unetrpp' 387/73) or 'random' with the fractions below
  split: z.string().default('random'),
  splitFractions: z.tuple([z.number().min(0), z.number().min(0), z.number().min(0)]).default([0.75, 0, 0.25]),
  // a splits.json written here when absent (default <cache>/splits.json); a user file wins
  splitsFile: z.string().optional(),
  synthetic: syntheticSchema.default({}),
}).superRefine((data, ctx) => {
  if (data.labelMap === undefined) return
  if (data.overlappingRegions)
    ctx.addIssue({
      code: 'custom',
      path: ['labelMap'],
      message: 'overlapping regions (BraTS) are built from the exclusive label values 1..3; drop data.labelMap or data.overlappingRegions',
    })
  for (const issue of labelMapIssues(data.labelMap, data.classes))
    ctx.addIssue({code: 'custom', path: ['labelMap', ...issue.path], message: issue.message})
})
export type DataConfig = z.infer<typeof dataSchema>
