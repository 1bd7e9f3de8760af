/**
 * sipl's kernels for the `webgpu` backend: tiled conv3d (register.ts) and the rank-5 fixes
 * (rank5-fixes.ts). `installWebgpuKernels()` must run after '@tensorflow/tfjs-backend-webgpu' is
 * imported (src/backend/select.ts does it), because that import registers the stock kernels.
 */
import {installWebgpuConv3dKernels} from './register.js'
import {installRank5Fixes} from './rank5-fixes.js'

export {setWebgpuConv3dKernels, webgpuConv3dKernels, type WebgpuConv3dKernels} from './register.js'

/** Idempotent; false when the webgpu backend's kernels are not registered yet. */
export function installWebgpuKernels(): boolean {
  return installWebgpuConv3dKernels() && installRank5Fixes()
}
