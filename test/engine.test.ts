/**
 * The core pipeline on real photos: index, incremental re-index, search, labels from folders,
 * remove, reopen. (hymenoptera_data: 245 train + 153 val images of ants and bees.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Engine } from '../src/engine.ts';
import { softKey } from '../src/local/rerank.ts';
import { HYM_TRAIN, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

describe('Engine on hymenoptera val (153 photos)', () => {
  const tmp = tempDir();
  let engine: Engine;
  const valFiles = imagesIn(HYM_VAL);

  before(async () => {
    engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('indexes every val image once: 153 added, nothing failed', async () => {
    const s = await engine.index([HYM_VAL]);
    assert.equal(valFiles.length, 153);
    assert.deepEqual({ added: s.added, updated: s.updated, skipped: s.skipped, failed: s.failed, total: s.total }, { added: 153, updated: 0, skipped: 0, failed: 0, total: 153 });
    assert.equal(engine.store.images.getCount(), 153);
  });

  it('adds nothing on a second run over unchanged files', async () => {
    const s = await engine.index([HYM_VAL]);
    assert.equal(s.added, 0);
    assert.equal(s.skipped, 153);
    assert.equal(engine.store.images.getCount(), 153);
  });

  it('finds an indexed photo first with score >= 0.999', async () => {
    for (const file of [valFiles[0], valFiles[80], valFiles[152]]) {
      const [top] = await engine.search(fs.readFileSync(file), { k: 5 });
      assert.equal(top.path, file);
      assert.ok(top.score >= 0.999, `score ${top.score}`);
    }
  });

  it('finds the original of a flipped, resized copy at rank 1', async () => {
    const originals = [valFiles[3], valFiles[40], valFiles[100], valFiles[140]];
    for (const file of originals) {
      const meta = await sharp(file).metadata();
      const copy = await sharp(file).flop().resize(Math.round(meta.width! * 0.6)).jpeg({ quality: 80 }).toBuffer();
      const results = await engine.search(copy, { k: 3 });
      assert.equal(results[0].path, file, `query ${path.basename(file)} returned ${results[0].path}`);
    }
  });

  it('returns results with scores sorted highest first and k respected', async () => {
    const results = await engine.search(fs.readFileSync(valFiles[10]), { k: 25, verify: false });
    assert.equal(results.length, 25);
    for (let i = 1; i < results.length; i++) assert.ok(results[i - 1].score >= results[i].score);
    assert.equal(new Set(results.map((r) => r.id)).size, 25);
  });

  it('with verification, ranks verified hits first by inliers, then by visual score plus the inlier bonus', async () => {
    const results = await engine.search(fs.readFileSync(valFiles[10]), { k: 25 });
    assert.equal(results.length, 25);
    assert.equal(new Set(results.map((r) => r.id)).size, 25);
    assert.equal(results[0].path, valFiles[10], 'the indexed photo itself comes first');
    assert.ok(results[0].verified && results.every((r) => r.inliers !== undefined), 'every returned hit was checked');
    // README: `score` stays the visual similarity; unverified hits go by score + 0.1·ln(1 + max(0, inliers − 4)).
    for (let i = 1; i < results.length; i++) {
      const [a, b] = [results[i - 1], results[i]];
      assert.ok(a.verified || !b.verified, `an unverified hit (${i - 1}) before a verified one (${i})`);
      if (a.verified && b.verified) assert.ok(a.inliers! >= b.inliers!, `verified hits ${i - 1}, ${i}: inliers ${a.inliers}, ${b.inliers}`);
      if (!a.verified && !b.verified) assert.ok(softKey(a) >= softKey(b), `unverified hits ${i - 1}, ${i}: ${softKey(a)} < ${softKey(b)}`);
    }
  });

  it('never returns a removed image', async () => {
    const victim = valFiles[7];
    const query = fs.readFileSync(victim);
    const id = engine.remove(victim);
    const results = await engine.search(query, { k: 153 });
    assert.ok(!results.some((r) => r.id === id || r.path === victim));
    assert.equal(results.length, 152);
    assert.equal(engine.store.images.getCount(), 152);
    assert.equal(engine.store.vectors.getCount(), 152);
  });

  it('gives identical search results after reopening the store', async () => {
    const queries = [valFiles[1], valFiles[60], valFiles[120]].map((f) => fs.readFileSync(f));
    const beforeClose = [];
    for (const q of queries) beforeClose.push(await engine.search(q, { k: 10 }));
    await engine.close();
    engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
    for (let i = 0; i < queries.length; i++) {
      assert.deepEqual(await engine.search(queries[i], { k: 10 }), beforeClose[i]);
    }
  });

  it('re-adds the removed file on the next run, reusing the freed index slot', async () => {
    const capacity = (await engine.stats()).index.capacity;
    const s = await engine.index([HYM_VAL]);
    assert.equal(s.added, 1);
    assert.equal(s.skipped, 152);
    const st = await engine.stats();
    assert.equal(st.index.size, 153);
    assert.equal(st.index.capacity, capacity);
  });
});

describe('Incremental indexing of a changing folder', () => {
  const tmp = tempDir();
  const lib = path.join(tmp.dir, 'library');
  let engine: Engine;
  const src = imagesIn(HYM_VAL).slice(0, 6);

  before(async () => {
    fs.mkdirSync(path.join(lib, 'sub'), { recursive: true });
    src.slice(0, 4).forEach((f, i) => fs.copyFileSync(f, path.join(lib, i < 2 ? '' : 'sub', `img${i}.jpg`)));
    engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('re-embeds changed files, removes deleted ones and stores identical files once', async () => {
    let s = await engine.index([lib]);
    assert.equal(s.added, 4);
    const changed = path.join(lib, 'img0.jpg');
    const oldId = engine.resolve(changed);
    fs.copyFileSync(src[4], changed); // new content at the same path
    fs.rmSync(path.join(lib, 'sub', 'img3.jpg'));
    fs.copyFileSync(src[1], path.join(lib, 'copy-of-img1.jpg')); // same bytes as img1.jpg
    s = await engine.index([lib]);
    assert.deepEqual({ added: s.added, updated: s.updated, removed: s.removed, skipped: s.skipped }, { added: 0, updated: 1, removed: 1, skipped: 3 });
    assert.equal(engine.resolve(changed), oldId);
    assert.equal(engine.store.images.getCount(), 3);
    const [top] = await engine.search(fs.readFileSync(src[4]), { k: 1 });
    assert.equal(top.id, oldId);
    assert.ok(top.score > 0.999);
    assert.equal(engine.resolve(path.join(lib, 'copy-of-img1.jpg')), engine.resolve(path.join(lib, 'img1.jpg')));
  });
});

describe('Labels from folders: train -> val nearest neighbour', () => {
  const tmp = tempDir();
  let engine: Engine;

  before(async () => {
    engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('labels train images from their folder names', async () => {
    const s = await engine.index([HYM_TRAIN], { labelFromFolder: true });
    assert.equal(s.added, 245);
    const labels = Object.fromEntries(engine.labels().map((l) => [l.label, l.count]));
    assert.deepEqual(labels, { ants: imagesIn(path.join(HYM_TRAIN, 'ants')).length, bees: imagesIn(path.join(HYM_TRAIN, 'bees')).length });
  });

  it('gives the nearest neighbour of >= 90% of val images the right label', async () => {
    const val = imagesIn(HYM_VAL);
    let right = 0;
    for (const file of val) {
      const [nn] = await engine.search(fs.readFileSync(file), { k: 1 });
      if (nn.label === path.basename(path.dirname(file))) right++;
    }
    const accuracy = right / val.length;
    assert.ok(accuracy >= 0.9, `1-NN accuracy ${accuracy.toFixed(3)}`);
  });

  it('filters by label inside the search and still returns k results', async () => {
    const query = fs.readFileSync(imagesIn(path.join(HYM_VAL, 'ants'))[0]);
    const results = await engine.search(query, { k: 50, label: 'bees' });
    assert.equal(results.length, 50);
    assert.ok(results.every((r) => r.label === 'bees'));
  });
});
