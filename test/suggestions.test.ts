/**
 * Labelling over HTTP: classify with method knn|head|both, label propagation, and the review of
 * suggestions (list, accept, reject), on a real server over real photos.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createApp } from '../server/app.ts';
import { Engine } from '../src/engine.ts';
import { HYM_TRAIN, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const TOKEN = 'suggestions-token';
const train = imagesIn(HYM_TRAIN).filter((_, i) => i % 3 === 0); // ~82 labelled photos
const val = imagesIn(HYM_VAL).filter((_, i) => i % 4 === 0); // ~39 unlabelled photos

describe('Labelling routes', () => {
  const tmp = tempDir('pixdex-suggest-');
  let engine: Engine;
  let server: http.Server;
  let base = '';

  const call = async (method: string, url: string, opts: { auth?: boolean; body?: BodyInit } = {}) => {
    const res = await fetch(base + url, { method, body: opts.body, headers: opts.auth ? { authorization: `Bearer ${TOKEN}` } : {} });
    return { status: res.status, body: await res.json() };
  };
  const upload = (file: string) => {
    const form = new FormData();
    form.append('image', new Blob([fs.readFileSync(file)], { type: 'image/jpeg' }), 'q.jpg');
    return form;
  };

  before(async () => {
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    await engine.index(train, { labelFromFolder: true });
    await engine.index(val);
    const app = createApp(engine, { token: TOKEN, log: () => undefined });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((r) => server?.close(r));
    await engine?.close();
    tmp.cleanup();
  });

  it('classifies by kNN (default) and refuses an unknown method with 400', async () => {
    const r = await call('POST', '/api/classify?k=10', { body: upload(val[0]) });
    assert.equal(r.status, 200);
    assert.equal(r.body.method, 'knn');
    assert.equal(r.body.label, path.basename(path.dirname(val[0])));
    const bad = await call('POST', '/api/classify?method=magic', { body: upload(val[0]) });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_PARAMETER');
  });

  it('answers 409 NO_CLASSIFIER for method=head before a head is trained', async () => {
    const r = await call('POST', '/api/classify?method=head', { body: upload(val[0]) });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'NO_CLASSIFIER');
  });

  it('propagates labels only with the token, and only saves them with apply=true', async () => {
    assert.equal((await call('POST', '/api/suggestions/propagate?apply=true')).status, 401);
    const dry = await call('POST', '/api/suggestions/propagate', { auth: true });
    assert.equal(dry.status, 200);
    assert.equal(dry.body.unlabelled, val.length);
    assert.deepEqual((await call('GET', '/api/suggestions')).body.suggestions, []);
    const applied = await call('POST', '/api/suggestions/propagate?apply=true&minConfidence=0.8', { auth: true });
    assert.equal(applied.body.applied, true);
    // With a third of train labelled, about 70% of val is confident enough (labels.test.ts holds
    // the acceptance bound of 80% with all of train labelled).
    assert.ok(applied.body.suggested >= 0.5 * val.length, `suggested ${applied.body.suggested} of ${val.length}`);
    const listed = (await call('GET', '/api/suggestions')).body.suggestions;
    assert.equal(listed.length, applied.body.suggested);
    assert.ok(listed.every((s: { thumbnailUrl: string; confidence: number }) => s.thumbnailUrl.startsWith('/api/images/') && s.confidence >= 0.8));
  });

  it('accepts a suggestion as the label and rejects another for good', async () => {
    const [a, b] = (await call('GET', '/api/suggestions')).body.suggestions;
    assert.equal((await call('POST', `/api/suggestions/${a.id}/accept`)).status, 401);
    assert.deepEqual((await call('POST', `/api/suggestions/${a.id}/accept`, { auth: true })).body, { id: a.id, label: a.label });
    assert.equal((await call('GET', `/api/images/${a.id}`)).body.label, a.label);
    assert.deepEqual((await call('POST', `/api/suggestions/${b.id}/reject`, { auth: true })).body, { id: b.id, rejected: b.label });
    const left = (await call('GET', '/api/suggestions')).body.suggestions.map((s: { id: number }) => s.id);
    assert.ok(!left.includes(a.id) && !left.includes(b.id));
    const again = await call('POST', `/api/suggestions/${b.id}/accept`, { auth: true });
    assert.equal(again.status, 404);
    assert.equal((await call('POST', '/api/suggestions/abc/accept', { auth: true })).status, 400);
    assert.equal((await call('GET', `/api/images/${b.id}`)).body.label, null, 'a rejected suggestion leaves the image unlabelled');
  });

  it('classifies with the trained head and with both', async () => {
    await engine.trainClassifier();
    for (const method of ['head', 'both']) {
      const r = await call('POST', `/api/classify?method=${method}`, { body: upload(val[2]) });
      assert.equal(r.status, 200);
      assert.equal(r.body.method, method);
      assert.equal(r.body.label, path.basename(path.dirname(val[2])));
      assert.ok(r.body.confidence > 0.5 && r.body.confidence <= 1);
    }
  });
});
