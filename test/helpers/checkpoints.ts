/** Comparisons of checkpoint files for the resume tests. */
import assert from 'node:assert/strict'
import {readSafetensors} from '../../src/io/safetensors.js'

/** Every tensor of two safetensors files equal bit for bit, under the same names. */
export function sameTensors(a: string, b: string): void {
  const x = readSafetensors(a).tensors
  const y = readSafetensors(b).tensors
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort())
  for (const [name, t] of x) assert.ok(Buffer.from(t.data.buffer).equals(Buffer.from(y.get(name)!.data.buffer)), `${name} differs`)
}
