/**
 * Global baseline through the real engine, cached for smvs.ts: per smvs category a fresh library of
 * `reference/` in a temp --data folder (default descriptor and backbone), every `query/` photo
 * searched from its bytes with k = all references. Writes <cache>/global-<category>.json
 * ({query, ranking:[{name, score}], ms}) and prints P@1 / R@5 per category as JSON lines.
 * `--distractors`: one library of all three reference folders + oxford_flowers17 + hymenoptera_data,
 * k = 100 per query, written to <cache>/global-all.json (ranking by path).
 *
 *   node --import tsx bench/local/global.ts [--categories book_covers,...] [--distractors]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../../src/engine.ts';
import { CACHE, CATEGORIES, MODELS, DATASETS, SMVS, listJpg, load, log, out, pct, r3 } from './common.ts';

const { values: args } = parseArgs({
  options: {
    categories: { type: 'string', default: CATEGORIES.join(',') },
    distractors: { type: 'boolean', default: false },
    backend: { type: 'string', default: 'wasm' },
    workers: { type: 'string', default: '1' },
  },
});

async function library(dirs: string[]): Promise<{ engine: Engine; dataDir: string; indexMs: number }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-local-'));
  const engine = await Engine.open({ dataDir, modelsDir: MODELS, backend: args.backend as 'wasm', workers: Number(args.workers) });
  const t0 = performance.now();
  const summary = await engine.index(dirs);
  log(`indexed ${JSON.stringify(summary).slice(0, 200)}`);
  return { engine, dataDir, indexMs: performance.now() - t0 };
}

if (!args.distractors) {
  for (const cat of args.categories!.split(',')) {
    const refDir = path.join(SMVS, cat, 'reference');
    const qDir = path.join(SMVS, cat, 'query');
    const nRefs = listJpg(refDir).length;
    const { engine, dataDir, indexMs } = await library([refDir]);
    const rows: Array<{ query: string; ranking: Array<{ name: string; score: number }>; ms: number }> = [];
    for (const q of listJpg(qDir)) {
      const bytes = fs.readFileSync(path.join(qDir, q));
      const t0 = performance.now();
      const hits = await engine.search(bytes, { k: nRefs });
      rows.push({ query: q, ms: performance.now() - t0, ranking: hits.map((h) => ({ name: path.basename(h.path), score: h.score })) });
    }
    await engine.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.writeFileSync(path.join(CACHE, `global-${cat}.json`), JSON.stringify(rows));
    const p1 = rows.filter((r) => r.ranking[0]?.name === r.query).length / rows.length;
    const r5 = rows.filter((r) => r.ranking.slice(0, 5).some((h) => h.name === r.query)).length / rows.length;
    const ms = rows.map((r) => r.ms);
    out({ kind: 'global', category: cat, queries: rows.length, refs: nRefs, p1: r3(p1), r5: r3(r5), searchMsP50: Math.round(pct(ms, 50)), searchMsP90: Math.round(pct(ms, 90)), indexMs: Math.round(indexMs), loadavg: load() });
  }
} else {
  const dirs = [...CATEGORIES.map((c) => path.join(SMVS, c, 'reference')), path.join(DATASETS, 'oxford_flowers17'), path.join(DATASETS, 'hymenoptera_data')];
  const { engine, dataDir, indexMs } = await library(dirs);
  const rows: Array<{ category: string; query: string; ranking: Array<{ path: string; score: number }>; ms: number }> = [];
  for (const cat of CATEGORIES) {
    const qDir = path.join(SMVS, cat, 'query');
    for (const q of listJpg(qDir)) {
      const bytes = fs.readFileSync(path.join(qDir, q));
      const t0 = performance.now();
      const hits = await engine.search(bytes, { k: 100 });
      rows.push({ category: cat, query: q, ms: performance.now() - t0, ranking: hits.map((h) => ({ path: h.path, score: h.score })) });
    }
  }
  const stats = await engine.stats();
  await engine.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.writeFileSync(path.join(CACHE, 'global-all.json'), JSON.stringify(rows));
  const truth = (r: (typeof rows)[number]) => path.join(SMVS, r.category, 'reference', r.query);
  const p1 = rows.filter((r) => r.ranking[0]?.path === truth(r)).length / rows.length;
  const r5 = rows.filter((r) => r.ranking.slice(0, 5).some((h) => h.path === truth(r))).length / rows.length;
  const in100 = rows.filter((r) => r.ranking.some((h) => h.path === truth(r))).length / rows.length;
  out({ kind: 'global-distractors', images: (stats as { images?: number }).images, queries: rows.length, p1: r3(p1), r5: r3(r5), recallAt100: r3(in100), searchMsP50: Math.round(pct(rows.map((r) => r.ms), 50)), indexMs: Math.round(indexMs), loadavg: load() });
}
