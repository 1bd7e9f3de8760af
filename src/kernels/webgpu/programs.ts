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

export {chooseTiling, type ConvGeometry, type Tiling, type WebGPUProgramLike} from './gemm-shader.js'
export {Conv3DTiledProgram} from './conv3d-forward-program.js'
export {Conv3DBackpropInputTiledProgram, parityClasses, type ParityClass} from './conv3d-input-grad-program.js'
export {Conv3DBackpropFilterTiledProgram, SumPartialsProgram} from './conv3d-filter-grad-program.js'
