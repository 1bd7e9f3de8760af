import {z} from 'zod'
import {positiveInt, section, triple} from '../zod-helpers.js'

const intensitySchema = z.discriminatedUnion('mode', [
  // BTCV: HU window → [0, 1] (MONAI ScaleIntensityRanged a_min -175, a_max 250, clip)
  section({mode: z.literal('ct-window'), window: z.tuple([z.number(), z.number()]).default([-175, 250])}),
  // MSD Lung (nnU-Net CT scheme): clip to foreground percentiles, then z-score with foreground mean/sd
  section({
    mode: z.literal('ct-percentile'),
    percentiles: z.tuple([z.number().min(0).max(100), z.number().min(0).max(100)]).default([0.5, 99.5]),
  }),
  // BraTS: per-channel z-score over non-zero voxels
  section({mode: z.literal('zscore-nonzero')}),
  section({mode: z.literal('none')}),
])

export const preprocessSchema = section({
  orientation: z.literal('RAS').default('RAS'),
  // target voxel spacing in mm (x, y, z in RAS order)
  spacing: triple(z.number().positive()).default([1.5, 1.5, 1.5]),
  intensity: intensitySchema.default({mode: 'ct-window', window: [-175, 250]}),
  cropForeground: z.boolean().default(true),
  // NaN / ±Inf image voxels: 'error' refuses the case (one NaN poisons resampling, the intensity
  // statistics and the loss), 'min' replaces them with the channel's smallest finite value in that
  // case (the background of a CT or MR outside its field of view), 'zero' with 0
  nonFinite: z.enum(['error', 'min', 'zero']).default('error'),
  // training patch in voxels (x, y, z); volumes smaller than this are padded
  patch: triple(positiveInt).default([96, 96, 96]),
})
export type PreprocessConfig = z.infer<typeof preprocessSchema>
