import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { l2normalize, dot, cosine, exactKnn } from '../src/vector.ts';
import { InvalidParameterError } from '../src/errors.ts';
import { seededRandom as rng } from '../src/random.ts';

const EPS = 1e-6;
const close = (actual: number, expected: number, eps = EPS): void =>
  assert.ok(Math.abs(actual - expected) <= eps, `expected ${expected} ± ${eps}, got ${actual}`);


function randomRows(n: number, dim: number, seed: number): Float32Array {
  const r = rng(seed);
  const m = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) m.set(l2normalize(Float32Array.from({ length: dim }, () => r() * 2 - 1)), i * dim);
  return m;
}

describe('l2normalize', () => {
  it('returns a unit vector pointing the same way', () => {
    const v = new Float32Array([3, 4]);
    const u = l2normalize(v);
    close(u[0], 3 / 5);
    close(u[1], 4 / 5);
    close(Math.hypot(...u), 1);
  });

  it('returns a new array and leaves its input untouched', () => {
    const v = new Float32Array([1, 2, 2]);
    const u = l2normalize(v);
    assert.notEqual(u, v);
    assert.deepEqual([...v], [1, 2, 2]);
  });

  it('keeps a zero vector zero instead of NaN', () => {
    const u = l2normalize(new Float32Array(4));
    assert.deepEqual([...u], [0, 0, 0, 0]);
  });

  it('handles the empty vector', () => {
    assert.equal(l2normalize(new Float32Array(0)).length, 0);
  });
});

describe('dot', () => {
  it('sums the element-wise products', () => {
    assert.equal(dot([1, 2, 3], [4, 5, 6]), 1 * 4 + 2 * 5 + 3 * 6);
  });

  it('refuses vectors of different lengths', () => {
    assert.throws(() => dot([1, 2, 3], [1, 2]), InvalidParameterError);
  });
});

describe('cosine', () => {
  it('follows dot(a,b) / (|a| |b|)', () => {
    const a = [1, 2, 3];
    const b = [4, 5, 6];
    close(cosine(a, b), 32 / (Math.sqrt(14) * Math.sqrt(77)));
  });

  it('ignores scale', () => {
    close(cosine([1, 2, 3], [10, 20, 30]), 1);
    close(cosine([1, 0], [-5, 0]), -1);
  });

  it('is 0 when either vector is zero', () => {
    assert.equal(cosine([0, 0], [1, 1]), 0);
  });

  it('equals dot on normalised vectors', () => {
    const a = l2normalize(new Float32Array([0.3, -1.2, 2]));
    const b = l2normalize(new Float32Array([1, 1, -0.5]));
    close(cosine(a, b), dot(a, b));
  });
});

describe('exactKnn', () => {
  const naive = (q: Float32Array, m: Float32Array, dim: number, k: number, skip = (_: number) => false) => {
    const qn = l2normalize(q);
    const all: { index: number; score: number }[] = [];
    for (let i = 0; i < m.length / dim; i++) {
      if (!skip(i)) all.push({ index: i, score: dot(qn, m.subarray(i * dim, (i + 1) * dim)) });
    }
    return all.sort((a, b) => b.score - a.score || a.index - b.index).slice(0, k);
  };

  it('matches a naive full sort on random data', () => {
    const dim = 37; // not a multiple of 4: exercises the unrolled loop's tail
    const m = randomRows(500, dim, 1);
    const queries = randomRows(20, dim, 2);
    for (const k of [1, 5, 10, 64]) {
      for (let q = 0; q < 20; q++) {
        const query = queries.subarray(q * dim, (q + 1) * dim);
        const got = exactKnn(query, m, dim, k);
        const want = naive(query, m, dim, k);
        assert.deepEqual(got.map((h) => h.index), want.map((h) => h.index));
        got.forEach((h, i) => close(h.score, want[i].score));
      }
    }
  });

  it('returns highest scores first', () => {
    const dim = 16;
    const hits = exactKnn(randomRows(1, dim, 3), randomRows(300, dim, 4), dim, 30);
    for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1].score >= hits[i].score);
  });

  it('finds a row itself with score 1 when querying by that row', () => {
    const dim = 8;
    const m = randomRows(50, dim, 5);
    const [first] = exactKnn(m.slice(17 * dim, 18 * dim), m, dim, 3);
    assert.equal(first.index, 17);
    close(first.score, 1);
  });

  it('scores as cosine similarity even when the query is not normalised', () => {
    const m = new Float32Array([1, 0, 0, 1]);
    const [hit] = exactKnn(new Float32Array([10, 0]), m, 2, 1);
    assert.deepEqual(hit, { index: 0, score: 1 });
  });

  it('skips excluded rows', () => {
    const dim = 12;
    const m = randomRows(200, dim, 6);
    const q = m.slice(0, dim);
    const skip = (row: number) => row % 3 === 0;
    const got = exactKnn(q, m, dim, 10, skip);
    assert.ok(got.every((h) => !skip(h.index)));
    assert.deepEqual(got.map((h) => h.index), naive(q, m, dim, 10, skip).map((h) => h.index));
  });

  it('breaks score ties by lower row index', () => {
    const m = new Float32Array([0, 1, 1, 0, 1, 0, 1, 0, 0, 1]); // rows 1, 2, 3 identical
    assert.deepEqual(
      exactKnn(new Float32Array([1, 0]), m, 2, 2).map((h) => h.index),
      [1, 2],
    );
  });

  it('returns fewer than k hits when there are fewer rows', () => {
    const m = randomRows(3, 4, 7);
    assert.equal(exactKnn(m.slice(0, 4), m, 4, 10).length, 3);
    assert.equal(exactKnn(m.slice(0, 4), m, 4, 10, (r) => r === 0).length, 2);
  });

  it('returns nothing for k = 0 or an empty matrix', () => {
    assert.deepEqual(exactKnn(new Float32Array([1, 0]), new Float32Array([1, 0]), 2, 0), []);
    assert.deepEqual(exactKnn(new Float32Array([1, 0]), new Float32Array(0), 2, 5), []);
  });

  it('refuses a query or matrix that does not match dim', () => {
    assert.throws(() => exactKnn(new Float32Array(3), new Float32Array(8), 2, 1), /for query/);
    assert.throws(() => exactKnn(new Float32Array(2), new Float32Array(7), 2, 1), /multiple of dim/);
    assert.throws(() => exactKnn(new Float32Array(2), new Float32Array(8), 2, -1), /for k/);
  });
});
