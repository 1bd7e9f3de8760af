/**
 * The few WebAssembly JS-API types the kernels use. The project compiles with lib ES2022 and
 * no DOM lib, where TypeScript does not declare `WebAssembly`; declaring them here, locally,
 * avoids a global declaration that would clash once someone adds the DOM lib.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer
  grow(pages: number): number
}
export interface WasmModule {}
export interface WasmInstance {
  readonly exports: Record<string, unknown>
}
interface WasmApi {
  Memory: new (descriptor: {initial: number; maximum?: number; shared?: boolean}) => WasmMemory
  Module: new (bytes: Uint8Array) => WasmModule
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance
  validate(bytes: Uint8Array): boolean
}

export const wasm = (globalThis as unknown as {WebAssembly: WasmApi}).WebAssembly
