/**
 * The tfjs backends sipl can run on, by name. This module imports nothing, so that the CLI can
 * offer --backend (and commands that compute nothing can start) without loading TensorFlow.js.
 */
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const
export type BackendRequest = (typeof BACKENDS)[number]
export type BackendName = Exclude<BackendRequest, 'auto'>
