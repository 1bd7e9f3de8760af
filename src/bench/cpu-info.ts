/**
 * The machine a benchmark ran on, for every bench row (issue 16): the CPU model and the vector
 * extensions that decide how fast the kernels can be — WebAssembly SIMD is 128-bit everywhere,
 * while PyTorch's oneDNN uses 512-bit vectors and AMX where the CPU has them.
 */
import {readFileSync} from 'node:fs'
import {cpus} from 'node:os'

const VECTOR_FLAGS = [
  'sse4_2',
  'avx',
  'avx2',
  'fma',
  'avx512f',
  'avx512bw',
  'avx512_vnni',
  'avx512_bf16',
  'amx_tile',
  'amx_bf16',
  'amx_int8',
]

/** e.g. 'AMD EPYC (2 cores; sse4_2 avx avx2 fma avx512f …)' */
export function cpuDescription(): string {
  let model = cpus()[0]?.model?.trim() || 'unknown CPU'
  let flags: string[] = []
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8')
    model = /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? model
    const present = new Set((/^flags\s*:\s*(.+)$/m.exec(info)?.[1] ?? '').split(/\s+/))
    flags = VECTOR_FLAGS.filter((f) => present.has(f))
  } catch {
    // not Linux: the model from Node is what there is
  }
  return `${model} (${cpus().length} cores${flags.length > 0 ? `; ${flags.join(' ')}` : ''})`
}
