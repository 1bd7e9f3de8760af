/**
 * The one definition of the job descriptor that every kernel of the wasm module reads, and of the
 * pool's control words in the shared memory. scripts/build-wasm.mjs evaluates this file on its own
 * (so it imports nothing) and generates assembly/generated/job-layout.ts from JOB and KIND (as
 * J_<WORD> and KIND_<NAME> constants) with layoutChecksum() baked in; the runtime compares that
 * checksum with this file's when it loads the module (runtime.ts).
 */
/** Word index (× 4 = byte offset from the job address) of each i32 field of the job descriptor. */
export const JOB = {
  KIND: 0,
  COUNTER: 1,
  CHUNKS: 2,
  ROWS_PER_CHUNK: 3,
  BATCH: 4,
  IN_D: 5,
  IN_H: 6,
  IN_W: 7,
  CIN: 8,
  OUT_D: 9,
  OUT_H: 10,
  OUT_W: 11,
  COUT: 12,
  K_D: 13,
  K_H: 14,
  K_W: 15,
  S_D: 16,
  S_H: 17,
  S_W: 18,
  DIL_D: 19,
  DIL_H: 20,
  DIL_W: 21,
  PAD_F: 22,
  PAD_T: 23,
  PAD_L: 24,
  /** the GEMM's depth: im2col columns (conv), the shared dimension (product) */
  K: 25,
  KP: 26,
  /** forward / filter grad: input x; input grad: unused */
  X: 27,
  /** packed filter panels (forward, input grad) */
  W: 28,
  /** output y (forward) or dy (gradients); product: C */
  DY: 29,
  /** per-thread scratch base */
  SCRATCH: 30,
  SCRATCH_STRIDE: 31,
  /** filter grad: the slot accumulators */
  ACC: 32,
  ACC_STRIDE: 33,
  /** floats per accumulator */
  ACC_LEN: 34,
  /** input grad: dx, zeroed by the caller, that every thread scatters into; product: rows 8 floats apart under 8 columns, or 0 */
  ACC0: 35,
  /** direct transposed conv: a residual of dx's shape added after the bias, or 0 */
  RESIDUAL: 36,
  /** forward: bias [Cout] added to y, or 0; product: bias per column, or 0 */
  BIAS: 37,
  /** forward: 1 = y = max(y, 0) after the bias */
  RELU: 38,
  // 39: unused
  /** job chunk k is chunk FIRST + k·STEP of the row partition (input grad phases) */
  CHUNK_FIRST: 40,
  /** 0 = 1 */
  CHUNK_STEP: 41,
  /** rows per GEMM inside a chunk (the L2-sized block); 0 = the whole chunk */
  SUB_ROWS: 42,
  /** filter grad: accumulators, each summing chunks s, s + SLOTS, … in order */
  SLOTS: 43,
  /** Winograd: output tiles along depth (per sample) */
  TILES_D: 44,
  TILES_H: 45,
  TILES_W: 46,
  /** Winograd: bytes from a thread's scratch to its V block (after 256 edge bytes and one 4³ window of all channels) */
  V_OFFSET: 47,
  /** bias/ReLU backward: rows of dz */
  ROWS: 48,
  /** Dice + CE: 1 = sigmoid per channel, 0 = softmax over the channels; product: 1 = σ of every element */
  SIGMOID: 49,
  /** Dice + CE: 1 = Σp² + Σy² in the Dice denominator, 0 = Σp + Σy */
  SQUARED: 50,
  /** product: bytes between rows of the left operand (at X) */
  A_ROW_BYTES: 51,
  /** product: bytes between elements of a row of the left operand */
  A_COL_BYTES: 52,
} as const
export const JOB_WORDS = Math.max(...Object.values(JOB)) + 1

/** What a job computes: the `switch` of runJob in assembly/index.ts. */
export const KIND = {
  forward: 1,
  filterGrad: 2,
  inputGrad: 3,
  winogradForward: 4,
  winogradFilterGrad: 5,
  biasActGrad: 6,
  diceCe: 7,
  diceCeGrad: 8,
  adamw: 9,
  winogradPackFilter: 10,
  winogradFilterGradReduce: 11,
  sumSlots: 12,
  columnSums: 13,
  channelAffine: 14,
  leakyReluGrad: 15,
  sigmoid: 16,
  gelu: 17,
  resizePass: 18,
  product: 19,
  directForward: 20,
  directTransposed: 21,
} as const

/**
 * FNV-1a (32 bits) of the layout written out as `NAME=word,…;name=kind,…` (sorted by name). The
 * build bakes it into the module (its `layoutChecksum` export), so a module built from another
 * layout is refused when it loads instead of reading the wrong words.
 */
export function layoutChecksum(job: Readonly<Record<string, number>> = JOB, kind: Readonly<Record<string, number>> = KIND): number {
  const written = (fields: Readonly<Record<string, number>>) =>
    Object.entries(fields)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => `${name}=${value}`)
      .join(',')
  const text = `${written(job)};${written(kind)}`
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0
  return hash
}

/** Control words (Int32 index at byte 0 of the shared memory). */
export const CTL = {
  /** bumped by the caller to post a job */
  GEN: 0,
  /** workers that finished the current job */
  DONE: 1,
  /** byte address of the job descriptor */
  JOB: 2,
  /** set by a worker whose runJob threw */
  FAILED: 4,
  /** who joined the current job: (generation & 0xffff) << 16 | CLOSED | count */
  JOINED: 5,
  /** jobs that workers took part in, all time (tests use it to know the threaded path ran) */
  WORKER_JOBS: 6,
} as const

/** JOINED bit the caller sets once it has finished its own share: later workers stay out */
export const JOIN_CLOSED = 1 << 15
export const JOIN_COUNT = JOIN_CLOSED - 1

/** bytes 0..4095: control words; 4096..: job descriptor; data from DATA_BASE */
export const JOB_ADDRESS = 4096
export const DATA_BASE = 65536
