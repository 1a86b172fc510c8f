/**
 * Global descriptors (src/descriptors.ts; the research ones from bench/lib/research-descriptors.ts):
 * pooling identities, R-MAC regions, regional windows, PCA-whitening (decorrelation,
 * serialisation), αQE and DBA on toy vectors whose answers are known.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend.ts';
import { describeWindows, expandVector, gemPool, matchedScale, regionalPlan, slidingWindows } from '../src/descriptors.ts';
import {
  applyWhitening, combineScales, databaseAugmentation, describe as describeMap, describeScales, descriptorName, fitPca, fitWhitening,
  meanPool, mergeMaxHits, queryExpansion, regionalScores, rmacPool, rmacRegions, symmetricEigen, whiteningFromBytes, whiteningFromPca,
  whiteningToBytes, whitenVector,
} from '../bench/lib/research-descriptors.ts';
import { seededRandom } from '../src/random.ts';
import { exactKnn, l2normalize } from '../src/vector.ts';

before(async () => {
  await initBackend('wasm');
});

function randomMap(shape: [number, number, number, number], seed: number): tf.Tensor4D {
  const rng = seededRandom(seed);
  const v = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() * 6);
  return tf.tensor4d(v, shape);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Covariance (1/n) of n rows of `dim`, as a dim×dim Float64Array. */
function covariance(data: Float32Array, dim: number): Float64Array {
  const n = data.length / dim;
  const mean = new Float64Array(dim);
  for (let r = 0; r < n; r++) for (let i = 0; i < dim; i++) mean[i] += data[r * dim + i] / n;
  const c = new Float64Array(dim * dim);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < dim; i++) {
      const a = data[r * dim + i] - mean[i];
      for (let j = 0; j < dim; j++) c[i * dim + j] += (a * (data[r * dim + j] - mean[j])) / n;
    }
  }
  return c;
}

/** n correlated samples in `dim` dimensions: x = A z, z ~ U(-1,1)^dim, A random. */
function correlated(n: number, dim: number, seed: number): Float32Array {
  const rng = seededRandom(seed);
  const a = Float64Array.from({ length: dim * dim }, () => rng() * 2 - 1);
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    const z = Array.from({ length: dim }, () => rng() * 2 - 1);
    for (let i = 0; i < dim; i++) {
      let s = 3 * i; // non-zero mean
      for (let j = 0; j < dim; j++) s += a[i * dim + j] * z[j];
      out[r * dim + i] = s;
    }
  }
  return out;
}

describe('pooling', () => {
  it('GeM with p = 1 equals mean pooling', () => {
    const x = randomMap([3, 7, 7, 16], 1);
    const g = gemPool(x, 1);
    const m = meanPool(x);
    assert.ok(maxAbsDiff(g.dataSync(), m.dataSync()) < 1e-5);
    // and p = 3 sits between the mean and the max
    const g3 = gemPool(x, 3).dataSync();
    const mx = tf.max(x, [1, 2]).dataSync();
    const mean = m.dataSync();
    for (let i = 0; i < g3.length; i++) assert.ok(g3[i] >= mean[i] - 1e-5 && g3[i] <= mx[i] + 1e-5);
    tf.dispose([x, g, m]);
  });

  it('mean descriptor is the L2-normalised pooled vector', () => {
    const x = randomMap([2, 7, 7, 8], 2);
    const d = describeMap(x, { id: 'mean' });
    const m = meanPool(x);
    const rows = m.arraySync() as number[][];
    const expected = rows.flatMap((r) => [...l2normalize(Float32Array.from(r))]);
    assert.ok(maxAbsDiff(d.dataSync(), expected) < 1e-6);
    tf.dispose([x, d, m]);
  });

  it('R-MAC regions on 7x7 at L = 3: one 7x7, four 4x4, nine 3x3, all inside the map', () => {
    const r = rmacRegions(7, 7, 3);
    assert.deepEqual(r.map((x) => x.side), [7, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
    for (const [h, w] of [[7, 7], [10, 10], [7, 10], [14, 9]]) {
      for (const reg of rmacRegions(h, w, 3)) {
        assert.ok(reg.x >= 0 && reg.y >= 0 && reg.x + reg.side <= w && reg.y + reg.side <= h, `${h}x${w} ${JSON.stringify(reg)}`);
      }
    }
    assert.ok(rmacRegions(7, 10, 3).length > rmacRegions(7, 7, 3).length, 'extra regions along the long side');
  });

  it('R-MAC of a constant map is the constant unit vector (every region agrees)', () => {
    const c = 12;
    const x = tf.fill([2, 7, 7, c], 0.7) as tf.Tensor4D;
    for (const pooling of ['max', 'gem'] as const) {
      const r = rmacPool(x, 3, pooling);
      assert.ok(maxAbsDiff(r.dataSync(), new Float32Array(2 * c).fill(1 / Math.sqrt(c))) < 1e-5, pooling);
      r.dispose();
    }
    x.dispose();
  });

  it('R-MAC weighs a small object region more than global pooling does', () => {
    // Background: weak activation on channel 0 everywhere; object: strong channel 1 in one 3x3 corner.
    const v = new Float32Array(7 * 7 * 2);
    for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) {
      v[(y * 7 + x) * 2] = 1;
      if (y < 3 && x < 3) v[(y * 7 + x) * 2 + 1] = 1;
    }
    const map = tf.tensor4d(v, [1, 7, 7, 2]);
    const mean = describeMap(map, { id: 'mean' }).dataSync();
    const rmac = describeMap(map, { id: 'rmac' }).dataSync();
    assert.ok(rmac[1] > mean[1], `object share ${rmac[1]} vs ${mean[1]}`);
    map.dispose();
  });

  it('every descriptor is unit-length, multiscale combines scales, and nothing leaks', () => {
    const a = randomMap([2, 7, 7, 8], 3);
    const b = randomMap([2, 10, 10, 8], 4);
    const before = tf.memory().numTensors;
    for (const config of [{ id: 'mean' }, { id: 'gem', p: 3 }, { id: 'rmac' }, { id: 'rmac', regionPooling: 'gem' }] as const) {
      const d = describeMap(a, config);
      const rows = d.arraySync();
      for (const r of rows) assert.ok(Math.abs(Math.hypot(...r) - 1) < 1e-5, descriptorName(config));
      d.dispose();
    }
    const ms = describeScales([a, b], { id: 'multiscale', scales: [224, 320], base: 'gem' });
    const parts = [describeMap(a, { id: 'gem' }), describeMap(b, { id: 'gem' })];
    const expected = combineScales(parts);
    assert.ok(maxAbsDiff(ms.dataSync(), expected.dataSync()) < 1e-6);
    tf.dispose([ms, expected, ...parts]);
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([a, b]);
    assert.equal(descriptorName({ id: 'multiscale', scales: [224, 320], base: 'gem' }), 'multiscale(224+320,gem(p=3))');
  });
});

describe('PCA-whitening', () => {
  it('symmetricEigen solves A v = λ v with orthonormal vectors', () => {
    const n = 9;
    const rng = seededRandom(5);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng() - 0.5;
    const { values, vectors } = symmetricEigen(a, n);
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += a[i * n + j] * vectors[k * n + j];
        assert.ok(Math.abs(s - values[k] * vectors[k * n + i]) < 1e-10);
      }
      for (let l = 0; l < n; l++) {
        let d = 0;
        for (let j = 0; j < n; j++) d += vectors[k * n + j] * vectors[l * n + j];
        assert.ok(Math.abs(d - (k === l ? 1 : 0)) < 1e-10);
      }
    }
  });

  it('decorrelates: covariance of the whitened fit data is the identity', () => {
    const dim = 8;
    const data = correlated(500, dim, 6);
    const w = fitWhitening(data, dim);
    assert.equal(w.outDims, dim);
    const y = applyWhitening(w, data, false);
    const c = covariance(y, dim);
    for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) assert.ok(Math.abs(c[i * dim + j] - (i === j ? 1 : 0)) < 1e-3, `cov[${i}][${j}] = ${c[i * dim + j]}`);
    // eigenvalues descending; projected mean ≈ 0
    for (let i = 1; i < dim; i++) assert.ok(w.eigenvalues[i] <= w.eigenvalues[i - 1]);
  });

  it('reduces dimensions and handles fewer samples than dimensions (Gram path)', () => {
    const dim = 12;
    const data = correlated(7, dim, 7);
    const pca = fitPca(data, dim);
    assert.equal(pca.values.length, 6); // rank n − 1
    const w = whiteningFromPca(pca);
    const y = applyWhitening(w, data, false);
    const c = covariance(y, 6);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 6; j++) assert.ok(Math.abs(c[i * 6 + j] - (i === j ? 1 : 0)) < 1e-3);
    const small = whiteningFromPca(fitPca(correlated(300, dim, 8), dim), { dims: 4, epsilon: 0.1 });
    assert.equal(small.outDims, 4);
    assert.equal(applyWhitening(small, data).length, 7 * 4);
  });

  it('whitenVector (JS) equals applyWhitening (tf), L2-normalised', () => {
    const dim = 10;
    const data = correlated(200, dim, 9);
    const w = fitWhitening(data, dim, { dims: 6, epsilon: 0.1 });
    const v = data.slice(0, dim);
    const a = whitenVector(w, v);
    const b = applyWhitening(w, v);
    assert.ok(maxAbsDiff(a, b) < 1e-5);
    assert.ok(Math.abs(Math.hypot(...a) - 1) < 1e-6);
  });

  it('round-trips through bytes and refuses foreign bytes', () => {
    const dim = 6;
    const w = fitWhitening(correlated(100, dim, 10), dim, { dims: 4 });
    const bytes = whiteningToBytes(w);
    assert.equal(bytes.byteLength, 20 + 4 * (6 + 4 + 24));
    const copy = new Uint8Array(bytes.byteLength + 3).subarray(3);
    copy.set(bytes); // unaligned, as an LMDB buffer can be
    const back = whiteningFromBytes(copy);
    assert.deepEqual({ ...back }, { ...w });
    assert.throws(() => whiteningFromBytes(new Uint8Array(64)), /bad magic/);
    assert.throws(() => whiteningFromBytes(bytes.slice(0, bytes.byteLength - 4)), /expected/);
  });

  it('is deterministic: the same data gives the same bytes', () => {
    const data = correlated(50, 5, 11);
    assert.deepEqual(whiteningToBytes(fitWhitening(data, 5)), whiteningToBytes(fitWhitening(data, 5)));
  });
});

describe('query expansion and database-side augmentation', () => {
  const n3 = (...x: number[]) => l2normalize(Float32Array.from(x));

  it('expandVector follows v + Σ s_i^α x_i', () => {
    const out = expandVector(n3(1, 0), [n3(0, 1), n3(-1, 0)], [0.5, -0.2], 2);
    assert.ok(maxAbsDiff(out, n3(1, 0.25)) < 1e-6); // negative score: no weight
  });

  it('αQE pulls a relevant item past a distractor', () => {
    // Items 0, 1 and 2 are views of one object; 3 is a distractor that the raw query prefers to 2.
    const db = [n3(1, 0.5, 0), n3(1, 0.5, 0.1), n3(0.5, 1, 0), n3(1, -0.3, 1)];
    const matrix = new Float32Array(12);
    db.forEach((v, i) => matrix.set(v, i * 3));
    const q = n3(1, 0, 0);
    const before = exactKnn(q, matrix, 3, 4).map((h) => h.index);
    assert.deepEqual(before, [0, 1, 3, 2]);
    const expanded = queryExpansion(q, matrix, 3, { n: 2, alpha: 1 });
    const after = exactKnn(expanded, matrix, 3, 4).map((h) => h.index);
    assert.deepEqual(after.slice(0, 3).sort(), [0, 1, 2]);
    assert.equal(after[3], 3);
  });

  it('DBA moves rows towards their neighbours and leaves an isolated row alone', () => {
    const db = [n3(1, 0.1, 0), n3(1, -0.1, 0), n3(0, 0, 1)];
    const matrix = new Float32Array(9);
    db.forEach((v, i) => matrix.set(v, i * 3));
    const out = databaseAugmentation(matrix, 3, { n: 1, alpha: 1 });
    assert.ok(out[0] * out[3] + out[1] * out[4] > matrix[0] * matrix[3] + matrix[1] * matrix[4], 'the pair got closer');
    assert.ok(maxAbsDiff(out.subarray(6), db[2]) < 1e-6, 'orthogonal row unchanged');
  });
});

describe('regional matching', () => {
  it('slides windows of each side over the map', () => {
    assert.equal(slidingWindows(7, 7, [4, 5, 6, 7]).length, 16 + 9 + 4 + 1);
    assert.deepEqual(slidingWindows(3, 3, [2]), [{ x: 0, y: 0, side: 2 }, { x: 1, y: 0, side: 2 }, { x: 0, y: 1, side: 2 }, { x: 1, y: 1, side: 2 }]);
  });

  it('describeWindows (integral image, JS) equals GeM of each slice (tf)', () => {
    for (const p of [1, 3, 2.5]) {
      const map = randomMap([1, 7, 7, 16], 12);
      const wins = slidingWindows(7, 7, [3, 5, 7]);
      const fast = describeWindows(map.dataSync() as Float32Array, 7, 7, 16, wins, p);
      wins.forEach((r, i) => {
        const slice = tf.slice(map, [0, r.y, r.x, 0], [1, r.side, r.side, 16]) as tf.Tensor4D;
        const ref = describeMap(slice, { id: 'gem', p });
        assert.ok(maxAbsDiff(fast.subarray(i * 16, (i + 1) * 16), ref.dataSync()) < 1e-5, `p=${p} window ${i}`);
        tf.dispose([slice, ref]);
      });
      map.dispose();
    }
  });

  it('plans matched searches: side 7 ↔ 224, 6 ↔ 192, 5 ↔ 160, 4 ↔ 128', () => {
    assert.deepEqual([4, 5, 6, 7].map((k) => matchedScale(k, 7)), [128, 160, 192, 224]);
    const { windows, searches } = regionalPlan();
    assert.equal(windows.length, 30);
    assert.equal(searches.length, 30);
    for (const s of searches) assert.equal([224, 192, 160, 128][s.scale], matchedScale(windows[s.window].side, 7));
    assert.equal(regionalPlan({ sides: [4, 5, 6, 7], databaseScales: [224, 160], pairs: 'all', p: 3 }).searches.length, 60);
  });

  it('scores by the best (window, scale) pair and finds an image pasted into clutter', () => {
    // Database: 3 images at 2 scales, 2-d for clarity; the query's window 1 matches image 2 at scale 1.
    const db = [Float32Array.from([1, 0, 0, 1, 0.6, 0.8]), Float32Array.from([1, 0, 0, 1, 0.8, 0.6])];
    const windows = Float32Array.from([0.9, 0.436, 0.8, 0.6]);
    const all = regionalScores(windows, db, 2);
    assert.equal([...all].indexOf(Math.max(...all)), 2);
    const onlyScale0 = regionalScores(windows, db, 2, [{ window: 0, scale: 0 }, { window: 1, scale: 0 }]);
    assert.ok(onlyScale0[2] < all[2]);
  });

  it('mergeMaxHits keeps each id once with its best score', () => {
    const merged = mergeMaxHits([[{ id: 1, score: 0.5 }, { id: 2, score: 0.4 }], [{ id: 2, score: 0.9 }, { id: 3, score: 0.1 }]], 2);
    assert.deepEqual(merged, [{ id: 2, score: 0.9 }, { id: 1, score: 0.5 }]);
  });
});
