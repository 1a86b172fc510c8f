/**
 * Query latency through the real HTTP server (server/app.ts on 127.0.0.1:0) over a store of real
 * images: POST /api/search with real photos at concurrency 1 and 8, GET /api/images/:id/similar,
 * the in-process breakdown of one query (decode, backbone, ANN), and a large-JPEG decode check
 * (sharp's shrink-on-load). Prints one JSON object.
 *
 *   npm run bench:query -- [--data DIR] [--dataset DIR] [--queries DIR] [--n 200] [--backend NAME]
 *
 * Without --data (or with an empty one), `--dataset` (default ../shared/datasets/oxford_flowers17)
 * is indexed first (into a temp data dir without --data). Query photos come from `--queries` (default hymenoptera val: photos that are not
 * in the index, of varied sizes).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { createApp } from '../server/app.ts';
import { Engine } from '../src/engine.ts';
import { scanInputs } from '../indexer/scan.ts';
import { DEFAULT_EXTENSIONS } from '../src/config.ts';
import { load, median, round } from './ann.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = path.resolve(REPO, '../shared');
const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    dataset: { type: 'string', default: path.join(SHARED, 'datasets/oxford_flowers17') },
    queries: { type: 'string', default: path.join(SHARED, 'datasets/hymenoptera_data/val') },
    models: { type: 'string', default: process.env.PIXDEX_MODELS ?? path.join(SHARED, 'models') },
    backend: { type: 'string' },
    n: { type: 'string', default: '200' },
    breakdown: { type: 'string', default: '30' },
  },
});
const n = Number(values.n);
const log = (s: string) => process.stderr.write(`[bench:query ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const stats = (xs: number[], seconds: number) => ({ p50Ms: round(pct(xs, 50), 1), p99Ms: round(pct(xs, 99), 1), meanMs: round(xs.reduce((a, b) => a + b, 0) / xs.length, 1), rps: round(xs.length / seconds, 1), requests: xs.length });

const loadStart = load();
const tempData = values.data ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-query-'));
const dataDir = path.resolve(values.data ?? tempData!);
const options = { dataDir, modelsDir: values.models, ...(values.backend ? { backend: values.backend as 'wasm' } : {}) };
const out: Record<string, unknown> = { bench: 'query', n };
const engine = await Engine.open(options);
const abort = new AbortController();
let server: import('node:http').Server | undefined;
try {
  let t = performance.now();
  await engine.model();
  out.modelLoadAndWarmUpSeconds = round((performance.now() - t) / 1000, 2);
  out.backend = (await engine.backendInfo()).name;
  if (engine.records.count() === 0) {
    t = performance.now();
    const summary = await engine.index([values.dataset], { labelFromFolder: true });
    out.indexed = { dataset: values.dataset, added: summary.added, failed: summary.failed, seconds: round((performance.now() - t) / 1000, 1) };
    log(`indexed ${summary.added} images in ${summary.seconds} s`);
  }
  const ids = [...engine.records.ids()];
  out.images = ids.length;
  const queryFiles = (await scanInputs([values.queries], DEFAULT_EXTENSIONS)).files.map((f) => f.path).sort();
  const queryBytes = queryFiles.map((f) => fs.readFileSync(f));
  out.queryPhotos = { dir: values.queries, count: queryFiles.length, medianBytes: median(queryBytes.map((b) => b.length)) };

  // ---------------------------------------------------------------- in-process breakdown
  const parts = { decodeMs: [] as number[], backboneMs: [] as number[], annMs: [] as number[], engineSearchMs: [] as number[] };
  for (let i = 0; i < Math.min(Number(values.breakdown), queryBytes.length); i++) {
    t = performance.now();
    const img = await engine.describer.decode(queryBytes[i], queryFiles[i]);
    parts.decodeMs.push(performance.now() - t);
    t = performance.now();
    const [e] = await engine.describer.embedPixels([img.pixels], { space: engine.space(), windows: true });
    parts.backboneMs.push(performance.now() - t);
    t = performance.now();
    engine.searchVector(e.code ?? e.pooled, { k: 10 });
    parts.annMs.push(performance.now() - t);
    t = performance.now();
    await engine.search(queryBytes[i], { k: 10 }); // the whole in-process path the route calls
    parts.engineSearchMs.push(performance.now() - t);
  }
  out.breakdownMedianMs = Object.fromEntries(Object.entries(parts).map(([k, xs]) => [k, round(median(xs), 2)]));

  // ---------------------------------------------------------------- large JPEG: shrink-on-load
  const big = await sharp(queryBytes[0]).rotate().resize(6000, 4000, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
  const timeIt = async (fn: () => Promise<unknown>, reps = 5) => {
    const xs: number[] = [];
    for (let r = 0; r < reps; r++) {
      const s = performance.now();
      await fn();
      xs.push(performance.now() - s);
    }
    return round(median(xs), 1);
  };
  out.largeJpeg = {
    pixels: '6000x4000 (24 MP), baseline, q90',
    bytes: big.length,
    engineDecodeMs: await timeIt(() => engine.describer.decode(big, 'large')),
    fullDecodeMs: await timeIt(() => sharp(big).raw().toBuffer()),
    /** The engine's pipeline with shrink-on-load defeated (a full-size decode is forced first). */
    withoutShrinkOnLoadMs: await timeIt(async () => sharp(await sharp(big).raw().toBuffer(), { raw: { width: 6000, height: 4000, channels: 3 } }).resize(224, 224, { fit: 'cover' }).raw().toBuffer()),
  };

  // ---------------------------------------------------------------- HTTP
  const app = createApp(engine, { log: () => {}, signal: abort.signal });
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server!.once('listening', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const search = async (i: number) => {
    const form = new FormData();
    form.append('image', new Blob([queryBytes[i % queryBytes.length]], { type: 'image/jpeg' }), path.basename(queryFiles[i % queryFiles.length]));
    const s = performance.now();
    const res = await fetch(`${base}/api/search?k=10`, { method: 'POST', body: form });
    const body = (await res.json()) as { results?: unknown[] };
    if (res.status !== 200 || !body.results?.length) throw new Error(`search: HTTP ${res.status} ${JSON.stringify(body)}`);
    return performance.now() - s;
  };
  const similar = async (i: number) => {
    const s = performance.now();
    const res = await fetch(`${base}/api/images/${ids[(i * 7919) % ids.length]}/similar?k=10`);
    const body = (await res.json()) as { results?: unknown[] };
    if (res.status !== 200 || !body.results?.length) throw new Error(`similar: HTTP ${res.status} ${JSON.stringify(body)}`);
    return performance.now() - s;
  };
  const run = async (fn: (i: number) => Promise<number>, concurrency: number) => {
    const lat: number[] = [];
    let next = 0;
    const s = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < n) lat.push(await fn(next++));
    }));
    return stats(lat, (performance.now() - s) / 1000);
  };
  for (let i = 0; i < 8; i++) await search(i); // warm the HTTP path (JIT, sockets)
  const ready = await fetch(`${base}/readyz`);
  out.readyz = ready.status;
  out.search = { c1: await run(search, 1), c8: await run(search, 8) };
  log(`search c1 p50 ${JSON.stringify(out.search)}`);
  out.similar = { c1: await run(similar, 1), c8: await run(similar, 8) };
  out.loadavg = { start: loadStart, end: load() };
  out.cores = os.cpus().length;
  console.log(JSON.stringify(out));
} finally {
  abort.abort();
  const closed = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server?.closeAllConnections();
  await closed;
  await engine.close();
  if (tempData) fs.rmSync(tempData, { recursive: true, force: true });
}
