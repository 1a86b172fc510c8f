/**
 * Workers started together take turns for one step (the index pool's TensorFlow initialisation):
 * whatever order they start in, each runs it after the one before, and a worker still waiting can
 * be stopped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';

const WORKER = new URL('./fixtures/turn-worker.mjs', import.meta.url);

function exited(w: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    w.once('error', reject);
    w.once('exit', resolve);
  });
}

test('workers started in any order run their turn in turn order', async () => {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const log = new Int32Array(new SharedArrayBuffer(4 * 5));
  // The last turn starts first, so it has to wait for the other three.
  const workers = [3, 1, 2, 0].map((turn) => new Worker(WORKER, { workerData: { gate, turn, log } }));
  const codes = await Promise.all(workers.map(exited));
  assert.deepEqual(codes, [0, 0, 0, 0]);
  assert.deepEqual([...log], [4, 0, 1, 2, 3]);
  assert.equal(Atomics.load(gate, 0), 4);
});

test('a worker waiting for a turn that never comes can be terminated', async () => {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const log = new Int32Array(new SharedArrayBuffer(4 * 2));
  const w = new Worker(WORKER, { workerData: { gate, turn: 1, log } });
  const exit = exited(w);
  await new Promise((r) => setTimeout(r, 1500)); // long enough to import and start waiting
  const t = performance.now();
  await w.terminate();
  await exit;
  // Under the 1 s wait timeout: the wait itself is interrupted (5 ms measured), not left to time out.
  assert.ok(performance.now() - t < 500, `terminate took ${Math.round(performance.now() - t)} ms`);
  assert.equal(log[0], 0, 'it never ran its turn');
});
