/**
 * AnnIndex (hnswlib-node): cosine scores, delete and slot reuse, snapshot round trip, and recall
 * against exact search at the default ef.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AnnIndex } from '../src/ann.ts';
import { DEFAULT_ANN } from '../src/config.ts';
import { exactKnn, l2normalize } from '../src/vector.ts';
import { recallAgainstExact } from '../src/classify.ts';
import { seededRandom as rng } from '../src/random.ts';


/** n clustered, non-negative vectors (like pooled ReLU features): cluster centre + noise. */
function clustered(n: number, dim: number, clusters: number, seed: number): Float32Array[] {
  const r = rng(seed);
  const centres = Array.from({ length: clusters }, () => Float32Array.from({ length: dim }, () => (r() < 0.3 ? r() * 2 : 0)));
  return Array.from({ length: n }, () => {
    const c = centres[Math.floor(r() * clusters)];
    return l2normalize(Float32Array.from(c, (x) => Math.max(0, x + (r() - 0.5) * 0.6)));
  });
}

describe('AnnIndex', () => {
  it('scores by cosine similarity, highest first', () => {
    const ann = AnnIndex.create(3, DEFAULT_ANN);
    ann.add(1, new Float32Array([1, 0, 0]));
    ann.add(2, new Float32Array([1, 1, 0]));
    ann.add(3, new Float32Array([0, 0, 2]));
    const hits = ann.search(new Float32Array([2, 0, 0]), 3);
    assert.deepEqual(hits.map((h) => h.id), [1, 2, 3]);
    assert.ok(Math.abs(hits[0].score - 1) < 1e-6);
    assert.ok(Math.abs(hits[1].score - Math.SQRT1_2) < 1e-6);
    assert.ok(Math.abs(hits[2].score - 0) < 1e-6);
  });

  it('clamps k to the number of searchable vectors', () => {
    const ann = AnnIndex.create(2, DEFAULT_ANN);
    assert.deepEqual(ann.search(new Float32Array([1, 0]), 10), []);
    ann.add(7, new Float32Array([1, 0]));
    assert.equal(ann.search(new Float32Array([1, 0]), 10).length, 1);
  });

  it('hides removed ids, reuses their slots, and re-adds a removed id', () => {
    const vs = clustered(1100, 16, 8, 1);
    const ann = AnnIndex.create(16, DEFAULT_ANN, 1024);
    vs.slice(0, 1024).forEach((v, i) => ann.add(i + 1, v));
    assert.equal(ann.capacity, 1024);
    for (let id = 1; id <= 50; id++) assert.equal(ann.remove(id), true);
    assert.equal(ann.remove(1), false);
    assert.equal(ann.size, 974);
    const hits = ann.search(vs[0], 1000);
    assert.ok(hits.every((h) => h.id > 50));
    vs.slice(1024, 1074).forEach((v, i) => ann.add(2000 + i, v)); // 50 new ids fill the 50 freed slots
    assert.equal(ann.capacity, 1024);
    assert.equal(ann.size, 1024);
    ann.remove(2000);
    ann.add(2000, vs[1024]);
    assert.equal(ann.search(vs[1024], 1)[0].id, 2000);
    ann.add(5000, vs[1099]); // full: the index grows
    assert.ok(ann.capacity > 1024);
    assert.equal(ann.size, 1025);
  });

  it('round-trips through bytes with identical search results', () => {
    const vs = clustered(2000, 32, 20, 2);
    const ann = AnnIndex.create(32, DEFAULT_ANN);
    vs.forEach((v, i) => ann.add(i + 1, v));
    for (let id = 1; id <= 100; id++) ann.remove(id);
    const copy = AnnIndex.fromBytes(ann.toBytes(), 32, DEFAULT_ANN, ann.size);
    assert.equal(copy.size, ann.size);
    for (const q of vs.slice(0, 50)) assert.deepEqual(copy.search(q, 10), ann.search(q, 10));
  });

  it(`reaches recall@10 >= 0.99 against exact search at the default ef (${DEFAULT_ANN.efSearch})`, () => {
    const dim = 128;
    const n = 10_000;
    const data = clustered(n + 200, dim, 50, 3);
    const ann = AnnIndex.create(dim, DEFAULT_ANN, n);
    const matrix = new Float32Array(n * dim);
    data.slice(0, n).forEach((v, i) => {
      ann.add(i, v);
      matrix.set(v, i * dim);
    });
    const queries = data.slice(n);
    const approx = queries.map((q) => ann.search(q, 10).map((h) => h.id));
    const exact = queries.map((q) => exactKnn(q, matrix, dim, 10).map((h) => h.index));
    const recall = recallAgainstExact(approx, exact, 10);
    assert.ok(recall >= 0.99, `recall@10 ${recall}`);
  });
});
