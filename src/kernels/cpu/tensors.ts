/** Reading and making tensors of tfjs's `cpu` backend, for sipl's kernels on it. */
import type {tf} from '../../backend/tf.js'

interface CpuBackendLike {
  data: {get(dataId: object): {values: unknown}}
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array | Int32Array | Uint8Array): tf.TensorInfo
}

/** the backing array of t, whatever its type */
export function values(backend: unknown, t: tf.TensorInfo): unknown {
  return (backend as CpuBackendLike).data.get(t.dataId).values
}

/** t's values as float32 (copied only when the backend holds another type) */
export function floats(backend: unknown, t: tf.TensorInfo): Float32Array {
  const v = values(backend, t)
  return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>)
}

/** a new cpu tensor owning `data` */
export function output(
  backend: unknown,
  shape: number[],
  data: Float32Array | Int32Array | Uint8Array,
  dtype: tf.DataType = 'float32',
): tf.TensorInfo {
  return (backend as CpuBackendLike).makeTensorInfo(shape, dtype, data)
}
