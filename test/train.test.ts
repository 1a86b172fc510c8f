/**
 * `pixdex train` on real photos: the autoencoder trains (loss falls), is stored in LMDB and
 * round-trips bit-exactly, the library is re-embedded and search switches to the new space with
 * no image left behind, new images get both vectors, and the space survives a reopen.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { ConvAutoencoder } from '../src/models/autoencoder.ts';
import type { TrainReport } from '../src/train.ts';
import { HYM_TRAIN, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

describe('Training the autoencoder on hymenoptera val (153 photos)', () => {
  const tmp = tempDir('pixdex-train-');
  const data = path.join(tmp.dir, 'data');
  const val = imagesIn(HYM_VAL);
  let engine: Engine;
  let report: TrainReport;
  const phases = new Set<string>();

  before(async () => {
    engine = await Engine.open({ ...engineOptions(data), workers: 1 });
    await engine.index([HYM_VAL], { labelFromFolder: true });
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('answers searches in the backbone space before training', async () => {
    assert.equal(engine.space().kind, 'backbone');
    const [top] = await engine.search(fs.readFileSync(val[0]), { k: 1 });
    assert.equal(top.path, val[0]);
  });

  it('trains a 64-d autoencoder whose loss falls, and switches search to it', async () => {
    report = await engine.train({ dim: 64, epochs: 4, sample: 153, batchSize: 16, onProgress: (p) => phases.add(p.phase) });
    assert.deepEqual([...phases].sort(), ['embed', 'features', 'switch', 'train']);
    assert.equal(report.lossByEpoch.length, 4);
    assert.ok(report.lossByEpoch[3] < report.lossByEpoch[0], `loss by epoch ${report.lossByEpoch.join(', ')}`);
    assert.equal(report.space.kind, 'autoencoder');
    assert.equal(engine.space().kind, 'autoencoder');
    assert.equal(report.bytesPerImage, 64 * 4);
  });

  it('stores the weights in LMDB, and they round-trip bit-exactly', () => {
    const space = engine.space();
    assert.equal(space.kind, 'autoencoder');
    if (space.kind !== 'autoencoder') return;
    const bytes = engine.store.models.getBinary(space.model)!;
    const copy = ConvAutoencoder.fromBytes(bytes);
    assert.deepEqual(Buffer.from(copy.toBytes()), Buffer.from(bytes));
    assert.equal(copy.config.dim, 64);
    copy.dispose();
  });

  it('leaves no image without a code and indexes every image in the new space', async () => {
    const ids = [...engine.store.images.getKeys()];
    assert.equal(ids.length, 153);
    for (const id of ids) assert.equal(engine.records.spaceVector(engine.space(), id)?.length, 64, `image ${id} has no 64-d code`);
    const st = await engine.stats();
    assert.equal(st.index.size, 153);
    assert.equal(st.index.dims, 64);
  });

  it('still finds an indexed photo first after the switch', async () => {
    for (const file of [val[0], val[70], val[150]]) {
      const [top] = await engine.search(fs.readFileSync(file), { k: 3 });
      assert.equal(top.path, file);
      assert.ok(top.score > 0.999, `score ${top.score}`);
    }
  });

  it('answers --space backbone by exact search over the pooled vectors', async () => {
    const results = await engine.search(fs.readFileSync(val[5]), { k: 5, space: 'backbone' });
    assert.equal(results[0].path, val[5]);
    assert.equal(results.length, 5);
  });

  it('gives a new image both vectors in one pass after the switch', async () => {
    const fresh = imagesIn(HYM_TRAIN)[0];
    const s = await engine.index([fresh]);
    assert.equal(s.added, 1);
    const id = engine.resolve(fresh);
    assert.equal(engine.store.getVector(id)?.length, 1280);
    assert.equal(engine.records.spaceVector(engine.space(), id)?.length, 64);
    const [top] = await engine.search(fs.readFileSync(fresh), { k: 1 });
    assert.equal(top.id, id);
  });

  it('keeps the space and the same results after reopening (snapshot of the new space)', async () => {
    const q = fs.readFileSync(val[20]);
    const beforeClose = await engine.search(q, { k: 10 });
    await engine.close();
    engine = await Engine.open({ ...engineOptions(data), workers: 1 });
    assert.equal(engine.space().kind, 'autoencoder');
    assert.equal((await engine.stats()).index.snapshotSeq !== null, true);
    assert.deepEqual(await engine.search(q, { k: 10 }), beforeClose);
  });
});
