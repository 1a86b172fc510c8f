/**
 * Browsing the library over HTTP (issue 23): GET /api/images page by page and by label,
 * GET /api/images/:id/original (only the indexed file, only its indexed content), and 405 with
 * an Allow header for a known path asked with the wrong method. A small real store: 6 ants and
 * 5 bees from hymenoptera val, labelled from folders, plus one upload kept without a file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import type { Express } from 'express';
import { createApp } from '../server/app.ts';
import { Engine } from '../src/engine.ts';
import { PAGE_LIMIT } from '../src/contracts/limits.ts';
import { HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const ANTS = 6;
const BEES = 5;

describe('browsing the library over HTTP', () => {
  const tmp = tempDir('pixdex-browse-');
  const library = path.join(tmp.dir, 'library');
  let engine: Engine;
  let app: Express;
  /** Indexed ids in id order, with their files. */
  let indexed: Array<{ id: number; path: string; label: string }> = [];
  let uploadId = 0;

  before(async () => {
    for (const [kind, n] of [['ants', ANTS], ['bees', BEES]] as const) {
      fs.mkdirSync(path.join(library, kind), { recursive: true });
      for (const f of imagesIn(path.join(HYM_VAL, kind)).slice(0, n)) fs.copyFileSync(f, path.join(library, kind, path.basename(f)));
    }
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    assert.equal((await engine.index([library], { labelFromFolder: true })).added, ANTS + BEES);
    // Recorded as "upload:<sha256>": an image with no file on disk.
    const extra = imagesIn(path.join(HYM_VAL, 'bees'))[BEES];
    uploadId = (await engine.add(fs.readFileSync(extra), { label: 'bees' })).id;
    app = createApp(engine, { ready: Promise.resolve(), log: () => {}, queryWorkers: 0 });
    indexed = [...engine.records.images()].filter((e) => e.id !== uploadId).map(({ id, rec }) => ({ id, path: rec.path, label: rec.label! }));
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  const json = async (url: string, status = 200) => {
    const r = await request(app).get(url);
    assert.equal(r.status, status, JSON.stringify(r.body));
    return r.body;
  };

  describe('GET /api/images', () => {
    it('lists the library in id order, page by page, with the total and the image JSON of GET /api/images/:id', async () => {
      const all = await json('/api/images');
      assert.equal(all.total, ANTS + BEES + 1);
      assert.equal(all.offset, 0);
      assert.equal(all.limit, PAGE_LIMIT.default);
      const ids = all.images.map((i: { id: number }) => i.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      assert.deepEqual(all.images[0], await json(`/api/images/${all.images[0].id}`));

      const pages: number[] = [];
      for (let offset = 0; offset < all.total; offset += 5) {
        const page = await json(`/api/images?offset=${offset}&limit=5`);
        assert.equal(page.total, all.total);
        assert.equal(page.images.length, Math.min(5, all.total - offset));
        pages.push(...page.images.map((i: { id: number }) => i.id));
      }
      assert.deepEqual(pages, ids, 'the pages together are the library, once each');
      assert.deepEqual((await json(`/api/images?offset=${all.total}`)).images, []);
    });

    it('filters by label: the label’s images only, paged, with its count as total', async () => {
      const bees = await json('/api/images?label=bees&limit=4');
      assert.equal(bees.total, BEES + 1);
      assert.equal(bees.images.length, 4);
      assert.ok(bees.images.every((i: { label: string }) => i.label === 'bees'));
      const rest = await json('/api/images?label=%20bees%20&limit=4&offset=4');
      assert.equal(rest.images.length, BEES + 1 - 4);
      const expected = [...indexed.filter((i) => i.label === 'bees').map((i) => i.id), uploadId].sort((a, b) => a - b);
      assert.deepEqual([...bees.images, ...rest.images].map((i: { id: number }) => i.id), expected);
      const none = await json('/api/images?label=wasps');
      assert.deepEqual([none.total, none.images], [0, []]);
    });

    it('refuses bad parameters with 400 INVALID_PARAMETER naming the parameter', async () => {
      for (const [q, name] of [['limit=0', 'limit'], [`limit=${PAGE_LIMIT.max + 1}`, 'limit'], ['limit=abc', 'limit'], ['offset=-1', 'offset'], ['offset=1.5', 'offset'], ['label=', 'label'], ['label=a%07b', 'label']]) {
        const body = await json(`/api/images?${q}`, 400);
        assert.equal(body.error.code, 'INVALID_PARAMETER', q);
        assert.match(body.error.message, new RegExp(`for ${name} but received`), q);
      }
    });
  });

  describe('GET /api/images/:id/original', () => {
    it('serves the indexed file byte for byte, inline with its name and sniffed type; download=true as an attachment', async () => {
      const { id, path: file } = indexed[0];
      const r = await request(app).get(`/api/images/${id}/original`).buffer(true).parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'image/jpeg');
      assert.equal(r.headers['content-disposition'], `inline; filename*=UTF-8''${encodeURIComponent(path.basename(file))}`);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.ok((r.body as Buffer).equals(fs.readFileSync(file)));
      const d = await request(app).get(`/api/images/${id}/original?download=true`);
      assert.match(d.headers['content-disposition'], /^attachment; filename\*=UTF-8''/);
      assert.equal((await json(`/api/images/${id}/original?download=maybe`, 400)).error.code, 'INVALID_PARAMETER');
    });

    it('answers 404 for an unknown id, 400 for a bad one, and 404 for an image with no file (an upload kept without one)', async () => {
      assert.equal((await json('/api/images/999999/original', 404)).error.code, 'NOT_FOUND');
      assert.equal((await json('/api/images/abc/original', 400)).error.code, 'INVALID_PARAMETER');
      const noFile = await json(`/api/images/${uploadId}/original`, 404);
      assert.equal(noFile.error.code, 'NOT_FOUND');
      assert.match(noFile.error.message, new RegExp(`^Image ${uploadId} has no file to serve`));
    });

    it('refuses a path that no longer holds the indexed content: another file swapped in, or a symlink to one outside the library', async () => {
      const [a, b] = indexed.filter((i) => i.label === 'ants');
      const saved = fs.readFileSync(a.path);
      try {
        fs.copyFileSync(b.path, a.path); // another (real) image under the indexed name
        assert.match((await json(`/api/images/${a.id}/original`, 404)).error.message, /has changed since it was indexed/);
        fs.rmSync(a.path);
        const secret = path.join(tmp.dir, 'secret.txt');
        fs.writeFileSync(secret, 'not for the web');
        fs.symlinkSync(secret, a.path);
        const r = await request(app).get(`/api/images/${a.id}/original`);
        assert.equal(r.status, 404);
        assert.ok(!r.text.includes('not for the web'));
        fs.rmSync(a.path);
        assert.match((await json(`/api/images/${a.id}/original`, 404)).error.message, /no longer readable/);
      } finally {
        fs.rmSync(a.path, { force: true });
        fs.writeFileSync(a.path, saved);
      }
      assert.equal((await request(app).get(`/api/images/${a.id}/original`)).status, 200);
    });
  });

  describe('405 Method Not Allowed', () => {
    it('answers a known path asked with another method 405 with Allow, in the error shape', async () => {
      const cases: Array<[string, string, string]> = [
        ['patch', '/api/images/1', 'DELETE, GET, HEAD, OPTIONS'],
        ['put', '/api/images', 'GET, HEAD, OPTIONS, POST'],
        ['delete', '/api/search', 'OPTIONS, POST'],
        ['post', '/api/images/1/original', 'GET, HEAD, OPTIONS'],
        ['get', '/api/images/1/label', 'OPTIONS, PUT'],
        ['post', '/', 'GET, HEAD, OPTIONS'],
        ['delete', '/app.js', 'GET, HEAD, OPTIONS'],
      ];
      for (const [method, url, allow] of cases) {
        const r = await request(app)[method as 'get'](url);
        assert.equal(r.status, 405, `${method} ${url}`);
        assert.equal(r.headers.allow, allow, `${method} ${url}`);
        assert.deepEqual(Object.keys(r.body), ['error']);
        assert.equal(r.body.error.code, 'METHOD_NOT_ALLOWED');
        assert.match(r.body.error.message, new RegExp(`^${url.replace(/[/.]/g, '\\$&')} does not take ${method.toUpperCase()}; it takes `));
      }
    });

    it('answers OPTIONS 204 with Allow, and keeps 404 for unknown paths whatever the method', async () => {
      const o = await request(app).options('/api/images/7');
      assert.equal(o.status, 204);
      assert.equal(o.headers.allow, 'DELETE, GET, HEAD, OPTIONS');
      for (const [method, url] of [['get', '/nope'], ['patch', '/nope'], ['options', '/api/nope'], ['get', '/api/images/1/nope'], ['post', '/api/images/1/../../x']]) {
        const r = await request(app)[method as 'get'](url);
        assert.equal(r.status, 404, `${method} ${url}`);
        assert.equal(r.body.error.code, 'ROUTE_NOT_FOUND');
      }
    });
  });
});
