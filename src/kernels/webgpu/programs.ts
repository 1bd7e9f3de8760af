/**
 * Tiled implicit-GEMM WGSL programs for the three 3-D convolution kernels of tfjs-backend-webgpu
 * (Conv3D, Conv3DBackpropInputV2, Conv3DBackpropFilterV2). tfjs 4.22 ships one thread per output
 * element with the whole reduction in a scalar loop and no data reuse; here each workgroup
 * computes a TILE_M × TILE_N block of a GEMM out of workgroup memory, each thread a TM × TN
 * register block, and the im2col matrix is never materialised (every A element is gathered from
 * the NDHWC tensor when its K tile is loaded).
 *
 *   forward      out[m = (b,od,oh,ow), n = co]  = Σ_k A[m, k = (tap, ci)]       · W[k, n]
 *   input grad   dx[m = (b,id,ih,iw), n = ci]   = Σ_k dy[m ↦ (b,od,oh,ow), co]   · W[tap, ci, co]
 *   filter grad  dW[m = (tap, ci),    n = co]   = Σ_k x[k = (b,od,oh,ow) ↦ tap, ci] · dy[k, n]
 *
 * The input gradient is computed once per stride-parity class (id mod stride): inside a class
 * only the taps with (id + pad − f) ≡ 0 (mod stride) contribute, so a stride-2 layer does 1/8 of
 * the work a plain transposed GEMM would. The filter gradient's K (all voxels) is split over
 * workgroups and the partial sums are added by a second small program (WGSL has no float atomics).
 *
 * The programs follow the object shape that WebGPUBackend.runWebGPUProgram expects (see
 * tfjs-backend-webgpu/dist/webgpu_program.js: it prepends the buffer and uniform declarations,
 * e.g. `x`, `W`, `dy`, `result`, `uniforms.xShape`, and calls our `main()`).
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
function foldDispatch(tiles: number, z: number): [number, number, number] {
  const x = Math.min(tiles, 32768)
  return [x, Math.ceil(tiles / x), z]
}

const range = (n: number) => Array.from({length: n}, (_, i) => i)

/** a named block of WGSL lines, one per i in [0, n) */
const unroll = (n: number, line: (i: number) => string) => range(n).map(line).join('\n')

interface GemmParts {
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
function gemmShader(t: Tiling, tilesN: number, parts: GemmParts, extraDecls = ''): string {
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

function tilingKey(t: Tiling): string {
  return `${t.wm}x${t.wn}_${t.tm}x${t.tn}_${t.tk}`
}

/** numbers of M-row gather slots and B slots each thread fills per tile */
function slots(t: Tiling): {threads: number; aSlots: number; bSlots: number; tileM: number; tileN: number} {
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

/** Conv3D forward: y = x ⊛ W, stride s, dilation 1. Inputs x [B,D,H,W,Cin], W [kd,kh,kw,Cin,Cout]. */
export class Conv3DTiledProgram implements WebGPUProgramLike {
  outputShape: number[]
  shaderKey: string
  dispatchLayout = {x: [0], y: [1], z: [2]}
  dispatch: [number, number, number]
  variableNames = ['x', 'W']
  uniforms = 'sD: i32, sH: i32, sW: i32, padD: i32, padH: i32, padW: i32, M: i32,'
  workgroupSize: [number, number, number]
  private readonly t: Tiling
  private readonly tilesN: number

  constructor(private readonly g: ConvGeometry) {
    this.outputShape = [g.batch, g.outD, g.outH, g.outW, g.outC]
    this.t = chooseTiling(g.outC)
    const s = slots(this.t)
    this.workgroupSize = [s.threads, 1, 1]
    const m = g.batch * g.outD * g.outH * g.outW
    this.tilesN = Math.ceil(g.outC / s.tileN)
    this.dispatch = foldDispatch(Math.ceil(m / s.tileM) * this.tilesN, 1)
    this.shaderKey = `sipl_conv3d_fwd_${tilingKey(this.t)}_${g.inC}_${g.outC}_${g.kD}${g.kH}${g.kW}`
  }

  /** uniform values, in the order of `uniforms` */
  uniformData(): {type: 'int32'; data: number[]}[] {
    const g = this.g
    return [g.sD, g.sH, g.sW, g.padD, g.padH, g.padW, g.batch * g.outD * g.outH * g.outW].map((v) => ({type: 'int32' as const, data: [v]}))
  }

  getUserCode(): string {
    const g = this.g
    const t = this.t
    const {threads, aSlots, bSlots, tileM, tileN} = slots(t)
    const K = g.kD * g.kH * g.kW * g.inC
    const as = tileM + 1
    const bs = tileN + 1
    const setup = `
  let D = uniforms.xShape.y; let H = uniforms.xShape.z; let Wd = uniforms.xShape.w;
  let oD = uniforms.outShape.y; let oH = uniforms.outShape.z; let oW = uniforms.outShape.w;
  let kc = li % ${t.tk};
${unroll(aSlots, (i) => {
  const r = `(li / ${t.tk} + ${i * (threads / t.tk)})`
  return `  var rB${i} = 0; var rD${i} = -1073741824; var rH${i} = 0; var rW${i} = 0;
  { let m = tileM0 + ${r};
    if (m < uniforms.M) {
      let ow = m % oW; let q1 = m / oW; let oh = q1 % oH; let q2 = q1 / oH; let od = q2 % oD; let b = q2 / oD;
      rB${i} = b * D * H * Wd * ${g.inC}; rD${i} = od * uniforms.sD - uniforms.padD; rH${i} = oh * uniforms.sH - uniforms.padH; rW${i} = ow * uniforms.sW - uniforms.padW;
    } }`
})}`
    const loadTile = `
    { let k = t * ${t.tk} + kc;
      let tap = k / ${g.inC}; let ci = k - tap * ${g.inC};
      let fd = tap / ${g.kH * g.kW}; let fr = tap - fd * ${g.kH * g.kW}; let fh = fr / ${g.kW}; let fw = fr - fh * ${g.kW};
      let kOk = k < ${K};
${unroll(aSlots, (i) => {
  const r = `(li / ${t.tk} + ${i * (threads / t.tk)})`
  return `      { let d = rD${i} + fd; let h = rH${i} + fh; let w = rW${i} + fw;
        var v = 0.0;
        if (kOk && u32(d) < u32(D) && u32(h) < u32(H) && u32(w) < u32(Wd)) { v = x[rB${i} + ((d * H + h) * Wd + w) * ${g.inC} + ci]; }
        As[kc * ${as} + ${r}] = v; }`
})}
    }
${unroll(bSlots, (i) => {
  return `    { let e = li + ${i * threads};
      if (e < ${t.tk * tileN}) {
        let n = e % ${tileN}; let kr = e / ${tileN}; let k = t * ${t.tk} + kr; let col = tileN0 + n;
        var v = 0.0;
        if (k < ${K} && col < ${g.outC}) { v = W[k * ${g.outC} + col]; }
        Bs[kr * ${bs} + n] = v;
      } }`
})}`
    return gemmShader(t, this.tilesN, {
      setup,
      kTiles: `${Math.ceil(K / t.tk)}`,
      loadTile,
      store: (acc, _i, m, n) =>
        `  { let m = ${m}; let n = ${n}; if (m < uniforms.M && n < ${g.outC}) { result[m * ${g.outC} + n] = ${acc}; } }`,
    })
  }
}

/** one stride-parity class of the input gradient: voxels with (id, ih, iw) ≡ (rD, rH, rW) mod stride */
export interface ParityClass {
  rD: number
  rH: number
  rW: number
  /** first contributing tap and number of taps per axis */
  f0D: number
  f0H: number
  f0W: number
  tD: number
  tH: number
  tW: number
  /** voxels of the class per axis */
  nD: number
  nH: number
  nW: number
}

export function parityClasses(g: ConvGeometry): ParityClass[] {
  const axis = (r: number, pad: number, s: number, k: number, size: number) => {
    const f0 = (((r + pad) % s) + s) % s
    return {f0, taps: f0 < k ? Math.ceil((k - f0) / s) : 0, n: Math.max(0, Math.ceil((size - r) / s))}
  }
  const out: ParityClass[] = []
  for (let rD = 0; rD < g.sD; rD++)
    for (let rH = 0; rH < g.sH; rH++)
      for (let rW = 0; rW < g.sW; rW++) {
        const d = axis(rD, g.padD, g.sD, g.kD, g.inD)
        const h = axis(rH, g.padH, g.sH, g.kH, g.inH)
        const w = axis(rW, g.padW, g.sW, g.kW, g.inW)
        out.push({rD, rH, rW, f0D: d.f0, f0H: h.f0, f0W: w.f0, tD: d.taps, tH: h.taps, tW: w.taps, nD: d.n, nH: h.n, nW: w.n})
      }
  return out
}

/**
 * Conv3DBackpropInputV2 for one parity class: dx[b, id, ih, iw, ci] = Σ dy[b, od, oh, ow, co] ·
 * W[fd, fh, fw, ci, co] over the taps with id = od·s − pad + fd. Runs once per class, all classes
 * writing into the same output tensor (disjoint voxels).
 */
export class Conv3DBackpropInputTiledProgram implements WebGPUProgramLike {
  outputShape: number[]
  shaderKey: string
  dispatchLayout = {x: [0], y: [1], z: [2]}
  dispatch: [number, number, number]
  variableNames = ['dy', 'W']
  uniforms =
    'sD: i32, sH: i32, sW: i32, rD: i32, rH: i32, rW: i32, f0D: i32, f0H: i32, f0W: i32, c0D: i32, c0H: i32, c0W: i32, tD: i32, tH: i32, tW: i32, nD: i32, nH: i32, nW: i32, M: i32, K: i32,'
  workgroupSize: [number, number, number]
  private readonly t: Tiling
  private readonly tilesN: number

  constructor(
    private readonly g: ConvGeometry,
    private readonly c: ParityClass,
  ) {
    this.outputShape = [g.batch, g.inD, g.inH, g.inW, g.inC]
    this.t = chooseTiling(g.inC)
    const s = slots(this.t)
    this.workgroupSize = [s.threads, 1, 1]
    const m = g.batch * c.nD * c.nH * c.nW
    this.tilesN = Math.ceil(g.inC / s.tileN)
    this.dispatch = foldDispatch(Math.max(1, Math.ceil(m / s.tileM)) * this.tilesN, 1)
    this.shaderKey = `sipl_conv3d_dx_${tilingKey(this.t)}_${g.inC}_${g.outC}_${g.kD}${g.kH}${g.kW}`
  }

  get classSize(): number {
    return this.g.batch * this.c.nD * this.c.nH * this.c.nW
  }

  uniformData(): {type: 'int32'; data: number[]}[] {
    const g = this.g
    const c = this.c
    // od = (id + pad − f) / s with id = q·s + r and f = f0 + j·s is q + c0 − j, c0 = (r + pad − f0) / s
    const c0 = (r: number, pad: number, f0: number, stride: number) => (r + pad - f0) / stride
    const values = [
      g.sD,
      g.sH,
      g.sW,
      c.rD,
      c.rH,
      c.rW,
      c.f0D,
      c.f0H,
      c.f0W,
      c0(c.rD, g.padD, c.f0D, g.sD),
      c0(c.rH, g.padH, c.f0H, g.sH),
      c0(c.rW, g.padW, c.f0W, g.sW),
    ]
    values.push(c.tD, c.tH, c.tW, c.nD, c.nH, c.nW)
    return [...values, this.classSize, c.tD * c.tH * c.tW * g.outC].map((v) => ({type: 'int32' as const, data: [v]}))
  }

  getUserCode(): string {
    const g = this.g
    const t = this.t
    const {threads, aSlots, bSlots, tileM, tileN} = slots(t)
    const as = tileM + 1
    const bs = tileN + 1
    if (bSlots * threads < t.tk * tileN) throw new Error('B slots')
    const setup = `
  let D = uniforms.outShape.y; let H = uniforms.outShape.z; let Wd = uniforms.outShape.w;
  let oD = uniforms.dyShape.y; let oH = uniforms.dyShape.z; let oW = uniforms.dyShape.w;
  let kc = li % ${t.tk};
${unroll(aSlots, (i) => {
  const r = `(li / ${t.tk} + ${i * (threads / t.tk)})`
  return `  var rB${i} = 0; var rD${i} = -1073741824; var rH${i} = 0; var rW${i} = 0;
  { let m = tileM0 + ${r};
    if (m < uniforms.M) {
      let qw = m % uniforms.nW; let q1 = m / uniforms.nW; let qh = q1 % uniforms.nH; let q2 = q1 / uniforms.nH; let qd = q2 % uniforms.nD; let b = q2 / uniforms.nD;
      rB${i} = b * oD * oH * oW * ${g.outC};
      rD${i} = qd + uniforms.c0D; rH${i} = qh + uniforms.c0H; rW${i} = qw + uniforms.c0W;
    } }`
})}`
    // K = (tap of the class, co); B[k, ci] = W[fd, fh, fw, ci, co]; kc is the same column for A and B
    const loadTile = `
    { let k = t * ${t.tk} + kc;
      let tap = k / ${g.outC}; let co = k - tap * ${g.outC};
      let tHW = uniforms.tH * uniforms.tW;
      let jd = tap / tHW; let jr = tap - jd * tHW; let jh = jr / uniforms.tW; let jw = jr - jh * uniforms.tW;
      // the tap f = f0 + j·s per axis indexes W; dy is read at od = (q + c0) − j
      let fd = uniforms.f0D + jd * uniforms.sD; let fh = uniforms.f0H + jh * uniforms.sH; let fw = uniforms.f0W + jw * uniforms.sW;
      let kOk = k < uniforms.K;
${unroll(aSlots, (i) => {
  const r = `(li / ${t.tk} + ${i * (threads / t.tk)})`
  return `      { let od = rD${i} - jd; let oh = rH${i} - jh; let ow = rW${i} - jw;
        var v = 0.0;
        if (kOk && u32(od) < u32(oD) && u32(oh) < u32(oH) && u32(ow) < u32(oW)) { v = dy[rB${i} + ((od * oH + oh) * oW + ow) * ${g.outC} + co]; }
        As[kc * ${as} + ${r}] = v; }`
})}
      let wTap = ((fd * ${g.kH} + fh) * ${g.kW} + fw) * ${g.inC * g.outC};
${unroll(bSlots, (i) => {
  return `      { let e = li + ${i * threads};
        if (e < ${t.tk * tileN}) {
          let n = e / ${t.tk}; let ci = tileN0 + n;
          var v = 0.0;
          if (kOk && ci < ${g.inC}) { v = W[wTap + ci * ${g.outC} + co]; }
          Bs[kc * ${bs} + n] = v;
        } }`
})}
    }`
    const beforeStore = `
${unroll(t.tm, (i) => {
  return `  var oIdx${i} = -1;
  { let m = tileM0 + ty + ${i * t.wm};
    if (m < uniforms.M) {
      let qw = m % uniforms.nW; let q1 = m / uniforms.nW; let qh = q1 % uniforms.nH; let q2 = q1 / uniforms.nH; let qd = q2 % uniforms.nD; let b = q2 / uniforms.nD;
      let id = qd * uniforms.sD + uniforms.rD; let ih = qh * uniforms.sH + uniforms.rH; let iw = qw * uniforms.sW + uniforms.rW;
      oIdx${i} = (((b * D + id) * H + ih) * Wd + iw) * ${g.inC};
    } }`
})}`
    return gemmShader(t, this.tilesN, {
      setup,
      kTiles: `(uniforms.K + ${t.tk - 1}) / ${t.tk}`,
      loadTile,
      beforeStore,
      store: (acc, i, _m, n) => `  { let n = ${n}; if (oIdx${i} >= 0 && n < ${g.inC}) { result[oIdx${i} + n] = ${acc}; } }`,
    })
  }
}

/**
 * Conv3DBackpropFilterV2, split over K: partial[z, m = (tap, ci), n = co] = Σ over the z-th chunk
 * of voxels of x[…] · dy[…]. With one split the partials are the filter gradient itself.
 */
export class Conv3DBackpropFilterTiledProgram implements WebGPUProgramLike {
  outputShape: number[]
  shaderKey: string
  dispatchLayout = {x: [0], y: [1], z: [2]}
  dispatch: [number, number, number]
  variableNames = ['x', 'dy']
  uniforms = 'sD: i32, sH: i32, sW: i32, padD: i32, padH: i32, padW: i32, K: i32, kSplit: i32,'
  workgroupSize: [number, number, number]
  readonly splits: number
  private readonly kSplit: number
  private readonly t: Tiling
  private readonly tilesN: number

  constructor(private readonly g: ConvGeometry) {
    const m = g.kD * g.kH * g.kW * g.inC
    this.t = chooseTiling(g.outC, m)
    const s = slots(this.t)
    this.workgroupSize = [s.threads, 1, 1]
    const k = g.batch * g.outD * g.outH * g.outW
    this.tilesN = Math.ceil(g.outC / s.tileN)
    const tiles = Math.ceil(m / s.tileM) * this.tilesN
    // enough workgroups to fill a large GPU (~4 per SM on 132 SMs), but ≥ 32 K tiles each so
    // that the partial sums stay small next to the work
    const kTiles = Math.ceil(k / this.t.tk)
    this.splits = Math.max(1, Math.min(Math.ceil(512 / tiles), Math.floor(kTiles / 32), 4096))
    this.kSplit = Math.ceil(kTiles / this.splits) * this.t.tk
    this.splits = Math.ceil(k / this.kSplit)
    this.outputShape = this.splits === 1 ? [g.kD, g.kH, g.kW, g.inC, g.outC] : [this.splits, m, g.outC]
    this.dispatch = foldDispatch(tiles, this.splits)
    this.shaderKey = `sipl_conv3d_dw_${tilingKey(this.t)}_${g.inC}_${g.outC}_${g.kD}${g.kH}${g.kW}`
  }

  uniformData(): {type: 'int32'; data: number[]}[] {
    const g = this.g
    const k = g.batch * g.outD * g.outH * g.outW
    return [g.sD, g.sH, g.sW, g.padD, g.padH, g.padW, k, this.kSplit].map((v) => ({type: 'int32' as const, data: [v]}))
  }

  getUserCode(): string {
    const g = this.g
    const t = this.t
    const {threads, aSlots, bSlots, tileM, tileN} = slots(t)
    const as = tileM + 1
    const bs = tileN + 1
    const M = g.kD * g.kH * g.kW * g.inC
    // rows (tap, ci) are fixed per thread slot (the same row for all slots when the thread count is
    // a multiple of the tile height); K columns (voxels) are decoded once per tile into workgroup
    // memory by the first tk threads
    const rowSlot = (i: number) => (threads % tileM === 0 ? 0 : i)
    const setup = `
  let D = uniforms.xShape.y; let H = uniforms.xShape.z; let Wd = uniforms.xShape.w;
  let oD = uniforms.dyShape.y; let oH = uniforms.dyShape.z; let oW = uniforms.dyShape.w;
  let kStart = i32(workgroupId.z) * uniforms.kSplit;
  let kEnd = min(uniforms.K, kStart + uniforms.kSplit);
${unroll(aSlots, (i) => {
  const column = `  let c${i} = (li + ${i * threads}) / ${tileM};`
  if (rowSlot(i) !== i) return column
  return `${column} let r${i} = (li + ${i * threads}) % ${tileM};
  var fD${i} = -1073741824; var fH${i} = 0; var fW${i} = 0; var ci${i} = 0;
  { let m = tileM0 + r${i};
    if (m < ${M}) {
      let tap = m / ${g.inC}; ci${i} = m - tap * ${g.inC};
      fD${i} = tap / ${g.kH * g.kW}; let fr = tap - fD${i} * ${g.kH * g.kW}; fH${i} = fr / ${g.kW}; fW${i} = fr - fH${i} * ${g.kW};
    } }`
})}`
    const loadTile = `
    if (li < ${t.tk}) {
      let k = kStart + t * ${t.tk} + li;
      var info = vec4<i32>(0, -1073741824, 0, 0);
      if (k < kEnd) {
        let ow = k % oW; let q1 = k / oW; let oh = q1 % oH; let q2 = q1 / oH; let od = q2 % oD; let b = q2 / oD;
        info = vec4<i32>(b * D * H * Wd * ${g.inC}, od * uniforms.sD - uniforms.padD, oh * uniforms.sH - uniforms.padH, ow * uniforms.sW - uniforms.padW);
      }
      colInfo[li] = info;
    }
    workgroupBarrier();
${unroll(aSlots, (i) => {
  const r = rowSlot(i)
  return `    { let info = colInfo[c${i}];
      let d = info.y + fD${r}; let h = info.z + fH${r}; let w = info.w + fW${r};
      var v = 0.0;
      if (u32(d) < u32(D) && u32(h) < u32(H) && u32(w) < u32(Wd)) { v = x[info.x + ((d * H + h) * Wd + w) * ${g.inC} + ci${r}]; }
      As[c${i} * ${as} + r${r}] = v; }`
})}
${unroll(bSlots, (i) => {
  return `    { let e = li + ${i * threads};
      if (e < ${t.tk * tileN}) {
        let n = e % ${tileN}; let kr = e / ${tileN}; let k = kStart + t * ${t.tk} + kr; let col = tileN0 + n;
        var v = 0.0;
        if (k < kEnd && col < ${g.outC}) { v = dy[k * ${g.outC} + col]; }
        Bs[kr * ${bs} + n] = v;
      } }`
})}`
    return gemmShader(
      t,
      this.tilesN,
      {
        setup,
        kTiles: `(uniforms.kSplit + ${t.tk - 1}) / ${t.tk}`,
        loadTile,
        store: (acc, _i, m, n) =>
          `  { let m = ${m}; let n = ${n}; if (m < ${M} && n < ${g.outC}) { result[(i32(workgroupId.z) * ${M} + m) * ${g.outC} + n] = ${acc}; } }`,
      },
      `var<workgroup> colInfo: array<vec4<i32>, ${t.tk}>;`,
    )
  }
}

/** Sums the filter gradient's split-K partials [S, M, N] into the filter shape. */
export class SumPartialsProgram implements WebGPUProgramLike {
  outputShape: number[]
  shaderKey = 'sipl_conv3d_dw_sum'
  dispatchLayout = {x: [0], y: [1], z: [2]}
  dispatch: [number, number, number]
  variableNames = ['partials']
  uniforms = 'splits: i32, count: i32,'
  workgroupSize: [number, number, number] = [64, 1, 1]

  constructor(
    filterShape: number[],
    private readonly splits: number,
  ) {
    this.outputShape = filterShape
    const count = filterShape.reduce((a, b) => a * b, 1)
    this.dispatch = foldDispatch(Math.ceil(count / 64), 1)
  }

  uniformData(): {type: 'int32'; data: number[]}[] {
    const count = this.outputShape.reduce((a, b) => a * b, 1)
    return [
      {type: 'int32', data: [this.splits]},
      {type: 'int32', data: [count]},
    ]
  }

  getUserCode(): string {
    return `
fn main() {
  let idx = (i32(workgroupId.x) + i32(workgroupId.y) * i32(numWorkgroups.x)) * 64 + i32(localIndex);
  if (idx < uniforms.count) {
    var s = 0.0;
    for (var z = 0; z < uniforms.splits; z++) { s += partials[z * uniforms.count + idx]; }
    result[idx] = s;
  }
}
`
  }
}
