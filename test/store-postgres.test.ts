/**
 * The library on both stores (issue 20): the same test bodies run against LMDB and against a real
 * PostgreSQL with pgvector (PGlite served over the wire protocol by pglite-socket, reached with the
 * `pg` client: test/helpers/pg.ts), on real hymenoptera photos through the real model and index.
 * Then both stores must have given the same answers, and two `pixdex serve` processes on one
 * database must see each other's writes with no image lost or stored twice.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { openStore } from '../src/store/open.ts';
import { PgBridge } from '../src/store/pg-bridge.ts';
import { readMany } from '../src/store/table.ts';
import { CLI, HYM_TRAIN, HYM_VAL, MODELS, BACKEND, engineOptions, imagesIn, tempDir } from './fixtures.ts';
import { startPg, type PgServer } from './helpers/pg.ts';
import pg_ from 'pg';

const PgClient = pg_.Client;

const STORES = ['lmdb', 'postgres'] as const;
type Kind = (typeof STORES)[number];

const ants = imagesIn(path.join(HYM_TRAIN, 'ants')).slice(0, 8);
const bees = imagesIn(path.join(HYM_TRAIN, 'bees')).slice(0, 8);
const queries = [...imagesIn(path.join(HYM_VAL, 'ants')).slice(0, 2), ...imagesIn(path.join(HYM_VAL, 'bees')).slice(0, 2)];

const round = (x: number) => Math.round(x * 1e4) / 1e4;

describe('the library on LMDB and on PostgreSQL (pgvector)', () => {
  const tmp = tempDir('pixdex-stores-');
  let pg: PgServer;
  /** What each store answered, compared at the end. */
  const transcripts = new Map<Kind, unknown>();

  before(async () => {
    pg = await startPg();
  });
  after(async () => {
    await pg?.stop();
    tmp.cleanup();
  });

  const options = (kind: Kind, root: string) => ({
    ...engineOptions(path.join(root, 'data')),
    ...(kind === 'postgres' ? { store: pg.url } : {}),
    descriptor: 'gem' as const,
    localFeatures: false,
    workers: 1,
  });

  for (const kind of STORES) {
    it(`${kind}: indexes, searches, labels, classifies, removes and reopens; check is clean`, async () => {
      if (kind === 'postgres') await pg.reset();
      const root = path.join(tmp.dir, kind);
      const photos = path.join(root, 'photos');
      for (const [label, files] of [['ants', ants], ['bees', bees]] as const) {
        fs.mkdirSync(path.join(photos, label), { recursive: true });
        for (const f of files) fs.copyFileSync(f, path.join(photos, label, path.basename(f)));
      }
      fs.copyFileSync(ants[0], path.join(photos, 'bees', 'copy-of-an-ant.jpg')); // identical content: an alias
      const t: Record<string, unknown> = {};
      let engine = await Engine.open(options(kind, root));
      try {
        const summary = await engine.index([photos], { labelFromFolder: true });
        assert.equal(summary.failed, 0, JSON.stringify(summary.errors));
        t.summary = { added: summary.added, skipped: summary.skipped };
        assert.equal(summary.added, 16);
        assert.equal(engine.store.images.getCount(), 16);
        assert.equal(engine.store.paths.getCount(), 17);
        const searched = async () => Promise.all(queries.map(async (q) => (await engine.search(fs.readFileSync(q), { k: 5 })).map((h) => [h.id, round(h.score), h.label ?? null])));
        t.search = await searched();
        for (const [i, f] of ants.entries()) {
          const hits = await engine.search(fs.readFileSync(f), { k: 3 });
          assert.equal(hits[0].id, engine.resolve(path.join(photos, 'ants', path.basename(f))), `photo ${i} finds itself first`);
          assert.ok(hits[0].score > 0.999);
        }
        t.similar = engine.similar(1, { k: 5 }).map((h) => [h.id, round(h.score)]);
        if (kind === 'postgres') {
          // The hits' records come in one round trip: 10 hits cost the statements 2 do (the metadata, the image's vector, that it exists, the records).
          const statements = (fn: () => unknown): number => {
            const query = PgBridge.prototype.query;
            let n = 0;
            PgBridge.prototype.query = function (sql: string) {
              n++;
              return query.call(this, sql);
            };
            try {
              fn();
            } finally {
              PgBridge.prototype.query = query;
            }
            return n;
          };
          const two = statements(() => engine.similar(1, { k: 2 }));
          const ten = statements(() => engine.similar(1, { k: 10 }));
          assert.equal(ten, two, `similar with k 10 took ${ten} statements, with k 2 ${two}`);
          assert.ok(ten <= 4, `similar took ${ten} statements`);
        }
        assert.ok(!engine.similar(1, { k: 5 }).some((h) => h.id === 1), 'similar leaves the image out');
        t.classify = await Promise.all(queries.map(async (q) => {
          const c = await engine.classify(fs.readFileSync(q), { k: 5 });
          return [c.label, round(c.confidence)];
        }));
        engine.label(3, 'wasps');
        t.labels = engine.labels();
        assert.deepEqual(engine.labels().map((l) => l.label).sort(), ['ants', 'bees', 'wasps']);
        assert.equal(engine.remove(2), 2);
        assert.equal(engine.store.images.getCount(), 15);
        t.afterRemove = await searched();
        assert.ok(!(t.afterRemove as Array<Array<[number]>>).flat().some(([id]) => id === 2), 'a removed image is never found');
        const report = engine.check();
        assert.deepEqual(report.problems, []);
        t.stats = (({ images, labels }) => ({ images, labels }))(await engine.stats());
      } finally {
        await engine.close();
      }
      engine = await Engine.open(options(kind, root), { create: false });
      try {
        assert.deepEqual(await Promise.all(queries.map(async (q) => (await engine.search(fs.readFileSync(q), { k: 5 })).map((h) => [h.id, round(h.score), h.label ?? null]))), t.afterRemove, 'the same answers after reopening');
        assert.equal(engine.check().ok, true);
        const again = await engine.index([photos], { labelFromFolder: true });
        assert.equal(again.added, 1, 'only the removed photo comes back');
        assert.equal(engine.store.images.getCount(), 16);
        assert.equal(engine.check().ok, true);
      } finally {
        await engine.close();
      }
      transcripts.set(kind, t);
    });

    it(`${kind}: the table interface: rollback, byte order, ranges, exact vectors, removal while iterating`, async () => {
      if (kind === 'postgres') await pg.reset();
      const store = openStore({ dataDir: path.join(tmp.dir, `${kind}-tables`), store: kind === 'postgres' ? pg.url : undefined });
      try {
        store.putMeta({ schema: 1, backbone: 'test', dims: 5, space: { kind: 'backbone' }, nextId: 1, seq: 0, createdAt: 1 });
        assert.throws(() => store.write(() => {
          store.labels.putSync('rolled-back', 1);
          throw new Error('fails inside the transaction');
        }), /fails inside/);
        assert.equal(store.labels.get('rolled-back'), undefined, 'a failed write leaves nothing');
        const keys = ['/a/b', '/a/b/é', '/a/c', '/a0', '/a/B', '/a/ä', '/a/b c', '/Z', "/a/it's"];
        store.write(() => keys.forEach((k, i) => store.paths.putSync(k, i + 1)));
        const byteOrder = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        assert.deepEqual([...store.paths.getKeys()], byteOrder, 'keys in UTF-8 byte order, as LMDB keeps them');
        assert.deepEqual([...store.paths.getKeys({ start: '/a/' })], byteOrder.filter((k) => k >= '/a/'));
        assert.equal(store.paths.get("/a/it's"), keys.length);
        const dims = 5;
        store.write(() => {
          for (let id = 1; id <= 7; id++) {
            store.images.putSync(id, { path: `/p/${id}.jpg`, sha256: `h${id}`, bytes: id, width: 2, height: 3, mtimeMs: 4, addedAt: 5, camera: { make: 'X', model: 'Y' } });
            store.putVector(id, Float32Array.from({ length: dims }, (_, j) => Math.fround(Math.sin(id * 7 + j) / 3)));
          }
        });
        for (let id = 1; id <= 7; id++) {
          assert.deepEqual([...store.getVector(id)!], Array.from({ length: dims }, (_, j) => Math.fround(Math.sin(id * 7 + j) / 3)), 'float32 vectors round-trip exactly');
        }
        assert.deepEqual(store.images.get(4), { path: '/p/4.jpg', sha256: 'h4', bytes: 4, width: 2, height: 3, mtimeMs: 4, addedAt: 5, camera: { make: 'X', model: 'Y' } });
        assert.deepEqual([...store.images.getKeys({ reverse: true, limit: 1 })], [7]);
        assert.deepEqual([...store.images.getRange({ offset: 2, limit: 3 })].map((e) => e.key), [3, 4, 5]);
        assert.equal(store.images.doesExist(7), true);
        assert.equal(store.images.doesExist(8), false);
        const model = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31) % 256));
        store.write(() => store.models.putSync('weights', model));
        assert.deepEqual(store.models.getBinary('weights'), model);
        // Many keys in one read (one statement on PostgreSQL): values in the keys' order, undefined where absent.
        const vector = (id: number) => Array.from({ length: dims }, (_, j) => Math.fround(Math.sin(id * 7 + j) / 3));
        assert.deepEqual(readMany(store.images, [5, 99, 2, 5]).map((r) => r?.path), ['/p/5.jpg', undefined, '/p/2.jpg', '/p/5.jpg']);
        assert.deepEqual(readMany(store.paths, ["/a/it's", '/none', '/a/b']), [keys.length, undefined, 1]);
        assert.deepEqual(readMany(store.models, ['none', 'weights'], true), [undefined, model]);
        assert.deepEqual(store.getSpaceVectors({ kind: 'backbone' }, [7, 8, 1]).map((v) => v && [...v]), [vector(7), undefined, vector(1)]);
        store.write(() => store.putScales(3, Float32Array.of(1.5, -2)));
        assert.deepEqual(store.getScalesMany([4, 3]).map((v) => v && [...v]), [undefined, [1.5, -2]]);
        assert.deepEqual(readMany(store.images, []), []);
        // More rows than one page of the PostgreSQL store (1000), removed while they are iterated.
        store.write(() => {
          for (let id = 1; id <= 2100; id++) store.dupesPending.putSync(id, true);
        });
        assert.equal(store.dupesPending.getCount(), 2100);
        let seen = 0;
        store.write(() => {
          for (const id of store.dupesPending.getKeys()) {
            seen++;
            store.dupesPending.removeSync(id);
          }
        });
        assert.equal(seen, 2100);
        assert.equal(store.dupesPending.getCount(), 0);
        store.write(() => {
          store.journal.putSync(1, { op: 'add', id: 1 });
          store.journal.putSync(2, { op: 'remove', id: 1 });
        });
        assert.deepEqual(store.journalAfter(0).map((e) => e.value), [{ op: 'add', id: 1 }, { op: 'remove', id: 1 }]);
      } finally {
        await store.close();
      }
    });
  }

  it('both stores gave the same answers (search, similar, classify, labels, removal, stats)', () => {
    assert.ok(transcripts.has('lmdb') && transcripts.has('postgres'), 'both runs finished');
    assert.deepEqual(transcripts.get('postgres'), transcripts.get('lmdb'));
  });

  it('pixdex migrate copies the LMDB library into PostgreSQL and back; check agrees on both, answers unchanged', async () => {
    await pg.reset();
    const lmdbDir = path.join(tmp.dir, 'lmdb', 'data');
    const back = path.join(tmp.dir, 'migrated-back');
    const migrate = (from: string, to: string) => {
      const r = spawnSync(process.execPath, [CLI, 'migrate', '--from', from, '--to', to, '--json', '--models', MODELS, '--backend', BACKEND], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      return JSON.parse(r.stdout) as { rows: Record<string, number>; check: { agree: boolean; from: { images: number; ok: boolean }; to: { images: number; ok: boolean } } };
    };
    const there = migrate(lmdbDir, pg.url);
    assert.equal(there.check.agree, true);
    assert.equal(there.check.to.images, 16);
    assert.ok(there.rows.vectors === 16 && there.rows.labels > 0 && there.rows.ann > 0, JSON.stringify(there.rows));
    const again = spawnSync(process.execPath, [CLI, 'migrate', '--from', lmdbDir, '--to', pg.url, '--models', MODELS], { encoding: 'utf8' });
    assert.equal(again.status, 5, 'a database that holds a library is not overwritten');
    assert.match(again.stderr, /STORE_MISMATCH/);
    const home = migrate(pg.url, back);
    assert.equal(home.check.agree, true);
    const answers = async (opts: object) => {
      const engine = await Engine.open({ ...engineOptions(lmdbDir), ...opts }, { create: false });
      try {
        return { labels: engine.labels(), hits: await Promise.all(queries.map(async (q) => (await engine.search(fs.readFileSync(q), { k: 5 })).map((h) => [h.id, round(h.score), h.label ?? null]))) };
      } finally {
        await engine.close();
      }
    };
    const original = await answers({});
    assert.deepEqual(await answers({ store: pg.url }), original);
    assert.deepEqual(await answers({ dataDir: back }), original);
  });

  it('a store URL that cannot be used is a typed error, not a crash; reading an empty database creates nothing', async () => {
    const run = (store: string) => spawnSync(process.execPath, [CLI, 'stats', '--store', store, '--data', path.join(tmp.dir, 'nowhere'), '--models', MODELS], { encoding: 'utf8' });
    const closed = run('postgres://pixdex@127.0.0.1:1/pixdex'); // nothing listens on port 1
    assert.equal(closed.status, 5, closed.stderr);
    assert.match(closed.stderr, /^pixdex: STORE_UNAVAILABLE: .*127\.0\.0\.1:1/m);
    const wrong = run('mysql://x@y/z');
    assert.equal(wrong.status, 2, wrong.stderr);
    assert.match(wrong.stderr, /INVALID_PARAMETER/);
    await pg.reset();
    const empty = run(pg.url);
    assert.equal(empty.status, 3, empty.stderr);
    assert.match(empty.stderr, /NOT_FOUND: No pixdex library in postgres:/);
    const client = new PgClient({ connectionString: pg.url });
    await client.connect();
    try {
      assert.equal((await client.query(`SELECT to_regclass('schema_migrations') AS t`)).rows[0].t, null, 'no table created');
    } finally {
      await client.end();
    }
  });

  it('two pixdex servers on one database: a write on either is searchable from the other, no image lost or doubled', async () => {
    await pg.reset();
    const servers: ChildProcess[] = [];
    try {
      const urls = await Promise.all(['a', 'b'].map(async (name) => {
        const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--store', pg.url, '--data', path.join(tmp.dir, `serve-${name}`), '--models', MODELS, '--backend', BACKEND, '--descriptor', 'gem', '--local-features', 'off'], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, PIXDEX_QUERY_WORKERS: '0' },
        });
        servers.push(child);
        return listening(child);
      }));
      for (const url of urls) await waitReady(url);
      const [a, b] = urls;
      // One upload through A, found by B.
      const first = await upload(a, ants[0]);
      assert.equal(first.status, 201);
      const hits = await searchBy(b, ants[0]);
      assert.equal(hits[0].id, first.id, 'B finds the image A stored');
      assert.ok(hits[0].score > 0.999);
      // Concurrent uploads through both; one photo through both at once.
      const photos = [...ants.slice(1, 4), ...bees.slice(0, 3)];
      const both = bees[4];
      const results = await Promise.all([
        ...photos.map((p, i) => upload(i % 2 ? a : b, p)),
        upload(a, both),
        upload(b, both),
      ]);
      for (const r of results) assert.ok(r.status === 200 || r.status === 201, `upload answered ${r.status}`);
      const [viaA, viaB] = results.slice(-2);
      assert.equal(viaA.id, viaB.id, 'the same photo through both servers is one image');
      assert.equal([viaA, viaB].filter((r) => r.status === 201).length, 1, 'created once');
      const ids = new Set([first.id, ...results.map((r) => r.id)]);
      assert.equal(ids.size, 1 + photos.length + 1);
      for (const url of urls) {
        const stats = await (await fetch(`${url}/api/stats`)).json() as { images: number };
        assert.equal(stats.images, ids.size, `${url} counts every image once`);
        for (const p of [...photos, both]) assert.ok((await searchBy(url, p))[0].score > 0.999, `${url} finds ${path.basename(p)}`);
      }
      // Deleted through B: gone from A's answers.
      assert.equal((await fetch(`${b}/api/images/${first.id}`, { method: 'DELETE' })).status, 200);
      assert.ok(!(await searchBy(a, ants[0])).some((h) => h.id === first.id), 'A no longer finds what B deleted');
    } finally {
      await Promise.all(servers.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once('exit', r), c.kill('SIGTERM'))))));
    }
    const check = spawnSync(process.execPath, [CLI, 'check', '--json', '--store', pg.url, '--data', path.join(tmp.dir, 'serve-a'), '--models', MODELS, '--backend', BACKEND], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.equal((JSON.parse(check.stdout) as { images: number }).images, 1 + 6 + 1 - 1);
  });
});

function listening(child: ChildProcess): Promise<string> {
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`pixdex serve exited (${code}): ${err}`)));
  });
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if ((await fetch(`${url}/readyz`)).status === 200) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url}/readyz never said ready`);
}

async function upload(url: string, file: string): Promise<{ status: number; id: number }> {
  const form = new FormData();
  form.append('image', new Blob([fs.readFileSync(file)], { type: 'image/jpeg' }), path.basename(file));
  const res = await fetch(`${url}/api/images`, { method: 'POST', body: form });
  const body = await res.json() as { id: number };
  return { status: res.status, id: body.id };
}

async function searchBy(url: string, file: string): Promise<Array<{ id: number; score: number }>> {
  const form = new FormData();
  form.append('image', new Blob([fs.readFileSync(file)], { type: 'image/jpeg' }), path.basename(file));
  const res = await fetch(`${url}/api/search?k=5`, { method: 'POST', body: form });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { results: Array<{ id: number; score: number }> }).results;
}
