/**
 * Memory stays flat over a long run: indexing a few hundred real photos in-thread (workers: 1)
 * and then many searches leave tfjs with exactly the tensors it had once the model was loaded
 * (every intermediate tensor disposed: no leaks).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../src/backend.ts';
import { Engine } from '../src/engine.ts';
import { HYMENOPTERA, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

describe('tfjs memory over a long run (hymenoptera: 398 photos)', () => {
  const tmp = tempDir();
  let engine: Engine;
  let baseline: { numTensors: number; numBytes: number };

  before(async () => {
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    await engine.model(); // weights loaded and warmed up: these tensors live as long as the engine
    const m = tf.memory();
    baseline = { numTensors: m.numTensors, numBytes: m.numBytes };
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('indexing leaves no tensor behind', async () => {
    const s = await engine.index([HYMENOPTERA]);
    assert.equal(s.failed, 0);
    assert.ok(s.added >= 390, `added ${s.added}`);
    const m = tf.memory();
    assert.deepEqual({ numTensors: m.numTensors, numBytes: m.numBytes }, baseline);
  });

  it('repeated searches, similar and classify do not grow the tensor count', async () => {
    const queries = imagesIn(HYM_VAL).slice(0, 10).map((f) => fs.readFileSync(f));
    const ids = [...engine.store.images.getKeys()] as number[];
    const counts: number[] = [];
    for (let round = 0; round < 5; round++) {
      for (const q of queries) {
        assert.equal((await engine.search(q, { k: 10 })).length, 10);
        await engine.classify(q, { k: 10 });
      }
      for (const id of ids.slice(round * 20, round * 20 + 20)) engine.similar(id, { k: 10 });
      counts.push(tf.memory().numTensors);
    }
    assert.deepEqual(counts, counts.map(() => baseline.numTensors));
    assert.equal(tf.memory().numBytes, baseline.numBytes);
  });
});
