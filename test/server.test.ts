/**
 * The HTTP server over a real store (hymenoptera train, labelled from folders), driven with real
 * HTTP requests on an ephemeral port: every route, success and error cases, then a clean
 * shutdown of `pixdex serve` with a request in flight.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { createApp } from '../server/app.ts';
import { Engine, MAX_K } from '../src/engine.ts';
import { softKey } from '../src/local/rerank.ts';
import { CLI, HYM_TRAIN, HYM_VAL, MODELS, BACKEND, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const TOKEN = 'test-token-0123456789';
/** Small enough that one real val photo (2.1 MB) is over it; every other test image is under. */
const LIMIT = 1024 * 1024;

const trainFiles = imagesIn(HYM_TRAIN);
const valFiles = imagesIn(HYM_VAL).filter((f) => fs.statSync(f).size < LIMIT);
const bigFile = imagesIn(HYM_VAL).find((f) => fs.statSync(f).size > LIMIT)!;
const folderOf = (f: string): string => path.basename(path.dirname(f));

interface Reply {
  status: number;
  headers: Headers;
  body: any;
  bytes: Buffer;
}

/** A request with `auth: true` carries the bearer token. */
interface Call {
  body?: BodyInit;
  headers?: Record<string, string>;
  auth?: boolean;
}

function imageForm(bytes: Uint8Array, fields: Record<string, string> = {}, field = 'image', type = 'image/jpeg'): FormData {
  const form = new FormData();
  form.append(field, new Blob([new Uint8Array(bytes)], { type }), 'upload.jpg');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return form;
}

/** Polls /readyz until 200 (at most 30 s). */
async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await fetch(`${url}/readyz`)).status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}/readyz never said ready`);
}

describe('HTTP server over hymenoptera train (245 labelled photos)', () => {
  const tmp = tempDir('pixdex-server-');
  const dataDir = path.join(tmp.dir, 'data');
  const logLines: string[] = [];
  const errorBodies: Reply[] = [];
  let engine: Engine;
  let server: http.Server;
  let base = '';

  async function call(method: string, url: string, c: Call = {}): Promise<Reply> {
    const headers = { ...c.headers, ...(c.auth ? { authorization: `Bearer ${TOKEN}` } : {}) };
    const res = await fetch(base + url, { method, body: c.body, headers });
    const bytes = Buffer.from(await res.arrayBuffer());
    const isJson = res.headers.get('content-type')?.startsWith('application/json');
    const reply = { status: res.status, headers: res.headers, body: isJson ? JSON.parse(bytes.toString('utf8')) : undefined, bytes };
    if (res.status >= 400) errorBodies.push(reply);
    return reply;
  }

  /** Asserts the error shape, status and code. */
  function assertError(r: Reply, status: number, code: string, messagePart?: RegExp): void {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body), ['error']);
    assert.equal(r.body.error.code, code);
    assert.equal(typeof r.body.error.message, 'string');
    if (messagePart) assert.match(r.body.error.message, messagePart);
  }

  before(async () => {
    engine = await Engine.open(engineOptions(dataDir));
    const s = await engine.index([HYM_TRAIN], { labelFromFolder: true });
    assert.equal(s.added, 245);
    const app = createApp(engine, { token: TOKEN, maxUploadBytes: LIMIT, log: (l) => logLines.push(l) });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await waitReady(base); // indexing ran in workers: the server's own model warms up now
  });
  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await engine?.close();
    tmp.cleanup();
  });

  describe('health, readiness and headers', () => {
    it('answers /healthz and /readyz with 200 once the model is warm', async () => {
      assert.deepEqual((await call('GET', '/healthz')).body, { status: 'ok' });
      assert.deepEqual((await call('GET', '/readyz')).body, { status: 'ready' });
    });

    it('sends security headers, no X-Powered-By and no CORS headers', async () => {
      const r = await call('GET', '/api/labels', { headers: { origin: 'https://evil.example' } });
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('x-frame-options'), 'DENY');
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(r.headers.get('x-powered-by'), null);
      assert.equal(r.headers.get('access-control-allow-origin'), null);
    });

    it('answers unknown paths with a JSON 404, a known path with the wrong method with 405 and Allow', async () => {
      assertError(await call('GET', '/nope'), 404, 'ROUTE_NOT_FOUND');
      assertError(await call('PATCH', '/nope'), 404, 'ROUTE_NOT_FOUND');
      const wrongMethod = await call('PATCH', '/api/images/1');
      assertError(wrongMethod, 405, 'METHOD_NOT_ALLOWED');
      assert.equal(wrongMethod.headers.get('allow'), 'DELETE, GET, HEAD, OPTIONS');
      assertError(await call('GET', '/api/images/1/../../../../etc/passwd'), 404, 'ROUTE_NOT_FOUND');
    });
  });

  describe('POST /api/search', () => {
    it('finds an indexed photo first with score >= 0.999 (multipart), with thumbnailUrl and tookMs', async () => {
      const file = trainFiles[100];
      const r = await call('POST', '/api/search?k=5', { body: imageForm(fs.readFileSync(file)) });
      assert.equal(r.status, 200);
      assert.equal(r.body.results.length, 5);
      const [top] = r.body.results;
      assert.equal(top.path, file);
      assert.ok(top.score >= 0.999, `score ${top.score}`);
      assert.equal(top.label, folderOf(file));
      assert.equal(top.thumbnailUrl, `/api/images/${top.id}/thumbnail`);
      assert.deepEqual(Object.keys(top), ['id', 'path', 'score', 'label', 'inliers', 'verified', 'outline', 'thumbnailUrl']);
      // The library has local features (the default): the photo itself is verified, outlined on the whole photo.
      assert.equal(top.verified, true);
      assert.ok(top.inliers >= 12, `inliers ${top.inliers}`);
      assert.equal(top.outline.length, 4);
      assert.equal(typeof r.body.tookMs, 'number');
      // Verified hits first (by inliers), then the rest by visual score plus the small inlier bonus (src/local/rerank.ts).
      const rest = r.body.results.filter((h: { verified: boolean }) => !h.verified);
      for (let i = 1; i < rest.length; i++) assert.ok(softKey(rest[i - 1]) >= softKey(rest[i]) - 1e-9);
    });

    it('accepts a raw image/* body and returns 10 results by default', async () => {
      const file = trainFiles[7];
      const r = await call('POST', '/api/search', { body: fs.readFileSync(file), headers: { 'content-type': 'image/jpeg' } });
      assert.equal(r.status, 200);
      assert.equal(r.body.results.length, 10);
      assert.equal(r.body.results[0].path, file);
    });

    it('returns k results all with the label when filtered by label', async () => {
      const ant = fs.readFileSync(imagesIn(path.join(HYM_TRAIN, 'ants'))[0]);
      const r = await call('POST', '/api/search?k=40&label=bees', { body: imageForm(ant) });
      assert.equal(r.status, 200);
      assert.equal(r.body.results.length, 40);
      assert.ok(r.body.results.every((x: { label: string }) => x.label === 'bees'));
    });

    it('refuses k outside 1..MAX_K or not an integer with 400 before reading the upload', async () => {
      const img = fs.readFileSync(trainFiles[0]);
      for (const k of ['0', String(MAX_K + 1), 'abc', '2.5', '-3', '']) {
        assertError(await call('POST', `/api/search?k=${k}`, { body: imageForm(img) }), 400, 'INVALID_PARAMETER', /for k but received/);
      }
      assertError(await call('POST', '/api/search?k=1&k=2', { body: imageForm(img) }), 400, 'INVALID_PARAMETER');
      assert.equal((await call('POST', `/api/search?k=${MAX_K}`, { body: imageForm(img) })).body.results.length, 245);
    });

    it('takes expand (query expansion) in 0..10, and refuses anything else with 400', async () => {
      const img = fs.readFileSync(trainFiles[0]);
      const r = await call('POST', '/api/search?k=5&expand=2', { body: imageForm(img) });
      assert.equal(r.status, 200);
      assert.equal(r.body.results.length, 5);
      assert.equal(r.body.results[0].path, trainFiles[0]); // the photo itself still comes first
      for (const bad of ['11', '-1', '1.5', 'x']) {
        assertError(await call('POST', `/api/search?expand=${bad}`, { body: imageForm(img) }), 400, 'INVALID_PARAMETER', /for expand/);
        assertError(await call('GET', `/api/images/1/similar?expand=${bad}`), 400, 'INVALID_PARAMETER', /for expand/);
      }
      assert.equal((await call('GET', '/api/images/1/similar?k=3&expand=3')).body.results.length, 3);
    });
  });

  describe('bad uploads', () => {
    const jpeg = fs.readFileSync(valFiles[0]);

    it('refuses a truncated JPEG with 400 TRUNCATED_IMAGE', async () => {
      assertError(await call('POST', '/api/search', { body: imageForm(jpeg.subarray(0, jpeg.length >> 1)) }), 400, 'TRUNCATED_IMAGE');
    });

    it('refuses a JPEG with a corrupt middle with 400', async () => {
      const broken = Buffer.concat([jpeg.subarray(0, 2000), Buffer.alloc(5000, 0x41), jpeg.subarray(7000)]);
      const r = await call('POST', '/api/classify', { body: imageForm(broken) });
      assert.equal(r.status, 400);
      assert.ok(['CORRUPT_IMAGE', 'TRUNCATED_IMAGE'].includes(r.body.error.code), r.body.error.code);
    });

    it('refuses a 0-byte upload with 400 EMPTY_IMAGE, multipart or raw', async () => {
      assertError(await call('POST', '/api/search', { body: imageForm(new Uint8Array(0)) }), 400, 'EMPTY_IMAGE');
      assertError(await call('POST', '/api/search', { body: new Uint8Array(0), headers: { 'content-type': 'image/png' } }), 400, 'EMPTY_IMAGE');
    });

    it('refuses a PDF, a text file and an SVG with 415 UNSUPPORTED_IMAGE', async () => {
      const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
      assertError(await call('POST', '/api/search', { body: imageForm(pdf, {}, 'image', 'application/pdf') }), 415, 'UNSUPPORTED_IMAGE');
      assertError(await call('POST', '/api/search', { body: imageForm(Buffer.from('not an image')) }), 415, 'UNSUPPORTED_IMAGE');
      assertError(await call('POST', '/api/images', { body: imageForm(svg, {}, 'image', 'image/svg+xml'), auth: true }), 415, 'UNSUPPORTED_IMAGE');
      assertError(await call('POST', '/api/search', { body: svg, headers: { 'content-type': 'image/svg+xml' } }), 415, 'UNSUPPORTED_IMAGE');
    });

    it('refuses a body that is neither multipart nor image/* with 415', async () => {
      assertError(await call('POST', '/api/search', { body: '{"image":1}', headers: { 'content-type': 'application/json' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('refuses an upload over the limit with 413 UPLOAD_TOO_LARGE, multipart or raw', async () => {
      const big = fs.readFileSync(bigFile);
      assert.ok(big.length > LIMIT);
      assertError(await call('POST', '/api/search', { body: imageForm(big) }), 413, 'UPLOAD_TOO_LARGE', new RegExp(`${LIMIT} bytes`));
      assertError(await call('POST', '/api/search', { body: big, headers: { 'content-type': 'image/jpeg' } }), 413, 'UPLOAD_TOO_LARGE');
    });

    it('refuses a missing image, another field name and two files with 400', async () => {
      const onlyLabel = new FormData();
      onlyLabel.append('label', 'ants');
      assertError(await call('POST', '/api/search', { body: onlyLabel }), 400, 'MISSING_IMAGE');
      assertError(await call('POST', '/api/search'), 400, 'MISSING_IMAGE');
      assertError(await call('POST', '/api/search', { body: imageForm(jpeg, {}, 'file') }), 400, 'BAD_REQUEST_BODY', /"image"/);
      const two = imageForm(jpeg);
      two.append('image', new Blob([jpeg], { type: 'image/jpeg' }), 'second.jpg');
      assertError(await call('POST', '/api/search', { body: two }), 400, 'BAD_REQUEST_BODY');
    });

    it('refuses a malformed multipart body with 400', async () => {
      const body = '--XYZ\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\nabc';
      const r = await call('POST', '/api/search', { body, headers: { 'content-type': 'multipart/form-data; boundary=XYZ' } });
      assertError(r, 400, 'BAD_REQUEST_BODY');
    });
  });

  describe('POST /api/classify', () => {
    it('labels >= 90% of the val photos right, with confidence in [0, 1] and votes', async () => {
      const sample = valFiles;
      assert.equal(sample.length, 152);
      let right = 0;
      for (const file of sample) {
        const r = await call('POST', '/api/classify?k=10', { body: imageForm(fs.readFileSync(file)) });
        assert.equal(r.status, 200);
        assert.ok(r.body.confidence >= 0 && r.body.confidence <= 1);
        assert.equal(r.body.neighbors.length, 10);
        assert.ok(Object.keys(r.body.votes).every((l) => l === 'ants' || l === 'bees'));
        if (r.body.label === folderOf(file)) right++;
      }
      assert.ok(right / sample.length >= 0.9, `accuracy ${right}/${sample.length}`);
    });

    it('returns a null label under minConfidence, and 400 for minConfidence outside [0, 1]', async () => {
      const img = fs.readFileSync(valFiles[3]);
      const r = await call('POST', '/api/classify?minConfidence=1&k=50', { body: imageForm(img) });
      assert.equal(r.status, 200);
      if (r.body.confidence < 1) assert.equal(r.body.label, null);
      assertError(await call('POST', '/api/classify?minConfidence=2', { body: imageForm(img) }), 400, 'INVALID_PARAMETER', /minConfidence/);
    });
  });

  describe('GET /api/images/:id and /similar', () => {
    it('returns metadata of an indexed image', async () => {
      const id = engine.resolve(trainFiles[3]);
      const r = await call('GET', `/api/images/${id}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.id, id);
      assert.equal(r.body.path, trainFiles[3]);
      assert.equal(r.body.label, folderOf(trainFiles[3]));
      assert.ok(r.body.width > 0 && r.body.height > 0);
    });

    it('returns k neighbours of an indexed image, itself excluded, with a label filter', async () => {
      const id = engine.resolve(trainFiles[3]);
      const r = await call('GET', `/api/images/${id}/similar?k=5`);
      assert.equal(r.status, 200);
      assert.equal(r.body.results.length, 5);
      assert.ok(!r.body.results.some((x: { id: number }) => x.id === id));
      const f = await call('GET', `/api/images/${id}/similar?k=20&label=ants`);
      assert.equal(f.body.results.length, 20);
      assert.ok(f.body.results.every((x: { label: string }) => x.label === 'ants'));
    });

    it('answers 404 for an unknown id and 400 for an id that is not a positive integer', async () => {
      assertError(await call('GET', '/api/images/999999'), 404, 'NOT_FOUND');
      assertError(await call('GET', '/api/images/999999/similar'), 404, 'NOT_FOUND');
      for (const bad of ['abc', '0', '-1', '1.5', '1e3', '99999999999']) {
        assertError(await call('GET', `/api/images/${bad}`), 400, 'INVALID_PARAMETER', /for id/);
      }
      assertError(await call('GET', '/api/images/1/similar?k=0'), 400, 'INVALID_PARAMETER');
    });
  });

  describe('GET /api/images/:id/thumbnail', () => {
    it('serves a decodable JPEG by default, at most 256 px', async () => {
      const id = engine.resolve(trainFiles[5]);
      const r = await call('GET', `/api/images/${id}/thumbnail`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'image/jpeg');
      const meta = await sharp(r.bytes).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.ok(Math.max(meta.width!, meta.height!) <= 256);
      const again = await call('GET', `/api/images/${id}/thumbnail`);
      assert.deepEqual(again.bytes, r.bytes);
    });

    it('serves WebP when Accept asks for it or with ?format=webp', async () => {
      const id = engine.resolve(trainFiles[5]);
      for (const r of [await call('GET', `/api/images/${id}/thumbnail`, { headers: { accept: 'image/webp,*/*' } }), await call('GET', `/api/images/${id}/thumbnail?format=webp`)]) {
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-type'), 'image/webp');
        assert.equal((await sharp(r.bytes).metadata()).format, 'webp');
      }
    });

    it('answers 400 for another format, 404 for an unknown id', async () => {
      assertError(await call('GET', '/api/images/1/thumbnail?format=png'), 400, 'INVALID_PARAMETER');
      assertError(await call('GET', '/api/images/999999/thumbnail'), 404, 'NOT_FOUND');
    });
  });

  describe('labels and stats', () => {
    it('lists labels with counts and reports stats', async () => {
      const labels = (await call('GET', '/api/labels')).body.labels;
      const expected = [
        { label: 'bees', count: imagesIn(path.join(HYM_TRAIN, 'bees')).length },
        { label: 'ants', count: imagesIn(path.join(HYM_TRAIN, 'ants')).length },
      ].sort((a, b) => b.count - a.count);
      assert.deepEqual(labels, expected);
      const stats = (await call('GET', '/api/stats')).body;
      assert.equal(stats.images, 245);
      assert.equal(stats.index.type, 'hnsw');
    });
  });

  describe('mutating routes', () => {
    const newFile = valFiles[10];
    const newBytes = fs.readFileSync(newFile);
    let id = 0;

    it('require the bearer token: 401 without it or with another one', async () => {
      for (const headers of [{}, { authorization: 'Bearer wrong-token-0000' }, { authorization: TOKEN }] as Array<Record<string, string>>) {
        const r = await call('POST', '/api/images', { body: imageForm(newBytes), headers });
        assertError(r, 401, 'UNAUTHORIZED');
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
      }
      assertError(await call('DELETE', '/api/images/1'), 401, 'UNAUTHORIZED');
      assertError(await call('PUT', '/api/images/1/label', { body: '{"label":"x"}', headers: { 'content-type': 'application/json' } }), 401, 'UNAUTHORIZED');
      assert.ok(engine.store.images.doesExist(1));
    });

    it('adds an upload (201), then finds it first; the same bytes again give 200 and the same id', async () => {
      const r = await call('POST', '/api/images', { body: imageForm(newBytes, { label: 'bees' }), auth: true });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      id = r.body.id;
      assert.ok(Number.isInteger(id) && id > 0);
      assert.equal(r.headers.get('location'), `/api/images/${id}`);
      const again = await call('POST', '/api/images', { body: newBytes, headers: { 'content-type': 'image/jpeg' }, auth: true });
      assert.equal(again.status, 200);
      assert.deepEqual(again.body, { id });
      const s = await call('POST', '/api/search?k=3', { body: imageForm(newBytes) });
      assert.equal(s.body.results[0].id, id);
      assert.ok(s.body.results[0].score >= 0.999);
      const meta = (await call('GET', `/api/images/${id}`)).body;
      assert.equal(meta.label, 'bees');
      assert.ok(meta.path.startsWith(path.join(dataDir, 'uploads') + path.sep));
      const thumb = await call('GET', `/api/images/${id}/thumbnail`);
      assert.equal((await sharp(thumb.bytes).metadata()).format, 'jpeg');
    });

    it('serves searches while adds run', async () => {
      const queries = trainFiles.slice(20, 24).map((f) => call('POST', '/api/search?k=3', { body: imageForm(fs.readFileSync(f)) }));
      const add = call('POST', '/api/images?label=ants', { body: fs.readFileSync(valFiles[11]), headers: { 'content-type': 'image/jpeg' }, auth: true });
      const replies = await Promise.all([...queries, add]);
      assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 201]);
      replies.slice(0, 4).forEach((r, i) => assert.equal(r.body.results[0].path, trainFiles[20 + i]));
    });

    it('sets and clears a label with PUT /api/images/:id/label', async () => {
      const json = { 'content-type': 'application/json' };
      const r = await call('PUT', `/api/images/${id}/label`, { body: JSON.stringify({ label: 'wasps' }), headers: json, auth: true });
      assert.equal(r.status, 200);
      assert.equal(r.body.label, 'wasps');
      assert.deepEqual((await call('GET', '/api/labels')).body.labels.find((l: { label: string }) => l.label === 'wasps'), { label: 'wasps', count: 1 });
      const cleared = await call('PUT', `/api/images/${id}/label`, { body: '{"label":null}', headers: json, auth: true });
      assert.equal(cleared.body.label, null);
      assert.equal((await call('GET', '/api/labels')).body.labels.find((l: { label: string }) => l.label === 'wasps'), undefined);
      assertError(await call('PUT', `/api/images/${id}/label`, { body: '{"label":5}', headers: json, auth: true }), 400, 'INVALID_PARAMETER');
      assertError(await call('PUT', `/api/images/${id}/label`, { body: '{}', headers: json, auth: true }), 400, 'INVALID_PARAMETER');
      assertError(await call('PUT', `/api/images/${id}/label`, { body: '{"label":', headers: json, auth: true }), 400, 'BAD_REQUEST_BODY');
      assertError(await call('PUT', `/api/images/${id}/label`, { body: 'label=x', headers: { 'content-type': 'application/x-www-form-urlencoded' }, auth: true }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      assertError(await call('PUT', '/api/images/999999/label', { body: '{"label":"x"}', headers: json, auth: true }), 404, 'NOT_FOUND');
    });

    it('deletes an image: it is gone from search, metadata and disk; a second delete is 404', async () => {
      const file = (await call('GET', `/api/images/${id}`)).body.path;
      const r = await call('DELETE', `/api/images/${id}`, { auth: true });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { removed: id });
      assertError(await call('GET', `/api/images/${id}`), 404, 'NOT_FOUND');
      assertError(await call('GET', `/api/images/${id}/thumbnail`), 404, 'NOT_FOUND');
      const s = await call('POST', `/api/search?k=${MAX_K}`, { body: imageForm(newBytes) });
      assert.ok(!s.body.results.some((x: { id: number }) => x.id === id));
      assert.equal(fs.existsSync(file), false);
      assertError(await call('DELETE', `/api/images/${id}`, { auth: true }), 404, 'NOT_FOUND');
      assertError(await call('DELETE', '/api/images/abc', { auth: true }), 400, 'INVALID_PARAMETER');
    });
  });

  describe('afterwards', () => {
    it('never sent a stack trace in an error body', () => {
      assert.ok(errorBodies.length > 30);
      for (const r of errorBodies) assert.doesNotMatch(JSON.stringify(r.body), /\bat .*\.(ts|js):\d+/);
    });

    it('logged one line per request with method, path, status and ms', () => {
      assert.ok(logLines.some((l) => /^POST \/api\/search 200 \d+\.\dms$/.test(l)), logLines.slice(0, 3).join('\n'));
      assert.ok(logLines.some((l) => /^GET \/api\/images\/abc 400 \d+\.\dms$/.test(l)));
      assert.ok(!logLines.some((l) => l.startsWith('error:')), logLines.filter((l) => l.startsWith('error:')).join('\n'));
    });

    it('is still healthy', async () => {
      assert.equal((await call('GET', '/healthz')).status, 200);
      assert.equal((await call('GET', '/readyz')).status, 200);
    });
  });

  describe('in-process (supertest, no port)', () => {
    it('says 503 NOT_READY on /readyz until warm-up settles, and while shutting down', async () => {
      const pending = createApp(engine, { ready: new Promise(() => {}), log: () => {} });
      const r = await request(pending).get('/readyz');
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'NOT_READY');
      const failed = createApp(engine, { ready: Promise.reject(new Error('no model here')), log: () => {} });
      await new Promise((resolve) => setImmediate(resolve));
      assert.match((await request(failed).get('/readyz')).body.error.message, /no model here/);
      const stopping = new AbortController();
      stopping.abort();
      const draining = createApp(engine, { ready: Promise.resolve(), signal: stopping.signal, log: () => {} });
      assert.equal((await request(draining).get('/readyz')).status, 503);
    });

    it('answers an unexpected failure with 500 INTERNAL, no details, and logs the stack', async () => {
      const lines: string[] = [];
      const broken = Object.create(engine) as Engine;
      broken.stats = async () => {
        throw new Error('disk on fire at /secret/path');
      };
      const r = await request(createApp(broken, { ready: Promise.resolve(), log: (l) => lines.push(l) })).get('/api/stats');
      assert.equal(r.status, 500);
      assert.deepEqual(r.body, { error: { code: 'INTERNAL', message: 'Internal error; the server log has the details' } });
      assert.ok(lines.some((l) => l.includes('disk on fire') && l.includes('server.test.ts')));
    });

    it('leaves routes open when no token is set', async () => {
      const open = createApp(engine, { token: undefined, ready: Promise.resolve(), log: () => {} });
      const r = await request(open).put('/api/images/999999/label').send({ label: 'x' });
      assert.equal(r.status, 404);
    });
  });
});

describe('OpenAPI document', () => {
  it('documents exactly the routes the app has', async () => {
    const tmp = tempDir('pixdex-openapi-');
    const engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
    try {
      const app = createApp(engine, { ready: Promise.resolve(), log: () => {} });
      const inApp = new Set<string>();
      for (const layer of app.router.stack as unknown as Array<{ route?: { path: string; methods: Record<string, boolean> } }>) {
        if (!layer.route) continue;
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (on && method !== '_all') inApp.add(`${method.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
        }
      }
      const doc = (await request(app).get('/openapi.json')).body;
      assert.match(doc.openapi, /^3\./);
      const documented = new Set<string>();
      for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
        for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${p}`);
      }
      assert.ok(inApp.size >= 13, [...inApp].join(', '));
      assert.deepEqual([...inApp].sort(), [...documented].sort());
    } finally {
      await engine.close();
      tmp.cleanup();
    }
  });
});

describe('pixdex serve', () => {
  it('prints its URL, serves, and on SIGTERM finishes the request in flight and exits 0', async () => {
    const tmp = tempDir('pixdex-serve-');
    try {
      const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data', path.join(tmp.dir, 'data'), '--models', MODELS, '--backend', BACKEND], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('exit', () => reject(new Error(`exited early: ${stderr}`)));
      });
      await waitReady(url);
      // A request whose body is still arriving when SIGTERM comes: it must complete.
      const body = fs.readFileSync(valFiles[0]);
      const inFlight = new Promise<{ status: number; json: any }>((resolve, reject) => {
        const req = http.request(`${url}/api/search?k=1`, { method: 'POST', headers: { 'content-type': 'image/jpeg', 'content-length': body.length } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.write(body.subarray(0, 1000));
        setTimeout(() => {
          child.kill('SIGTERM');
          setTimeout(() => req.end(body.subarray(1000)), 300);
        }, 300);
      });
      const r = await inFlight;
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.results, []);
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /SIGTERM: finishing in-flight requests/);
      assert.match(stderr, /POST \/api\/search 200/);
    } finally {
      tmp.cleanup();
    }
  });
});
