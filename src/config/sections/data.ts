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
})
export type DataConfig = z.infer<typeof dataSchema>
