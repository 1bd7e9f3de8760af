/**
 * Instance-adaptive Prototype Learning (SIPL paper §3.3, Eq. 2–4; DESIGN §4 "IPL").
 *
 *   p_k^i = GAP(M_k ⊗ F)                  Eq. 2, M_k the final pseudo mask resized to F's grid
 *   p_k^c                                   CPP: learnable vector, or a fixed one-hot / text
 *                                           embedding through a learnable linear map
 *   g_k   = MLP([p_k^i ; p_k^c])           Eq. 3 (two layers, GELU)
 *   Ŷ_k   = σ(F_o · g_k + b_k)             Eq. 4, with a per-class bias b_k (model.classBias)
 *
 * Also the `-ipl` ablation head: plain learnable prototypes, Ŷ_k = σ(F_o · g_k + b_k), i.e. a
 * 1×1×1 convolution.
 */
import {existsSync, readFileSync} from 'node:fs'
import {resolve} from 'node:path'
import {tf} from '../backend/tf.js'
import type {ModelConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import type {ParamStore} from './init.js'
import type {VoxelEmbeddings} from './backbone.js'
import {Dense} from './layers.js'
import {sigmoidProbabilities} from '../kernels/fused.js'
import {addBias, bmm, gelu, resizeGrid, softmaxLast, wholeLayerKernelsRun} from './ops.js'

// ── class-embedding files (CPP init clip / biobert / file) ───────────────────────────────────

/** Reads a 2-D float array from a NumPy .npy file (little-endian f4/f8, C order). */
export function readNpyMatrix(bytes: Uint8Array, label: string): number[][] {
  const magic = String.fromCharCode(...bytes.subarray(1, 6))
  if (bytes[0] !== 0x93 || magic !== 'NUMPY') throw new UserError(`${label}: not a .npy file (no \\x93NUMPY magic)`)
  const major = bytes[6]
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true)
  const headerStart = major === 1 ? 10 : 12
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLength))
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1]
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1]
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1]
  if (!descr || !fortran || shapeText === undefined) throw new UserError(`${label}: unreadable .npy header '${header.trim()}'`)
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number)
  if (shape.length !== 2) throw new UserError(`${label}: expected a 2-D array (classes × embedding), got shape (${shape.join(', ')})`)
  if (fortran === 'True') throw new UserError(`${label}: Fortran-ordered .npy; save it with numpy.ascontiguousarray`)
  const width = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0
  if (width === 0) throw new UserError(`${label}: dtype '${descr}' not supported; save float32 or float64 (little-endian)`)
  const [rows, cols] = shape
  const start = headerStart + headerLength
  if (bytes.byteLength < start + rows * cols * width) throw new UserError(`${label}: file is shorter than its header says`)
  return Array.from({length: rows}, (_, r) =>
    Array.from({length: cols}, (_, c) => {
      const at = start + (r * cols + c) * width
      return width === 4 ? view.getFloat32(at, true) : view.getFloat64(at, true)
    }),
  )
}

/** The K×e class-embedding matrix for CPP init clip / biobert / file; every failure names the file and the fix. */
export function loadClassEmbeddings(cpp: ModelConfig['cpp'], numClasses: number): number[][] {
  if (!cpp.file) {
    throw new UserError(
      `model.cpp.init=${cpp.init} needs model.cpp.file: a JSON (K×e array) or .npy file with one embedding row per class (sipl never downloads a model)`,
    )
  }
  const path = resolve(cpp.file)
  if (!existsSync(path)) throw new UserError(`model.cpp.file ${cpp.file}: file not found (looked at ${path})`)
  let matrix: unknown
  if (path.endsWith('.npy')) matrix = readNpyMatrix(new Uint8Array(readFileSync(path)), `model.cpp.file ${cpp.file}`)
  else {
    try {
      matrix = JSON.parse(readFileSync(path, 'utf8'))
    } catch (error) {
      throw new UserError(
        `model.cpp.file ${cpp.file}: not valid JSON (${(error as Error).message}); give a K×e array of numbers or a .npy file`,
      )
    }
  }
  const rows = Array.isArray(matrix) ? matrix : null
  const width = rows && Array.isArray(rows[0]) ? (rows[0] as unknown[]).length : 0
  const ok =
    rows !== null &&
    width > 0 &&
    rows.every((row) => Array.isArray(row) && row.length === width && row.every((v) => typeof v === 'number' && Number.isFinite(v)))
  if (!ok) throw new UserError(`model.cpp.file ${cpp.file}: expected a K×e array of finite numbers (one row per class)`)
  if (rows.length !== numClasses) {
    throw new UserError(
      `model.cpp.file ${cpp.file}: has ${rows.length} rows but the task has ${numClasses} classes (one row per class, in data.classes order)`,
    )
  }
  return rows as number[][]
}

// ── prototypes ───────────────────────────────────────────────────────────────────────────────

/** p^c for every class, `[K, d_i]` */
class CommonPrototypes {
  private readonly vectors: tf.Variable | null = null
  private readonly fixed: tf.Tensor2D | null = null
  private readonly proj: Dense | null = null

  constructor(store: ParamStore, cpp: ModelConfig['cpp'], numClasses: number, dim: number) {
    if (cpp.init === 'random') {
      // the paper's default: learnable, randomly initialised
      this.vectors = store.add('ipl.cpp', [numClasses, dim], {kind: 'normal', std: 1})
      return
    }
    const matrix =
      cpp.init === 'onehot'
        ? Array.from({length: numClasses}, (_, k) => Array.from({length: numClasses}, (_, j) => (j === k ? 1 : 0)))
        : loadClassEmbeddings(cpp, numClasses)
    // fixed input, learnable map to d_i: not a variable, so it is neither trained nor checkpointed
    this.fixed = tf.tensor2d(matrix)
    this.proj = new Dense(store, 'ipl.cpp.proj', matrix[0].length, dim)
  }

  apply(): tf.Tensor2D {
    if (this.vectors) return this.vectors as tf.Tensor2D
    return this.proj!.apply(this.fixed!) as tf.Tensor2D
  }

  dispose(): void {
    this.fixed?.dispose()
  }
}

/**
 * Turns the pseudo-mask probabilities `[B, …, K+1]` (exclusive classes, channel 0 = background)
 * into per-head masks `[B, …, K]`: the class channels, or for nested overlapping regions
 * (BraTS: WT ⊃ TC ⊃ ET, region k = labels ≥ k) the sum of the class channels j ≥ k.
 */
export function headMasks(probabilities: tf.Tensor5D, numClasses: number, overlappingRegions: boolean): tf.Tensor5D {
  const [b, d, h, w, c] = probabilities.shape
  // rank-2 slice: the webgpu backend cannot compile the rank-5 pad that a rank-5 slice's gradient needs
  let classes: tf.Tensor = tf.slice(tf.reshape(probabilities, [-1, c]), [0, 1], [-1, numClasses])
  if (overlappingRegions) {
    const upper = tf.tensor2d(Array.from({length: numClasses}, (_, j) => Array.from({length: numClasses}, (_, k) => (j >= k ? 1 : 0))))
    classes = tf.matMul(classes as tf.Tensor2D, upper)
  }
  return tf.reshape(classes, [b, d, h, w, numClasses]) as tf.Tensor5D
}

/** t's slices along its first axis (tf.unstack's gradient fails on an axis of size 1: tfjs hands it one dy, not a list) */
function samplesOf(t: tf.Tensor): tf.Tensor[] {
  return t.shape[0] === 1 ? [tf.reshape(t, t.shape.slice(1))] : tf.unstack(t)
}

/** What a head returns: logits (training, the losses) or σ of them (inference, Ŷ of Eq. 4). */
export type HeadOutput = 'logits' | 'probabilities'

/**
 * Eq. 4 with F_o = u·W + b, the backbone's 1×1×1 projection of u (VoxelEmbeddings): F_o·g_k =
 * u·(W g_k) + b·g_k, so the projection is folded into the K prototypes instead of applied to every
 * voxel (the same function, tested against the PyTorch twin, which computes F_o literally, and
 * against F_o itself with random biases; docs/model.md has what it saves). Returns the folded
 * prototypes W g_k `[B, K, e]`, the shift b·g_k (+ b_k) `[B, K]` (null without either bias) and the
 * logits' grid `[B, D, H, W, K]`.
 */
function foldPrototypes(fo: VoxelEmbeddings, prototypes: tf.Tensor3D, bias: tf.Variable | null) {
  const {projection} = fo
  if (projection.size !== 1) throw new Error(`foldPrototypes: the projection must be 1×1×1, not ${projection.size}³`)
  const [b, d, h, w] = fo.shape
  const k = prototypes.shape[1]
  // g and b live in the projection's output space (cout), u in its input space (cin = e)
  const g = tf.reshape(prototypes, [1, b * k, projection.cout]) as tf.Tensor3D
  // W g_k for every prototype (W is [d_in, d_out] as a 1×1×1 kernel)
  const kernel = tf.reshape(projection.kernel, [1, projection.cin, projection.cout]) as tf.Tensor3D
  const folded = tf.reshape(bmm(g, kernel, false, true), [b, k, projection.cin]) as tf.Tensor3D
  let shift: tf.Tensor | null = projection.bias
    ? tf.reshape(bmm(g, tf.reshape(projection.bias, [1, projection.cout, 1]) as tf.Tensor3D), [b, k])
    : null
  if (bias) shift = shift ? tf.add(shift, bias) : tf.tile(tf.expandDims(bias, 0), [b, 1])
  const grid: [number, number, number, number, number] = [b, d, h, w, k]
  return {folded, shift: shift as tf.Tensor2D | null, grid}
}

/** Eq. 4: logits F_o ⊛ g_k (+ b_k), or their σ → `[B, D, H, W, K]`, prototypes g `[B, K, d]` */
function prototypeHead(fo: VoxelEmbeddings, prototypes: tf.Tensor3D, bias: tf.Variable | null, output: HeadOutput): tf.Tensor5D {
  const {folded, shift, grid} = foldPrototypes(fo, prototypes, bias)
  // inference on cpu with sipl's kernels: the full-resolution end, product, shift and σ in one kernel, the same bits as below
  if (output === 'probabilities' && wholeLayerKernelsRun()) return tf.reshape(fo.probabilities(folded, shift), grid) as tf.Tensor5D
  const [b, d, h, w, k] = grid
  const e = fo.shape[4]
  const rows = samplesOf(tf.reshape(fo.unprojected(), [b, 1, d * h * w, e]))
  const foldedRows = samplesOf(tf.reshape(folded, [b, 1, k, folded.shape[2]]))
  const shifts = shift ? samplesOf(shift) : []
  const perSample = rows.map((r, i) => {
    const logits = tf.reshape(bmm(r as tf.Tensor3D, foldedRows[i] as tf.Tensor3D, false, true), [d * h * w, k]) as tf.Tensor2D
    return shift ? addBias(logits, shifts[i] as tf.Tensor1D) : logits
  })
  const logits = tf.reshape(b === 1 ? perSample[0] : tf.concat(perSample, 0), grid) as tf.Tensor5D
  return output === 'logits' ? logits : (sigmoidProbabilities(logits) as tf.Tensor5D)
}

export class Ipl {
  private readonly cpp: CommonPrototypes
  private readonly mlp1: Dense
  private readonly mlp2: Dense
  private readonly bias: tf.Variable | null

  constructor(
    store: ParamStore,
    cfg: ModelConfig,
    private readonly numClasses: number,
    featureDim: number,
    private readonly overlappingRegions: boolean,
  ) {
    const embedDim = cfg.backbone.embedDim
    this.cpp = new CommonPrototypes(store, cfg.cpp, numClasses, featureDim)
    this.mlp1 = new Dense(store, 'ipl.mlp.0', 2 * featureDim, cfg.prototypeHidden)
    this.mlp2 = new Dense(store, 'ipl.mlp.1', cfg.prototypeHidden, embedDim)
    this.bias = cfg.classBias ? store.add('ipl.classBias', [numClasses], {kind: 'zeros'}) : null
  }

  /**
   * f: F `[B, d', h', w', d_i]`; pseudo: final pseudo-mask logits `[B, …, K+1]`; fo: F_o.
   */
  apply(f: tf.Tensor5D, pseudo: tf.Tensor5D, fo: VoxelEmbeddings, output: HeadOutput = 'logits'): tf.Tensor5D {
    const b = f.shape[0]
    const ipp = this.instanceProposals(f, pseudo)
    const cpp = tf.tile(tf.expandDims(this.cpp.apply(), 0), [b, 1, 1])
    // Eq. 3: g_k = MLP(p_k^i ⊕ p_k^c)
    const prototypes = this.mlp2.apply(gelu(this.mlp1.apply(tf.concat([ipp, cpp], -1)))) as tf.Tensor3D
    return prototypeHead(fo, prototypes, this.bias, output)
  }

  /** Eq. 2: p_k^i = GAP(M_k ⊗ F) = (1/|F|) Σ_voxels M_k · F, M = softmax of the pseudo-mask logits on F's grid → `[B, K, d_i]` */
  instanceProposals(f: tf.Tensor5D, pseudo: tf.Tensor5D): tf.Tensor3D {
    const [b, d, h, w, di] = f.shape
    const k = this.numClasses
    const masks = headMasks(resizeGrid(softmaxLast(pseudo), [d, h, w]), k, this.overlappingRegions)
    const voxels = d * h * w
    return tf.div(
      bmm(tf.reshape(masks, [b, voxels, k]) as tf.Tensor3D, tf.reshape(f, [b, voxels, di]) as tf.Tensor3D, true),
      voxels,
    ) as tf.Tensor3D
  }

  dispose(): void {
    this.cpp.dispose()
  }
}

/** `model.ipl: false`: fixed learnable prototypes, a 1×1×1 head on F_o */
export class PlainPrototypes {
  private readonly prototypes: tf.Variable
  private readonly bias: tf.Variable | null
  constructor(store: ParamStore, cfg: ModelConfig, numClasses: number) {
    this.prototypes = store.add('head.prototypes', [numClasses, cfg.backbone.embedDim], {kind: 'lecun', fanIn: cfg.backbone.embedDim})
    this.bias = cfg.classBias ? store.add('head.classBias', [numClasses], {kind: 'zeros'}) : null
  }
  apply(fo: VoxelEmbeddings, output: HeadOutput = 'logits'): tf.Tensor5D {
    const b = fo.shape[0]
    return prototypeHead(fo, tf.tile(tf.expandDims(this.prototypes, 0), [b, 1, 1]) as tf.Tensor3D, this.bias, output)
  }
}
