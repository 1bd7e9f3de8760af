/**
 * Conv3D forward as a tiled implicit GEMM: out[m = (b,od,oh,ow), n = co] = Σ_k A[m, k = (tap, ci)] · W[k, n],
 * every A element gathered from the NDHWC input when its K tile is loaded (no im2col matrix).
 */
// the launch-field and shader-piece imports apart, so that each list stays on one line
import {voxelRowSetup, chooseTiling, foldDispatch, slots, tilingKey, TiledGemmProgram, type ConvGeometry} from './gemm-shader.js'
import {gemmShader, slotRow, tileLayout, unroll} from './gemm-shader.js'

/** Conv3D forward: y = x ⊛ W, stride s, dilation 1. Inputs x [B,D,H,W,Cin], W [kd,kh,kw,Cin,Cout]. */
export class Conv3DTiledProgram extends TiledGemmProgram {
  variableNames = ['x', 'W']
  uniforms = 'sD: i32, sH: i32, sW: i32, padD: i32, padH: i32, padW: i32, M: i32,'

  constructor(private readonly g: ConvGeometry) {
    super(chooseTiling(g.outC), g.outC)
    this.outputShape = [g.batch, g.outD, g.outH, g.outW, g.outC]
    const s = slots(this.t)
    const m = g.batch * g.outD * g.outH * g.outW
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
    const {threads, aSlots, bSlots, tileN, as, bs} = tileLayout(t)
    const K = g.kD * g.kH * g.kW * g.inC
    const decodeRow = (
      i: number,
    ) => `      let ow = m % oW; let q1 = m / oW; let oh = q1 % oH; let q2 = q1 / oH; let od = q2 % oD; let b = q2 / oD;
      rB${i} = b * D * H * Wd * ${g.inC}; rD${i} = od * uniforms.sD - uniforms.padD; rH${i} = oh * uniforms.sH - uniforms.padH; rW${i} = ow * uniforms.sW - uniforms.padW;`
    const setup = voxelRowSetup(t, aSlots, threads, ['xShape', 'outShape'], decodeRow)
    const loadTile = `
    { let k = t * ${t.tk} + kc;
      let tap = k / ${g.inC}; let ci = k - tap * ${g.inC};
      let fd = tap / ${g.kH * g.kW}; let fr = tap - fd * ${g.kH * g.kW}; let fh = fr / ${g.kW}; let fw = fr - fh * ${g.kW};
      let kOk = k < ${K};
${unroll(aSlots, (i) => {
  const r = slotRow(t, threads, i)
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
