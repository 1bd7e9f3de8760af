/**
 * sipl's kernels for tfjs's `cpu` backend: the wasm-SIMD, multi-threaded Conv3D /
 * Conv3DBackpropFilterV2 / Conv3DBackpropInputV2 of ./cpu (issue 7, docs/kernels.md), the Slice /
 * SplitV / Sum / Softmax / element-wise kernels that dominated a training step after that as plain
 * typed-array loops (./cpu/elementwise.ts), and the fused Sipl* kernels of ./fused.ts. Nothing
 * happens on import: installCpuKernels() (called by selectBackend and probeBackend in
 * src/backend/select.ts) registers them and switches the `cpu` backend to them. tfjs's reference
 * kernels are kept: they are the oracle of the tests and `sipl bench --kernels reference` times them.
 */
import {tf} from '../backend/tf.js'
import {
  conv3dBiasActGradKernel,
  conv3dBackpropFilterKernel,
  conv3dBackpropInputKernel,
  conv3dBiasActKernel,
  conv3dKernel,
  conv3dTransposeBiasGradKernel,
  conv3dTransposeBiasKernel,
} from './cpu/conv3d.js'
import {wasmBuilt} from './cpu/runtime.js'
import {
  BINARY_OPS,
  UNARY_OPS,
  fastBinary,
  fastConcat,
  fastOneHot,
  fastSelect,
  fastSlice,
  fastSoftmax,
  fastSplitV,
  fastSum,
  fastUnary,
  type CpuKernel,
} from './cpu/elementwise.js'
import {fastBatchMatMul, prototypeSigmoidKernel} from './cpu/matmul.js'
import {adamwGroupKernel} from './cpu/optimizer.js'
import {diceCeGradKernel, diceCeKernel} from './cpu/dice-ce.js'
import {groupNormGradKernel, groupNormKernel} from './cpu/group-norm.js'
import {fullResolutionProbabilitiesKernel} from './cpu/full-resolution.js'
import {kmaxLayerGradKernel, kmaxLayerKernel} from './cpu/kmax.js'
import {resizeTrilinearGradKernel, resizeTrilinearKernel} from './cpu/resize.js'
import {leakyReluGradKernel, sigmoidKernel} from './cpu/activations.js'

export type CpuKernelSet = 'fast' | 'reference'

type KernelFactory = (reference: CpuKernel) => CpuKernel
const conv =
  (kernel: CpuKernel): KernelFactory =>
  () =>
    kernel

/** fast kernel per name, built around the reference one it falls back to */
const FAST: Record<string, KernelFactory> = {
  Conv3D: conv(conv3dKernel),
  Conv3DBackpropFilterV2: conv(conv3dBackpropFilterKernel),
  Conv3DBackpropInputV2: conv(conv3dBackpropInputKernel),
  Slice: fastSlice,
  SplitV: fastSplitV,
  Sum: fastSum,
  Softmax: fastSoftmax,
  Select: fastSelect,
  Concat: fastConcat,
  OneHot: fastOneHot,
  BatchMatMul: fastBatchMatMul,
  ...Object.fromEntries(
    Object.entries(UNARY_OPS).map(([name, formula]) => [name, (reference: CpuKernel) => fastUnary(reference, formula)]),
  ),
  ...Object.fromEntries(Object.entries(BINARY_OPS).map(([name, op]) => [name, (reference: CpuKernel) => fastBinary(reference, op)])),
}
export const REPLACED_KERNELS = Object.keys(FAST)

/** tfjs's own cpu kernels of REPLACED_KERNELS, taken before the first replacement */
const reference = new Map<string, tf.KernelConfig>()
function keepReferenceKernels(): void {
  if (reference.size > 0) return
  for (const name of REPLACED_KERNELS) {
    const config = tf.getKernel(name, 'cpu')
    if (config) reference.set(name, config)
  }
}

let active: CpuKernelSet = 'reference'

/** Which kernel set the `cpu` backend runs now: sipl's (conv3d and ~35 others) or tfjs's reference ones. */
export function activeCpuKernels(): CpuKernelSet {
  return active
}

/** Why the fast kernels are not available, or undefined when they are. */
export function fastKernelsUnavailable(): string | undefined {
  keepReferenceKernels()
  if (!wasmBuilt()) return "build/kernels.*.wasm is missing (run 'npm run build')"
  if (reference.size !== REPLACED_KERNELS.length) return 'the cpu backend has no reference conv3d kernels to replace'
  return undefined
}

/** Switches the `cpu` backend between the fast kernels and tfjs's reference ones. */
export function useCpuKernels(which: CpuKernelSet): void {
  if (which === active) return
  keepReferenceKernels()
  if (which === 'fast') {
    const why = fastKernelsUnavailable()
    if (why) throw new Error(`fast conv3d kernels unavailable: ${why}`)
    registerFusedKernels()
  }
  for (const name of REPLACED_KERNELS) {
    tf.unregisterKernel(name, 'cpu')
    const ref = reference.get(name)!.kernelFunc
    const kernelFunc = (which === 'fast' ? FAST[name](ref as unknown as CpuKernel) : ref) as unknown as tf.KernelFunc
    tf.registerKernel({kernelName: name, backendName: 'cpu', kernelFunc})
  }
  active = which
}

/** Runs `fn` with tfjs's reference kernels on `cpu`, then restores the previous choice. */
export function withReferenceCpuKernels<T>(fn: () => T): T {
  const previous = active
  useCpuKernels('reference')
  try {
    return fn()
  } finally {
    useCpuKernels(previous)
  }
}

/** the fused kernels' names (src/kernels/fused.ts calls them, only while the fast kernels are active) and their `cpu` kernels */
const FUSED_CPU_KERNELS: [string, unknown][] = [
  ['SiplConv3DBiasAct', conv3dBiasActKernel],
  ['SiplConv3DBiasActGrad', conv3dBiasActGradKernel],
  ['SiplConv3DTransposeBias', conv3dTransposeBiasKernel],
  ['SiplConv3DTransposeBiasGrad', conv3dTransposeBiasGradKernel],
  ['SiplAdamWGroup', adamwGroupKernel],
  ['SiplDiceCe', diceCeKernel],
  ['SiplDiceCeGrad', diceCeGradKernel],
  ['SiplFullResolutionProbabilities', fullResolutionProbabilitiesKernel],
  ['SiplGroupNorm', groupNormKernel],
  ['SiplGroupNormGrad', groupNormGradKernel],
  ['SiplKmaxLayer', kmaxLayerKernel],
  ['SiplKmaxLayerGrad', kmaxLayerGradKernel],
  ['SiplLeakyReluGrad', leakyReluGradKernel],
  ['SiplSigmoid', sigmoidKernel],
  ['SiplPrototypeSigmoid', prototypeSigmoidKernel],
  ['SiplResizeTrilinear', resizeTrilinearKernel],
  ['SiplResizeTrilinearGrad', resizeTrilinearGradKernel],
]

let fusedRegistered = false
function registerFusedKernels(): void {
  if (fusedRegistered) return
  fusedRegistered = true
  for (const [kernelName, kernelFunc] of FUSED_CPU_KERNELS)
    tf.registerKernel({kernelName, backendName: 'cpu', kernelFunc: kernelFunc as tf.KernelFunc})
}

let installed = false

/**
 * Registers sipl's kernels on the `cpu` backend and, when build/kernels.*.wasm exist, switches it to
 * them. Idempotent: a later call keeps whatever useCpuKernels chose since.
 */
export function installCpuKernels(): void {
  if (installed) return
  installed = true
  keepReferenceKernels()
  registerFusedKernels()
  if (fastKernelsUnavailable() === undefined) useCpuKernels('fast')
}
