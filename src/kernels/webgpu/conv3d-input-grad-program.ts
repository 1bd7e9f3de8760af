/**
 * Conv3DBackpropInputV2 as a tiled GEMM per stride-parity class (id mod stride): inside a class
 * only the taps with (id + pad − f) ≡ 0 (mod stride) contribute, so a stride-2 layer does 1/8 of
 * the work a plain transposed GEMM would.
 */
// the launch-field and shader-piece imports apart, so that each list stays on one line
import {voxelRowSetup, chooseTiling, foldDispatch, slots, tilingKey, TiledGemmProgram, type ConvGeometry} from './gemm-shader.js'
import {gemmShader, slotRow, tileLayout, unroll} from './gemm-shader.js'

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
export class Conv3DBackpropInputTiledProgram extends TiledGemmProgram {
  variableNames = ['dy', 'W']
  uniforms =
    'sD: i32, sH: i32, sW: i32, rD: i32, rH: i32, rW: i32, f0D: i32, f0H: i32, f0W: i32, c0D: i32, c0H: i32, c0W: i32, tD: i32, tH: i32, tW: i32, nD: i32, nH: i32, nW: i32, M: i32, K: i32,'

  constructor(
    private readonly g: ConvGeometry,
    private readonly c: ParityClass,
  ) {
    super(chooseTiling(g.inC), g.inC)
    this.outputShape = [g.batch, g.inD, g.inH, g.inW, g.inC]
    const s = slots(this.t)
    const m = g.batch * c.nD * c.nH * c.nW
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
    const {threads, aSlots, bSlots, tileN, as, bs} = tileLayout(t)
    if (bSlots * threads < t.tk * tileN) throw new Error('B slots')
    const decodeRow = (
      i: number,
    ) => `      let qw = m % uniforms.nW; let q1 = m / uniforms.nW; let qh = q1 % uniforms.nH; let q2 = q1 / uniforms.nH; let qd = q2 % uniforms.nD; let b = q2 / uniforms.nD;
      rB${i} = b * oD * oH * oW * ${g.outC};
      rD${i} = qd + uniforms.c0D; rH${i} = qh + uniforms.c0H; rW${i} = qw + uniforms.c0W;`
    const setup = voxelRowSetup(t, aSlots, threads, ['outShape', 'dyShape'], decodeRow)
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
  const r = slotRow(t, threads, i)
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
