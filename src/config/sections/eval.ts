import {z} from 'zod'
import {section} from '../zod-helpers.js'

// docs/evaluation.md: 'strict' scores every class in every case (both empty = 1, a false positive
// on an absent class = 0); 'sipl' is the official SIPL test (a class absent from a case's reference
// is left out of its means; largest connected component per class)
export const protocolSchema = z.enum(['strict', 'sipl'])

export const evalSchema = section({
  // strict by default: it is the convention that charges a false positive on an absent organ;
  // the paper's configs (btcv, lungs, brats) say sipl
  protocol: protocolSchema.default('strict'),
  // fraction of the window shared by neighbours
  overlap: z.number().min(0).lt(1).default(0.5),
  // Gaussian importance σ as a fraction of the patch size (nnU-Net: 1/8)
  sigmaScale: z.number().positive().default(0.125),
  // mirror test-time augmentation, only along the axes the training mirrored (train.augment.flip,
  // flipAxes; nnU-Net's rule): a model never trained on mirrored anatomy swaps left and right organs
  tta: z.boolean().default(false),
  // a subset of the trained mirror axes to use (default: all of them); an axis the training never
  // mirrored is refused
  ttaAxes: z
    .array(z.enum(['x', 'y', 'z']))
    .refine((axes) => new Set(axes).size === axes.length, 'list each axis once')
    .optional(),
  // sigmoid threshold for the K class outputs
  threshold: z.number().min(0).max(1).default(0.5),
  // surface Dice tolerance in mm
  surfaceTolerance: z.number().nonnegative().default(1),
  // windows per forward pass
  batchSize: z.number().int().positive().default(1),
  savePredictions: z.boolean().default(true),
  // keep only the largest connected component of each class (official SIPL test.py); unset = the
  // protocol's choice (sipl: on, strict: off = raw network output); false under sipl is refused
  largestComponent: z.boolean().optional(),
})
export type EvalConfig = z.infer<typeof evalSchema>
