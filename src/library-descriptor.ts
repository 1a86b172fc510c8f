/**
 * The descriptor a library is built with (chosen when it is created, kept in `meta`):
 * - `regional2` (default for new libraries): GeM (p = 2) of the feature map is the global vector,
 *   and each image is also described at 160 px (stored in `scales`, not in the HNSW index). A
 *   query image is described by GeM over its 10 sliding windows of 5 and 7 cells of the 7×7 map;
 *   each window is matched against the database side at which a whole image gives a map of its
 *   size (5 ↔ 160, 7 ↔ 224). So a photo of a photo, cropped or in clutter, meets its original
 *   (see bench/descriptors.ts). Two backbone passes per image at indexing (1.51× one pass).
 * - `regional` (the default before `regional2`; libraries made with it keep it): the same with
 *   windows of 4–7 cells (30) and database sides 224, 192, 160, 128: four passes (2.57×).
 * - `gem`: the same global vector, no smaller sides: one backbone pass per image at indexing.
 * - `pooled`: the backbone's average-pooled vector (libraries made before descriptors existed).
 */
import { matchedScale, REGIONAL_DEFAULTS, regionalPlan, type RegionalConfig, type RegionalSearch } from './descriptors.ts';
import { tf } from './backend.ts';
import type { BackboneSpec } from './models/backbone.ts';

// The names and their check live in a tfjs-free module (config.ts imports them); re-exported here.
export { checkDescriptor, DEFAULT_DESCRIPTOR, isRegional, LIBRARY_DESCRIPTORS, type LibraryDescriptor, type RegionalDescriptor } from './descriptor-kind.ts';
import type { RegionalDescriptor } from './descriptor-kind.ts';

/**
 * Each regional descriptor's plan, in cells of the native feature map: the query window sides, the
 * database sides (the input side at which a whole image gives a map of that many cells: 7 ↔ 224,
 * 5 ↔ 160 on a 7×7 map) and which (window, database side) pairs are searched.
 */
export const REGIONAL_PLANS: Readonly<Record<RegionalDescriptor, { windows: readonly number[]; database: readonly number[]; pairs: RegionalConfig['pairs'] }>> = Object.freeze({
  regional2: Object.freeze({ windows: Object.freeze([5, 7]), database: Object.freeze([5, 7]), pairs: 'matched' as const }),
  regional: Object.freeze({ windows: REGIONAL_DEFAULTS.sides, database: REGIONAL_DEFAULTS.sides, pairs: 'matched' as const }),
});

/** GeM exponent of `gem` and `regional` (p = 2 measured best of 2, 3, 4 for both kinds of query). */
export const LIBRARY_GEM_P = 2;

/** The regional plan of a backbone: windows, the (window, side) pairs searched, and the smaller database sides. */
export interface LibraryRegional {
  config: RegionalConfig;
  /** Database sides below the native one, in the order `Embedding.scales` holds them. */
  smaller: number[];
  /** Number of query windows. */
  windows: number;
  /** Each window with the index of its database side: 0 = native (`vectors`), i ≥ 1 = smaller[i − 1]. */
  searches: RegionalSearch[];
}

const cache = new Map<string, LibraryRegional>();

/** The regional plan of `descriptor` (a regional one) on a backbone. */
export function libraryRegional(spec: BackboneSpec, descriptor: RegionalDescriptor): LibraryRegional {
  const key = `${spec.id}/${descriptor}`;
  let r = cache.get(key);
  if (!r) {
    const native = spec.inputSize;
    const mapSide = spec.featureMap.shape[0];
    const { windows, database, pairs } = REGIONAL_PLANS[descriptor];
    const config: RegionalConfig = { ...REGIONAL_DEFAULTS, sides: windows, pairs, databaseScales: database.map((s) => matchedScale(s, mapSide, native)).sort((a, b) => b - a) };
    const plan = regionalPlan(config, mapSide, native);
    r = { config, smaller: config.databaseScales.filter((s) => s !== native), windows: plan.windows.length, searches: plan.searches };
    cache.set(key, r);
  }
  return r;
}

/**
 * The regional score of one database image: max over the planned (window, side) pairs of
 * window · descriptor-at-side. `windows`: R × d (query), `global`: d, `scales`: smaller × d.
 */
export function regionalScore(plan: LibraryRegional, windows: Float32Array, global: Float32Array, scales: Float32Array | undefined, d: number): number {
  let best = -Infinity;
  for (const { window, scale } of plan.searches) {
    let v: Float32Array;
    if (scale === 0) v = global;
    else if (scales && scales.length >= scale * d) v = scales.subarray((scale - 1) * d, scale * d);
    else continue; // an image stored without smaller sides is matched by its global vector only
    const off = window * d;
    let s = 0;
    for (let k = 0; k < d; k++) s += windows[off + k] * v[k];
    if (s > best) best = s;
  }
  return best;
}

/**
 * Regional scores of many queries against a whole database, exactly (for `pixdex eval`; the
 * engine re-ranks an HNSW shortlist with `regionalScore` instead). `queryWindows[q]`: R × d,
 * `global`: n × d, `scales`: n × (smaller × d), all unit rows. One matMul per database side per
 * chunk of queries; returns one row of n scores per query.
 */
export function regionalScoreRows(plan: LibraryRegional, queryWindows: readonly Float32Array[], global: Float32Array, scales: Float32Array, d: number): Float32Array[] {
  const n = global.length / d;
  const sides = plan.smaller.length + 1;
  const windowsOf = Array.from({ length: sides }, (_, s) => plan.searches.filter((x) => x.scale === s).map((x) => x.window));
  const database = tf.tidy(() => {
    const g = tf.tensor2d(global, [n, d]);
    const sc = tf.tensor3d(scales, [n, plan.smaller.length, d]);
    return [g, ...plan.smaller.map((_, i) => tf.squeeze(tf.slice(sc, [0, i, 0], [n, 1, d]), [1]) as tf.Tensor2D)];
  });
  const rows: Float32Array[] = [];
  try {
    const chunk = 32;
    for (let start = 0; start < queryWindows.length; start += chunk) {
      const qs = queryWindows.slice(start, start + chunk);
      const best = tf.tidy(() => {
        let acc: tf.Tensor2D | undefined;
        for (let s = 0; s < sides; s++) {
          const ws = windowsOf[s];
          if (ws.length === 0) continue;
          const q = new Float32Array(qs.length * ws.length * d);
          qs.forEach((w, i) => ws.forEach((r, j) => q.set(w.subarray(r * d, (r + 1) * d), (i * ws.length + j) * d)));
          const scores = tf.matMul(tf.tensor2d(q, [qs.length * ws.length, d]), database[s], false, true); // [qs·|ws|, n]
          const m = tf.max(tf.reshape(scores, [qs.length, ws.length, n]), 1) as tf.Tensor2D;
          acc = acc ? (tf.maximum(acc, m) as tf.Tensor2D) : m;
        }
        return acc!;
      });
      const data = best.dataSync() as Float32Array;
      best.dispose();
      for (let i = 0; i < qs.length; i++) rows.push(data.slice(i * n, (i + 1) * n));
    }
  } finally {
    tf.dispose(database);
  }
  return rows;
}
