/**
 * pgvector's HNSW against exact search, and the PostgreSQL store against LMDB (issue 20).
 *
 *   node --import tsx bench/pgvector.ts [--n 100000] [--dims 128] [--queries 200] [--ef 40,100,200]
 *        [--store-n 2000] [--url postgres://…]
 *
 * 1. ANN: `n` synthetic vectors (bench/ann.ts's low-rank clustered generator, L2-normalised) in a
 *    `vector(dims)` table, a cosine HNSW index built on it (pgvector defaults m 16,
 *    ef_construction 64), then recall@10 against exact cosine search (computed here) and median
 *    query time at each `hnsw.ef_search`. pixdex documents `PG_EF_SEARCH`.
 * 2. Store: the same `store-n` images (1280-d vectors, records, paths, hashes) written through
 *    `Records.writeFiles` in batches of 16 into LMDB and into PostgreSQL, then `similar` queries
 *    (in-process HNSW + record reads) on each: images/s and queries/s, and their ratio, and the
 *    statements (round trips) each `similar` sends to PostgreSQL.
 *
 * Without `--url` it starts PGlite with pgvector behind pglite-socket (test/helpers/pg-server.mjs):
 * PostgreSQL compiled to WebAssembly, single-threaded, so its timings are a floor for a real
 * server's. Prints one JSON object, with the load average before and after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Engine } from '../src/engine.ts';
import { PG_EF_SEARCH } from '../src/store/postgres.ts';
import { PgBridge } from '../src/store/pg-bridge.ts';
import { fileURLToPath } from 'node:url';
import { generatorFor, load, median, round, sample } from './ann.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    dims: { type: 'string', default: '128' },
    queries: { type: 'string', default: '200' },
    ef: { type: 'string', default: `40,${PG_EF_SEARCH},200` },
    'store-n': { type: 'string', default: '2000' },
    url: { type: 'string' },
  },
});
const n = Number(a.n);
const dims = Number(a.dims);
const nq = Number(a.queries);
const efs = a.ef!.split(',').map(Number);
const storeN = Number(a['store-n']);
const K = 10;
const loadStart = load();

let server: ChildProcess | undefined;
let url = a.url;
if (!url) {
  server = spawn(process.execPath, [path.join(REPO, 'test/helpers/pg-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => readline.createInterface({ input: server!.stdout! }).once('line', resolve));
  url = `postgres://postgres@127.0.0.1:${(JSON.parse(line) as { port: number }).port}/postgres`;
}

/** Statements the store has sent to PostgreSQL (each one round trip). */
let statements = 0;
const query = PgBridge.prototype.query;
PgBridge.prototype.query = function (sql: string) {
  statements++;
  return query.call(this, sql);
};

const text = (m: Float32Array, i: number) => `[${Array.from(m.subarray(i * dims, (i + 1) * dims)).join(',')}]`;

try {
  // ------------------------------------------------------------------ 1. pgvector HNSW vs exact
  const gen = await generatorFor('lowrank', dims, 7, 0);
  const base = sample(gen, n);
  const queries = sample(gen, nq);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('CREATE EXTENSION IF NOT EXISTS vector; DROP TABLE IF EXISTS bench_pgvector');
  await client.query(`CREATE TABLE bench_pgvector (id integer PRIMARY KEY, embedding vector(${dims}) NOT NULL)`);
  let t = performance.now();
  for (let i = 0; i < n; i += 500) {
    const rows = [];
    for (let j = i; j < Math.min(n, i + 500); j++) rows.push(`(${j}, '${text(base, j)}')`);
    await client.query(`INSERT INTO bench_pgvector VALUES ${rows.join(',')}`);
  }
  const insertSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  await client.query('CREATE INDEX ON bench_pgvector USING hnsw (embedding vector_cosine_ops)');
  const buildSeconds = (performance.now() - t) / 1000;
  // Exact top 10 by cosine (the vectors are unit length: the largest dot products).
  const exact: Set<number>[] = [];
  for (let q = 0; q < nq; q++) {
    const qv = queries.subarray(q * dims, (q + 1) * dims);
    const best: Array<[number, number]> = [];
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0, o = i * dims; j < dims; j++) s += qv[j] * base[o + j];
      if (best.length < K || s > best[best.length - 1][1]) {
        best.push([i, s]);
        best.sort((x, y) => y[1] - x[1]);
        if (best.length > K) best.pop();
      }
    }
    exact.push(new Set(best.map(([i]) => i)));
  }
  const ann = [];
  for (const ef of efs) {
    await client.query(`SET hnsw.ef_search = ${ef}`);
    const times: number[] = [];
    let found = 0;
    for (let q = 0; q < nq; q++) {
      const s = performance.now();
      const r = await client.query(`SELECT id FROM bench_pgvector ORDER BY embedding <=> '${text(queries, q)}' LIMIT ${K}`);
      times.push(performance.now() - s);
      found += r.rows.filter((row: { id: number }) => exact[q].has(row.id)).length;
    }
    ann.push({ efSearch: ef, recallAt10: round(found / (nq * K), 4), queryMsMedian: round(median(times), 2), qps: round(1000 / median(times), 1), load: load() });
  }
  await client.query('DROP TABLE bench_pgvector');
  await client.end();

  // ------------------------------------------------------------------ 2. the store: LMDB vs PostgreSQL
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-pg-'));
  const stores = [];
  try {
    const storeDims = 1280;
    const vectors = sample(await generatorFor('lowrank', storeDims, 11, 0), storeN);
    for (const kind of ['lmdb', 'postgres'] as const) {
      const engine = await Engine.open({ dataDir: path.join(tmp, kind), ...(kind === 'postgres' ? { store: url } : {}), modelsDir: path.join(tmp, 'models'), descriptor: 'gem', localFeatures: false });
      try {
        let s = performance.now();
        for (let i = 0; i < storeN; i += 16) {
          engine.records.writeFiles(Array.from({ length: Math.min(16, storeN - i) }, (_, j) => {
            const k = i + j;
            return { path: `/bench/${k}.jpg`, sha256: `sha-${k}`, bytes: 1000 + k, mtimeMs: k, width: 640, height: 480, embedding: { pooled: vectors.slice(k * storeDims, (k + 1) * storeDims) } };
          }));
          engine.refresh();
        }
        const writeSeconds = (performance.now() - s) / 1000;
        const times: number[] = [];
        const sent = statements;
        for (let q = 0; q < 200; q++) {
          s = performance.now();
          engine.similar(1 + ((q * 7919) % storeN), { k: 10 });
          times.push(performance.now() - s);
        }
        stores.push({ store: kind, images: storeN, imagesPerSecond: round(storeN / writeSeconds, 1), similarMsMedian: round(median(times), 2), similarQps: round(1000 / median(times), 1), statementsPerSimilar: round((statements - sent) / 200, 1), load: load() });
      } finally {
        await engine.close();
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const [lmdb, postgres] = stores;
  console.log(JSON.stringify({
    bench: 'pgvector',
    server: a.url ? 'postgres (given)' : 'pglite (wasm) over pglite-socket',
    ann: { n, dims, queries: nq, generator: gen.description, m: 16, efConstruction: 64, insertSeconds: round(insertSeconds, 1), buildSeconds: round(buildSeconds, 1), documentedEfSearch: PG_EF_SEARCH, byEf: ann },
    store: { byStore: stores, postgresVsLmdb: { write: round(postgres.imagesPerSecond / lmdb.imagesPerSecond, 3), similar: round(postgres.similarQps / lmdb.similarQps, 3) } },
    loadavg: { start: loadStart, end: load() },
  }));
} finally {
  server?.kill('SIGTERM');
}
