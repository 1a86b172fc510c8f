/**
 * The descriptors the product uses, from a backbone feature map F [n, h, w, C] (C channels,
 * values ≥ 0 after ReLU/ReLU6): GeM pooling (the global vector), regional matching (GeM over
 * sliding windows of the query map against a multi-scale database: the search mode that finds a
 * photographed photo in clutter; wired up in src/library-descriptor.ts) and the αQE formula the
 * engine's query expansion uses.
 *
 * Every descriptor is L2-normalised (cosine = dot product). Tensor functions run inside `tf.tidy`
 * and return tensors the caller disposes; vector functions are pure maths over Float32Arrays.
 * The research descriptors measured against these (R-MAC, multi-scale, PCA-whitening, DBA, …)
 * live in bench/lib/research-descriptors.ts.
 */
import { tf } from './backend.ts';
import { invalidParameter } from './errors.ts';
import { l2normalize } from './vector.ts';

/** Default GeM exponent of `gemPool` (the library descriptors pass their own, `LIBRARY_GEM_P`). */
const GEM_DEFAULT_P = 3;

/** Checks a GeM exponent: a finite number > 0. */
export function checkP(p: number): number {
  if (typeof p !== 'number' || !Number.isFinite(p) || p <= 0) throw invalidParameter('p', 'finite number > 0', p);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Pooling (tensors)

/** GeM pooling: ((1/hw) Σ max(F, eps)^p)^(1/p) over positions; [n, h, w, C] → [n, C] (not normalised). */
export function gemPool(fmap: tf.Tensor4D, p: number = GEM_DEFAULT_P, eps = 1e-6): tf.Tensor2D {
  checkP(p);
  return tf.tidy(() => {
    if (p === 1) return tf.mean(tf.maximum(fmap, eps), [1, 2]) as tf.Tensor2D;
    if (p === 2) return tf.sqrt(tf.mean(tf.square(tf.maximum(fmap, eps)), [1, 2])) as tf.Tensor2D; // the library's p: square/sqrt, not pow
    return tf.pow(tf.mean(tf.pow(tf.maximum(fmap, eps), p), [1, 2]), 1 / p) as tf.Tensor2D;
  });
}

/** A square region of a feature map, in cells: top-left (x, y) and side. */
export interface Region {
  x: number;
  y: number;
  side: number;
}

/** Row-wise L2 normalisation of [n, d] (zero rows stay zero). */
export function l2normalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D);
}

// ---------------------------------------------------------------------------------------------
// Regional matching: query windows against a multi-scale database

/**
 * Regional matching (a search mode on top of `gem`, not a single vector): the database holds
 * one GeM descriptor per image at each of `databaseScales` input sides (224, 192, 160, 128: the
 * image seen full size and smaller), the query is described by GeM over sliding windows of its
 * own 224 feature map (sides 4–7 cells, stride 1: 16 + 9 + 4 + 1 = 30 windows), and
 *   score(q, x) = max over searched (window r, scale s) pairs of q_r · d_s(x).
 * With `pairs: 'matched'` a window of side k cells is searched only against the scale at which
 * the whole image gives a k×k map (`matchedScale`: 7 ↔ 224, 6 ↔ 192, 5 ↔ 160, 4 ↔ 128), so the
 * query costs 30 searches; `all` searches every window against every scale.
 * A photo that fills 40–70% of a cluttered query then meets its own smaller copy in some window,
 * while the full 7×7 window against scale 224 is the plain `gem` match, so ordinary queries keep
 * their answer. Cost: one backbone pass and 30 searches per query; at indexing one backbone pass
 * per database scale (Σ (s/224)² = 2.57× the 224 pass for 224/192/160/128) and 4 vectors per image.
 */
export interface RegionalConfig {
  /** Window sides in feature-map cells (default [4, 5, 6, 7]). */
  sides: readonly number[];
  /** Database input sides in pixels; must include the backbone's native side (default [224, 192, 160, 128]). */
  databaseScales: readonly number[];
  /** `matched` (default): each window against its matched scale only; `all`: against every scale. */
  pairs: 'matched' | 'all';
  /** GeM exponent of windows and database descriptors (default 2, measured best here; 1 = mean). */
  p: number;
}

/** Chosen from bench/descriptors.ts (mobilenet_v2: instance P@1 0.909 vs 0.897 for p = 3 and 0.786 for plain pooling). */
export const REGIONAL_DEFAULTS: Readonly<RegionalConfig> = Object.freeze({
  sides: Object.freeze([4, 5, 6, 7]),
  databaseScales: Object.freeze([224, 192, 160, 128]),
  pairs: 'matched' as const,
  p: 2,
});

/**
 * The database scale a window is matched against: the input side at which the whole image
 * gives a map of the window's side (a 5-cell window of a 7×7 map at 224 ↔ the image at 160).
 */
export function matchedScale(side: number, mapSide: number, nativeSize = 224): number {
  return Math.round((nativeSize * side) / mapSide);
}

/** One search of regional matching: window index into `windows`, scale index into `databaseScales`. */
export interface RegionalSearch {
  window: number;
  scale: number;
}

/**
 * The windows of a query map and the (window, scale) searches a config makes. A `matched`
 * window whose scale is not in `databaseScales` is not searched.
 */
export function regionalPlan(config: RegionalConfig = REGIONAL_DEFAULTS, mapSide = 7, nativeSize = 224): { windows: Region[]; searches: RegionalSearch[] } {
  const windows = slidingWindows(mapSide, mapSide, config.sides);
  const searches: RegionalSearch[] = [];
  windows.forEach((w, window) => {
    config.databaseScales.forEach((s, scale) => {
      if (config.pairs === 'all' || s === matchedScale(w.side, mapSide, nativeSize)) searches.push({ window, scale });
    });
  });
  return { windows, searches };
}

/** Every square window of each side in `sides` on an h×w map, stride 1 (sides larger than the map are clipped). */
export function slidingWindows(h: number, w: number, sides: readonly number[]): Region[] {
  const out: Region[] = [];
  const seen = new Set<number>();
  for (const raw of sides) {
    if (!Number.isInteger(raw) || raw < 1) throw invalidParameter('sides', 'integers ≥ 1', raw);
    const side = Math.min(raw, h, w);
    if (seen.has(side)) continue;
    seen.add(side);
    for (let y = 0; y + side <= h; y++) for (let x = 0; x + side <= w; x++) out.push({ x, y, side });
  }
  return out;
}

/**
 * GeM descriptor of every window of one feature map (`map`: h × w × c floats, row-major, as
 * `tensor.dataSync()` gives it), each L2-normalised: R × c floats. Plain JS over an integral
 * image of F^p, so 30 windows on 7×7×1280 cost well under a millisecond (no tensor op per window).
 */
export function describeWindows(map: Float32Array, h: number, w: number, c: number, windows: readonly Region[], p: number = REGIONAL_DEFAULTS.p): Float32Array {
  checkP(p);
  if (map.length !== h * w * c) throw invalidParameter('map', `${h}x${w}x${c} floats`, map.length);
  const W = w + 1;
  // integral[(y·W + x)·c + k] = Σ_{y'<y, x'<x} max(F, ε)^p
  const integral = new Float64Array((h + 1) * W * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const src = (y * w + x) * c;
      const o = ((y + 1) * W + x + 1) * c;
      const up = (y * W + x + 1) * c;
      const left = ((y + 1) * W + x) * c;
      const diag = (y * W + x) * c;
      for (let k = 0; k < c; k++) {
        const v = map[src + k] > 1e-6 ? map[src + k] : 1e-6;
        const pv = p === 2 ? v * v : p === 3 ? v * v * v : p === 1 ? v : Math.pow(v, p);
        integral[o + k] = pv + integral[up + k] + integral[left + k] - integral[diag + k];
      }
    }
  }
  const out = new Float32Array(windows.length * c);
  windows.forEach((r, i) => {
    if (r.x < 0 || r.y < 0 || r.x + r.side > w || r.y + r.side > h) throw invalidParameter('window', `inside ${h}x${w}`, JSON.stringify(r));
    const a = (r.y * W + r.x) * c;
    const b = (r.y * W + r.x + r.side) * c;
    const d = ((r.y + r.side) * W + r.x) * c;
    const e = ((r.y + r.side) * W + r.x + r.side) * c;
    const area = r.side * r.side;
    let norm = 0;
    const off = i * c;
    for (let k = 0; k < c; k++) {
      const mean = Math.max((integral[e + k] - integral[b + k] - integral[d + k] + integral[a + k]) / area, 0);
      const v = p === 2 ? Math.sqrt(mean) : p === 3 ? Math.cbrt(mean) : p === 1 ? mean : Math.pow(mean, 1 / p);
      out[off + k] = v;
      norm += v * v;
    }
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < c; k++) out[off + k] *= inv;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Re-ranking in vector space: αQE and DBA

/**
 * The αQE/DBA formula: v' = (v + Σ_i max(s_i, 0)^α x_i) / ‖…‖ for neighbour vectors x_i with
 * cosine similarities s_i to v. The engine calls it with neighbours from HNSW + LMDB.
 */
export function expandVector(v: Float32Array, neighbors: readonly Float32Array[], scores: readonly number[], alpha = 3): Float32Array {
  const out = l2normalize(v);
  neighbors.forEach((x, j) => {
    if (x.length !== v.length) throw invalidParameter('neighbor', `length ${v.length}`, x.length);
    const s = scores[j];
    const wgt = s > 0 ? (alpha === 0 ? 1 : Math.pow(s, alpha)) : 0;
    if (wgt === 0) return;
    for (let i = 0; i < v.length; i++) out[i] += wgt * x[i];
  });
  return l2normalize(out);
}
