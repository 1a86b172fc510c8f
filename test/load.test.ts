/**
 * The load bench (bench/load.ts) in small: 4 clients x 25 searches on a real `pixdex serve` while
 * another client adds and deletes images; no 5xx, no lost write, on the live server and after a
 * SIGKILL and restart.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runLoad } from '../bench/load.ts';
import { BACKEND, HYM_TRAIN, HYM_VAL, MODELS } from './fixtures.ts';

describe('pixdex serve under load', () => {
  it('answers concurrent searches and writes with no 5xx and loses no acknowledged write', async () => {
    const r = await runLoad({ clients: 4, requests: 25, library: HYM_TRAIN, limit: 30, writerImages: HYM_VAL, maxAdds: 12, modelsDir: MODELS, backend: BACKEND });
    process.stderr.write(`# load: ${JSON.stringify(r)}\n`);
    assert.equal(r.searches, 100);
    assert.deepEqual(r.errors, { '5xx': 0, '4xx': 0, network: 0 });
    assert.ok(r.writes.adds >= 2 && r.writes.deletes >= 1, JSON.stringify(r.writes));
    assert.deepEqual(r.lostWrites, { adds: 0, deletes: 0, afterRestart: { adds: 0, deletes: 0 } });
    assert.equal(r.serverErrors, 0);
    assert.ok(r.latencyMs.p99 > 0 && r.latencyMs.p50 <= r.latencyMs.p99);
  });
});
