/**
 * Vector maths on embeddings: normalisation, similarity and exact (brute-force) kNN.
 * Pure and synchronous: no I/O, no tfjs. Exact kNN is the ground truth HNSW recall is measured against.
 */
import { invalidParameter } from './errors.ts';

/** One search hit: a row of the matrix and its cosine similarity to the query. */
export interface Neighbor {
  index: number;
  score: number;
}

function sameLength(name: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) {
    throw invalidParameter(name, `a vector of length ${a.length}`, `length ${b.length}`);
  }
}

/** Euclidean norm, accumulated in float64 so 1280-d float32 vectors keep their precision. */
function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/**
 * A new unit-length copy of `v`, so that dot product = cosine similarity in the index.
 * A zero vector has no direction and stays zero (rather than becoming NaN).
 */
export function l2normalize(v: Float32Array): Float32Array {
  const out = new Float32Array(v.length);
  const n = norm(v);
  if (n === 0) return out;
  const inv = 1 / n;
  for (let i = 0; i < v.length; i++) out[i] = v[i] * inv;
  return out;
}

/** Inner product; equals cosine similarity when both vectors are L2-normalised. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  sameLength('b', a, b);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Cosine similarity in [-1, 1], for vectors of any scale (e.g. pooled backbone vectors).
 * 0 when either vector is zero, since a zero vector is neither similar nor dissimilar.
 */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const d = dot(a, b);
  const n = norm(a) * norm(b);
  return n === 0 ? 0 : Math.max(-1, Math.min(1, d / n));
}

/** Dot product of `q` with the row starting at `off`; four accumulators let V8 pipeline the loop. */
function dotRow(q: Float32Array, m: Float32Array, off: number, dim: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  const end4 = dim - (dim % 4);
  for (; i < end4; i += 4) {
    s0 += q[i] * m[off + i];
    s1 += q[i + 1] * m[off + i + 1];
    s2 += q[i + 2] * m[off + i + 2];
    s3 += q[i + 3] * m[off + i + 3];
  }
  for (; i < dim; i++) s0 += q[i] * m[off + i];
  return s0 + s1 + s2 + s3;
}

/**
 * Exact k nearest rows by cosine similarity, highest first (ties: lower row index first), so
 * HNSW recall has a ground truth. `matrix` holds n rows of `dim` floats, row-major, each row
 * L2-normalised; the query is normalised here, so `score` is the cosine similarity.
 * Rows for which `exclude(row)` is true are skipped (e.g. the query itself, deleted ids).
 * Cost O(n·dim + n·log k) time, O(k) memory (a bounded min-heap); fewer than k hits when n is smaller.
 */
export function exactKnn(
  query: Float32Array,
  matrix: Float32Array,
  dim: number,
  k: number,
  exclude?: (row: number) => boolean,
): Neighbor[] {
  if (!Number.isInteger(dim) || dim < 1) throw invalidParameter('dim', 'positive integer', dim);
  if (!Number.isInteger(k) || k < 0) throw invalidParameter('k', 'non-negative integer', k);
  if (matrix.length % dim !== 0) {
    throw invalidParameter('matrix', `a length that is a multiple of dim (${dim})`, `length ${matrix.length}`);
  }
  if (query.length !== dim) throw invalidParameter('query', `a vector of length ${dim}`, `length ${query.length}`);

  const n = matrix.length / dim;
  const cap = Math.min(k, n);
  if (cap === 0) return [];
  const q = l2normalize(query);

  // Min-heap of the best `cap` rows so far; the root is the worst kept (lowest score, then highest index).
  const hs = new Float64Array(cap);
  const hi = new Int32Array(cap);
  let size = 0;
  const worse = (a: number, b: number): boolean => hs[a] < hs[b] || (hs[a] === hs[b] && hi[a] > hi[b]);
  const swap = (a: number, b: number): void => {
    const s = hs[a]; hs[a] = hs[b]; hs[b] = s;
    const t = hi[a]; hi[a] = hi[b]; hi[b] = t;
  };

  for (let row = 0, off = 0; row < n; row++, off += dim) {
    if (exclude !== undefined && exclude(row)) continue;
    const score = dotRow(q, matrix, off, dim);
    if (size < cap) {
      hs[size] = score;
      hi[size] = row;
      let c = size++;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!worse(c, p)) break;
        swap(c, p);
        c = p;
      }
    } else if (score > hs[0]) {
      // Rows arrive in ascending order, so an equal score never displaces a kept (lower) index.
      hs[0] = score;
      hi[0] = row;
      let p = 0;
      for (;;) {
        const l = 2 * p + 1;
        const r = l + 1;
        let m = p;
        if (l < size && worse(l, m)) m = l;
        if (r < size && worse(r, m)) m = r;
        if (m === p) break;
        swap(p, m);
        p = m;
      }
    }
  }

  const out: Neighbor[] = new Array(size);
  for (let i = 0; i < size; i++) out[i] = { index: hi[i], score: hs[i] };
  out.sort((a, b) => b.score - a.score || a.index - b.index);
  return out;
}
