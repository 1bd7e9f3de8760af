/**
 * Two tfjs-backend-webgpu 4.22 failures on rank-5 (NDHWC) tensors, fixed by wrapping the stock
 * kernels so that they see shapes they handle (docs/gpu.md, "Known traps"):
 *
 * 1. A binary op between a rank-5 tensor and a rank-1 tensor of < 128 elements (the usual conv
 *    bias) picks BinaryOpProgram's shared-memory variant, whose WGSL indexes the rank-5 coords
 *    struct (`coords[4]` on `vec5`): the shader does not compile, Dawn drops the whole command
 *    buffer and the result is silently all zeros (NaN losses downstream). Fix: give the rank-1
 *    operand the other's rank, [1, 1, 1, 1, C] — the same broadcast, the plain program.
 * 2. `Select` (tf.where) throws "Where for rank 5 is not yet supported" — also from the gradient
 *    of tf.leakyRelu. Fix: run it on flattened views and give the result its shape back.
 *
 * Only shapes change, never data: the views share the inputs' buffers.
 */
import {tf} from '../../backend/tf.js'

type TensorInfo = {dataId: object; shape: number[]; dtype: string}
interface KernelArgs {
  inputs: Record<string, TensorInfo>
  backend: unknown
  attrs?: Record<string, unknown>
}
type KernelFunc = (args: KernelArgs) => TensorInfo | TensorInfo[]

/** the kernels built on tfjs-backend-webgpu's binaryKernelFunc (kernels/*.js that use it) */
export const BINARY_KERNELS = [
  'Add',
  'Atan2',
  'Equal',
  'FloorDiv',
  'Greater',
  'GreaterEqual',
  'Less',
  'LessEqual',
  'LogicalAnd',
  'LogicalOr',
  'Maximum',
  'Minimum',
  'Mod',
  'Multiply',
  'NotEqual',
  'Pow',
  'RealDiv',
  'SquaredDifference',
  'Sub',
] as const

const view = (t: TensorInfo, shape: number[]): TensorInfo => ({dataId: t.dataId, shape, dtype: t.dtype})

/** [C] → [1, …, 1, C] of the given rank */
const lift = (t: TensorInfo, rank: number): TensorInfo => view(t, [...Array(rank - 1).fill(1), t.shape[0]])

export function binaryRank5Fix(stock: KernelFunc): KernelFunc {
  return (args) => {
    const {a, b} = args.inputs
    if (a.shape.length === 1 && b.shape.length >= 5) return stock({...args, inputs: {a: lift(a, b.shape.length), b}})
    if (b.shape.length === 1 && a.shape.length >= 5) return stock({...args, inputs: {a, b: lift(b, a.shape.length)}})
    return stock(args)
  }
}

export function selectRank5Fix(stock: KernelFunc): KernelFunc {
  return (args) => {
    const {condition, t, e} = args.inputs
    if (t.shape.length < 5) return stock(args)
    const size = t.shape.reduce((x, y) => x * y, 1)
    // a rank-1 condition picks whole rows along the first axis; otherwise it has t's shape
    const rows = condition.shape.length === 1
    const shape = rows ? [t.shape[0], size / t.shape[0]] : [size]
    const out = stock({...args, inputs: {condition: rows ? condition : view(condition, shape), t: view(t, shape), e: view(e, shape)}})
    return view(out as TensorInfo, t.shape)
  }
}

const installed = new Set<string>()

/** Wraps the stock webgpu kernels once; false when the webgpu kernels are not registered yet. */
export function installRank5Fixes(): boolean {
  const wraps: [string, (k: KernelFunc) => KernelFunc][] = [
    ...BINARY_KERNELS.map((n) => [n, binaryRank5Fix] as [string, typeof binaryRank5Fix]),
    ['Select', selectRank5Fix],
  ]
  if (!tf.getKernel('Select', 'webgpu')) return false
  for (const [name, wrap] of wraps) {
    if (installed.has(name)) continue
    const config = tf.getKernel(name, 'webgpu')
    if (!config) continue
    tf.unregisterKernel(name, 'webgpu')
    tf.registerKernel({...config, kernelFunc: wrap(config.kernelFunc as unknown as KernelFunc) as unknown as tf.KernelFunc})
    installed.add(name)
  }
  return true
}
