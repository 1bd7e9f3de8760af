import {Flags} from '@oclif/core'
import {BaseCommand, configFlags} from '../src/cli/base-command.js'
import {BACKENDS, type BackendName} from '../src/backend/names.js'
import {unetRefNet, type BenchRow} from '../src/bench/bench.js'
import {runBenchRounds} from '../src/bench/rounds.js'
import {siplNetFactory} from '../src/bench/sipl-net.js'
import {benchPreprocess, type PreprocessBenchResult} from '../src/bench/preprocess.js'
import {cpuDescription} from '../src/bench/cpu-info.js'
import {TORCH_MALLOC, type TorchMalloc} from '../src/bench/torch.js'
import {environment} from '../src/paths.js'
import {UserError} from '../src/errors.js'
import {availableParallelism} from 'node:os'

const NETS = ['unet-ref', 'sipl'] as const
const BACKEND_NAMES = BACKENDS.filter((b) => b !== 'auto') as BackendName[]

export default class Bench extends BaseCommand<typeof Bench> {
  static override summary =
    'Time a training step and a sliding-window inference per backend, checking results against the reference cpu kernels'
  static override description = `For each backend that starts (default: all of ${BACKEND_NAMES.join(', ')}), builds the network with the same seed, checks the loss and every gradient norm against tfjs's reference cpu conv3d kernels (max relative error, should be ≤ 1e-4), times --steps training steps (Adam, batch 1) after --warmup steps, and one sliding-window inference (window = --size, overlap 0.5) of an --infer-size³ volume, after --infer-warmup untimed ones. --torch also times the same step in PyTorch with the same thread count and reports each backend's time as a multiple of PyTorch's (target: ≤ 1): for unet-ref src/bench/unet_ref_torch.py; for --net sipl the PyTorch twin of the SIPL network (src/bench/sipl_twin.py) on the same weights and labelled batch, after checking that the twin and sipl agree on them (twinMaxRelErr), plus its sliding-window pass over the same windows. With --net sipl, cpu rows also count the tfjs kernel executions of one step (kernelCalls). --rounds R repeats the timed runs R times, sipl's backends and PyTorch taking turns, and pools them (every step time is in stepMs): on a machine other jobs share, the two sides then see the same load. PyTorch's process runs with glibc keeping the memory it frees (--torch-malloc retain: no page faults on reused activations; 'default' runs it untouched). Python: SIPL_PYTHON, default python3, with torch. Threads of the cpu kernels and of PyTorch: SIPL_THREADS (0 = one per core).`
  static override examples = [
    '<%= config.bin %> bench --size 32',
    '<%= config.bin %> bench --size 64 --backend cpu --steps 5 --json',
    '<%= config.bin %> bench --size 32 --kernels reference --infer-size 0   # the tfjs kernels sipl replaces',
    '<%= config.bin %> bench --net sipl --config experiments/demo.yaml --size 32 --backend cpu',
    'SIPL_PYTHON=~/venv/bin/python <%= config.bin %> bench --size 64 --backend cpu --infer-size 0 --torch',
    '<%= config.bin %> bench --net sipl -c experiments/demo.yaml --size 32 --backend cpu --no-check --torch --json',
    '<%= config.bin %> bench --net sipl -c experiments/demo.yaml --backend cpu --torch --rounds 3 --infer-size 96   # on a shared machine',
  ]
  static override flags = {
    net: Flags.string({description: 'network to time', options: [...NETS], default: 'unet-ref'}),
    size: Flags.integer({description: 'training patch edge n (input n³×1), a multiple of 4', default: 32, min: 4}),
    backend: Flags.string({
      description: 'backend(s) to time (repeatable); default: every one that starts',
      options: BACKEND_NAMES,
      multiple: true,
      helpValue: 'NAME',
    }),
    steps: Flags.integer({description: 'timed training steps (median and min are reported)', default: 5, min: 1}),
    warmup: Flags.integer({description: 'untimed training steps first', default: 1, min: 0}),
    rounds: Flags.integer({
      description:
        'repeat the timed runs this many times, sipl and PyTorch taking turns, and pool them (fair ratios on a machine other jobs share)',
      default: 1,
      min: 1,
    }),
    'infer-size': Flags.integer({description: 'edge of the volume for the sliding-window inference (0 = skip)', default: 192, min: 0}),
    'infer-batch': Flags.integer({description: 'windows per forward pass in the inference', default: 2, min: 1}),
    'infer-warmup': Flags.integer({
      description: 'untimed sliding-window passes before the timed one (each side): 1 times a process that has segmented a scan before',
      default: 0,
      min: 0,
    }),
    kernels: Flags.string({
      description: "cpu conv3d kernels: sipl's 'fast' ones or tfjs's 'reference' ones",
      options: ['fast', 'reference'],
      default: 'fast',
    }),
    check: Flags.boolean({
      description:
        'compare loss and gradient norms with the reference cpu kernels, and with --net sipl --torch the twin with sipl (--no-check skips both)',
      default: true,
      allowNo: true,
    }),
    seed: Flags.integer({description: 'seed of weights and data', default: 1}),
    torch: Flags.boolean({
      description:
        'also time the same network in PyTorch (unet-ref, or the SIPL twin for --net sipl; SIPL_PYTHON, default python3, with torch) and report ratios to it',
      default: false,
    }),
    'torch-malloc': Flags.string({
      description:
        "with --torch, how PyTorch's process gets memory: 'retain' (the default; glibc keeps what it frees: no page faults on reused activations, PyTorch at its steadiest) or 'default' (glibc as PyTorch usually runs); docs/kernels.md",
      options: [...TORCH_MALLOC],
    }),
    preprocess: Flags.boolean({
      description: 'also time preprocessing one 512×512×200 CT volume to 1.5 mm (src/bench/preprocess.ts), as an extra row',
      default: false,
    }),
    // --net sipl builds the network from an experiment config's model/smg/loss sections
    ...configFlags,
  }

  async run(): Promise<{rows: BenchRow[]; preprocess?: PreprocessBenchResult}> {
    const f = this.flags
    if (f['torch-malloc'] !== undefined && !f.torch)
      throw new UserError(`--torch-malloc ${f['torch-malloc']}: it sets how PyTorch runs; add --torch, or leave it out`)
    const config = f.net === 'sipl' ? this.loadConfig().config : undefined
    const factory = config ? siplNetFactory(config, f.size) : unetRefNet
    const log = f.quiet ? () => undefined : (line: string) => process.stderr.write(line + '\n')
    // PyTorch gets the Python of SIPL_PYTHON and the thread count of sipl's kernels
    const {python, threads} = environment()
    const rows = await runBenchRounds({
      net: f.net,
      factory,
      size: f.size,
      backends: (f.backend as BackendName[] | undefined) ?? BACKEND_NAMES,
      steps: f.steps,
      warmup: f.warmup,
      inferSize: f['infer-size'],
      inferBatch: f['infer-batch'],
      inferWarmup: f['infer-warmup'],
      check: f.check,
      kernels: f.kernels as 'fast' | 'reference',
      seed: f.seed,
      log,
      rounds: f.rounds,
      torch: f.torch
        ? {python, threads: threads || availableParallelism(), malloc: (f['torch-malloc'] ?? 'retain') as TorchMalloc}
        : undefined,
      config,
    })
    const cpu = cpuDescription()
    for (const row of rows) row.cpu = cpu
    const preprocess = f.preprocess ? await benchPreprocess({log}) : undefined
    if (!this.jsonEnabled()) {
      const header = [
        'net',
        'size',
        'backend',
        'step ms (median)',
        'step ms (min)',
        '× torch',
        'infer ms',
        '× torch (infer)',
        'kernel calls',
        'max rel err',
        'peak MiB',
        'notes',
      ]
      const lines = rows.map((r) => [
        r.net,
        `${r.size}³`,
        r.backend,
        r.stepMsMedian === null ? '–' : r.stepMsMedian.toFixed(0),
        r.stepMsMin === null ? '–' : r.stepMsMin.toFixed(0),
        r.vsTorch === undefined ? '–' : r.vsTorch.toFixed(2),
        r.inferMs === null ? '–' : `${r.inferMs.toFixed(0)} (${r.inferSize}³)`,
        r.inferVsTorch === undefined ? '–' : r.inferVsTorch.toFixed(2),
        r.kernelCalls === undefined ? '–' : `${r.kernelCalls}`,
        r.twinMaxRelErr !== undefined
          ? `${r.twinMaxRelErr.toExponential(1)} twin${r.twinAgrees ? '' : ' FAIL'}`
          : r.maxRelErr === null
            ? '–'
            : `${r.maxRelErr.toExponential(1)}${r.maxRelErr <= 1e-4 ? '' : ' FAIL'}`,
        r.peakTensorBytes === undefined ? '–' : (r.peakTensorBytes / 2 ** 20).toFixed(0),
        r.torch
          ? `torch ${r.torch}, ${r.threads} threads, malloc ${r.torchMalloc}`
          : r.kernels
            ? `${r.kernels} kernels${r.threads ? `, ${r.threads} threads, ${r.simd} SIMD` : ''}`
            : '',
      ])
      const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
      for (const l of [header, ...lines]) this.log(l.map((c, i) => c.padEnd(widths[i])).join('  '))
      this.log(`cpu: ${cpu}`)
      if (preprocess) {
        const t = preprocess.seconds
        this.log(
          `${preprocess.name}: ${t.endToEnd.toFixed(2)} s end to end (read ${t.read.toFixed(2)} s, reorient ${t.reorient.toFixed(2)} s, ` +
            `resample image ${t.resampleImage.toFixed(2)} s, labels ${t.resampleLabel.toFixed(2)} s)`,
        )
      }
    }
    return preprocess ? {rows, preprocess} : {rows}
  }
}
