import {z} from 'zod'
import {positiveInt, section} from '../zod-helpers.js'

export const slurmSchema = section({
  partition: z.string().optional(),
  time: z.string().default('48:00:00'),
  gpus: z.number().int().nonnegative().default(1),
  cpusPerTask: positiveInt.default(8),
  mem: z.string().default('64G'),
  // extra '#SBATCH …' lines, verbatim
  extra: z.array(z.string()).default([]),
})

export const executorSchema = section({
  kind: z.enum(['local', 'slurm']).default('local'),
  parallel: positiveInt.default(1),
  slurm: slurmSchema.default({}),
})
export type ExecutorConfig = z.infer<typeof executorSchema>
