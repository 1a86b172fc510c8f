/**
 * Identical files indexed in one run are stored once, the other paths as aliases (issue 21: two
 * copies in one batch were stored twice and broke the store). Real photos through the real
 * model: the same batch, different batches, and batches in flight in two embedding workers; then
 * what happens to aliases when files go away, change, or the image is removed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { checkStore } from '../src/store/check.ts';
import { Engine } from '../src/engine.ts';
import { HYM_TRAIN, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const photos = imagesIn(path.join(HYM_TRAIN, 'ants')).slice(0, 5);

/** A folder with the five photos as p0..p4.jpg and copies of p0 and p2 named to land where asked. */
function makeFolder(root: string, copies: Array<[source: number, name: string]>): string {
  const dir = path.join(root, 'photos');
  fs.mkdirSync(dir, { recursive: true });
  photos.forEach((p, i) => fs.copyFileSync(p, path.join(dir, `p${i}.jpg`)));
  for (const [source, name] of copies) fs.copyFileSync(photos[source], path.join(dir, name));
  return dir;
}

function pathsTo(engine: Engine, id: number): string[] {
  return [...engine.store.paths.getRange()].filter((e) => e.value === id).map((e) => e.key).sort();
}

function assertClean(engine: Engine): void {
  const report = checkStore(engine);
  assert.deepEqual(report.problems, [], `check found: ${JSON.stringify(report.counts)}`);
  assert.equal(report.ok, true);
}

describe('identical files in one run', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  const cases: Array<{ name: string; batchSize: number; workers: number; copies: Array<[number, string]> }> = [
    // Sorted names: p0, p0-copy, p1... all in one batch of 16.
    { name: 'in the same batch', batchSize: 16, workers: 1, copies: [[0, 'p0-copy.jpg'], [2, 'p2-copy.jpg'], [2, 'p2-copy2.jpg']] },
    // Batches of 2, one after the other: a0.jpg (copy of p0) is in the first batch, p0.jpg in the third.
    { name: 'in different batches', batchSize: 2, workers: 1, copies: [[0, 'a0.jpg'], [2, 'zz2.jpg']] },
    // Batches of 2 in flight at once in two workers: the copies are in the first two batches.
    { name: 'in batches embedded by two workers at once', batchSize: 2, workers: 2, copies: [[0, 'a0.jpg'], [0, 'a1.jpg'], [0, 'a2.jpg'], [0, 'a3.jpg']] },
  ];

  for (const c of cases) {
    it(`stores identical content once ${c.name}, the other paths as aliases; check is clean`, async () => {
      const root = path.join(tmp.dir, c.name.replace(/\W+/g, '-'));
      const dir = makeFolder(root, c.copies);
      const engine = await Engine.open({ ...engineOptions(path.join(root, 'data')), batchSize: c.batchSize, workers: c.workers });
      try {
        const summary = await engine.index([dir]);
        assert.equal(summary.failed, 0, JSON.stringify(summary.errors));
        assert.equal(summary.added, 5, 'one image per distinct content');
        assert.equal(summary.skipped, c.copies.length, 'the copies are aliases');
        assert.equal(engine.store.images.getCount(), 5);
        assert.equal(engine.store.paths.getCount(), 5 + c.copies.length);
        assertClean(engine);
        // Every copy resolves to the image of its source, and a search for it finds that image once.
        for (const [source, name] of c.copies) {
          const id = engine.resolve(path.join(dir, name));
          assert.equal(id, engine.resolve(path.join(dir, `p${source}.jpg`)));
          const hits = await engine.search(fs.readFileSync(photos[source]), { k: 5 });
          assert.equal(hits[0].id, id);
          assert.ok(hits[0].score > 0.999);
          assert.equal(new Set(hits.map((h) => h.id)).size, hits.length, 'no image twice');
        }
        // A second run finds nothing to do and keeps the store clean.
        const again = await engine.index([dir]);
        assert.equal(again.added + again.updated + again.failed, 0, JSON.stringify(again));
        assertClean(engine);
      } finally {
        await engine.close();
      }
    });
  }

  it('hands an image to its alias when its own file goes, drops aliases whose files go, and remove takes every path', async () => {
    const root = path.join(tmp.dir, 'lifecycle');
    const dir = makeFolder(root, [[0, 'q0.jpg'], [0, 'r0.jpg'], [1, 'q1.jpg']]);
    const engine = await Engine.open(engineOptions(path.join(root, 'data')));
    try {
      await engine.index([dir]);
      const id0 = engine.resolve(path.join(dir, 'p0.jpg'));
      assert.equal(engine.get(id0).path, path.join(dir, 'p0.jpg'));

      // The image's own file goes: the record moves to its first alias, same id, still searchable.
      fs.rmSync(path.join(dir, 'p0.jpg'));
      let s = await engine.index([dir]);
      assert.equal(s.removed, 0);
      assert.equal(engine.get(id0).path, path.join(dir, 'q0.jpg'));
      assert.deepEqual(pathsTo(engine, id0), [path.join(dir, 'q0.jpg'), path.join(dir, 'r0.jpg')]);
      assert.equal((await engine.search(fs.readFileSync(photos[0]), { k: 1 }))[0].id, id0);
      assertClean(engine);

      // An alias's file goes: only the alias is dropped.
      fs.rmSync(path.join(dir, 'r0.jpg'));
      s = await engine.index([dir]);
      assert.equal(s.removed, 0);
      assert.deepEqual(pathsTo(engine, id0), [path.join(dir, 'q0.jpg')]);
      assertClean(engine);

      // A file whose content becomes that of another image: it becomes an alias of that image.
      const id3 = engine.resolve(path.join(dir, 'p3.jpg'));
      fs.copyFileSync(photos[4], path.join(dir, 'p3.jpg'));
      s = await engine.index([dir]);
      assert.equal(s.updated, 1);
      assert.throws(() => engine.get(id3), /No image/);
      assert.equal(engine.resolve(path.join(dir, 'p3.jpg')), engine.resolve(path.join(dir, 'p4.jpg')));
      assert.equal(engine.store.images.getCount(), 4);
      assertClean(engine);

      // An image with an alias gets new content at its own path: the alias keeps the old content.
      const id1 = engine.resolve(path.join(dir, 'p1.jpg'));
      fs.copyFileSync(photos[2], path.join(dir, 'p1.jpg'));
      fs.rmSync(path.join(dir, 'p2.jpg'));
      s = await engine.index([dir]);
      assert.equal(engine.get(id1).path, path.join(dir, 'q1.jpg'));
      assert.equal((await engine.search(fs.readFileSync(photos[1]), { k: 1 }))[0].id, id1);
      assert.equal((await engine.search(fs.readFileSync(photos[2]), { k: 1 }))[0].path, path.join(dir, 'p1.jpg'));
      assertClean(engine);

      // remove by id takes the image and every path to it.
      engine.remove(id0);
      assert.deepEqual(pathsTo(engine, id0), []);
      assert.throws(() => engine.resolve(path.join(dir, 'q0.jpg')), /No indexed image/);
      assertClean(engine);
      // ...and the next index brings the file back as a new image.
      s = await engine.index([dir]);
      assert.equal(s.added, 1);
      assertClean(engine);
    } finally {
      await engine.close();
    }
  });
});
