import {cpus} from 'node:os'
import {environment, threadsCapped, type Environment} from '../paths.js'
import {siplVersion} from '../project-root.js'
import type {BackendName} from './names.js'
import {probeBackend, webgpuIsSoftware, type BackendProbe} from './select.js'

export interface DoctorReport {
  sipl: string
  node: string
  platform: string
  cpus: number
  /** the SIPL_* settings in force (environment, then .env, then defaults) */
  environment: Environment
  /** SIPL_THREADS asked for more threads than there are cores: environment.threads is the cap */
  threadsCapped?: {requested: number; cores: number}
  backends: BackendProbe[]
  /** what `--backend auto` would pick here */
  autoChoice: BackendName
}

export async function runDoctor(runChecks = true): Promise<DoctorReport> {
  const backends: BackendProbe[] = []
  // cpu last, so that it is the active backend when the doctor returns
  for (const name of ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const) backends.push(await probeBackend(name, runChecks))
  const usable = (b: BackendProbe) =>
    b.loadable &&
    !(b.name === 'webgpu' && webgpuIsSoftware()) &&
    (b.check === undefined || b.check.pass) &&
    (b.name !== 'wasm' || b.check !== undefined)
  const autoChoice = (['tensorflow', 'webgpu', 'wasm'] as const).find((n) => usable(backends.find((b) => b.name === n)!)) ?? 'cpu'
  const capped = threadsCapped()
  return {
    sipl: siplVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    environment: environment(),
    ...(capped ? {threadsCapped: capped} : {}),
    backends,
    autoChoice,
  }
}
