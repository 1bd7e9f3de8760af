import {z} from 'zod'
import {nonNegativeInt, positiveInt, probability, section} from '../zod-helpers.js'

export const optimizerSchema = z.discriminatedUnion('name', [
  section({
    name: z.literal('adamw'),
    lr: z.number().positive().default(4e-4),
    betas: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.9, 0.999]),
    weightDecay: z.number().nonnegative().default(1e-5),
  }),
  section({
    name: z.literal('sgd'),
    lr: z.number().positive().default(0.01),
    momentum: z.number().min(0).max(1).default(0.99),
    nesterov: z.boolean().default(true),
    weightDecay: z.number().nonnegative().default(3e-5),
  }),
])

export const mirrorAxis = z.enum(['x', 'y', 'z'])

const range = (low: number, high: number, min = -Infinity) =>
  z
    .tuple([z.number().min(min), z.number().min(min)])
    .refine(([a, b]) => a <= b, 'write [low, high] with low ≤ high')
    .default([low, high])

// nnU-Net's default augmentation, as batchgenerators runs it for nnU-Net v1 "moreDA" (UNETR++'s
// pipeline: unetr_pp/training/data_augmentation/data_augmentation_moreDA.py) and nnU-Net v2
// (nnUNetTrainer.get_training_transforms). `p` is the per-patch probability; nnU-Net's value is
// in each comment. All are off (p 0) by default, which keeps the official SIPL BTCV set; the
// lungs and brats configs switch them on. Mirroring is `flip` 0.5 on flipAxes [x, y, z].
const nnunetAugmentSchema = {
  // rotation about each axis by U(−maxDegrees, maxDegrees) (nnU-Net p 0.2, ±30°), resampled from the whole volume
  rotation: section({p: probability.default(0), maxDegrees: z.number().min(0).max(180).default(30)}).default({}),
  // one zoom factor for all axes, half the time below 1 and half above (nnU-Net p 0.2, 0.7–1.4)
  scaling: section({p: probability.default(0), range: range(0.7, 1.4, 0.01)}).default({}),
  // additive noise with sd U(0, maxSd) (nnU-Net p 0.1, 0.1; batchgenerators calls it a variance but uses it as the sd)
  gaussianNoise: section({p: probability.default(0), maxSd: z.number().nonnegative().default(0.1)}).default({}),
  // Gaussian blur, σ U(0.5, 1) voxels, each channel with probability pPerChannel (nnU-Net p 0.2, 0.5)
  gaussianBlur: section({p: probability.default(0), sigma: range(0.5, 1, 0), pPerChannel: probability.default(0.5)}).default({}),
  // multiply each channel by U(0.75, 1.25) (nnU-Net p 0.15)
  brightness: section({p: probability.default(0), range: range(0.75, 1.25, 0)}).default({}),
  // (v − mean)·f + mean per channel, clipped to the patch's range (nnU-Net p 0.15, 0.75–1.25)
  contrast: section({p: probability.default(0), range: range(0.75, 1.25, 0)}).default({}),
  // down-sample by U(0.5, 1) (nearest) and back up (linear), each channel with probability pPerChannel (nnU-Net p 0.25, 0.5)
  lowResolution: section({p: probability.default(0), zoom: range(0.5, 1, 0.01), pPerChannel: probability.default(0.5)}).default({}),
  // gamma of the inverted image, mean and sd kept (nnU-Net p 0.1, 0.7–1.5)
  gammaInverted: section({p: probability.default(0), range: range(0.7, 1.5, 0.01)}).default({}),
  // gamma, mean and sd kept (nnU-Net p 0.3, 0.7–1.5)
  gamma: section({p: probability.default(0), range: range(0.7, 1.5, 0.01)}).default({}),
}

export const augmentSchema = section({
  rot90: probability.default(0.1),
  // probability of mirroring along each of flipAxes, drawn per axis (nnU-Net: 0.5 on all three);
  // 0 = the model never sees mirrored anatomy, so test-time mirroring is off too (eval.tta)
  flip: probability.default(0),
  // the axes `flip` may mirror (nnU-Net mirror_axes); eval.tta mirrors only along these
  flipAxes: z
    .array(mirrorAxis)
    .default(['x', 'y', 'z'])
    .refine((axes) => new Set(axes).size === axes.length, 'list each axis once'),
  intensityShift: z.number().nonnegative().default(0.1),
  intensityShiftProb: probability.default(0.2),
  intensityScale: z.number().nonnegative().default(0),
  intensityScaleProb: probability.default(0),
  ...nnunetAugmentSchema,
})

export const trainSchema = section({
  epochs: positiveInt.default(1000),
  // 'permutation': every training volume once per epoch, shuffled (the official SIPL loader);
  // 'random': volumes drawn with replacement, itersPerEpoch steps per epoch (nnU-Net)
  volumeOrder: z.enum(['permutation', 'random']).default('random'),
  // steps per epoch with volumeOrder 'random' (absent or null: 250, nnU-Net's); a permutation
  // epoch is ⌈volumes · samplesPerVolume / batchSize⌉ steps, so there it stays absent or null
  itersPerEpoch: positiveInt.nullish(),
  // patches per optimiser step
  batchSize: positiveInt.default(1),
  // how a step's patches are drawn: 'monai' = samplesPerVolume crops of each drawn volume, centred on
  // foreground : background voxels at posNegRatio (RandCropByPosNegLabeld, the official SIPL loader);
  // 'nnunet' = every batch element from its own randomly drawn volume, the last
  // batchSize − round(batchSize · (1 − oversampleForeground)) of them centred on a voxel of a random
  // foreground class, the others anywhere in the volume (nnU-Net DataLoader3D's get_do_oversample,
  // which UNETR++ uses)
  sampling: z.enum(['monai', 'nnunet']).default('monai'),
  // crops per sampled volume (MONAI RandCropByPosNegLabeld num_samples; 'monai' sampling); batchSize =
  // samplesPerVolume makes one step the crops of one volume, as the official code's batch of 1 volume × 4 crops
  samplesPerVolume: positiveInt.default(4),
  // foreground-centred : background-centred crops ('monai' sampling)
  posNegRatio: z.tuple([z.number().nonnegative(), z.number().nonnegative()]).default([2, 1]),
  // nnU-Net oversample_foreground_percent: the share of each batch centred on foreground ('nnunet' sampling)
  oversampleForeground: probability.default(0.33),
  optimizer: optimizerSchema.default({name: 'adamw'}),
  schedule: section({
    name: z.enum(['cosine', 'poly', 'constant']).default('cosine'),
    warmupEpochs: nonNegativeInt.default(50),
    polyPower: z.number().positive().default(0.9),
  }).default({}),
  gradClip: z.number().nonnegative().default(12),
  augment: augmentSchema.default({}),
  // validate with the sliding-window evaluator every N epochs (0 = never)
  valEvery: nonNegativeInt.default(50),
  // keep checkpoints/epoch-N every N epochs (0 = only last and best)
  checkpointEvery: nonNegativeInt.default(50),
}).superRefine((train, ctx) => {
  if (train.volumeOrder === 'permutation' && train.itersPerEpoch != null)
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['itersPerEpoch'],
      message:
        'a permutation epoch is one pass over the training volumes (⌈volumes · samplesPerVolume / batchSize⌉ steps); remove itersPerEpoch (or --set train.itersPerEpoch=null), or set train.volumeOrder: random',
    })
  if (train.volumeOrder === 'permutation' && train.sampling === 'nnunet')
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['volumeOrder'],
      message: "nnU-Net sampling draws every batch element's volume with replacement; use volumeOrder: random with sampling: nnunet",
    })
})
export type TrainConfig = z.infer<typeof trainSchema>
