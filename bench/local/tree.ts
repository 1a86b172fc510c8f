/**
 * The product's vocabulary tree (src/local/vocabulary.ts) and inverted index (src/local/inverted.ts)
 * on real phone photos (issue 14): BoW candidate recall of the true reference, per smvs category
 * (each its own library, vocabulary learned from its 101/91 references) and in the 2,051-image
 * library (3 × reference/ + oxford_flowers17 + hymenoptera_data, vocabulary learned from a sample
 * of all its descriptors), for several (branching k, depth L) and both scorings, against the flat
 * K = 1000 vocabulary of bow.ts (README). Also the union with the global shortlist (global.ts
 * caches) and the costs: learn, quantize per image, bulk build, query, stored word bytes per image.
 * Features: ORB 500 + CLAHE from the bench/local cache (missing ones are extracted and cached).
 *
 *   node --import tsx bench/local/tree.ts [--trees 10x3,10x4,10x5,16x3,32x3] [--scorings l1,cosine]
 *        [--distractors] [--config orb-q640-r480-n500-clahe] [--sample 200000] [--iters 8]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { InvertedIndex, encodeWords, type Scoring } from '../../src/local/inverted.ts';
import { Vocabulary } from '../../src/local/vocabulary.ts';
import { CACHE, CATEGORIES, DATASETS, SMVS, listJpg, load, log, out, pct, r3 } from './common.ts';
import { configName, extract, loadCv, parseConfig, readCache, saveCache, type FeatureConfig, type Features } from './features.ts';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'orb-q640-r480-n500-clahe' },
    trees: { type: 'string', default: '10x3,10x4,10x5,16x3,32x3' },
    scorings: { type: 'string', default: 'l1,cosine' },
    sample: { type: 'string', default: '200000' },
    iters: { type: 'string', default: '8' },
    seed: { type: 'string', default: '1' },
    distractors: { type: 'boolean', default: false },
  },
});
const config: FeatureConfig = parseConfig(args.config!);
const cacheFile = path.join(CACHE, `feat-${configName(config)}.json`);
log(`reading ${cacheFile}`);
const feats = readCache(cacheFile);
let extracted = 0;
async function get(file: string, role: 'q' | 'r'): Promise<Features> {
  const key = `${role}:${file}`;
  let f = feats.get(key);
  if (!f) {
    await loadCv();
    f = await extract(file, role === 'q' ? config.q : config.r, config);
    feats.set(key, f);
    extracted++;
  }
  return f;
}

const trees = args.trees!.split(',').map((t) => {
  const [k, L] = t.split('x').map(Number);
  return { k, L };
});
const scorings = args.scorings!.split(',') as Scoring[];
const at = (ranks: number[], n: number) => r3(ranks.filter((x) => x >= 0 && x < n).length / ranks.length);

interface Query {
  truth: number;
  f: Features;
  /** Global ranking as reference indexes (best first). */
  global: number[];
  /** smvs category (the 2,051-image library reports recall per category too). */
  category?: string;
}

/** Learns, quantizes, builds and queries one library for every tree and scoring; one JSON line each. */
function run(library: string, refs: Features[], queries: Query[], unions: Array<[number, number]>): void {
  const all = new Uint8Array(refs.reduce((s, f) => s + f.desc.length, 0));
  let o = 0;
  for (const f of refs) all.set(f.desc, (o += f.desc.length) - f.desc.length);
  for (const { k, L } of trees) {
    let t = performance.now();
    const vocab = Vocabulary.learn(all, { branching: k, depth: L, seed: Number(args.seed), maxDescriptors: Number(args.sample), iterations: Number(args.iters) });
    const learnMs = performance.now() - t;
    t = performance.now();
    const refWords = refs.map((f) => vocab.quantize(f.desc));
    const quantizeMs = (performance.now() - t) / refs.length;
    const encoded = refWords.map((w) => encodeWords(w));
    const bytes = encoded.reduce((s, e) => s + e.length, 0) / refs.length;
    const distinct = refWords.reduce((s, w) => s + new Set(w).size, 0) / refs.length;
    const queryWords = queries.map((q) => vocab.quantize(q.f.desc));
    for (const scoring of scorings) {
      t = performance.now();
      const index = InvertedIndex.fromRecords(encoded.map((e, id) => ({ id, encoded: e })), { words: vocab.words, scoring });
      const buildMs = performance.now() - t;
      const ranks: number[] = [];
      const qms: number[] = [];
      const union: Record<string, number> = {};
      queries.forEach((q, i) => {
        const t0 = performance.now();
        const hits = index.query(queryWords[i], 100);
        qms.push(performance.now() - t0);
        ranks.push(hits.findIndex((h) => h.id === q.truth));
        for (const [N, M] of unions) {
          const cand = new Set([...q.global.slice(0, N), ...hits.slice(0, M).map((h) => h.id)]);
          union[`g${N}+bow${M}`] = (union[`g${N}+bow${M}`] ?? 0) + (cand.has(q.truth) ? 1 : 0);
        }
      });
      const perCategory = queries.some((q) => q.category)
        ? Object.fromEntries(CATEGORIES.map((c) => {
          const r = ranks.filter((_, i) => queries[i].category === c);
          return [c, { R20: at(r, 20), R50: at(r, 50) }];
        }))
        : undefined;
      out({
        kind: 'tree', library, images: refs.length, k, L, words: vocab.words, scoring,
        R1: at(ranks, 1), R5: at(ranks, 5), R20: at(ranks, 20), R50: at(ranks, 50), R100: at(ranks, 100), perCategory,
        union: Object.fromEntries(Object.entries(union).map(([key, v]) => [key, r3(v / queries.length)])),
        learnMs: Math.round(learnMs), quantizeMsPerImage: r3(quantizeMs), buildMs: Math.round(buildMs), queryMsP50: r3(pct(qms, 50)), queryMsP90: r3(pct(qms, 90)),
        distinctWordsPerImage: Math.round(distinct), wordBytesPerImage: Math.round(bytes), indexBytesPerImage: Math.round(index.bytes / refs.length), loadavg: load(),
      });
    }
  }
}

if (!args.distractors) {
  for (const cat of CATEGORIES) {
    const rDir = path.join(SMVS, cat, 'reference'), qDir = path.join(SMVS, cat, 'query');
    const names = listJpg(rDir);
    const refs: Features[] = [];
    for (const f of names) refs.push(await get(path.join(rDir, f), 'r'));
    const globalFile = path.join(CACHE, `global-${cat}.json`);
    const global = fs.existsSync(globalFile) ? (JSON.parse(fs.readFileSync(globalFile, 'utf8')) as Array<{ query: string; ranking: Array<{ name: string }> }>) : [];
    const byQuery = new Map(global.map((g) => [g.query, g.ranking.map((h) => names.indexOf(h.name))]));
    const queries: Query[] = [];
    for (const q of listJpg(qDir)) queries.push({ truth: names.indexOf(q), f: await get(path.join(qDir, q), 'q'), global: byQuery.get(q) ?? [] });
    run(cat, refs, queries, global.length ? [[20, 20], [50, 20], [20, 50]] : []);
  }
} else {
  const dirs = [...CATEGORIES.map((c) => path.join(SMVS, c, 'reference')), path.join(DATASETS, 'oxford_flowers17'), path.join(DATASETS, 'hymenoptera_data')];
  const files: string[] = [];
  const walk = (d: string) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(path.join(d, e.name)) : /\.jpe?g$/i.test(e.name) && files.push(path.join(d, e.name)); };
  dirs.forEach(walk);
  files.sort();
  const index = new Map(files.map((f, i) => [f, i]));
  const refs: Features[] = [];
  for (const f of files) refs.push(await get(f, 'r'));
  const globalFile = path.join(CACHE, 'global-all.json');
  const global = fs.existsSync(globalFile) ? (JSON.parse(fs.readFileSync(globalFile, 'utf8')) as Array<{ category: string; query: string; ranking: Array<{ path: string }> }>) : [];
  const byQuery = new Map(global.map((g) => [`${g.category}/${g.query}`, g.ranking.map((h) => index.get(h.path) ?? -1)]));
  const queries: Query[] = [];
  for (const cat of CATEGORIES) {
    const qDir = path.join(SMVS, cat, 'query');
    for (const q of listJpg(qDir)) queries.push({ truth: index.get(path.join(SMVS, cat, 'reference', q))!, f: await get(path.join(qDir, q), 'q'), global: byQuery.get(`${cat}/${q}`) ?? [], category: cat });
  }
  log(`${refs.length} images, ${queries.length} queries`);
  run('all-2051', refs, queries, global.length ? [[20, 20], [50, 20], [50, 50], [0, 100]] : []);
}
if (extracted) saveCache(cacheFile, feats);
