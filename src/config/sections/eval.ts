import {z} from 'zod'
import {section} from '../zod-helpers.js'

export const evalSchema = section({
  // fraction of the window shared by neighbours
  overlap: z.number().min(0).lt(1).default(0.5),
  // Gaussian importance σ as a fraction of the patch size (nnU-Net: 1/8)
  sigmaScale: z.number().positive().default(0.125),
  // mirror test-time augmentation over the three axes
  tta: z.boolean().default(false),
  // sigmoid threshold for the K class outputs
  threshold: z.number().min(0).max(1).default(0.5),
  // surface Dice tolerance in mm
  surfaceTolerance: z.number().nonnegative().default(1),
  // windows per forward pass
  batchSize: z.number().int().positive().default(1),
  savePredictions: z.boolean().default(true),
  // keep only the largest connected component of each class (official SIPL test.py); off = raw network output
  largestComponent: z.boolean().default(false),
})
export type EvalConfig = z.infer<typeof evalSchema>
