import {z} from 'zod'
import {positiveInt, section} from '../zod-helpers.js'

export const backboneSchema = section({
  // channel widths at strides 4, 8, 16, 32 (the last is F, d_i channels)
  widths: z.array(positiveInt).min(2).default([32, 64, 128, 256]),
  // residual blocks per encoder stage
  depths: z.array(positiveInt).min(2).default([1, 1, 1, 1]),
  // stem: patch embedding with kernel = stride ("patch resolution (4,4,4)")
  patchStride: positiveInt.default(4),
  // batch sizes are 1–4, so batch norm is out
  norm: z.enum(['instance', 'group']).default('instance'),
  // group norm: channel groups (clamped to a divisor of each width); works on a one-voxel grid, where instance norm cannot
  groups: positiveInt.default(8),
  // d: channels of the per-voxel embedding F_o
  embedDim: positiveInt.default(32),
})

export const cppSchema = section({
  // class prompt prototypes: learnable vectors, fixed one-hot, or a K×e embedding file (CLIP, BioBERT, …)
  init: z.enum(['random', 'onehot', 'clip', 'biobert', 'file']).default('random'),
  // JSON (K×e array) or .npy; required for clip/biobert/file — sipl never downloads a model
  file: z.string().optional(),
})

export const modelSchema = section({
  backbone: backboneSchema.default({}),
  // Instance-adaptive prototype learning (Eq. 2–4); false = plain learnable prototypes (ablation -IPL)
  ipl: z.boolean().default(true),
  // Semantic mask generator (Eq. 6–12); false = 1×1×1 softmax head on the stride-8 feature (ablation -SMG)
  smg: z.boolean().default(true),
  cpp: cppSchema.default({}),
  // N object queries of the mask generator
  queries: positiveInt.default(32),
  // hidden width of the prototype MLP on [IPP; CPP]
  prototypeHidden: positiveInt.default(256),
  // allow a per-class bias in σ(F_o · g_k + b_k)
  classBias: z.boolean().default(true),
})
export type ModelConfig = z.infer<typeof modelSchema>

export const smgSchema = section({
  // decoder strides the kMaX layers run at (F_d^l), coarse to fine
  scales: z.array(positiveInt).min(1).default([32, 16, 8]),
  layersPerScale: positiveInt.default(2),
  // d_q: width of the object queries and of the pixel features projected for them (kMaX uses 256)
  queryDim: positiveInt.default(256),
  // heads of the query self-attention; must divide queryDim
  heads: positiveInt.default(8),
  // hidden width of the query FFN (kMaX 2048; 4·d_q is the usual transformer ratio at d_q = 256 → 1024 in the configs)
  ffnHidden: positiveInt.default(256),
  // Eq. 11: τ = min(epoch / rampEpochs, 1) · (end − start) + start, read from the current epoch
  tau: section({
    start: z.number().min(0).max(1).default(0.1),
    end: z.number().min(0).max(1).default(0.5),
    rampEpochs: z.number().int().nonnegative().default(50),
  }).default({}),
  // Eq. 10 at inference too, with τ at its last training value: test-time queries then follow the
  // rule the network was trained with (the official code filters at test time as well)
  filterAtInference: z.boolean().default(true),
})
export type SmgConfig = z.infer<typeof smgSchema>

export const lossSchema = section({
  // Eq. 13: L = L_seg + α Σ_l L_aux^l
  alpha: z.number().nonnegative().default(0.05),
  // Eq. 12's target: 'full' scores each M^l upsampled (trilinear) to the patch against the
  // full-resolution label, as the paper and the official code; 'coarse' scores M^l on its own
  // grid against the label block-averaged to it (cheaper; small organs never dominate a cell)
  auxTarget: z.enum(['full', 'coarse']).default('full'),
  diceSmooth: z.number().nonnegative().default(1e-5),
})
export type LossConfig = z.infer<typeof lossSchema>
