/**
 * What a visual-word inverted index adds as a candidate source (issue 14 "Recall beyond the
 * global shortlist"): a flat vocabulary of K binary words learned by k-majority (k-means for
 * Hamming space) from the library's reference descriptors, tf-idf inverted lists, cosine scoring.
 * Prints, per category library and for the ~2,050-image library, the rank of the true reference
 * by BoW alone (R@1/5/20/50) and the recall of the candidate set global top-N ∪ BoW top-M.
 * Features come from smvs.ts's cache (missing ones are extracted and cached).
 *
 *   node --import tsx bench/local/bow.ts [--config orb-q640-r480-n500] [--K 1000] [--distractors]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CACHE, CATEGORIES, DATASETS, SMVS, listJpg, load, log, out, r3 } from './common.ts';
import { configName, extract, parseConfig, loadCv, readCache, saveCache, type FeatureConfig, type Features } from './features.ts';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string', default: 'orb-q640-r480-n500' },
    K: { type: 'string', default: '1000' },
    iters: { type: 'string', default: '6' },
    sample: { type: 'string', default: '40000' },
    distractors: { type: 'boolean', default: false },
  },
});
const config: FeatureConfig = parseConfig(args.config!);
const cacheFile = path.join(CACHE, `feat-${configName(config)}.json`);
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

function popcnt(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
/** Descriptors as rows of W uint32 words. */
function words(f: Features): { W: number; data: Uint32Array } {
  const W = Math.ceil(f.dbytes / 4);
  const buf = new Uint8Array(f.count * W * 4);
  for (let i = 0; i < f.count; i++) buf.set(f.desc.subarray(i * f.dbytes, (i + 1) * f.dbytes), i * W * 4);
  return { W, data: new Uint32Array(buf.buffer) };
}
function nearest(centres: Uint32Array, K: number, W: number, d: Uint32Array, off: number): number {
  let best = 0, bd = 1e9;
  for (let k = 0; k < K; k++) {
    let s = 0;
    const co = k * W;
    for (let w = 0; w < W && s < bd; w++) s += popcnt(centres[co + w] ^ d[off + w]);
    if (s < bd) (bd = s), (best = k);
  }
  return best;
}
function learn(samples: Uint32Array, W: number, K: number, iters: number): Uint32Array {
  const n = samples.length / W;
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
  const centres = new Uint32Array(K * W);
  const row = () => {
    const i = Math.floor(rand() * n) * W;
    return samples.subarray(i, i + W);
  };
  for (let k = 0; k < K; k++) centres.set(row(), k * W);
  for (let it = 0; it < iters; it++) {
    const bits = new Uint32Array(K * W * 32);
    const cnt = new Uint32Array(K);
    for (let i = 0; i < n; i++) {
      const k = nearest(centres, K, W, samples, i * W);
      cnt[k]++;
      for (let w = 0; w < W; w++) {
        const v = samples[i * W + w];
        for (let b = 0; b < 32; b++) if ((v >>> b) & 1) bits[(k * W + w) * 32 + b]++;
      }
    }
    for (let k = 0; k < K; k++) {
      if (!cnt[k]) {
        centres.set(row(), k * W);
        continue;
      }
      for (let w = 0; w < W; w++) {
        let v = 0;
        for (let b = 0; b < 32; b++) if (bits[(k * W + w) * 32 + b] * 2 > cnt[k]) v |= 1 << b;
        centres[k * W + w] = v >>> 0;
      }
    }
  }
  return centres;
}
function histogram(f: Features, centres: Uint32Array, K: number): Map<number, number> {
  const { W, data } = words(f);
  const h = new Map<number, number>();
  for (let i = 0; i < f.count; i++) {
    const k = nearest(centres, K, W, data, i * W);
    h.set(k, (h.get(k) ?? 0) + 1);
  }
  return h;
}

/** Builds the index over `refs` and returns a scorer for query features. */
function buildIndex(refs: Array<{ key: string; f: Features }>): { score(q: Features): Array<{ key: string; s: number }>; ms: number; bytes: number } {
  const t0 = performance.now();
  const K = Number(args.K);
  const W = Math.ceil(refs[0].f.dbytes / 4);
  const total = refs.reduce((s, r) => s + r.f.count, 0);
  const want = Math.min(total, Number(args.sample));
  const samples = new Uint32Array(want * W);
  let j = 0;
  const step = total / want;
  let next = 0, idx = 0;
  for (const r of refs) {
    const { data } = words(r.f);
    for (let i = 0; i < r.f.count; i++, idx++) if (idx >= next && j < want) (samples.set(data.subarray(i * W, i * W + W), j * W), j++, (next += step));
  }
  const centres = learn(samples.subarray(0, j * W), W, K, Number(args.iters));
  const hists = refs.map((r) => histogram(r.f, centres, K));
  const df = new Float64Array(K);
  for (const h of hists) for (const k of h.keys()) df[k]++;
  const idf = Array.from(df, (d) => (d ? Math.log(refs.length / d) : 0));
  const lists: Array<Array<[number, number]>> = Array.from({ length: K }, () => []);
  let postings = 0;
  hists.forEach((h, ri) => {
    let norm = 0;
    for (const [k, c] of h) norm += (c * idf[k]) ** 2;
    norm = Math.sqrt(norm) || 1;
    for (const [k, c] of h) (lists[k].push([ri, (c * idf[k]) / norm]), postings++);
  });
  const ms = performance.now() - t0;
  return {
    ms,
    bytes: (postings * 6) / refs.length, // uint32 image id + uint16 weight per posting
    score(q: Features) {
      const h = histogram(q, centres, K);
      let norm = 0;
      for (const [k, c] of h) norm += (c * idf[k]) ** 2;
      norm = Math.sqrt(norm) || 1;
      const acc = new Float64Array(refs.length);
      for (const [k, c] of h) {
        const w = (c * idf[k]) / norm;
        for (const [ri, v] of lists[k]) acc[ri] += w * v;
      }
      return refs.map((r, i) => ({ key: r.key, s: acc[i] })).sort((a, b) => b.s - a.s);
    },
  };
}

const at = (ranks: number[], n: number) => r3(ranks.filter((x) => x >= 0 && x < n).length / ranks.length);

if (!args.distractors) {
  for (const cat of CATEGORIES) {
    const rDir = path.join(SMVS, cat, 'reference'), qDir = path.join(SMVS, cat, 'query');
    const refs = [];
    for (const f of listJpg(rDir)) refs.push({ key: f, f: await get(path.join(rDir, f), 'r') });
    const index = buildIndex(refs);
    const global = JSON.parse(fs.readFileSync(path.join(CACHE, `global-${cat}.json`), 'utf8')) as Array<{ query: string; ranking: Array<{ name: string }> }>;
    const ranks: number[] = [];
    const qms: number[] = [];
    const union: Record<string, number> = {};
    for (const g of global) {
      const t = performance.now();
      const s = index.score(await get(path.join(qDir, g.query), 'q'));
      qms.push(performance.now() - t);
      ranks.push(s.findIndex((x) => x.key === g.query));
      for (const [N, M] of [[20, 20], [50, 20], [20, 50], [50, 50]]) {
        const cand = new Set([...g.ranking.slice(0, N).map((h) => h.name), ...s.slice(0, M).map((x) => x.key)]);
        union[`g${N}+bow${M}`] = (union[`g${N}+bow${M}`] ?? 0) + (cand.has(g.query) ? 1 : 0);
      }
    }
    qms.sort((a, b) => a - b);
    out({ kind: 'bow', config: args.config, K: Number(args.K), category: cat, bowR1: at(ranks, 1), bowR5: at(ranks, 5), bowR20: at(ranks, 20), bowR50: at(ranks, 50), union: Object.fromEntries(Object.entries(union).map(([k, v]) => [k, r3(v / global.length)])), buildMs: Math.round(index.ms), queryMsP50: Math.round(qms[qms.length >> 1]), postingBytesPerImage: Math.round(index.bytes), loadavg: load() });
  }
} else {
  const dirs = [...CATEGORIES.map((c) => path.join(SMVS, c, 'reference')), path.join(DATASETS, 'oxford_flowers17'), path.join(DATASETS, 'hymenoptera_data')];
  const files: string[] = [];
  const walk = (d: string) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(path.join(d, e.name)) : /\.jpe?g$/i.test(e.name) && files.push(path.join(d, e.name)); };
  dirs.forEach(walk);
  files.sort();
  const refs = [];
  const t0 = performance.now();
  for (const f of files) {
    refs.push({ key: f, f: await get(f, 'r') });
    if (refs.length % 250 === 0) log(`${refs.length}/${files.length} features`);
  }
  log(`features ${Math.round(performance.now() - t0)} ms (${extracted} extracted)`);
  if (extracted) saveCache(cacheFile, feats);
  const index = buildIndex(refs);
  log(`index built in ${Math.round(index.ms)} ms`);
  const global = JSON.parse(fs.readFileSync(path.join(CACHE, 'global-all.json'), 'utf8')) as Array<{ category: string; query: string; ranking: Array<{ path: string }> }>;
  const ranks: number[] = [];
  const union: Record<string, number> = {};
  const qms: number[] = [];
  for (const g of global) {
    const truth = path.join(SMVS, g.category, 'reference', g.query);
    const t = performance.now();
    const s = index.score(await get(path.join(SMVS, g.category, 'query', g.query), 'q'));
    qms.push(performance.now() - t);
    ranks.push(s.findIndex((x) => x.key === truth));
    for (const [N, M] of [[20, 0], [50, 0], [20, 20], [50, 20], [20, 50], [50, 50], [0, 50], [0, 100]]) {
      const cand = new Set([...g.ranking.slice(0, N).map((h) => h.path), ...s.slice(0, M).map((x) => x.key)]);
      union[`g${N}+bow${M}`] = (union[`g${N}+bow${M}`] ?? 0) + (cand.has(truth) ? 1 : 0);
    }
  }
  qms.sort((a, b) => a - b);
  out({ kind: 'bow-distractors', config: args.config, K: Number(args.K), images: refs.length, bowR1: at(ranks, 1), bowR5: at(ranks, 5), bowR20: at(ranks, 20), bowR50: at(ranks, 50), union: Object.fromEntries(Object.entries(union).map(([k, v]) => [k, r3(v / global.length)])), buildMs: Math.round(index.ms), queryMsP50: Math.round(qms[qms.length >> 1]), postingBytesPerImage: Math.round(index.bytes), loadavg: load() });
}
