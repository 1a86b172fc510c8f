/**
 * Instance retrieval and query latency through the product path, per library descriptor: all of
 * oxford_flowers17 (1360 photos) is indexed into a fresh library with `--descriptor` regional2, regional,
 * gem and pooled (src/library-descriptor.ts), then the generated re-photographed queries
 * (src/eval/instance-set.ts, fixed seed) are searched with `Engine.search` from their JPEG bytes:
 * decode, backbone, HNSW, and for `regional` the window re-ranking. A pixel-identical copy of the
 * source in flowers17 counts as the source. Prints one JSON line per descriptor (P@1, R@5 per
 * transformation, indexing time, median query latency) and a summary with latency ratios to
 * `pooled` measured in this run.
 *
 *   node --import tsx bench/instance.ts [--queries 243] [--seed 8] [--descriptors regional2,regional,gem,pooled]
 *        [--backbone mobilenet_v2] [--backend wasm] [--workers 1] [--rounds 3]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_EXTENSIONS, type BackendChoice } from '../src/config.ts';
import { Engine } from '../src/engine.ts';
import { loadDataset } from '../src/eval/evaluate.ts';
import { buildInstanceSet, scoreInstanceSet } from '../src/eval/instance-set.ts';
import { checkDescriptor } from '../src/descriptor-kind.ts';
import { median, round } from './ann.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = path.resolve(REPO, '../shared');
const { values: args } = parseArgs({
  options: {
    datasets: { type: 'string', default: process.env.PIXDEX_DATASETS ?? path.join(SHARED, 'datasets') },
    models: { type: 'string', default: process.env.PIXDEX_MODELS ?? path.join(SHARED, 'models') },
    queries: { type: 'string', default: '243' },
    seed: { type: 'string', default: '8' },
    descriptors: { type: 'string', default: 'regional2,regional,gem,pooled' },
    backbone: { type: 'string', default: 'mobilenet_v2' },
    backend: { type: 'string', default: 'wasm' },
    workers: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
  },
});
const log = (s: string) => process.stderr.write(`[bench:instance ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const flowers = loadDataset(path.join(args.datasets!, 'oxford_flowers17'), DEFAULT_EXTENSIONS);
const hym = loadDataset(path.join(args.datasets!, 'hymenoptera_data'), DEFAULT_EXTENSIONS);
let t0 = performance.now();
const queries = await buildInstanceSet({ sources: flowers, backgrounds: [...flowers, ...hym], count: Number(args.queries), seed: Number(args.seed) });
log(`${queries.length} queries (seed ${args.seed}) generated in ${Math.round(performance.now() - t0)} ms`);

const rows: Array<Record<string, unknown> & { descriptor: string; latencyMs: number }> = [];
for (const name of args.descriptors!.split(',')) {
  const descriptor = checkDescriptor(name);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `pixdex-instance-${descriptor}-`));
  const engine = await Engine.open({ dataDir, modelsDir: args.models, backbone: args.backbone, backend: args.backend as BackendChoice, workers: Number(args.workers), descriptor });
  try {
    t0 = performance.now();
    const summary = await engine.index([path.join(args.datasets!, 'oxford_flowers17')]);
    const indexSeconds = round((performance.now() - t0) / 1000, 1);
    log(`${descriptor}: indexed ${summary.added} (${summary.skipped} identical copies, ${summary.failed} failed) in ${indexSeconds} s`);
    // Identical files are stored once (other paths are aliases): compare store ids, so a hit on
    // the stored copy counts for the source (as a pixel-identical copy does in bench/descriptors.ts).
    const idOf = (i: number) => engine.records.idOfPath(path.resolve(flowers[i].path)) ?? -1 - i;
    const rankings: number[][] = [];
    const times: number[] = [];
    for (let r = 0; r < Number(args.rounds); r++) {
      for (const [i, q] of queries.entries()) {
        const t = performance.now();
        const hits = await engine.search(q.bytes, { k: 5 });
        times.push(performance.now() - t);
        if (r === 0) rankings[i] = hits.map((h) => h.id);
      }
    }
    const report = scoreInstanceSet(queries.map((q) => ({ ...q, accept: q.accept.map(idOf) })), rankings);
    const row = { backbone: args.backbone!, descriptor, backend: (await engine.backendInfo()).name, indexSeconds, latencyMs: round(median(times), 1), ...report };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    await engine.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const base = rows.find((r) => r.descriptor === 'pooled');
console.log(JSON.stringify({ summary: rows.map((r) => ({ descriptor: r.descriptor, p1: r.p1, r5: r.r5, latencyMs: r.latencyMs, latencyRatio: base ? round(r.latencyMs / base.latencyMs, 2) : null, indexSeconds: r.indexSeconds })) }));
