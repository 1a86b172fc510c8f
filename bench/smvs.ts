/**
 * Issue 14's acceptance figures on real phone photos (`smvs`), through the real HTTP route: every
 * query photo is uploaded to `POST /api/search?k=5` of the real server (createApp on a loopback
 * port) — with verification (the product's default) and with `verify=false` (the visual ranking
 * alone, for the "before" column). A query is right when its reference (same file name) comes back.
 *
 *   categories   each category its own library of its `reference/` folder
 *   distractors  one library: the three `reference/` folders + every photo of oxford_flowers17 and
 *                hymenoptera_data (≈ 2,050 images); the same 293 queries
 *
 * Prints one JSON line per library and mode: P@1, R@5, client-side latency p50/p90 (upload,
 * decode, features, search, verification, JSON), the server's own `tookMs` p50, indexing rate,
 * store bytes per image, load average. Libraries are built in a temporary folder (or --data DIR,
 * kept, and reused when it already holds the images).
 *
 *   node --import tsx bench/smvs.ts [--libraries categories,distractors] [--data DIR] [--workers N]
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createApp } from '../server/app.ts';
import { Engine } from '../src/engine.ts';

const { values: args } = parseArgs({ options: { libraries: { type: 'string', default: 'categories,distractors' }, data: { type: 'string' }, workers: { type: 'string', default: '2' } } });
const DATASETS = path.resolve(process.env.PIXDEX_DATASETS ?? '../shared/datasets');
const SMVS = path.join(DATASETS, 'smvs');
const CATEGORIES = ['book_covers', 'museum_paintings', 'landmarks'] as const;
const images = (dir: string): string[] => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(jpe?g|png)$/i.test(f)).map((f) => path.join(dir, f)).sort();
const root = args.data ? path.resolve(args.data) : fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-smvs-'));
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

interface Query { file: string; category: string; reference: string }

async function run(name: string, folders: string[], queries: Query[]): Promise<void> {
  const dataDir = path.join(root, name);
  const engine = await Engine.open({ dataDir, modelsDir: process.env.PIXDEX_MODELS, backend: process.env.PIXDEX_BACKEND as 'wasm' | undefined, workers: Number(args.workers) });
  try {
    const t = performance.now();
    const s = await engine.index(folders);
    const indexSeconds = (performance.now() - t) / 1000;
    const stats = await engine.stats();
    const server = http.createServer(createApp(engine, { token: undefined, log: () => {} }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const verify of [false, true]) {
        const byCategory = new Map<string, { p1: number; r5: number; n: number }>();
        const ms: number[] = [];
        const took: number[] = [];
        for (const q of queries) {
          const form = new FormData();
          form.append('image', new Blob([fs.readFileSync(q.file)], { type: 'image/jpeg' }), path.basename(q.file));
          const started = performance.now();
          const res = await fetch(`${base}/api/search?k=5${verify ? '' : '&verify=false'}`, { method: 'POST', body: form });
          const body = (await res.json()) as { results: Array<{ path: string }>; tookMs: number };
          ms.push(performance.now() - started);
          if (res.status !== 200) throw new Error(`${q.file}: HTTP ${res.status} ${JSON.stringify(body)}`);
          took.push(body.tookMs);
          const c = byCategory.get(q.category) ?? { p1: 0, r5: 0, n: 0 };
          c.n++;
          if (body.results[0]?.path === q.reference) c.p1++;
          if (body.results.some((r) => r.path === q.reference)) c.r5++;
          byCategory.set(q.category, c);
        }
        const all = [...byCategory.values()].reduce((a, c) => ({ p1: a.p1 + c.p1, r5: a.r5 + c.r5, n: a.n + c.n }), { p1: 0, r5: 0, n: 0 });
        console.log(JSON.stringify({
          library: name,
          images: stats.images,
          verify,
          p1: r3(all.p1 / all.n),
          r5: r3(all.r5 / all.n),
          perCategory: Object.fromEntries([...byCategory].map(([k, c]) => [k, { queries: c.n, p1: r3(c.p1 / c.n), r5: r3(c.r5 / c.n) }])),
          msP50: Math.round(quantile(ms, 0.5)),
          msP90: Math.round(quantile(ms, 0.9)),
          serverMsP50: Math.round(quantile(took, 0.5)),
          indexed: { added: s.added, failed: s.failed, perSec: Math.round((s.added / indexSeconds) * 10) / 10 },
          storeBytesPerImage: Math.round(stats.storeBytes / stats.images),
          backend: stats.backend,
          loadAverage: load(),
        }));
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  } finally {
    await engine.close();
  }
}

const queriesOf = (category: string): Query[] => images(path.join(SMVS, category, 'query')).map((file) => ({ file, category, reference: path.join(SMVS, category, 'reference', path.basename(file)) }));
try {
  const which = args.libraries.split(',');
  if (which.includes('categories')) for (const c of CATEGORIES) await run(c, [path.join(SMVS, c, 'reference')], queriesOf(c));
  if (which.includes('distractors')) {
    const folders = [...CATEGORIES.map((c) => path.join(SMVS, c, 'reference')), path.join(DATASETS, 'oxford_flowers17'), path.join(DATASETS, 'hymenoptera_data')];
    await run('distractors', folders, CATEGORIES.flatMap(queriesOf));
  }
} finally {
  if (!args.data) fs.rmSync(root, { recursive: true, force: true });
}
