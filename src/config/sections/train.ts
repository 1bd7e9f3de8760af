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

export const augmentSchema = section({
  rot90: probability.default(0.1),
  flip: probability.default(0),
  intensityShift: z.number().nonnegative().default(0.1),
  intensityShiftProb: probability.default(0.2),
  intensityScale: z.number().nonnegative().default(0),
  intensityScaleProb: probability.default(0),
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
  // crops per sampled volume (MONAI RandCropByPosNegLabeld num_samples); batchSize = samplesPerVolume
  // makes one step the crops of one volume, as the official code's batch of 1 volume × 4 crops
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
}).superRefine((train, ctx) => {
  if (train.volumeOrder === 'permutation' && train.itersPerEpoch != null)
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['itersPerEpoch'],
      message:
        'a permutation epoch is one pass over the training volumes (⌈volumes · samplesPerVolume / batchSize⌉ steps); remove itersPerEpoch (or --set train.itersPerEpoch=null), or set train.volumeOrder: random',
    })
})
export type TrainConfig = z.infer<typeof trainSchema>
