/**
 * Registers sipl's tiled WGSL kernels for Conv3D, Conv3DBackpropInputV2 and
 * Conv3DBackpropFilterV2 on the `webgpu` backend, in place of tfjs-backend-webgpu 4.22's naive
 * ones (programs.ts says how they work). The stock kernel functions are kept: cases the tiled
 * programs do not cover (dilation ≠ 1, non-float32) go to them, and `setWebgpuConv3dKernels('stock')`
 * switches back wholesale, which is what the benchmark compares against.
 *
 * Call `installWebgpuConv3dKernels()` after '@tensorflow/tfjs-backend-webgpu' has been imported:
 * importing it registers the stock kernels and would overwrite ours.
 */
import {tf} from '../../backend/tf.js'
import {
  Conv3DBackpropFilterTiledProgram,
  Conv3DBackpropInputTiledProgram,
  Conv3DTiledProgram,
  SumPartialsProgram,
  parityClasses,
  type ConvGeometry,
  type WebGPUProgramLike,
} from './programs.js'

type TensorInfo = {dataId: object; shape: number[]; dtype: string}
type Uniform = {type: 'int32'; data: number[]}

/** what the kernels use of tfjs-backend-webgpu's WebGPUBackend */
interface WebGPUBackendLike {
  runWebGPUProgram(program: WebGPUProgramLike, inputs: TensorInfo[], dtype: string, uniforms?: Uniform[], output?: TensorInfo): TensorInfo
  makeTensorInfo(shape: number[], dtype: string): TensorInfo
  disposeData(dataId: object): boolean
}

interface KernelArgs {
  inputs: Record<string, TensorInfo>
  backend: WebGPUBackendLike
  attrs: Record<string, unknown>
}
type KernelFunc = (args: KernelArgs) => TensorInfo

export const CONV3D_KERNELS = ['Conv3D', 'Conv3DBackpropInputV2', 'Conv3DBackpropFilterV2'] as const
type Conv3dKernelName = (typeof CONV3D_KERNELS)[number]

export type WebgpuConv3dKernels = 'tiled' | 'stock'

const stock = new Map<Conv3dKernelName, KernelFunc>()
let mode: WebgpuConv3dKernels = 'tiled'

type Triple = [number, number, number]
type Shape5 = [number, number, number, number, number]

function geometry(xShape: Shape5, filterShape: Shape5, strides: unknown, pad: unknown, dilations: unknown): ConvGeometry | undefined {
  const info = tf.backend_util.computeConv3DInfo(
    xShape,
    filterShape,
    strides as Triple,
    (dilations ?? 1) as Triple,
    pad as 'valid' | 'same',
  )
  if (info.dilationDepth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined
  return {
    batch: info.batchSize,
    inD: info.inDepth,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outD: info.outDepth,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kD: info.filterDepth,
    kH: info.filterHeight,
    kW: info.filterWidth,
    sD: info.strideDepth,
    sH: info.strideHeight,
    sW: info.strideWidth,
    padD: info.padInfo.front,
    padH: info.padInfo.top,
    padW: info.padInfo.left,
  }
}

const float32 = (...ts: TensorInfo[]) => ts.every((t) => t.dtype === 'float32')

function conv3d(args: KernelArgs): TensorInfo {
  const {x, filter} = args.inputs
  const {strides, pad, dilations} = args.attrs
  const g =
    mode === 'tiled' && float32(x, filter) ? geometry(x.shape as Shape5, filter.shape as Shape5, strides, pad, dilations) : undefined
  if (!g) return stock.get('Conv3D')!(args)
  const program = new Conv3DTiledProgram(g)
  return args.backend.runWebGPUProgram(program, [x, filter], 'float32', program.uniformData())
}

function conv3dBackpropInput(args: KernelArgs): TensorInfo {
  const {dy, filter} = args.inputs
  const {strides, pad, inputShape} = args.attrs
  const g = mode === 'tiled' && float32(dy, filter) ? geometry(inputShape as Shape5, filter.shape as Shape5, strides, pad, 1) : undefined
  if (!g) return stock.get('Conv3DBackpropInputV2')!(args)
  const backend = args.backend
  const output = backend.makeTensorInfo([g.batch, g.inD, g.inH, g.inW, g.inC], 'float32')
  // one run per stride-parity class, each writing its own voxels of the shared output
  for (const c of parityClasses(g)) {
    const program = new Conv3DBackpropInputTiledProgram(g, c)
    if (program.classSize === 0) continue
    backend.runWebGPUProgram(program, [dy, filter], 'float32', program.uniformData(), output)
  }
  return output
}

function conv3dBackpropFilter(args: KernelArgs): TensorInfo {
  const {x, dy} = args.inputs
  const {strides, pad, filterShape} = args.attrs
  const g = mode === 'tiled' && float32(x, dy) ? geometry(x.shape as Shape5, filterShape as Shape5, strides, pad, 1) : undefined
  if (!g) return stock.get('Conv3DBackpropFilterV2')!(args)
  const backend = args.backend
  const program = new Conv3DBackpropFilterTiledProgram(g)
  const partials = backend.runWebGPUProgram(program, [x, dy], 'float32', program.uniformData())
  if (program.splits === 1) return partials
  const sum = new SumPartialsProgram(filterShape as number[], program.splits)
  const result = backend.runWebGPUProgram(sum, [partials], 'float32', sum.uniformData())
  backend.disposeData(partials.dataId)
  return result
}

const TILED: Record<Conv3dKernelName, KernelFunc> = {
  Conv3D: conv3d,
  Conv3DBackpropInputV2: conv3dBackpropInput,
  Conv3DBackpropFilterV2: conv3dBackpropFilter,
}

/**
 * Puts the tiled kernels in place of the stock ones (idempotent). Returns false when the webgpu
 * backend's kernels are not registered yet (its package not imported).
 */
export function installWebgpuConv3dKernels(): boolean {
  if (stock.size === CONV3D_KERNELS.length) return true
  for (const name of CONV3D_KERNELS) {
    const config = tf.getKernel(name, 'webgpu')
    if (!config) return false
    stock.set(name, config.kernelFunc as unknown as KernelFunc)
  }
  for (const name of CONV3D_KERNELS) {
    tf.unregisterKernel(name, 'webgpu')
    tf.registerKernel({kernelName: name, backendName: 'webgpu', kernelFunc: TILED[name] as unknown as tf.KernelFunc})
  }
  return true
}

/** Chooses sipl's tiled kernels (default) or tfjs's stock ones; takes effect from the next op. */
export function setWebgpuConv3dKernels(kind: WebgpuConv3dKernels): void {
  mode = kind
}

export function webgpuConv3dKernels(): WebgpuConv3dKernels {
  return stock.size === CONV3D_KERNELS.length ? mode : 'stock'
}
