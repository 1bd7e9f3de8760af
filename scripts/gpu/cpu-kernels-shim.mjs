// Stands in for src/kernels/register.ts (sipl's cpu kernels) inside the GPU bundle: the bundle's
// cpu backend keeps tfjs's reference kernels — the oracle of the agreement check — and code that
// asks which cpu kernels run (e.g. src/kernels/fused.ts) takes its composite-op path.
export const REPLACED_KERNELS = []
export function installCpuKernels() {}
export const activeCpuKernels = () => 'reference'
export const fastKernelsUnavailable = () => 'not in the GPU device-check bundle'
export function useCpuKernels(which) {
  if (which !== 'reference') throw new Error('the GPU device-check bundle has only the reference cpu kernels')
}
export const withReferenceCpuKernels = (fn) => fn()
