/** Reading and making tensors of tfjs's `cpu` backend, for sipl's kernels on it. */
import type {tf} from '../../backend/tf.js'
import {arrayPool} from './array-pool.js'

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

/** an array for a kernel output of `length` floats, from the backend's pool (src/kernels/cpu/array-pool.ts): its values are stale, write every element */
export function outputArray(backend: unknown, length: number): Float32Array {
  return arrayPool(backend).take(length)
}

/** a new cpu tensor holding a copy of `heap`, a view of the kernels' heap (which the next kernel call reuses) */
export function outputFromHeap(backend: unknown, shape: number[], heap: Float32Array): tf.TensorInfo {
  const out = outputArray(backend, heap.length)
  out.set(heap)
  return output(backend, shape, out)
}

/**
 * True when a kernel may write t's float32 values in place: no other tensor shares its data (the
 * backend's reference count, and the buffer's entries) and no one was given its array (dataSync)
 */
export function writableInPlace(backend: unknown, t: tf.TensorInfo): boolean {
  const v = values(backend, t)
  const refCount = (backend as {refCount(dataId: object): number}).refCount(t.dataId)
  return v instanceof Float32Array && refCount === 1 && arrayPool(backend).soleUnreadEntry(v)
}
