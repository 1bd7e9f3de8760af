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
})

export const trainSchema = section({
  epochs: positiveInt.default(1000),
  itersPerEpoch: positiveInt.default(250),
  batchSize: positiveInt.default(1),
  // crops per sampled volume (MONAI RandCropByPosNegLabeld num_samples)
  samplesPerVolume: positiveInt.default(4),
  // foreground-centred : random crops
  posNegRatio: z.tuple([z.number().nonnegative(), z.number().nonnegative()]).default([2, 1]),
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
})
export type TrainConfig = z.infer<typeof trainSchema>
