// Stands in for '@tensorflow/tfjs' inside the GPU bundle: tfjs-core with all gradients and the
// cpu backend (the reference), without layers/converter/data or sipl's cpu kernels (their wasm
// and worker files cannot live in a one-file bundle). The webgpu backend is imported by the
// device check itself, after navigator.gpu exists.
export * from '@tensorflow/tfjs-core'
import '@tensorflow/tfjs-core/dist/register_all_gradients'
// tensor.reshape(), .sum(), … as the union package has them
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops'
import '@tensorflow/tfjs-backend-cpu'
