/**
 * HTTP hardening, asserted on a real server over real sockets (raw requests, so that paths reach
 * the server exactly as written): size limits, multipart limits, bounded k, id validation, no
 * path traversal, nothing served that is not indexed content, the token on every mutating
 * route (found by walking the app's routes), CORS off, security headers on every response.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import type { Express } from 'express';
import { createApp } from '../server/app.ts';
import { Engine, MAX_K } from '../src/engine.ts';
import { HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const TOKEN = 'hardening-token-0123456789';
const LIMIT = 512 * 1024;
/** POST routes that query and change nothing: open without the token. */
const READ_ONLY_POSTS = new Set(['/api/search', '/api/classify', '/api/preview']); // /api/preview converts an upload, stores nothing

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

describe('HTTP hardening', () => {
  const tmp = tempDir('pixdex-hardening-');
  const lib = path.join(tmp.dir, 'library');
  const photos = imagesIn(HYM_VAL).filter((f) => fs.statSync(f).size < LIMIT).slice(0, 5);
  const jpeg = fs.readFileSync(photos[0]);
  let engine: Engine;
  let app: Express;
  let server: http.Server;
  let port = 0;
  const log: string[] = [];

  /** One request with the path sent byte for byte (fetch would normalise `..` and `%2e`). */
  function raw(method: string, urlPath: string, o: { headers?: Record<string, string | number>; body?: Buffer | string } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: o.headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, text, json });
        });
      });
      req.on('error', reject);
      req.end(o.body);
    });
  }

  /** A multipart body built by hand, so limits can be pushed past what FormData allows. */
  function multipart(parts: Array<{ name: string; filename?: string; type?: string; data: Buffer | string }>): { body: Buffer; headers: Record<string, string | number> } {
    const boundary = '----pixdexBoundary7MA4YWxkTrZu0gW';
    const chunks: Buffer[] = [];
    for (const p of parts) {
      const disposition = `form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}`;
      chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`));
      chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
      chunks.push(Buffer.from('\r\n'));
    }
    chunks.push(Buffer.from(`--${boundary}--\r\n`));
    const body = Buffer.concat(chunks);
    return { body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } };
  }

  const image = (data = jpeg) => ({ name: 'image', filename: 'a.jpg', type: 'image/jpeg', data });
  const auth = { authorization: `Bearer ${TOKEN}` };

  function assertError(r: Reply, status: number, code: string): void {
    assert.equal(r.status, status, r.text);
    assert.equal(r.json?.error?.code, code, r.text);
  }

  before(async () => {
    for (const f of photos) {
      fs.mkdirSync(lib, { recursive: true });
      fs.copyFileSync(f, path.join(lib, path.basename(f)));
    }
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1 });
    await engine.index([lib]);
    app = createApp(engine, { token: TOKEN, maxUploadBytes: LIMIT, log: (l) => log.push(l) });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await engine?.close();
    tmp.cleanup();
  });

  describe('request size limits', () => {
    const big = Buffer.alloc(LIMIT + 1, 0xff);

    it('refuses a raw or multipart image over the limit with 413, on every upload route', async () => {
      for (const [route, headers] of [['/api/search', {}], ['/api/classify', {}], ['/api/images', auth]] as const) {
        assertError(await raw('POST', route, { headers: { ...headers, 'content-type': 'image/jpeg', 'content-length': big.length }, body: big }), 413, 'UPLOAD_TOO_LARGE');
        const m = multipart([image(big)]);
        assertError(await raw('POST', route, { headers: { ...headers, ...m.headers }, body: m.body }), 413, 'UPLOAD_TOO_LARGE');
      }
    });

    it('refuses a raw body that announces more than the limit before reading it', async () => {
      // Content-Length says 1 GiB; the server must answer without waiting for (or buffering) it.
      const r = await new Promise<number>((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1', () => {
          sock.write(`POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: ${2 ** 30}\r\n\r\n`);
          sock.write(jpeg.subarray(0, 1000));
        });
        let text = '';
        sock.on('data', (d) => {
          text += d;
          const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
          if (m) {
            sock.destroy();
            resolve(Number(m[1]));
          }
        });
        sock.on('error', reject);
        setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref();
      });
      assert.equal(r, 413);
    });

    it('refuses JSON bodies over their limits with 413', async () => {
      const id = engine.resolve(path.join(lib, path.basename(photos[0])));
      const label = JSON.stringify({ label: 'x'.repeat(5000) });
      assertError(await raw('PUT', `/api/images/${id}/label`, { headers: { ...auth, 'content-type': 'application/json' }, body: label }), 413, 'UPLOAD_TOO_LARGE');
      const paths = JSON.stringify({ paths: Array.from({ length: 2000 }, (_, i) => `/nowhere/${'d'.repeat(30)}/${i}`) });
      assertError(await raw('POST', '/api/index', { headers: { ...auth, 'content-type': 'application/json' }, body: paths }), 413, 'UPLOAD_TOO_LARGE');
    });

    it('answers an oversized request header with 431 and keeps serving', async () => {
      const r = await raw('GET', '/healthz', { headers: { 'x-junk': 'j'.repeat(40_000) } });
      assert.equal(r.status, 431);
      assert.equal((await raw('GET', '/healthz')).status, 200);
    });
  });

  describe('multipart limits', () => {
    it('accepts exactly one file, in the field "image"', async () => {
      const ok = multipart([image()]);
      assert.equal((await raw('POST', '/api/search?k=1', { headers: ok.headers, body: ok.body })).status, 200);
      const two = multipart([image(), image()]);
      assertError(await raw('POST', '/api/search', { headers: two.headers, body: two.body }), 400, 'BAD_REQUEST_BODY');
      const other = multipart([{ ...image(), name: 'file' }]);
      assertError(await raw('POST', '/api/search', { headers: other.headers, body: other.body }), 400, 'BAD_REQUEST_BODY');
    });

    it('refuses too many fields, too many parts, long field values and long field names', async () => {
      const fields = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `f${i}`, data: 'v' }));
      for (const parts of [
        [...fields(5), image()], // more fields than allowed
        [...fields(4), image(), image()], // more parts than allowed
        [{ name: 'label', data: 'x'.repeat(2048) }, image()], // a field value over 1 KiB
        [{ name: 'n'.repeat(100), data: 'v' }, image()], // a field name over 64 bytes
      ]) {
        const m = multipart(parts);
        assertError(await raw('POST', '/api/images', { headers: { ...auth, ...m.headers }, body: m.body }), 400, 'BAD_REQUEST_BODY');
      }
      assert.equal(engine.store.images.getCount(), photos.length, 'nothing was added');
    });
  });

  describe('parameters', () => {
    it('bounds k to 1..MAX_K on every route that takes it', async () => {
      const id = engine.resolve(path.join(lib, path.basename(photos[1])));
      const m = multipart([image()]);
      for (const k of ['0', '-1', String(MAX_K + 1), '1e3', '1.5', 'NaN', 'Infinity', '9007199254740993', '', '0x10', '10abc']) {
        const q = `k=${encodeURIComponent(k)}`;
        assertError(await raw('GET', `/api/images/${id}/similar?${q}`), 400, 'INVALID_PARAMETER');
        assertError(await raw('POST', `/api/search?${q}`, { headers: m.headers, body: m.body }), 400, 'INVALID_PARAMETER');
        assertError(await raw('POST', `/api/classify?${q}`, { headers: m.headers, body: m.body }), 400, 'INVALID_PARAMETER');
      }
      assertError(await raw('GET', `/api/images/${id}/similar?k=1&k=2`), 400, 'INVALID_PARAMETER');
      const r = await raw('GET', `/api/images/${id}/similar?k=${MAX_K}`);
      assert.equal(r.status, 200);
      assert.equal(r.json.results.length, photos.length - 1);
    });

    it('accepts only positive uint32 decimal ids', async () => {
      for (const bad of ['0', '-1', '1.5', '1e3', '0x10', '%201', '1%20', '4294967296', '99999999999', '%D9%A1', 'abc', '1;2', '%00']) {
        assertError(await raw('GET', `/api/images/${bad}`), 400, 'INVALID_PARAMETER');
        assertError(await raw('DELETE', `/api/images/${bad}`, { headers: auth }), 400, 'INVALID_PARAMETER');
      }
      assertError(await raw('GET', '/api/images/4294967295'), 404, 'NOT_FOUND');
    });
  });

  describe('files', () => {
    it('allows no path traversal, encoded or not, to the repository or the system', async () => {
      const pkg = fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8');
      const targets = [
        '/api/images/..%2f..%2fetc%2fpasswd/thumbnail',
        '/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
        '/api/images/1/thumbnail/..%2f..%2f..%2fpackage.json',
        '/api/images/..%252f..%252fetc%252fpasswd/thumbnail',
        '/..%2f..%2fpackage.json',
        '/%2e%2e/%2e%2e/package.json',
        '/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
        '/..%5c..%5cpackage.json',
        '/%252e%252e/%252e%252e/package.json',
        '/.%2e/.%2e/etc/passwd',
        '/../../etc/passwd',
        '//etc/passwd',
        '/app.js/..%2f..%2f..%2fpackage.json',
        '/index.html%00.json',
        '/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd',
        '/data/pixdex.lmdb',
        '/uploads/',
        '/server/app.ts',
        '/package.json',
        '/.git/config',
      ];
      for (const target of targets) {
        const r = await raw('GET', target);
        assert.ok(r.status === 400 || r.status === 404, `${target}: ${r.status}`);
        assert.ok(!r.text.includes('root:x:0:0') && !r.text.includes(pkg.slice(0, 40)) && !r.text.includes('[core]'), `${target} leaked a file`);
        assert.match(r.headers['content-type'] ?? '', /^application\/json/, target);
      }
    });

    it('serves a thumbnail only of the content that was indexed', async () => {
      const [a, b, c] = photos.map((f) => path.join(lib, path.basename(f)));
      const ids = [a, b, c].map((f) => engine.resolve(f));
      // a: swapped for a symlink to a system file; b: overwritten by another photo; c: deleted.
      fs.rmSync(a);
      fs.symlinkSync('/etc/passwd', a);
      fs.copyFileSync(photos[4], b);
      fs.rmSync(c);
      for (const id of ids) {
        const r = await raw('GET', `/api/images/${id}/thumbnail`);
        assertError(r, 404, 'NOT_FOUND');
        assert.ok(!r.text.includes('root:'));
      }
      assertError(await raw('GET', '/api/images/999999/thumbnail'), 404, 'NOT_FOUND');
      assert.ok(!log.some((l) => l.startsWith('error:')), log.filter((l) => l.startsWith('error:')).join('\n'));
      fs.rmSync(a);
      fs.copyFileSync(photos[0], a);
      fs.copyFileSync(photos[1], b);
      assert.equal((await raw('GET', `/api/images/${ids[0]}/thumbnail`)).status, 200, 'the indexed content again');
    });
  });

  describe('token', () => {
    /** Every route of the app, from its router (new routes are covered without editing this test). */
    function routes(): Array<{ method: string; path: string }> {
      const out: Array<{ method: string; path: string }> = [];
      for (const layer of app.router.stack as unknown as Array<{ route?: { path: string; methods: Record<string, boolean> } }>) {
        if (!layer.route) continue;
        for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') out.push({ method: method.toUpperCase(), path: layer.route.path });
      }
      return out;
    }

    it('is required on every route that changes something, and only there', async () => {
      const id = engine.resolve(path.join(lib, path.basename(photos[3])));
      const mutating = routes().filter((r) => !['GET', 'HEAD'].includes(r.method) && !READ_ONLY_POSTS.has(r.path));
      assert.ok(mutating.length >= 5, mutating.map((r) => `${r.method} ${r.path}`).join(', '));
      const concrete = (p: string) => p.replace(/:id\b/, String(id)).replace(/:jobId\b/, '0123456789abcdef');
      for (const r of mutating) {
        for (const headers of [{}, { authorization: 'Bearer wrong-token-000000' }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Bearer ${TOKEN.slice(0, -1)}` }, { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }, { authorization: TOKEN }, { 'x-api-key': TOKEN }]) {
          const reply = await raw(r.method, `${concrete(r.path)}?token=${TOKEN}`, { headers: { ...(headers as Record<string, string>), 'content-type': 'application/json' }, body: '{"label":"x","paths":["/tmp"]}' });
          assertError(reply, 401, 'UNAUTHORIZED');
          assert.match(String(reply.headers['www-authenticate']), /^Bearer/);
        }
        // With the token (on an unknown id, so nothing changes), the route gets past the check.
        const unknown = r.path.replace(/:id\b/, '999999').replace(/:jobId\b/, '0123456789abcdef');
        const withToken = await raw(r.method, unknown, { headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
        assert.notEqual(withToken.status, 401, `${r.method} ${r.path} refused the right token`);
        assert.ok(withToken.status < 500, `${r.method} ${r.path}: ${withToken.status} ${withToken.text}`);
      }
      assert.ok(engine.store.images.doesExist(id), 'nothing was deleted without the token');
      // Read-only routes stay open.
      const m = multipart([image()]);
      assert.equal((await raw('POST', '/api/search?k=1', { headers: m.headers, body: m.body })).status, 200);
      assert.equal((await raw('GET', `/api/images/${id}`)).status, 200);
    });

    it('ignores method-override headers', async () => {
      const id = engine.resolve(path.join(lib, path.basename(photos[3])));
      for (const h of ['x-http-method-override', 'x-http-method', 'x-method-override']) {
        const r = await raw('GET', `/api/images/${id}?_method=DELETE`, { headers: { [h]: 'DELETE' } });
        assert.equal(r.status, 200);
        assert.equal(r.json.id, id);
      }
      assert.ok(engine.store.images.doesExist(id));
    });
  });

  describe('CORS and headers', () => {
    it('sends no CORS header, on a preflight or on any answer', async () => {
      const origin = { origin: 'https://evil.example' };
      const replies = [
        await raw('OPTIONS', '/api/images', { headers: { ...origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } }),
        await raw('OPTIONS', '/api/search', { headers: { ...origin, 'access-control-request-method': 'POST' } }),
        await raw('GET', '/api/stats', { headers: origin }),
        await raw('POST', '/api/images', { headers: { ...origin, ...auth, 'content-type': 'image/jpeg' }, body: Buffer.from('x') }),
      ];
      for (const r of replies) {
        for (const h of Object.keys(r.headers)) assert.ok(!h.startsWith('access-control-'), `${h}: ${r.headers[h]}`);
      }
    });

    it('sends the security headers on every kind of answer', async () => {
      const id = engine.resolve(path.join(lib, path.basename(photos[0])));
      const m = multipart([image()]);
      const replies: Array<[string, Reply]> = [
        ['json', await raw('GET', '/api/stats')],
        ['search', await raw('POST', '/api/search?k=2', { headers: m.headers, body: m.body })],
        ['thumbnail', await raw('GET', `/api/images/${id}/thumbnail`)],
        ['400', await raw('GET', '/api/images/abc')],
        ['401', await raw('DELETE', `/api/images/${id}`)],
        ['404', await raw('GET', '/nope/<script>alert(1)</script>')],
        ['413', await raw('POST', '/api/search', { headers: { 'content-type': 'image/jpeg' }, body: Buffer.alloc(LIMIT + 1) })],
        ['415', await raw('POST', '/api/search', { headers: { 'content-type': 'text/html' }, body: '<b>x</b>' })],
        ['page', await raw('GET', '/')],
        ['openapi', await raw('GET', '/openapi.json')],
      ];
      for (const [what, r] of replies) {
        assert.equal(r.headers['x-content-type-options'], 'nosniff', what);
        assert.equal(r.headers['x-frame-options'], 'DENY', what);
        assert.equal(r.headers['referrer-policy'], 'no-referrer', what);
        assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/, what);
        assert.match(String(r.headers['content-security-policy']), /default-src 'none'/, what);
        assert.equal(r.headers['x-powered-by'], undefined, what);
        if (what !== 'page' && what !== 'thumbnail') assert.match(String(r.headers['content-type']), /^application\/json/, what);
      }
      assert.equal(replies.find(([w]) => w === 'thumbnail')![1].headers['content-type'], 'image/jpeg');
    });
  });

  it('never answered 5xx nor logged an unexpected error', () => {
    assert.ok(!log.some((l) => / 5\d\d /.test(l) || l.startsWith('error:')), log.filter((l) => / 5\d\d /.test(l) || l.startsWith('error:')).join('\n'));
  });
});
