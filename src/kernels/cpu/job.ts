/**
 * Layout of the job descriptor and the pool's control words in the shared wasm memory. The word
 * indices mirror the J_* constants of assembly/conv3d.ts; change both together.
 */
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
  K: 25,
  KP: 26,
  X: 27,
  W: 28,
  DY: 29,
  SCRATCH: 30,
  SCRATCH_STRIDE: 31,
  ACC: 32,
  ACC_STRIDE: 33,
  ACC_LEN: 34,
  ACC0: 35,
  // 36: unused
  BIAS: 37,
  RELU: 38,
  // 39: unused
  CHUNK_FIRST: 40,
  CHUNK_STEP: 41,
  SUB_ROWS: 42,
  SLOTS: 43,
  TILES_D: 44,
  TILES_H: 45,
  TILES_W: 46,
  V_OFFSET: 47,
  ROWS: 48,
  SIGMOID: 49,
  SQUARED: 50,
} as const
export const JOB_WORDS = 51

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
} as const

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
