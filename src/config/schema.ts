/**
 * One schema for every experiment config. It is the single source of defaults; each field
 * carries the reason for its default. Sections live in ./sections, one per pipeline stage.
 */
import {z} from 'zod'
import {section} from './zod-helpers.js'
import {dataSchema} from './sections/data.js'
import {preprocessSchema} from './sections/preprocess.js'
import {lossSchema, modelSchema, smgSchema} from './sections/model.js'
import {trainSchema} from './sections/train.js'
import {evalSchema} from './sections/eval.js'
import {executorSchema} from './sections/executor.js'

export const experimentSchema = section({
  // run directory name under SIPL_RUNS_DIR: one path segment, so '..' or 'a/b' cannot leave that folder
  name: z
    .string()
    .regex(/^(?!\.\.?$)[A-Za-z0-9._-]{1,200}$/, 'a run name is one folder name: letters, digits, ".", "_" or "-" (not "." or "..")')
    .default('experiment'),
  // one seed drives sampling, augmentation and initialisation
  seed: z.number().int().default(2023),
  data: dataSchema.default({}),
  preprocess: preprocessSchema.default({}),
  model: modelSchema.default({}),
  smg: smgSchema.default({}),
  loss: lossSchema.default({}),
  train: trainSchema.default({}),
  eval: evalSchema.default({}),
  executor: executorSchema.default({}),
})

export type ExperimentConfig = z.infer<typeof experimentSchema>
export type {DataConfig} from './sections/data.js'
export type {PreprocessConfig} from './sections/preprocess.js'
export type {ModelConfig, SmgConfig, LossConfig} from './sections/model.js'
export type {TrainConfig} from './sections/train.js'
export type {EvalConfig} from './sections/eval.js'
export type {ExecutorConfig} from './sections/executor.js'
