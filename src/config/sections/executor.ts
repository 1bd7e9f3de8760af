import {z} from 'zod'
import {positiveInt, section} from '../zod-helpers.js'

export const slurmSchema = section({
  // no default partition: clusters name theirs differently, and sbatch then uses the cluster's default
  partition: z.string().optional(),
  // accounting project (#SBATCH --account); many clusters require one, none is universal
  account: z.string().optional(),
  // a full SIPL training run (BTCV, 96³ patches) takes about a day on one GPU; 48 h leaves margin
  time: z.string().default('48:00:00'),
  // one run uses one device (DESIGN §6); 0 writes no --gpus line (for CPU-only partitions)
  gpus: z.number().int().nonnegative().default(1),
  // data loading and sliding-window accumulation run on CPU threads beside the GPU
  cpusPerTask: positiveInt.default(8),
  // the preprocessed cache and the whole-volume accumulation of an eval fit in 64 GB for BTCV/BraTS
  mem: z.string().default('64G'),
  // extra '#SBATCH …' lines, verbatim (e.g. '--qos=long', '--gres=gpu:a100:1', '--constraint=a100')
  extra: z.array(z.string()).default([]),
  // shell lines run at the start of every task (e.g. 'module load nodejs/20'); the cluster decides
  setup: z.array(z.string()).default([]),
})

export const executorSchema = section({
  // local by default: a laptop or workstation needs no scheduler
  kind: z.enum(['local', 'slurm']).default('local'),
  // local executor: trials run at once; 1 because one run uses one device (Slurm throttles with --parallel N → %N)
  parallel: positiveInt.default(1),
  slurm: slurmSchema.default({}),
})
export type ExecutorConfig = z.infer<typeof executorSchema>
