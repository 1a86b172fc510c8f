/**
 * Research descriptors, measured by bench/descriptors.ts against the product's (src/descriptors.ts)
 * and not on the product path: global descriptors of a backbone feature map F [n, h, w, C] (mean,
 * GeM, R-MAC, multi-scale), exact regional scores and max-fusion of hit lists, PCA-whitening
 * learned on the library (with its own symmetric eigen-solver), average query expansion (αQE) and
 * database-side augmentation (DBA). bench/ and test/ may import this module; src/ must not.
 *
 * Every descriptor is L2-normalised (cosine = dot product), so all of them drop into the same
 * HNSW index. Tensor functions run inside `tf.tidy` and return tensors the caller disposes;
 * vector functions are pure maths over Float32Arrays. Feature maps at other input sides come
 * from `Backbone.featureMaps`.
 */
import { tf } from '../../src/backend.ts';
import { checkP, expandVector, gemPool, l2normalizeRows, type Region, type RegionalSearch } from '../../src/descriptors.ts';
import { invalidParameter, InvalidParameterError } from '../../src/errors.ts';
import { exactKnn, l2normalize } from '../../src/vector.ts';

// ---------------------------------------------------------------------------------------------
// Descriptor ids and options

/**
 * Which global descriptor:
 * - `mean`: g_c = (1/|Ω|) Σ_{x∈Ω} F_xc, average pooling over the h·w positions Ω. It is the
 *   backbone's own pooled vector (the baseline).
 * - `gem`: generalized mean, g_c = ((1/|Ω|) Σ_x max(F_xc, ε)^p)^(1/p). p = 1 is `mean`, p → ∞ is
 *   max pooling; fixed p (default 3) favours the strongest activations.
 * - `rmac`: regional pooling (Tolias et al. 2016). Square regions R at L scales (l = 1..L, side
 *   ⌊2·min(h,w)/(l+1)⌋, ~40% overlap: on a 7×7 map 1 + 4 + 9 = 14 regions); per region
 *   r_R = pool_{x∈R} F_x (max, or GeM), then g = Σ_R r_R / ‖r_R‖ (then L2-normalised), so every
 *   region, and the object in it, counts the same whatever the clutter around it.
 * - `multiscale`: the image embedded at several input sides (e.g. 224 and 320; the feature map
 *   grows from 7×7 to 10×10), one `base` descriptor per scale, g = Σ_s d_s / ‖d_s‖.
 */
export type DescriptorId = 'mean' | 'gem' | 'rmac' | 'multiscale';

/** All descriptor ids, in the order benches and `pixdex eval` list them. */
const DESCRIPTOR_IDS: readonly DescriptorId[] = Object.freeze(['mean', 'gem', 'rmac', 'multiscale']);

/** How regions are pooled in `rmac`. */
export type RegionPooling = 'max' | 'gem';

/** A descriptor and its parameters. Defaults: p 3, levels 3, regionPooling max, scales [224, 320], base gem. */
export interface DescriptorConfig {
  id: DescriptorId;
  /** GeM exponent (for `gem`, `rmac` with `regionPooling: 'gem'`, `multiscale` with base `gem`). */
  p?: number;
  /** R-MAC scales L (1 = the whole map only). */
  levels?: number;
  /** R-MAC region pooling. */
  regionPooling?: RegionPooling;
  /** `multiscale`: input sides in pixels; the first is the backbone's native side. */
  scales?: readonly number[];
  /** `multiscale`: the single-scale descriptor computed at every scale. */
  base?: Exclude<DescriptorId, 'multiscale'>;
}

/** Parameter defaults. */
export const DESCRIPTOR_DEFAULTS = Object.freeze({ p: 3, levels: 3, regionPooling: 'max' as RegionPooling, scales: Object.freeze([224, 320]) as readonly number[], base: 'gem' as const });

/** A short stable name for a config (for the bench's JSON output), e.g. `gem(p=3)`. */
export function descriptorName(config: DescriptorConfig): string {
  switch (config.id) {
    case 'mean': return 'mean';
    case 'gem': return `gem(p=${config.p ?? DESCRIPTOR_DEFAULTS.p})`;
    case 'rmac': {
      const pool = config.regionPooling ?? DESCRIPTOR_DEFAULTS.regionPooling;
      return `rmac(L=${config.levels ?? DESCRIPTOR_DEFAULTS.levels},${pool === 'gem' ? `gem p=${config.p ?? DESCRIPTOR_DEFAULTS.p}` : 'max'})`;
    }
    case 'multiscale': {
      const base = descriptorName({ ...config, id: config.base ?? DESCRIPTOR_DEFAULTS.base });
      return `multiscale(${(config.scales ?? DESCRIPTOR_DEFAULTS.scales).join('+')},${base})`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pooling (tensors)

/** Average pooling over positions: [n, h, w, C] → [n, C] (not normalised). */
export function meanPool(fmap: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => tf.mean(fmap, [1, 2]) as tf.Tensor2D);
}

/**
 * R-MAC regions of an h×w map at `levels` scales (the sampling of Tolias et al.: side
 * ⌊2·min(h,w)/(l+1)⌋, centres spread evenly, ~40% overlap, one extra column/row of regions along
 * the long side of a non-square map). On 7×7 with L = 3: one 7×7, four 4×4, nine 3×3.
 */
export function rmacRegions(h: number, w: number, levels: number = DESCRIPTOR_DEFAULTS.levels): Region[] {
  if (!Number.isInteger(levels) || levels < 1) throw invalidParameter('levels', 'integer ≥ 1', levels);
  const ovr = 0.4;
  const minSide = Math.min(h, w);
  const maxSide = Math.max(h, w);
  // Extra regions along the long side: the step count whose overlap is closest to 40%.
  let extra = 0;
  if (h !== w) {
    let best = Infinity;
    for (let steps = 2; steps <= 7; steps++) {
      const b = (maxSide - minSide) / (steps - 1);
      const err = Math.abs((minSide * minSide - minSide * b) / (minSide * minSide) - ovr);
      if (err < best) { best = err; extra = steps - 1; }
    }
  }
  const wd = h < w ? extra : 0;
  const hd = h > w ? extra : 0;
  const out: Region[] = [];
  const seen = new Set<string>();
  for (let l = 1; l <= levels; l++) {
    const side = Math.floor((2 * minSide) / (l + 1));
    if (side < 1) continue;
    const half = Math.floor(side / 2 - 1);
    const starts = (len: number, n: number): number[] => {
      const b = n > 0 ? (len - side) / n : 0;
      return Array.from({ length: n + 1 }, (_, i) => Math.min(len - side, Math.max(0, Math.floor(half + i * b) - half)));
    };
    for (const y of starts(h, l - 1 + hd)) {
      for (const x of starts(w, l - 1 + wd)) {
        const key = `${x},${y},${side}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ x, y, side });
      }
    }
  }
  return out;
}

/**
 * R-MAC: Σ over `rmacRegions` of the L2-normalised region vectors (max or GeM pooled), then
 * L2-normalised. [n, h, w, C] → [n, C].
 */
export function rmacPool(fmap: tf.Tensor4D, levels: number = DESCRIPTOR_DEFAULTS.levels, pooling: RegionPooling = 'max', p: number = DESCRIPTOR_DEFAULTS.p): tf.Tensor2D {
  const [n, h, w, c] = fmap.shape;
  const regions = rmacRegions(h, w, levels);
  return tf.tidy(() => {
    let sum: tf.Tensor2D = tf.zeros([n, c]);
    const source = pooling === 'gem' ? tf.pow(tf.maximum(fmap, 1e-6), checkP(p)) : fmap;
    for (const r of regions) {
      const cell = tf.slice(source, [0, r.y, r.x, 0], [n, r.side, r.side, c]);
      const v = pooling === 'gem' ? tf.pow(tf.mean(cell, [1, 2]), 1 / p) : tf.max(cell, [1, 2]);
      sum = tf.add(sum, l2normalizeRows(v as tf.Tensor2D));
    }
    return l2normalizeRows(sum);
  });
}

/**
 * One single-scale descriptor of every map of a batch, L2-normalised: [n, h, w, C] → [n, C].
 * For `multiscale` this is the per-scale `base` descriptor; combine scales with `combineScales`.
 */
export function describe(fmap: tf.Tensor4D, config: DescriptorConfig): tf.Tensor2D {
  const id = config.id === 'multiscale' ? (config.base ?? DESCRIPTOR_DEFAULTS.base) : config.id;
  const p = config.p ?? DESCRIPTOR_DEFAULTS.p;
  return tf.tidy(() => {
    switch (id) {
      case 'mean': return l2normalizeRows(meanPool(fmap));
      case 'gem': return l2normalizeRows(gemPool(fmap, p));
      case 'rmac': return rmacPool(fmap, config.levels ?? DESCRIPTOR_DEFAULTS.levels, config.regionPooling ?? DESCRIPTOR_DEFAULTS.regionPooling, p);
      default: throw invalidParameter('descriptor', `one of ${DESCRIPTOR_IDS.join(', ')}`, id);
    }
  });
}

/** Multi-scale combination: Σ_s d_s (each row L2-normalised), L2-normalised. Inputs are not disposed. */
export function combineScales(perScale: readonly tf.Tensor2D[]): tf.Tensor2D {
  if (perScale.length === 0) throw invalidParameter('perScale', 'at least one scale', 0);
  return tf.tidy(() => l2normalizeRows(perScale.map((d) => l2normalizeRows(d)).reduce((a, b) => tf.add(a, b))));
}

/**
 * The whole descriptor from the feature maps of each scale (`maps[i]` = backbone run at
 * `config.scales[i]`; one map at the native side when not `multiscale`): [n, C] L2-normalised.
 * Inputs are not disposed.
 */
export function describeScales(maps: readonly tf.Tensor4D[], config: DescriptorConfig): tf.Tensor2D {
  if (config.id !== 'multiscale') return describe(maps[0], config);
  return tf.tidy(() => combineScales(maps.map((m) => describe(m, config))));
}

// ---------------------------------------------------------------------------------------------
// Regional matching, exactly (the product's windows and plan are in src/descriptors.ts)

/**
 * Exact regional scores of one query against N database images: `windows` R × dim rows
 * (`describeWindows`), `database[s]` N × dim rows per scale (all L2-normalised), `searches` from
 * `regionalPlan` (default: every window against every scale) → N scores, the max over searches.
 * Brute force (one matMul per scale): for tests and the bench; a search over HNSW fuses its hit
 * lists with `mergeMaxHits`.
 */
export function regionalScores(windows: Float32Array, database: readonly Float32Array[], dim: number, searches?: readonly RegionalSearch[]): Float32Array {
  if (database.length === 0) throw invalidParameter('database', 'at least one scale', 0);
  const r = windows.length / dim;
  const n = database[0].length / dim;
  const plan = searches ?? Array.from({ length: r * database.length }, (_, i) => ({ window: Math.floor(i / database.length), scale: i % database.length }));
  const scores = tf.tidy(() => {
    let best: tf.Tensor | undefined;
    database.forEach((d, scale) => {
      const rowsOf = plan.filter((x) => x.scale === scale).map((x) => x.window);
      if (rowsOf.length === 0) return;
      const q = new Float32Array(rowsOf.length * dim);
      rowsOf.forEach((w, i) => q.set(windows.subarray(w * dim, (w + 1) * dim), i * dim));
      const s = tf.max(tf.matMul(tf.tensor2d(q, [rowsOf.length, dim]), tf.tensor2d(d, [n, dim]), false, true), 0);
      best = best ? tf.maximum(best, s) : s;
    });
    return best ?? tf.fill([n], -Infinity);
  });
  const out = Float32Array.from(scores.dataSync() as Float32Array);
  scores.dispose();
  return out;
}

/**
 * Merges the hit lists of the R × S searches (one per window and database scale, e.g. from
 * HNSW) into one ranking by each id's best score: the top k of the max-score fusion is exact
 * as long as every list holds its own top k.
 */
export function mergeMaxHits<T extends { id: number; score: number }>(lists: readonly (readonly T[])[], k: number): T[] {
  const best = new Map<number, T>();
  for (const list of lists) for (const h of list) {
    const seen = best.get(h.id);
    if (!seen || h.score > seen.score) best.set(h.id, h);
  }
  return [...best.values()].sort((a, b) => b.score - a.score || a.id - b.id).slice(0, k);
}

// ---------------------------------------------------------------------------------------------
// PCA-whitening learned on the library

/**
 * A PCA-whitening: y = P (x − μ), then L2-normalised. Rows of P are the top `outDims`
 * eigenvectors u_i of the covariance of the fit descriptors, scaled by (λ_i + ε)^(−power)
 * (power 0.5 = full whitening: unit variance along every kept direction).
 */
export interface Whitening {
  inDims: number;
  outDims: number;
  /** μ, length inDims. */
  mean: Float32Array;
  /** P, outDims × inDims, row-major. */
  projection: Float32Array;
  /** Eigenvalues λ_i of the kept directions (descending), for inspection. */
  eigenvalues: Float32Array;
  /** Number of descriptors it was fit on. */
  fittedOn: number;
}

/** Options of `fitWhitening`. */
export interface WhiteningOptions {
  /** Output dimensions (default: min(inDims, n − 1), the rank of the fit data). */
  dims?: number;
  /** Regulariser added to every eigenvalue, as a fraction of the mean eigenvalue (default 0). */
  epsilon?: number;
  /** Exponent of the eigenvalue scaling (default 0.5, full whitening; 0 = plain PCA rotation). */
  power?: number;
}

/** The principal axes of a set of descriptors (what whitenings of any size are cut from). */
export interface Pca {
  dim: number;
  /** μ, length dim. */
  mean: Float32Array;
  /** Eigenvalues of the covariance, descending, one per kept axis (r = min(dim, n − 1)). */
  values: Float64Array;
  /** Unit eigenvectors, r rows × dim, row-major, in the order of `values`. */
  vectors: Float64Array;
  fittedOn: number;
}

/**
 * Principal axes of n descriptors (`data`: n rows of `dim` floats): covariance
 * Σ = (1/n) Σ_j (x_j − μ)(x_j − μ)ᵀ eigendecomposed exactly in float64. When n ≤ dim the n×n Gram
 * matrix is decomposed instead (same axes, u = Xᵀv / √(nλ)). Cost: ~10–20 s for 1280-d on one
 * core (a training-time step, like `pixdex train`); 398 × 1280 (Gram) under a second.
 */
export function fitPca(data: Float32Array, dim: number): Pca {
  if (!Number.isInteger(dim) || dim < 1 || data.length % dim !== 0) throw invalidParameter('dim', `a divisor of data.length (${data.length})`, dim);
  const n = data.length / dim;
  if (n < 2) throw new InvalidParameterError(`Whitening needs at least 2 descriptors; got ${n}.`);
  const mean64 = new Float64Array(dim);
  for (let j = 0; j < n; j++) for (let i = 0; i < dim; i++) mean64[i] += data[j * dim + i];
  for (let i = 0; i < dim; i++) mean64[i] /= n;
  const mean = Float32Array.from(mean64);
  const rank = Math.min(dim, n - 1);
  const gram = n <= dim;
  const size = gram ? n : dim;
  const [cov, centred] = tf.tidy(() => {
    const x = tf.sub(tf.tensor2d(data, [n, dim]), tf.tensor1d(mean));
    const c = tf.div(gram ? tf.matMul(x, x, false, true) : tf.matMul(x, x, true, false), n);
    return [c, gram ? tf.keep(x) : tf.zeros([0])];
  });
  const c = Float64Array.from(cov.dataSync());
  cov.dispose();
  for (let i = 0; i < size; i++) for (let j = i + 1; j < size; j++) c[i * size + j] = c[j * size + i] = (c[i * size + j] + c[j * size + i]) / 2;
  const eig = symmetricEigen(c, size);
  const order = [...eig.values.keys()].sort((a, b) => eig.values[b] - eig.values[a]).slice(0, rank);
  const values = Float64Array.from(order, (k) => Math.max(eig.values[k], 0));
  const vectors = new Float64Array(rank * dim);
  if (!gram) {
    order.forEach((k, r) => vectors.set(eig.vectors.subarray(k * dim, (k + 1) * dim), r * dim));
  } else {
    // u_r = Xᵀ v_r / ‖Xᵀ v_r‖ (= Xᵀv/√(nλ)).
    const v = new Float32Array(rank * n);
    order.forEach((k, r) => { for (let j = 0; j < n; j++) v[r * n + j] = eig.vectors[k * n + j]; });
    const u = tf.tidy(() => l2normalizeRows(tf.matMul(tf.tensor2d(v, [rank, n]), centred as tf.Tensor2D)));
    vectors.set(u.dataSync());
    u.dispose();
  }
  centred.dispose();
  // Fix each axis' sign (largest entry positive) so a re-fit on the same data gives the same bytes.
  for (let r = 0; r < rank; r++) {
    const row = vectors.subarray(r * dim, (r + 1) * dim);
    let big = 0;
    for (let i = 0; i < dim; i++) if (Math.abs(row[i]) > Math.abs(big)) big = row[i];
    if (big < 0) for (let i = 0; i < dim; i++) row[i] = -row[i];
  }
  return { dim, mean, values, vectors, fittedOn: n };
}

/** Cuts a whitening of `options.dims` outputs from principal axes (cheap: no decomposition). */
export function whiteningFromPca(pca: Pca, options: WhiteningOptions = {}): Whitening {
  const power = options.power ?? 0.5;
  const epsilon = options.epsilon ?? 0;
  const rank = pca.values.length;
  const outDims = Math.min(options.dims ?? rank, rank);
  if (!Number.isInteger(outDims) || outDims < 1) throw invalidParameter('dims', 'integer ≥ 1', options.dims);
  let meanEig = 0;
  for (const v of pca.values) meanEig += v;
  meanEig /= pca.dim;
  const reg = epsilon * meanEig;
  const dim = pca.dim;
  const projection = new Float32Array(outDims * dim);
  const eigenvalues = new Float32Array(outDims);
  for (let r = 0; r < outDims; r++) {
    const lambda = pca.values[r];
    eigenvalues[r] = lambda;
    const scale = power === 0 ? 1 : Math.pow(Math.max(lambda + reg, 1e-12), -power);
    for (let i = 0; i < dim; i++) projection[r * dim + i] = scale * pca.vectors[r * dim + i];
  }
  return { inDims: dim, outDims, mean: pca.mean.slice(), projection, eigenvalues, fittedOn: pca.fittedOn };
}

/**
 * Learns a PCA-whitening from n descriptors (`data`: n rows of `dim` floats, row-major):
 * `whiteningFromPca(fitPca(data, dim), options)`. Directions beyond the data's rank (n − 1)
 * are dropped.
 */
export function fitWhitening(data: Float32Array, dim: number, options: WhiteningOptions = {}): Whitening {
  return whiteningFromPca(fitPca(data, dim), options);
}

/**
 * Applies a whitening to n row vectors (`data`: n × inDims) → n × outDims, each row
 * L2-normalised unless `normalize` is false. Uses a tf matMul (fast for a whole library).
 */
export function applyWhitening(w: Whitening, data: Float32Array, normalize = true): Float32Array {
  if (data.length % w.inDims !== 0) throw invalidParameter('data', `a multiple of ${w.inDims} floats`, data.length);
  const n = data.length / w.inDims;
  if (n === 0) return new Float32Array(0);
  const out = tf.tidy(() => {
    const x = tf.sub(tf.tensor2d(data, [n, w.inDims]), tf.tensor1d(w.mean));
    const y = tf.matMul(x, tf.tensor2d(w.projection, [w.outDims, w.inDims]), false, true) as tf.Tensor2D;
    return normalize ? l2normalizeRows(y) : y;
  });
  const result = out.dataSync() as Float32Array;
  out.dispose();
  return Float32Array.from(result);
}

/** Whitens one query vector in plain JS (no tensor round trip; ~0.3 ms for 1280 → 512). L2-normalised. */
export function whitenVector(w: Whitening, v: Float32Array): Float32Array {
  if (v.length !== w.inDims) throw invalidParameter('vector', `length ${w.inDims}`, v.length);
  const centred = new Float32Array(w.inDims);
  for (let i = 0; i < w.inDims; i++) centred[i] = v[i] - w.mean[i];
  const out = new Float32Array(w.outDims);
  for (let r = 0; r < w.outDims; r++) {
    let s = 0;
    const off = r * w.inDims;
    for (let i = 0; i < w.inDims; i++) s += w.projection[off + i] * centred[i];
    out[r] = s;
  }
  return l2normalize(out);
}

const WHITENING_MAGIC = 0x31575850; // "PXW1" little-endian
const HEADER_BYTES = 20;

/**
 * Serialises a whitening (for a store's `models` record, little-endian): magic "PXW1", inDims, outDims,
 * fittedOn, reserved (uint32 each), then float32 mean[inDims], eigenvalues[outDims],
 * projection[outDims × inDims]. 1280 → 512: 2.6 MB.
 */
export function whiteningToBytes(w: Whitening): Uint8Array {
  const floats = w.inDims + w.outDims + w.outDims * w.inDims;
  const buf = new ArrayBuffer(HEADER_BYTES + floats * 4);
  const view = new DataView(buf);
  view.setUint32(0, WHITENING_MAGIC, true);
  view.setUint32(4, w.inDims, true);
  view.setUint32(8, w.outDims, true);
  view.setUint32(12, w.fittedOn, true);
  view.setUint32(16, 0, true);
  const body = new Float32Array(buf, HEADER_BYTES, floats);
  body.set(w.mean, 0);
  body.set(w.eigenvalues, w.inDims);
  body.set(w.projection, w.inDims + w.outDims);
  return new Uint8Array(buf);
}

/** Reads `whiteningToBytes` output (copies, so the LMDB buffer can be reused). */
export function whiteningFromBytes(bytes: Uint8Array): Whitening {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < HEADER_BYTES || view.getUint32(0, true) !== WHITENING_MAGIC) {
    throw new InvalidParameterError('Not a pixdex whitening model (bad magic); re-fit it.');
  }
  const inDims = view.getUint32(4, true);
  const outDims = view.getUint32(8, true);
  const fittedOn = view.getUint32(12, true);
  const floats = inDims + outDims + outDims * inDims;
  if (bytes.byteLength !== HEADER_BYTES + floats * 4) {
    throw new InvalidParameterError(`Whitening model is ${bytes.byteLength} bytes; expected ${HEADER_BYTES + floats * 4} for ${inDims} → ${outDims}.`);
  }
  const body = new Float32Array(bytes.slice(HEADER_BYTES).buffer);
  return {
    inDims,
    outDims,
    fittedOn,
    mean: body.slice(0, inDims),
    eigenvalues: body.slice(inDims, inDims + outDims),
    projection: body.slice(inDims + outDims),
  };
}

/**
 * Eigen-decomposition of a symmetric n×n matrix (row-major float64): Householder reduction to
 * tridiagonal form, then the implicit QL algorithm (JAMA's tred2/tql2, run on the transposed
 * eigenvector matrix so that every inner loop walks contiguous memory). Returns the eigenvalues
 * (unsorted) and the eigenvectors as the ROWS of `vectors` (row k belongs to `values[k]`).
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  if (matrix.length !== n * n) throw invalidParameter('matrix', `${n}x${n} values`, matrix.length);
  // W = Vᵀ of JAMA's V: W[b*n+a] stands for V[a][b].
  const W = Float64Array.from(matrix);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  for (let j = 0; j < n; j++) d[j] = W[j * n + n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = W[j * n + i - 1];
        W[j * n + i] = 0;
        W[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        W[i * n + j] = f;
        const row = j * n;
        g = e[j] + W[row + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const vkj = W[row + k];
          g += vkj * d[k];
          e[k] += vkj * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        const row = j * n;
        for (let k = j; k <= i - 1; k++) W[row + k] -= f * e[k] + g * d[k];
        d[j] = W[row + i - 1];
        W[row + i] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the Householder transformations.
  for (let i = 0; i < n - 1; i++) {
    W[i * n + n - 1] = W[i * n + i];
    W[i * n + i] = 1;
    const h = d[i + 1];
    const next = (i + 1) * n;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = W[next + k] / h;
      for (let j = 0; j <= i; j++) {
        const row = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += W[next + k] * W[row + k];
        for (let k = 0; k <= i; k++) W[row + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) W[next + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = W[j * n + n - 1];
    W[j * n + n - 1] = 0;
  }
  W[(n - 1) * n + n - 1] = 1;
  e[0] = 0;

  // tql2: each Givens rotation mixes two eigenvectors = two contiguous rows of W.
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = Math.pow(2, -52);
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) break;
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          const rowI = i * n;
          const rowI1 = (i + 1) * n;
          for (let k = 0; k < n; k++) {
            const hk = W[rowI1 + k];
            const vk = W[rowI + k];
            W[rowI1 + k] = s * vk + c * hk;
            W[rowI + k] = c * vk - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  return { values: d, vectors: W };
}

// ---------------------------------------------------------------------------------------------
// Re-ranking in vector space: αQE and DBA (the formula, `expandVector`, is the product's)

/** Options of query expansion and database-side augmentation. */
export interface ExpansionOptions {
  /** Neighbours averaged in (default 3 for QE, 2 for DBA). */
  n?: number;
  /** Weight exponent α: neighbour i weighs max(s_i, 0)^α (0 = plain average, default 3). */
  alpha?: number;
}

/**
 * Average query expansion (αQE, Radenović et al.): search the top `n` rows of `matrix`
 * (L2-normalised rows of `dim`), fold them into the query with `expandVector`, and return the
 * new query to search again with. `exclude` skips rows (e.g. the query itself when it is indexed).
 */
export function queryExpansion(query: Float32Array, matrix: Float32Array, dim: number, options: ExpansionOptions = {}, exclude?: (row: number) => boolean): Float32Array {
  const n = options.n ?? 3;
  const hits = exactKnn(query, matrix, dim, n, exclude);
  return expandVector(query, hits.map((h) => matrix.subarray(h.index * dim, (h.index + 1) * dim)), hits.map((h) => h.score), options.alpha ?? 3);
}

/**
 * Database-side augmentation: every row replaced by `expandVector` of itself and its top `n`
 * other rows (computed on the original rows). Exact O(N²·dim) here; a large library would take
 * the neighbours from HNSW. Returns a new matrix (the vectors that would be indexed).
 */
export function databaseAugmentation(matrix: Float32Array, dim: number, options: ExpansionOptions = {}): Float32Array {
  const n = options.n ?? 2;
  const alpha = options.alpha ?? 3;
  const rows = matrix.length / dim;
  const out = new Float32Array(matrix.length);
  for (let r = 0; r < rows; r++) {
    const v = matrix.subarray(r * dim, (r + 1) * dim);
    const hits = exactKnn(v, matrix, dim, n, (row) => row === r);
    out.set(expandVector(v, hits.map((h) => matrix.subarray(h.index * dim, (h.index + 1) * dim)), hits.map((h) => h.score), alpha), r * dim);
  }
  return out;
}
