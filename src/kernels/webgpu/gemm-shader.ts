/**
 * The pieces the tiled implicit-GEMM WGSL programs share (programs.ts says what the programs
 * compute): the object shape tfjs-backend-webgpu runs, the tile shapes, the dispatch, and the
 * GEMM skeleton each program fills with its own row decoding, tile loads and stores.
 */

/** The fields of tfjs-backend-webgpu's WebGPUProgram that these programs set. */
export interface WebGPUProgramLike {
  outputShape: number[]
  shaderKey: string
  dispatchLayout: {x: number[]; y?: number[]; z?: number[]}
  dispatch: [number, number, number]
  variableNames: string[]
  uniforms?: string
  workgroupSize: [number, number, number]
  size?: boolean
  getUserCode(): string
}

export interface Tiling {
  /** threads along M and N; a workgroup has wm·wn threads */
  wm: number
  wn: number
  /** outputs per thread along M and N */
  tm: number
  tn: number
  /** K depth of one tile in workgroup memory */
  tk: number
}

/**
 * Tile shapes by the GEMM's N (output channels, or input channels for the input gradient). The
 * U-Net layers have N = 4…64: a wide N tile would leave most threads idle, so narrow N gets more
 * threads along M instead. Workgroup memory stays ≤ 16 KiB, WebGPU's guaranteed minimum.
 */
export function chooseTiling(n: number, m = Infinity): Tiling {
  // 256 threads and 128-row tiles everywhere (256 rows for N ≤ 4): each thread gathers 8 A values
  // per K tile, so the per-slot address state stays in registers and the unrolled shader small
  const base =
    n <= 4
      ? {wm: 256, wn: 1, tm: 1, tn: 4}
      : n <= 8
        ? {wm: 128, wn: 2, tm: 1, tn: 4}
        : n <= 16
          ? {wm: 64, wn: 4, tm: 2, tn: 4}
          : n <= 32
            ? {wm: 32, wn: 8, tm: 4, tn: 4}
            : {wm: 16, wn: 16, tm: 8, tn: 4}
  // a GEMM with few rows (the filter gradient of the first layer and the head: 27 and 16) gets
  // fewer threads along M rather than mostly empty tiles; ≥ 16 threads keep the loads even
  while ((base.wm * base.tm) / 2 >= m && base.wm * base.wn >= 32) base.wm /= 2
  const tileM = base.wm * base.tm
  const tileN = base.wn * base.tn
  const tk = ((tileM + 1) * 16 + 16 * (tileN + 1)) * 4 <= 16384 ? 16 : 8
  return {...base, tk}
}

/** workgroups over the M × N tiles, folded into 2-D when there are more than one dimension allows */
export function foldDispatch(tiles: number, z: number): [number, number, number] {
  const x = Math.min(tiles, 32768)
  return [x, Math.ceil(tiles / x), z]
}

const range = (n: number) => Array.from({length: n}, (_, i) => i)

/** a named block of WGSL lines, one per i in [0, n) */
export const unroll = (n: number, line: (i: number) => string) => range(n).map(line).join('\n')

export interface GemmParts {
  /** WGSL run once before the K loop (per-thread row decoding) */
  setup: string
  /** number of K tiles (a uniform expression) */
  kTiles: string
  /** WGSL that fills As / Bs for tile `t` (an i32 in scope) */
  loadTile: string
  /** WGSL storing register acc_i_j, whose global row and column are the expressions given */
  store: (accName: string, i: number, rowExpr: string, colExpr: string) => string
  /** WGSL run once per thread before the stores (e.g. decoding output rows) */
  beforeStore?: string
}

/**
 * The GEMM skeleton shared by the three programs: tile loop, workgroup-memory tiles with a
 * padded stride (no bank conflicts on transposed writes), and a fully unrolled TM × TN
 * register block. Every thread runs every barrier: loads and stores are guarded instead of
 * returning early, which keeps the control flow uniform as WGSL requires.
 */
export function gemmShader(t: Tiling, tilesN: number, parts: GemmParts, extraDecls = ''): string {
  const tileM = t.wm * t.tm
  const tileN = t.wn * t.tn
  const as = tileM + 1
  const bs = tileN + 1
  const accDecl = unroll(t.tm, (i) => unroll(t.tn, (j) => `  var acc_${i}_${j} = 0.0;`))
  const inner = [
    unroll(t.tm, (i) => `      let a${i} = As[kk * ${as} + ty + ${i * t.wm}];`),
    unroll(t.tn, (j) => `      let b${j} = Bs[kk * ${bs} + tx + ${j * t.wn}];`),
    unroll(t.tm, (i) => unroll(t.tn, (j) => `      acc_${i}_${j} = fma(a${i}, b${j}, acc_${i}_${j});`)),
  ].join('\n')
  const stores = unroll(t.tm, (i) =>
    unroll(t.tn, (j) => parts.store(`acc_${i}_${j}`, i, `tileM0 + ty + ${i * t.wm}`, `tileN0 + tx + ${j * t.wn}`)),
  )
  return `
var<workgroup> As: array<f32, ${t.tk * as}>;
var<workgroup> Bs: array<f32, ${t.tk * bs}>;
${extraDecls}
fn main() {
  let li = i32(localIndex);
  let tx = li % ${t.wn};
  let ty = li / ${t.wn};
  let tileLin = i32(workgroupId.x) + i32(workgroupId.y) * i32(numWorkgroups.x);
  let tileN0 = (tileLin % ${tilesN}) * ${tileN};
  let tileM0 = (tileLin / ${tilesN}) * ${tileM};
${accDecl}
${parts.setup}
  let kTiles = ${parts.kTiles};
  for (var t = 0; t < kTiles; t++) {
${parts.loadTile}
    workgroupBarrier();
    for (var kk = 0; kk < ${t.tk}; kk++) {
${inner}
    }
    workgroupBarrier();
  }
${parts.beforeStore ?? ''}
${stores}
}
`
}

export function tilingKey(t: Tiling): string {
  return `${t.wm}x${t.wn}_${t.tm}x${t.tn}_${t.tk}`
}

/** numbers of M-row gather slots and B slots each thread fills per tile */
export function slots(t: Tiling): {threads: number; aSlots: number; bSlots: number; tileM: number; tileN: number} {
  const threads = t.wm * t.wn
  const tileM = t.wm * t.tm
  const tileN = t.wn * t.tn
  if (threads % t.tk !== 0 || (tileM * t.tk) % threads !== 0) throw new Error(`bad tiling ${tilingKey(t)}`)
  return {threads, aSlots: (tileM * t.tk) / threads, bSlots: Math.ceil((t.tk * tileN) / threads), tileM, tileN}
}

export interface ConvGeometry {
  batch: number
  /** input (x) spatial size and channels */
  inD: number
  inH: number
  inW: number
  inC: number
  /** output (y, dy) spatial size and channels */
  outD: number
  outH: number
  outW: number
  outC: number
  kD: number
  kH: number
  kW: number
  sD: number
  sH: number
  sW: number
  padD: number
  padH: number
  padW: number
}

/** The tile layout a shader is written for: slots(t) and the padded row strides of As and Bs. */
export function tileLayout(t: Tiling): ReturnType<typeof slots> & {as: number; bs: number} {
  const s = slots(t)
  return {...s, as: s.tileM + 1, bs: s.tileN + 1}
}

/** The WGSL index of the M row that a thread's A slot `i` loads: (li / tk + i·threads/tk). */
export const slotRow = (t: Tiling, threads: number, i: number) => `(li / ${t.tk} + ${i * (threads / t.tk)})`

/** The WGSL lines naming the input grid (D, H, Wd) and the output grid (oD, oH, oW) from the programs' shape uniforms. */
export function gridDims(input: string, output: string): string {
  return `  let D = uniforms.${input}.y; let H = uniforms.${input}.z; let Wd = uniforms.${input}.w;
  let oD = uniforms.${output}.y; let oH = uniforms.${output}.z; let oW = uniforms.${output}.w;`
}

/**
 * WGSL giving each of a thread's A slots its gather state for its M row m (rB: batch offset,
 * rD/rH/rW: first voxel; rD far out of range when m is past the last row): `decode(i)` is the
 * WGSL that sets them when m < uniforms.M.
 */
export function rowSlotSetup(t: Tiling, aSlots: number, threads: number, decode: (i: number) => string): string {
  return unroll(aSlots, (i) => {
    return `  var rB${i} = 0; var rD${i} = -1073741824; var rH${i} = 0; var rW${i} = 0;
  { let m = tileM0 + ${slotRow(t, threads, i)};
    if (m < uniforms.M) {
${decode(i)}
    } }`
  })
}

/**
 * The row setup of a convolution GEMM whose rows are voxels: the two grids, this thread's K column
 * `kc`, and each row slot's voxel as `decode` reads it from the row index m.
 */
export function voxelRowSetup(t: Tiling, aSlots: number, threads: number, grids: [string, string], decode: (i: number) => string): string {
  return `
${gridDims(grids[0], grids[1])}
  let kc = li % ${t.tk};
${rowSlotSetup(t, aSlots, threads, decode)}`
}

/**
 * What the tiled GEMM programs share: the fields tfjs reads, and the workgroup size and count of
 * N tiles that follow from the tiling and the GEMM's N. Each program sets its output shape,
 * dispatch and shader key in its constructor.
 */
export abstract class TiledGemmProgram implements WebGPUProgramLike {
  outputShape: number[] = []
  shaderKey = ''
  dispatchLayout = {x: [0], y: [1], z: [2]}
  dispatch: [number, number, number] = [1, 1, 1]
  abstract variableNames: string[]
  abstract uniforms: string
  workgroupSize: [number, number, number]
  protected readonly tilesN: number

  protected constructor(
    protected readonly t: Tiling,
    n: number,
  ) {
    const s = slots(t)
    this.workgroupSize = [s.threads, 1, 1]
    this.tilesN = Math.ceil(n / s.tileN)
  }

  abstract getUserCode(): string
}
