/**
 * Index jobs over HTTP (server/jobs.ts): POST /api/index starts `engine.index` in the background,
 * GET /api/index/:jobId reports progress, one job at a time (409), DELETE cancels, the token
 * guards both mutating routes, and bad bodies or missing folders are refused with readable errors.
 * Real photos from hymenoptera val, copied into a temporary library.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import type { Express } from 'express';
import { createApp } from '../server/app.ts';
import type { IndexJobStatus, IndexJobs } from '../server/jobs.ts';
import { Engine } from '../src/engine.ts';
import { HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const TOKEN = 'jobs-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };

/** Polls a job until it is no longer running; returns every status seen. */
async function untilFinished(app: Express, jobId: string, timeoutMs = 45_000): Promise<IndexJobStatus[]> {
  const seen: IndexJobStatus[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await request(app).get(`/api/index/${jobId}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    seen.push(r.body);
    if (r.body.state !== 'running') return seen;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still running after ${timeoutMs} ms: ${JSON.stringify(r.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function assertError(r: request.Response, status: number, code: string, messagePart?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['error']);
  assert.equal(r.body.error.code, code);
  if (messagePart) assert.match(r.body.error.message, messagePart);
}

describe('index jobs: POST /api/index, GET /api/index/:jobId, DELETE /api/index/:jobId', () => {
  const tmp = tempDir('pixdex-jobs-');
  const library = path.join(tmp.dir, 'library');
  const logLines: string[] = [];
  let engine: Engine;
  let app: Express;

  before(async () => {
    // 8 ants + 8 bees in their own folders, and one file that only looks like a JPEG.
    for (const kind of ['ants', 'bees']) {
      fs.mkdirSync(path.join(library, kind), { recursive: true });
      for (const f of imagesIn(path.join(HYM_VAL, kind)).slice(0, 8)) fs.copyFileSync(f, path.join(library, kind, path.basename(f)));
    }
    fs.writeFileSync(path.join(library, 'bees', 'broken.jpg'), 'not a jpeg at all');
    // One thread: small jobs need no worker pool, and the test stays light on 2 cores.
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    app = createApp(engine, { token: TOKEN, ready: engine.model(), log: (l) => logLines.push(l) });
  });
  after(async () => {
    await (app?.locals.indexJobs as IndexJobs | undefined)?.stop();
    await engine?.close();
    tmp.cleanup();
  });

  it('starts a job (202, Location), reports rising progress, and ends done with the summary', async () => {
    const r = await request(app).post('/api/index').set(AUTH).send({ paths: [library], labelFromFolder: true });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.match(r.body.jobId, /^[0-9a-f]{16}$/);
    assert.equal(r.headers.location, `/api/index/${r.body.jobId}`);
    assert.equal(r.body.statusUrl, r.headers.location);

    const seen = await untilFinished(app, r.body.jobId);
    const done = seen.map((s) => s.done);
    for (let i = 1; i < done.length; i++) assert.ok(done[i] >= done[i - 1], `progress went back: ${done.join(',')}`);
    const last = seen.at(-1)!;
    assert.equal(last.state, 'done', JSON.stringify(last));
    assert.deepEqual({ done: last.done, total: last.total, etaSeconds: last.etaSeconds }, { done: 17, total: 17, etaSeconds: 0 });
    assert.deepEqual(last.paths, [library]);
    assert.equal(last.labelFromFolder, true);
    assert.ok(last.finishedAt! >= last.startedAt);
    const s = last.summary!;
    assert.deepEqual({ added: s.added, failed: s.failed, skipped: s.skipped, total: s.total }, { added: 16, failed: 1, skipped: 0, total: 17 });
    assert.equal(s.errors[0].path, path.join(library, 'bees', 'broken.jpg'));
    assert.match(s.errors[0].error, /UNSUPPORTED_IMAGE|CORRUPT_IMAGE/);
    assert.ok(logLines.some((l) => l.includes('broken.jpg')), 'per-file errors go to the server log');

    const labels = (await request(app).get('/api/labels')).body.labels;
    assert.deepEqual(labels, [{ label: 'ants', count: 8 }, { label: 'bees', count: 8 }]);
    const list = (await request(app).get('/api/index')).body.jobs;
    assert.equal(list[0].jobId, r.body.jobId);
  });

  it('skips unchanged files on a second run', async () => {
    const r = await request(app).post('/api/index').set(AUTH).send({ paths: [path.join(library, 'ants') + '/'] });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const last = (await untilFinished(app, r.body.jobId)).at(-1)!;
    assert.equal(last.state, 'done');
    assert.deepEqual(last.paths, [path.join(library, 'ants')]);
    assert.deepEqual({ added: last.summary!.added, skipped: last.summary!.skipped, done: last.done, total: last.total }, { added: 0, skipped: 8, done: 8, total: 8 });
  });

  it('runs one job at a time (409 INDEX_JOB_RUNNING), and DELETE cancels after the batches in flight', async () => {
    const bees = path.join(HYM_VAL, 'bees'); // 83 photos, several batches
    const first = await request(app).post('/api/index').set(AUTH).send({ paths: [bees] });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const second = await request(app).post('/api/index').set(AUTH).send({ paths: [library] });
    assertError(second, 409, 'INDEX_JOB_RUNNING', new RegExp(`${first.body.jobId}.*DELETE /api/index/${first.body.jobId}`));

    assertError(await request(app).delete(`/api/index/${first.body.jobId}`), 401, 'UNAUTHORIZED');
    const cancel = await request(app).delete(`/api/index/${first.body.jobId}`).set(AUTH);
    assert.equal(cancel.status, 200);
    assert.equal(cancel.body.cancelRequested, true);
    const last = (await untilFinished(app, first.body.jobId)).at(-1)!;
    assert.equal(last.state, 'cancelled', JSON.stringify(last));
    assert.equal(last.summary!.interrupted, true);
    assert.ok(last.done < 83 && last.total === 83, `${last.done}/${last.total}`);
    assert.ok(last.summary!.added < 83);

    // Cancelling a finished job changes nothing; a new job can start now.
    const again = await request(app).delete(`/api/index/${first.body.jobId}`).set(AUTH);
    assert.equal(again.body.state, 'cancelled');
    const next = await request(app).post('/api/index').set(AUTH).send({ paths: [path.join(library, 'bees')] });
    assert.equal(next.status, 202);
    assert.equal((await untilFinished(app, next.body.jobId)).at(-1)!.state, 'done');
  });

  it('requires the bearer token to start a job; reading progress is open', async () => {
    assertError(await request(app).post('/api/index').send({ paths: [library] }), 401, 'UNAUTHORIZED');
    assertError(await request(app).post('/api/index').set({ authorization: 'Bearer nope' }).send({ paths: [library] }), 401, 'UNAUTHORIZED');
    assert.equal((await request(app).get('/api/index')).status, 200);
  });

  it('refuses bad bodies, relative paths and missing folders with readable errors', async () => {
    const post = (body: unknown, type = 'application/json') => request(app).post('/api/index').set(AUTH).set('content-type', type).send(typeof body === 'string' ? body : JSON.stringify(body));
    assertError(await post(`paths=${library}`, 'application/x-www-form-urlencoded'), 415, 'UNSUPPORTED_MEDIA_TYPE', /JSON body/);
    assertError(await post('{"paths":'), 400, 'BAD_REQUEST_BODY');
    assertError(await post([library]), 400, 'INVALID_PARAMETER', /JSON object/);
    assertError(await post({}), 400, 'INVALID_PARAMETER', /paths/);
    assertError(await post({ paths: [] }), 400, 'INVALID_PARAMETER', /1 to 64/);
    assertError(await post({ paths: library }), 400, 'INVALID_PARAMETER', /array/);
    assertError(await post({ paths: ['photos/cats'] }), 400, 'INVALID_PARAMETER', /absolute paths.*"photos\/cats"/);
    assertError(await post({ paths: [library], labelFromFolder: 'yes' }), 400, 'INVALID_PARAMETER', /labelFromFolder/);
    const missing = path.join(tmp.dir, 'no-such-folder');
    assertError(await post({ paths: [library, missing] }), 404, 'NOT_FOUND', new RegExp(`No folder or file ${missing} on the server`));
    assert.notEqual((await request(app).get('/api/index')).body.jobs[0]?.state, 'running', 'nothing started');
  });

  it('answers 404 for an unknown job and 400 for a malformed id', async () => {
    assertError(await request(app).get('/api/index/0123456789abcdef'), 404, 'NOT_FOUND', /GET \/api\/index lists them/);
    assertError(await request(app).get('/api/index/nope'), 400, 'INVALID_PARAMETER', /jobId/);
    assertError(await request(app).delete('/api/index/0123456789abcdef').set(AUTH), 404, 'NOT_FOUND');
  });

  it('cancels the running job when the server shuts down (signal), and stop() waits for it', async () => {
    const shutdown = new AbortController();
    const stopping = createApp(engine, { token: TOKEN, ready: Promise.resolve(), signal: shutdown.signal, log: () => {} });
    const r = await request(stopping).post('/api/index').set(AUTH).send({ paths: [path.join(HYM_VAL, 'ants')] });
    assert.equal(r.status, 202);
    shutdown.abort();
    await (stopping.locals.indexJobs as IndexJobs).stop();
    const job = (await request(stopping).get(`/api/index/${r.body.jobId}`)).body;
    assert.equal(job.state, 'cancelled', JSON.stringify(job));
    assert.equal(job.cancelRequested, true);
  });

  it('is documented in /openapi.json', async () => {
    const doc = (await request(app).get('/openapi.json')).body;
    assert.deepEqual(Object.keys(doc.paths['/api/index']).sort(), ['get', 'post']);
    assert.deepEqual(Object.keys(doc.paths['/api/index/{jobId}']).sort(), ['delete', 'get']);
    assert.ok(doc.paths['/api/index'].post.responses['409']);
    assert.deepEqual(doc.paths['/api/index'].post.security, [{ bearer: [] }]);
  });
});
