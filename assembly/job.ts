/**
 * The job descriptor shared by every kernel of the module: i32 words (index × 4 = byte offset
 * from the job address), mirrored in src/kernels/cpu/job.ts; change both together.
 */

export const J_KIND: usize = 0
export const J_COUNTER: usize = 1
export const J_CHUNKS: usize = 2
export const J_ROWS_PER_CHUNK: usize = 3
export const J_BATCH: usize = 4
export const J_IN_D: usize = 5
export const J_IN_H: usize = 6
export const J_IN_W: usize = 7
export const J_CIN: usize = 8
export const J_OUT_D: usize = 9
export const J_OUT_H: usize = 10
export const J_OUT_W: usize = 11
export const J_COUT: usize = 12
export const J_K_D: usize = 13
export const J_K_H: usize = 14
export const J_K_W: usize = 15
export const J_S_D: usize = 16
export const J_S_H: usize = 17
export const J_S_W: usize = 18
export const J_DIL_D: usize = 19
export const J_DIL_H: usize = 20
export const J_DIL_W: usize = 21
export const J_PAD_F: usize = 22
export const J_PAD_T: usize = 23
export const J_PAD_L: usize = 24
export const J_K: usize = 25
export const J_KP: usize = 26
export const J_X: usize = 27 // forward / filter grad: input x; input grad: unused
export const J_W: usize = 28 // packed filter panels (forward, input grad)
export const J_DY: usize = 29 // output y (forward) or dy (gradients)
export const J_SCRATCH: usize = 30 // per-thread scratch base
export const J_SCRATCH_STRIDE: usize = 31
export const J_ACC: usize = 32 // filter grad: the slot accumulators
export const J_ACC_STRIDE: usize = 33
export const J_ACC_LEN: usize = 34 // floats per accumulator
export const J_ACC0: usize = 35 // input grad: dx, zeroed by the caller, that every thread scatters into
export const J_BIAS: usize = 37 // forward: bias [Cout] added to y, or 0
export const J_RELU: usize = 38 // forward: 1 = y = max(y, 0) after the bias
export const J_CHUNK_FIRST: usize = 40 // job chunk k is chunk FIRST + k·STEP of the row partition (input grad phases)
export const J_CHUNK_STEP: usize = 41 // 0 = 1
export const J_SUB_ROWS: usize = 42 // rows per GEMM inside a chunk (the L2-sized block); 0 = the whole chunk
export const J_SLOTS: usize = 43 // filter grad: accumulators, each summing chunks s, s + SLOTS, … in order
export const J_TILES_D: usize = 44 // Winograd: 2×2×2 output tiles along depth (per sample)
export const J_TILES_H: usize = 45
export const J_TILES_W: usize = 46
export const J_ROWS: usize = 48 // bias/ReLU backward: rows of dz
export const J_V_OFFSET: usize = 47 // Winograd: bytes from a thread's scratch to its V block (after 256 edge bytes and one 4³ window of all channels)
export const J_SIGMOID: usize = 49 // Dice + CE: 1 = sigmoid per channel, 0 = softmax over the channels
export const J_SQUARED: usize = 50 // Dice + CE: 1 = Σp² + Σy² in the Dice denominator, 0 = Σp + Σy

export const KIND_FORWARD = 1
export const KIND_FILTER_GRAD = 2
export const KIND_INPUT_GRAD = 3
export const KIND_WINOGRAD_FORWARD = 4
export const KIND_WINOGRAD_FILTER_GRAD = 5
export const KIND_BIAS_ACT_GRAD = 6
export const KIND_DICE_CE = 7
export const KIND_DICE_CE_GRAD = 8
export const KIND_ADAMW = 9
export const KIND_WINOGRAD_PACK_FILTER = 10
export const KIND_WINOGRAD_FILTER_GRAD_REDUCE = 11
export const KIND_SUM_SLOTS = 12
export const KIND_COLUMN_SUMS = 13
export const KIND_CHANNEL_AFFINE = 14

export function word(job: usize, i: usize): i32 {
  return load<i32>(job + (i << 2))
}

/** The job's next work item (a chunk of rows or tiles, or a slot) from its shared counter; past the last one when none is left. */
export function nextItem(job: usize): i32 {
  return atomic.add<i32>(job + (J_COUNTER << 2), 1)
}

/**
 * Accumulator slot s of the job (at J_ACC + s·J_ACC_STRIDE), cleared over `bytes` bytes. The thread
 * that takes slot s adds chunks s, s + SLOTS, … into it in order, so the sums, and the slots'
 * in-order total, do not depend on which thread took which slot.
 */
export function clearedSlot(job: usize, s: i32, bytes: usize): usize {
  const at = <usize>word(job, J_ACC) + <usize>s * <usize>word(job, J_ACC_STRIDE)
  memory.fill(at, 0, bytes)
  return at
}

/**
 * Slot 0 += slot 1, += slot 2, … in order, over J_ACC_LEN floats (a multiple of 4) in work items
 * of J_ROWS_PER_CHUNK floats: every element is summed in the same order whichever thread takes it.
 */
export function sumSlots(job: usize): void {
  const acc = <usize>word(job, J_ACC)
  const stride = <usize>word(job, J_ACC_STRIDE)
  const slots = word(job, J_SLOTS)
  const length = word(job, J_ACC_LEN)
  const perItem = word(job, J_ROWS_PER_CHUNK)
  const items = word(job, J_CHUNKS)
  while (true) {
    const item = nextItem(job)
    if (item >= items) break
    const end = (<usize>min(length, (item + 1) * perItem)) << 2
    for (let i = (<usize>(item * perItem)) << 2; i < end; i += 16) {
      let sum = v128.load(acc + i)
      for (let t = 1; t < slots; t++) sum = f32x4.add(sum, v128.load(acc + <usize>t * stride + i))
      v128.store(acc + i, sum)
    }
  }
}
