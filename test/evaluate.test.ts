/**
 * `pixdex eval` figures: dataset layouts and the retrieval/kNN maths on vectors whose answers
 * are known.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, loadDataset, type DatasetItem } from '../src/eval/evaluate.ts';
import { DEFAULT_EXTENSIONS } from '../src/config.ts';
import { FLOWERS, HYMENOPTERA } from './fixtures.ts';

describe('loadDataset', () => {
  it('reads train/val splits of hymenoptera_data (245 + 153, 2 classes)', () => {
    const items = loadDataset(HYMENOPTERA, DEFAULT_EXTENSIONS);
    assert.equal(items.filter((i) => i.split === 'train').length, 245);
    assert.equal(items.filter((i) => i.split === 'val').length, 153);
    assert.deepEqual([...new Set(items.map((i) => i.label))].sort(), ['ants', 'bees']);
  });

  it('reads a folder-per-class dataset without splits (oxford_flowers17: 17 x 80)', () => {
    const items = loadDataset(FLOWERS, DEFAULT_EXTENSIONS);
    assert.equal(items.length, 1360);
    assert.equal(new Set(items.map((i) => i.label)).size, 17);
    assert.ok(items.every((i) => i.split === undefined));
  });

  it('refuses a missing folder with the expected layout in the message', () => {
    assert.throws(() => loadDataset('/nonexistent/dataset', DEFAULT_EXTENSIONS), /expected <dir>\/<class>\/<images>/);
  });
});

describe('evaluate', () => {
  const v = (...xs: number[]) => Float32Array.from(xs);

  it('scores a perfectly separable set as 1 everywhere', () => {
    const items: DatasetItem[] = [
      { path: 'a1', label: 'a' }, { path: 'a2', label: 'a' }, { path: 'a3', label: 'a' },
      { path: 'b1', label: 'b' }, { path: 'b2', label: 'b' }, { path: 'b3', label: 'b' },
    ];
    const vectors = [v(1, 0.1), v(1, 0.2), v(1, 0), v(0.1, 1), v(0, 1), v(0.2, 1)];
    const r = evaluate(items, vectors);
    assert.deepEqual(r.retrieval, { p1: 1, p10: 0.4, mAP: 1 }); // P@10 over 5 candidates = 2 relevant / 5
    assert.equal(r.knn.protocol, 'leave-one-out');
    assert.equal(r.knn.k1, 1);
  });

  it('computes leave-one-out mAP from the ranks (derived by hand)', () => {
    // On a line of angles: a1 0°, a2 10°, b1 20°, a3 90°. Query a1 ranks a2, b1, a3 -> AP (1 + 2/3)/2.
    const rad = (d: number) => (d * Math.PI) / 180;
    const at = (d: number) => v(Math.cos(rad(d)), Math.sin(rad(d)));
    const items: DatasetItem[] = [{ path: 'a1', label: 'a' }, { path: 'a2', label: 'a' }, { path: 'b1', label: 'b' }, { path: 'a3', label: 'a' }];
    const r = evaluate(items, [at(0), at(10), at(20), at(90)]);
    // a1: [a2 b1 a3] AP (1+2/3)/2; a2: [a1|b1 tie -> b1 at 10°, a1 at 10°]... computed below.
    const apA1 = (1 + 2 / 3) / 2;
    const apA2 = (1 + 2 / 3) / 2; // a2 -> a1 (10°) and b1 (10°) tie; lower row (a1) first
    const apB1 = 0; // b1 has no other b
    const apA3 = (1 / 2 + 2 / 3) / 2; // a3 -> b1 (70°), a2 (80°), a1 (90°)
    assert.equal(r.retrieval.mAP, Math.round(((apA1 + apA2 + apB1 + apA3) / 4) * 10000) / 10000);
    assert.equal(r.retrieval.p1, 0.5); // a1 -> a2 yes, a2 -> a1 yes, b1 -> a2 no, a3 -> b1 no
  });

  it('uses val -> train kNN when the dataset has splits, and leaves failed images out', () => {
    const items: DatasetItem[] = [
      { path: 't1', label: 'a', split: 'train' }, { path: 't2', label: 'b', split: 'train' },
      { path: 'v1', label: 'a', split: 'val' }, { path: 'v2', label: 'b', split: 'val' }, { path: 'v3', label: 'a', split: 'val' },
    ];
    const r = evaluate(items, [v(1, 0), v(0, 1), v(1, 0.1), v(0.1, 1), undefined], [{ path: 'v3', error: 'CORRUPT_IMAGE' }]);
    assert.equal(r.images, 4);
    assert.deepEqual([r.knn.protocol, r.knn.queries, r.knn.k1], ['train->val', 2, 1]);
    assert.deepEqual(r.confusion.matrix, [[1, 0], [0, 1]]);
    assert.equal(r.failed.length, 1);
  });
});
