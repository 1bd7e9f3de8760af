/**
 * `sipl bench`: times one training step (forward + backward + Adam, batch 1) and one
 * sliding-window inference of a whole volume, per backend, and checks that every backend's loss
 * and gradient norms agree with tfjs's reference `cpu` kernels (issue 7). The figures to beat are
 * PyTorch's, measured for unet-ref in issue 7 on a 2-core CPU: 140 ms (32³) and 490 ms (64³)
 * median per step. docs/kernels.md has the method and the results.
 */
import type {BackendName} from '../backend/names.js'
import {probeBackend} from '../backend/select.js'
import {tf} from '../backend/tf.js'
import {slidingWindowLabels} from '../evaluate/sliding-window.js'
import {modelPredictor} from '../evaluate/predict.js'
import {activeCpuKernels, useCpuKernels, type CpuKernelSet} from '../kernels/register.js'
import {existingRuntime} from '../kernels/cpu/runtime.js'
import {UserError} from '../errors.js'
import {median} from '../util/median.js'
import {Rng} from '../util/rng.js'
import {AdamW, type Optimizer} from '../train/optimizers.js'
import {UnetRef, unetRefBatch, unetRefLoss, UNET_REF_CLASSES} from '../model/unet-ref.js'

export interface BenchRow {
  net: string
  size: number
  backend: string
  /** null when the backend failed the agreement check (its timings would be of a wrong computation) */
  stepMsMedian: number | null
  stepMsMin: number | null
  /** one sliding-window inference of an inferSize³ volume (after inferWarmup untimed ones); null when skipped */
  inferMs: number | null
  /** max relative difference of the loss and of every gradient norm vs the reference cpu kernels; null when not checked */
  maxRelErr: number | null
  inferSize: number
  /** untimed sliding-window passes of the same volume before the timed one (0: the process's first) */
  inferWarmup?: number
  steps: number
  /** every timed step, in ms, in the order run (all rounds) */
  stepMs?: number[]
  /** with --rounds: the timed runs this row merges (sipl and PyTorch alternating), and each run's inference time */
  rounds?: number
  inferMsRounds?: number[]
  /** cpu only: which conv3d kernels ran ('fast' = sipl's wasm kernels, 'reference' = tfjs's) */
  kernels?: CpuKernelSet
  /** cpu only: threads of the kernel pool, and whether its GEMM used relaxed SIMD */
  threads?: number
  simd?: string
  /**
   * cpu, with a warm-up step: the most bytes held by tensors at once during that step (tfjs's
   * own accounting, parameters and optimizer state included). The same tensors are alive on every
   * backend, so this says whether a config's patch fits a GPU's memory before going there.
   */
  peakTensorBytes?: number
  /** with --torch: this row's median step time ÷ PyTorch's, measured in the same run */
  vsTorch?: number
  /** with --torch: this row's sliding-window inference time ÷ PyTorch's on the same windows */
  inferVsTorch?: number
  /** the pytorch row: torch's version */
  torch?: string
  /** the pytorch row: how its process got memory (src/bench/torch.ts TorchMalloc) */
  torchMalloc?: 'retain' | 'default'
  /** cpu, with a warm-up step: tfjs kernel executions in one training step */
  kernelCalls?: number
  /** --net sipl --torch: largest max |sipl − twin| / max |twin| over every compared quantity (src/bench/sipl_twin.py) */
  twinMaxRelErr?: number
  /** and whether each quantity met its bound (1e-4, or the twin's own spread under rounding-level noise) */
  twinAgrees?: boolean
  /** the machine: lscpu's model name and the vector extensions that matter for the kernels */
  cpu?: string
}

/** What a benchmarked network provides: its training batch and loss, and class probabilities for inference. */
export interface BenchNet {
  classes: number
  channels: number
  variables(): tf.Variable[]
  /** the batch a training step sees: input `[B, n, n, n, C]` and the loss's target */
  batch(size: number, seed: number): {x: tf.Tensor5D; target: tf.Tensor}
  loss(x: tf.Tensor5D, target: tf.Tensor): tf.Scalar
  probabilities(x: tf.Tensor5D): tf.Tensor5D
  /** the optimiser a training step uses */
  optimizer(): Optimizer
  /**
   * what the check against tfjs's reference kernels compares besides the loss: every variable's
   * gradient norm, or only the norm of all gradients together (for a net where some variables'
   * gradients are too ill-conditioned for 1e-4 in float32 — the SIPL net, docs/model.md)
   */
  gradientCheck: 'each' | 'global'
  dispose(): void
}

export type NetFactory = (seed: number) => BenchNet

export function unetRefNet(seed: number): BenchNet {
  const net = new UnetRef(seed)
  return {
    classes: UNET_REF_CLASSES,
    channels: 1,
    variables: () => net.variables(),
    batch: (size, batchSeed) => {
      const {x, oneHot} = unetRefBatch(size, batchSeed)
      return {x, target: oneHot}
    },
    loss: (x, oneHot) => unetRefLoss(net.apply(x), oneHot as tf.Tensor5D),
    probabilities: (x) => tf.softmax(net.apply(x)) as tf.Tensor5D,
    // weight decay 0 makes it Adam (PyTorch's eps 1e-8), as src/bench/unet_ref_torch.py
    optimizer: () => new AdamW(0.9, 0.999, 0),
    gradientCheck: 'each',
    dispose: () => net.dispose(),
  }
}

export interface BenchOptions {
  net: string
  factory: NetFactory
  size: number
  backends: BackendName[]
  steps: number
  warmup: number
  inferSize: number
  inferBatch: number
  /** untimed sliding-window passes before the timed one: ≥ 1 times a process that has segmented a scan before (`sipl eval` over a test set) */
  inferWarmup: number
  check: boolean
  /** profile the first warm-up step on cpu (kernelCalls, peakTensorBytes); default true */
  profile?: boolean
  kernels: CpuKernelSet
  seed: number
  log: (line: string) => void
}

/** loss and gradient norms must agree with the reference cpu kernels this closely (issue 7) */
export const AGREEMENT = 1e-4

/** loss and the L2 norm of every variable's gradient at the initial weights (read asynchronously: webgpu in Node cannot dataSync) */
async function lossAndGradNorms(net: BenchNet, x: tf.Tensor5D, target: tf.Tensor): Promise<number[]> {
  const all = tf.tidy(() => {
    const {value, grads} = tf.variableGrads(() => net.loss(x, target), net.variables())
    const norms = net.variables().map((v) => tf.norm(grads[v.name]))
    return tf.stack([value, ...(net.gradientCheck === 'each' ? norms : [tf.norm(tf.stack(norms))])])
  })
  const values = Array.from(await all.data())
  all.dispose()
  return values
}

function maxRelativeError(actual: number[], expected: number[]): number {
  return Math.max(...expected.map((e, i) => Math.abs(actual[i] - e) / Math.max(Math.abs(e), 1e-30)))
}

async function inferenceMs(net: BenchNet, options: BenchOptions): Promise<number> {
  const n = options.inferSize
  const rng = new Rng(options.seed + 7)
  const image = new Float32Array(n * n * n * net.channels)
  for (let i = 0; i < image.length; i++) image[i] = rng.next()
  const patch = Math.min(options.size, n)
  // the label map, as `sipl eval` and `sipl predict` make it (and the twin: the argmax of its sums)
  const pass = () =>
    slidingWindowLabels(
      {image, shape: [n, n, n], channels: net.channels},
      modelPredictor((x) => net.probabilities(x), [patch, patch, patch], net.channels),
      {
        patch: [patch, patch, patch],
        numClasses: net.classes,
        overlap: 0.5,
        sigmaScale: 1 / 8,
        mirrorAxes: [],
        batchSize: options.inferBatch,
        threshold: 0.5,
        overlappingRegions: false,
      },
    )
  for (let i = 0; i < options.inferWarmup; i++) await pass()
  const start = performance.now()
  await pass()
  return performance.now() - start
}

export async function runBench(options: BenchOptions): Promise<BenchRow[]> {
  const {size, log} = options
  if (size % 4 !== 0 || size < 4) throw new UserError(`--size ${size}: must be a positive multiple of 4 (the net downsamples twice)`)
  if (options.inferSize > 0 && options.inferSize < size)
    throw new UserError(`--infer-size ${options.inferSize}: must be ≥ --size ${size} (or 0 to skip)`)
  let expected: number[] | undefined
  if (options.check) {
    const ok = await tf.setBackend('cpu')
    if (!ok) throw new Error('the cpu backend does not start')
    log(`reference: loss and gradient norms with tfjs's own cpu kernels at ${size}³ (slow: ~8 s at 32³, ~90 s at 64³)`)
    const net = options.factory(options.seed)
    const {x, target} = net.batch(size, options.seed)
    const previous = activeCpuKernels()
    useCpuKernels('reference')
    try {
      expected = await lossAndGradNorms(net, x, target)
    } finally {
      useCpuKernels(previous)
      tf.dispose([x, target])
      net.dispose()
    }
  }
  const rows: BenchRow[] = []
  for (const backend of options.backends) {
    try {
      const row = await benchBackend(backend, options, expected)
      if (row) rows.push(row)
    } catch (error) {
      if (error instanceof UserError) throw error
      // one backend that breaks (a driver, a missing browser API) must not hide the others' rows
      log(`${backend}: failed: ${(error as Error).message.split('\n')[0]}`)
    }
  }
  return rows
}

async function benchBackend(backend: BackendName, options: BenchOptions, expected: number[] | undefined): Promise<BenchRow | undefined> {
  const {size, log} = options
  const probe = await probeBackend(backend, false)
  if (!probe.loadable) {
    log(`${backend}: skipped (${probe.detail})`)
    return undefined
  }
  // what loaded, and for webgpu what Dawn said while it loaded (held off the terminal): one line
  if (backend === 'webgpu') log(`${backend}: ${probe.detail}`)
  await tf.setBackend(backend)
  if (backend === 'cpu') useCpuKernels(options.kernels)
  const net = options.factory(options.seed)
  const {x, target} = net.batch(size, options.seed)
  try {
    let maxRelErr: number | null = null
    if (expected) {
      maxRelErr = maxRelativeError(await lossAndGradNorms(net, x, target), expected)
      log(`${backend}: loss and gradient norms vs reference cpu kernels: max relative error ${maxRelErr.toExponential(2)}`)
    }
    const row: BenchRow = {
      net: options.net,
      size,
      backend,
      stepMsMedian: null,
      stepMsMin: null,
      inferMs: null,
      maxRelErr,
      inferSize: options.inferSize,
      inferWarmup: options.inferWarmup,
      steps: 0,
    }
    if (maxRelErr !== null && !(maxRelErr <= AGREEMENT)) {
      log(`${backend}: not timed: it disagrees with the reference cpu kernels beyond ${AGREEMENT}`)
      return row
    }
    const optimizer = net.optimizer()
    const variables = new Map(net.variables().map((v) => [v.name, v]))
    const times: number[] = []
    try {
      const step = async () => {
        const {value, grads} = tf.variableGrads(() => net.loss(x, target), net.variables())
        optimizer.step(variables, new Map(Object.entries(grads)), 1e-3)
        await value.data()
        tf.dispose([value, ...Object.values(grads)])
      }
      for (let i = 0; i < options.warmup + options.steps; i++) {
        const start = performance.now()
        // the first warm-up step is profiled: it is not timed, and on cpu profiling costs little
        if (i === 0 && options.warmup > 0 && backend === 'cpu' && options.profile !== false) {
          const profile = await tf.profile(step)
          row.peakTensorBytes = profile.peakBytes
          row.kernelCalls = profile.kernels.length
        } else await step()
        const ms = performance.now() - start
        if (i >= options.warmup) times.push(ms)
        log(`${backend}: ${i < options.warmup ? 'warm-up' : 'step'} ${i + 1} ${ms.toFixed(0)} ms`)
      }
    } finally {
      optimizer.dispose()
    }
    row.stepMsMedian = median(times)
    row.stepMsMin = Math.min(...times)
    row.steps = options.steps
    row.stepMs = times
    if (options.inferSize > 0) {
      row.inferMs = await inferenceMs(net, options)
      log(`${backend}: sliding-window inference of ${options.inferSize}³ ${row.inferMs.toFixed(0)} ms`)
    }
    if (backend === 'cpu') {
      row.kernels = activeCpuKernels()
      const rt = existingRuntime()
      if (rt && row.kernels === 'fast') {
        row.threads = rt.info.threads
        row.simd = rt.info.simd
      }
    }
    return row
  } finally {
    tf.dispose([x, target])
    net.dispose()
  }
}
