/**
 * Conv3DBackpropFilterV2 as a tiled GEMM whose K (all voxels) is split over workgroups, and the
 * small program that adds the partial sums (WGSL has no float atomics).
 */
// the launch-field and shader-piece imports apart, so that each list stays on one line
import {
  gridDims,
  chooseTiling,
  foldDispatch,
  slots,
  tilingKey,
  TiledGemmProgram,
  type ConvGeometry,
  type WebGPUProgramLike,
} from './gemm-shader.js'
import {gemmShader, tileLayout, unroll} from './gemm-shader.js'

/**
 * Conv3DBackpropFilterV2, split over K: partial[z, m = (tap, ci), n = co] = Σ over the z-th chunk
 * of voxels of x[…] · dy[…]. With one split the partials are the filter gradient itself.
 */
export class Conv3DBackpropFilterTiledProgram extends TiledGemmProgram {
  variableNames = ['x', 'dy']
  uniforms = 'sD: i32, sH: i32, sW: i32, padD: i32, padH: i32, padW: i32, K: i32, kSplit: i32,'
  readonly splits: number
  private readonly kSplit: number

  constructor(private readonly g: ConvGeometry) {
    const m = g.kD * g.kH * g.kW * g.inC
    super(chooseTiling(g.outC, m), g.outC)
    const s = slots(this.t)
    const k = g.batch * g.outD * g.outH * g.outW
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
    const {threads, aSlots, bSlots, tileM, tileN, as, bs} = tileLayout(t)
    const M = g.kD * g.kH * g.kW * g.inC
    // rows (tap, ci) are fixed per thread slot (the same row for all slots when the thread count is
    // a multiple of the tile height); K columns (voxels) are decoded once per tile into workgroup
    // memory by the first tk threads
    const rowSlot = (i: number) => (threads % tileM === 0 ? 0 : i)
    const setup = `
${gridDims('xShape', 'dyShape')}
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
