/**
 * The entry of sipl's wasm kernels (scripts/build-wasm.mjs compiles it, with what it imports, to
 * build/kernels.simd.wasm and build/kernels.relaxed.wasm; src/kernels/cpu/runtime.ts loads one):
 * runJob, which every thread of the pool calls on the posted job, and the few functions the main
 * thread calls directly. Design and measurements: docs/kernels.md.
 */
import {
  J_KIND,
  J_SCRATCH,
  J_SCRATCH_STRIDE,
  KIND_ADAMW,
  KIND_BIAS_ACT_GRAD,
  KIND_CHANNEL_AFFINE,
  KIND_COLUMN_SUMS,
  KIND_DICE_CE,
  KIND_DICE_CE_GRAD,
  KIND_DIRECT_FORWARD,
  KIND_DIRECT_TRANSPOSED,
  KIND_FILTER_GRAD,
  KIND_FORWARD,
  KIND_GELU,
  KIND_INPUT_GRAD,
  KIND_LEAKY_RELU_GRAD,
  KIND_PRODUCT,
  KIND_RESIZE_PASS,
  KIND_SIGMOID,
  KIND_SUM_SLOTS,
  KIND_WINOGRAD_FILTER_GRAD,
  KIND_WINOGRAD_FILTER_GRAD_REDUCE,
  KIND_WINOGRAD_FORWARD,
  KIND_WINOGRAD_PACK_FILTER,
  LAYOUT_CHECKSUM,
  sumSlots,
  word,
} from './job'
import {convDirect, convDirectTransposed, convFilterGrad, convForward, convInputGrad} from './conv3d'
import {winogradFilterGrad, winogradFilterGradReduce, winogradForward, winogradPackFilter} from './winograd'
import {biasActGrad} from './bias-act'
import {diceCe, diceCeGrad} from './dice-ce'
import {gelu, leakyReluGrad, sigmoid} from './activations'
import {resizePass} from './resize'
import {adamw} from './adamw'
import {channelAffine, columnSums} from './channels'
import {product} from './gemm'

export {gemm, packPanels} from './gemm'
export {packFilter, packFilterTransposed, padVolume, transposeFilterGrad} from './conv3d'
export {concatChannels, splitChannels} from './channels'

/** The checksum of the job layout this module was built with; the runtime refuses a module whose checksum is not its own. */
export function layoutChecksum(): u32 {
  return LAYOUT_CHECKSUM
}

/** Runs thread `t`'s share of the job at `job`. Every thread of the pool calls this with the same job. */
export function runJob(job: usize, t: i32): void {
  const scratch = <usize>word(job, J_SCRATCH) + <usize>t * <usize>word(job, J_SCRATCH_STRIDE)
  switch (word(job, J_KIND)) {
    case KIND_FORWARD:
      convForward(job, scratch)
      break
    case KIND_FILTER_GRAD:
      convFilterGrad(job, scratch)
      break
    case KIND_INPUT_GRAD:
      convInputGrad(job, scratch)
      break
    case KIND_WINOGRAD_FORWARD:
      winogradForward(job, scratch)
      break
    case KIND_WINOGRAD_FILTER_GRAD:
      winogradFilterGrad(job, scratch)
      break
    case KIND_WINOGRAD_PACK_FILTER:
      winogradPackFilter(job, scratch)
      break
    case KIND_WINOGRAD_FILTER_GRAD_REDUCE:
      winogradFilterGradReduce(job, scratch)
      break
    case KIND_SUM_SLOTS:
      sumSlots(job)
      break
    case KIND_BIAS_ACT_GRAD:
      biasActGrad(job)
      break
    case KIND_DICE_CE:
      diceCe(job, scratch)
      break
    case KIND_DICE_CE_GRAD:
      diceCeGrad(job, scratch)
      break
    case KIND_ADAMW:
      adamw(job)
      break
    case KIND_COLUMN_SUMS:
      columnSums(job)
      break
    case KIND_CHANNEL_AFFINE:
      channelAffine(job)
      break
    case KIND_LEAKY_RELU_GRAD:
      leakyReluGrad(job)
      break
    case KIND_SIGMOID:
      sigmoid(job)
      break
    case KIND_GELU:
      gelu(job)
      break
    case KIND_RESIZE_PASS:
      resizePass(job)
      break
    case KIND_PRODUCT:
      product(job, scratch)
      break
    case KIND_DIRECT_FORWARD:
      convDirect(job)
      break
    case KIND_DIRECT_TRANSPOSED:
      convDirectTransposed(job)
      break
    default:
      // a kind this module does not know: trap (the caller throws) rather than return having done nothing
      unreachable()
  }
}
