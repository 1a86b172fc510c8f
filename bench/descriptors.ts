/**
 * Retrieval quality and query cost of the global descriptors and search options in
 * src/descriptors.ts (the product's) and bench/lib/research-descriptors.ts, on one backbone. For
 * each configuration prints one JSON line:
 * - category retrieval on oxford_flowers17 (leave-one-out mAP, P@1, P@10, as `pixdex eval`),
 * - hymenoptera kNN accuracy val → train (k = 1, 5, 10, distance-weighted vote),
 * - instance retrieval on the generated set (src/eval/instance-set.ts; database = all 1360 flowers17
 *   photos; a pixel-identical copy of the source counts as the source): P@1 and R@5 overall and
 *   per transformation,
 * then one latency line (ms per query from JPEG bytes to the top 10 through HNSW, batch 1,
 * median over queries × rounds, and the ratio to plain pooling via Backbone.pooledVectors), and
 * a summary line.
 *
 *   node --import tsx bench/descriptors.ts [--backbone ID] [--queries 243] [--seed 8]
 *        [--scales 224,320] [--db-scales 224,192,160,128] [--sides 4,5,6,7] [--regional-p 2]
 *        [--latency-queries 20] [--latency-rounds 3]
 *        [--no-latency] [--quick] [--sweep] [--extract-only] [--filter REGEX (method names)]
 *
 * Backbone feature maps are cached in tmp/desc/cache/<backbone>/ (Float32; ~0.1–0.7 GB per set
 * and scale): the first run extracts them (~15–30 min on a busy 2-core machine), later runs take
 * minutes. Whitening is fit on the database being searched (flowers17 for flowers and instance
 * queries; all of hymenoptera for hymenoptera), without labels.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AnnIndex } from '../src/ann.ts';
import { initBackend, tf } from '../src/backend.ts';
import { DEFAULT_ANN, DEFAULT_EXTENSIONS } from '../src/config.ts';
import { averagePrecision, knnVote, precisionAtK } from '../src/classify.ts';
import { describeWindows, expandVector, matchedScale, slidingWindows } from '../src/descriptors.ts';
import {
  applyWhitening, databaseAugmentation, describe, describeScales, descriptorName, fitPca, mergeMaxHits, whiteningFromPca, whitenVector,
  type DescriptorConfig, type Pca, type Whitening,
} from './lib/research-descriptors.ts';
import { loadDataset, type DatasetItem } from '../src/eval/evaluate.ts';
import { decodeImage } from '../src/image/decode.ts';
import { buildInstanceSet, findDuplicates, INSTANCE_TRANSFORMS } from '../src/eval/instance-set.ts';
import { Backbone } from '../src/models/backbone.ts';
import { l2normalize } from '../src/vector.ts';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { values: args } = parseArgs({
  options: {
    backbone: { type: 'string', default: 'mobilenet_v2' },
    backend: { type: 'string', default: 'wasm' },
    models: { type: 'string', default: process.env.PIXDEX_MODELS ?? path.join(REPO, '../shared/models') },
    datasets: { type: 'string', default: process.env.PIXDEX_DATASETS ?? path.join(REPO, '../shared/datasets') },
    queries: { type: 'string', default: '243' },
    seed: { type: 'string', default: '8' },
    scales: { type: 'string', default: '224,320' },
    'db-scales': { type: 'string', default: '224,192,160,128' },
    sides: { type: 'string', default: '4,5,6,7' },
    'regional-p': { type: 'string', default: '2' },
    'latency-queries': { type: 'string', default: '20' },
    'latency-rounds': { type: 'string', default: '3' },
    'no-latency': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    sweep: { type: 'boolean', default: false },
    'extract-only': { type: 'boolean', default: false },
    filter: { type: 'string' },
    'whiten-dims': { type: 'string', default: '512' },
    'whiten-eps': { type: 'string', default: '1' },
    'qe-n': { type: 'string', default: '2' },
    'qe-alpha': { type: 'string', default: '1' },
    'dba-n': { type: 'string', default: '2' },
  },
});
const BACKBONE = args.backbone!;
const SCALES = args.scales!.split(',').map(Number);
const DB_SCALES = args['db-scales']!.split(',').map(Number);
const SIDES = args.sides!.split(',').map(Number);
const RP = Number(args['regional-p']);
const RGEM = `gem${RP}`;
const NATIVE = 224;
/** PIXDEX_BENCH_CACHE: bench:smoke points it at its own folder, so tiny inputs never replace this cache. */
const CACHE_ROOT = process.env.PIXDEX_BENCH_CACHE ?? path.join(REPO, 'tmp/desc/cache');
const CACHE = path.join(CACHE_ROOT, BACKBONE);
const round = (x: number) => Math.round(x * 1000) / 1000;
const log = (...m: unknown[]) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...m);

await initBackend(args.backend as 'wasm');
fs.mkdirSync(CACHE, { recursive: true });

// ---------------------------------------------------------------------------------------------
// Data: datasets, instance set

const flowers = loadDataset(path.join(args.datasets!, 'oxford_flowers17'), DEFAULT_EXTENSIONS);
const hym = loadDataset(path.join(args.datasets!, 'hymenoptera_data'), DEFAULT_EXTENSIONS);
function hashPaths(items: readonly DatasetItem[]): string {
  return crypto.createHash('sha1').update(items.map((i) => i.path).join('\n')).digest('hex').slice(0, 10);
}
let t0 = performance.now();
// Pixel-identical copies inside flowers17 (66 pairs) count as the original; cached, since finding them decodes every photo.
const dupFile = path.join(CACHE_ROOT, `flowers-duplicates-${hashPaths(flowers)}.json`);
if (!fs.existsSync(dupFile)) fs.writeFileSync(dupFile, JSON.stringify(await findDuplicates(flowers.map((f) => f.path))));
const duplicates = JSON.parse(fs.readFileSync(dupFile, 'utf8')) as number[][];
const instance = await buildInstanceSet({ sources: flowers, backgrounds: [...flowers, ...hym], count: Number(args.queries), seed: Number(args.seed), duplicates });
const instanceKey = crypto.createHash('sha1').update(Buffer.concat(instance.map((q) => q.bytes))).digest('hex').slice(0, 10);
log(`instance set: ${instance.length} queries (seed ${args.seed}, ${instanceKey}) in ${Math.round(performance.now() - t0)} ms`);

// ---------------------------------------------------------------------------------------------
// Feature maps (cached) → descriptors per set and scale

interface Maps { data: Float32Array; n: number; h: number; w: number; c: number }

let anySize: Backbone | undefined;
async function model(): Promise<Backbone> {
  anySize ??= await Backbone.load(args.models!, BACKBONE);
  return anySize;
}

/** Feature maps of every input at `size`, from the cache or computed (batches of 16, decoding prefetched). */
async function featureMaps(name: string, key: string, count: number, bytesOf: (i: number) => Buffer, size: number): Promise<Maps> {
  const file = path.join(CACHE, `${name}-${size}.f32`);
  const metaFile = `${file}.json`;
  if (fs.existsSync(file) && fs.existsSync(metaFile)) {
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
    if (meta.key === key && meta.n === count) {
      const buf = fs.readFileSync(file);
      return { data: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4), n: meta.n, h: meta.h, w: meta.w, c: meta.c };
    }
  }
  const m = await model();
  const decode = (i: number) => decodeImage(bytesOf(i), { size, maxInputPixels: 1e8 }, `${name}[${i}]`).then((d) => d.pixels);
  const batch = 16;
  let out: Float32Array | undefined;
  let shape = [0, 0, 0];
  const started = performance.now();
  let next = Promise.all(Array.from({ length: Math.min(batch, count) }, (_, j) => decode(j)));
  for (let i = 0; i < count; i += batch) {
    const pixels = await next;
    const end = Math.min(count, i + 2 * batch);
    next = Promise.all(Array.from({ length: Math.max(0, end - (i + batch)) }, (_, j) => decode(i + batch + j)));
    const fm = m.featureMaps(pixels, size);
    const [, h, w, c] = fm.shape;
    shape = [h, w, c];
    out ??= new Float32Array(count * h * w * c);
    out.set(fm.dataSync() as Float32Array, i * h * w * c);
    fm.dispose();
    if ((i / batch) % 10 === 0) log(`${name}@${size}: ${i + pixels.length}/${count} (${((i + pixels.length) / ((performance.now() - started) / 1000)).toFixed(1)} img/s)`);
  }
  const [h, w, c] = shape;
  fs.writeFileSync(file, Buffer.from(out!.buffer, out!.byteOffset, out!.byteLength));
  fs.writeFileSync(metaFile, JSON.stringify({ key, n: count, h, w, c, size, backbone: BACKBONE }));
  return { data: out!, n: count, h, w, c };
}

const BASES: Record<string, DescriptorConfig> = {
  mean: { id: 'mean' },
  gem3: { id: 'gem', p: 3 },
  rmac: { id: 'rmac', regionPooling: 'max', levels: 3 },
  [RGEM]: { id: 'gem', p: RP },
  ...(args.sweep ? { gem2: { id: 'gem', p: 2 }, gem4: { id: 'gem', p: 4 }, rmac2: { id: 'rmac', regionPooling: 'max', levels: 2 }, rmacgem: { id: 'rmac', regionPooling: 'gem', p: 3 } } as Record<string, DescriptorConfig> : {}),
};

type SetName = 'flowers' | 'hym' | 'instance';
const SETS: Record<SetName, { count: number; key: string; bytes: (i: number) => Buffer }> = {
  flowers: { count: flowers.length, key: hashPaths(flowers), bytes: (i) => fs.readFileSync(flowers[i].path) },
  hym: { count: hym.length, key: hashPaths(hym), bytes: (i) => fs.readFileSync(hym[i].path) },
  instance: { count: instance.length, key: instanceKey, bytes: (i) => instance[i].bytes },
};

/** desc[set][size][base] = n × C rows (L2-normalised); windows[set] = n × R × C (GeM p=3 over sliding windows at 224). */
const desc: Record<string, Record<number, Record<string, Float32Array>>> = {};
const windowsOf: Record<string, Float32Array> = {};
let C = 0;
let R = 0;
const allScales = [...new Set([...SCALES, ...DB_SCALES])];
for (const set of ['flowers', 'hym', 'instance'] as SetName[]) {
  desc[set] = {};
  for (const size of allScales) {
    // Only the database sets need the extra database scales; the query set only the descriptor scales.
    if (set === 'instance' && !SCALES.includes(size)) continue;
    t0 = performance.now();
    const info = SETS[set];
    const maps = await featureMaps(set, info.key, info.count, info.bytes, size);
    if (args['extract-only']) continue;
    C = maps.c;
    const bases = size === NATIVE || SCALES.includes(size) ? Object.keys(BASES) : [RGEM];
    const per: Record<string, Float32Array> = {};
    for (const k of bases) per[k] = new Float32Array(maps.n * maps.c);
    const wins = size === NATIVE ? slidingWindows(maps.h, maps.w, SIDES) : [];
    if (wins.length) { R = wins.length; windowsOf[set] = new Float32Array(maps.n * R * maps.c); }
    const cell = maps.h * maps.w * maps.c;
    for (let i = 0; i < maps.n; i += 32) {
      const b = Math.min(32, maps.n - i);
      const x = tf.tensor4d(maps.data.subarray(i * cell, (i + b) * cell), [b, maps.h, maps.w, maps.c]);
      for (const k of bases) {
        const d = describe(x, BASES[k]);
        per[k].set(d.dataSync() as Float32Array, i * maps.c);
        d.dispose();
      }
      for (let j = 0; wins.length && j < b; j++) {
        windowsOf[set].set(describeWindows(maps.data.subarray((i + j) * cell, (i + j + 1) * cell), maps.h, maps.w, maps.c, wins, RP), (i + j) * R * maps.c);
      }
      x.dispose();
    }
    desc[set][size] = per;
    log(`${set}@${size}: ${maps.n} maps ${maps.h}x${maps.w}x${maps.c}, descriptors in ${Math.round(performance.now() - t0)} ms`);
  }
}
if (args['extract-only']) process.exit(0);

// ---------------------------------------------------------------------------------------------
// Methods → similarity matrices

/** A descriptor evaluated as a vector: one base at one or more input scales. */
interface VectorDesc { kind: 'vector'; name: string; base: string; scales: number[]; config: DescriptorConfig }
interface Post { whiten?: { dims: number; epsilon: number }; qe?: { n: number; alpha: number }; dba?: { n: number; alpha: number } }
/** Regional matching: query windows at 224 × database GeM at `dbScales`, max. */
interface RegionalDesc { kind: 'regional'; name: string; dbScales: number[]; qe?: { n: number; alpha: number }; pairs: 'all' | 'matched'; reduce: number }
type Method = (VectorDesc & { post: Post }) | RegionalDesc;

function combine(parts: Float32Array[], dim: number): Float32Array {
  const out = new Float32Array(parts[0].length);
  for (const p of parts) for (let i = 0; i < p.length; i++) out[i] += p[i];
  for (let r = 0; r < out.length / dim; r++) out.set(l2normalize(out.subarray(r * dim, (r + 1) * dim)), r * dim);
  return out;
}
function vectorsOf(set: SetName, d: VectorDesc): Float32Array {
  return d.scales.length === 1 ? desc[set][d.scales[0]][d.base] : combine(d.scales.map((s) => desc[set][s][d.base]), C);
}
function rows(m: Float32Array, ids: number[], dim: number): Float32Array {
  const out = new Float32Array(ids.length * dim);
  ids.forEach((id, r) => out.set(m.subarray(id * dim, (id + 1) * dim), r * dim));
  return out;
}
function sims(q: Float32Array, d: Float32Array, dim: number): Float32Array {
  const t = tf.tidy(() => tf.matMul(tf.tensor2d(q, [q.length / dim, dim]), tf.tensor2d(d, [d.length / dim, dim]), false, true));
  const out = t.dataSync() as Float32Array;
  t.dispose();
  return out;
}
function ranked(s: Float32Array, row: number, nd: number, exclude: (j: number) => boolean): number[] {
  const off = row * nd;
  const idx: number[] = [];
  for (let j = 0; j < nd; j++) if (!exclude(j)) idx.push(j);
  idx.sort((a, b) => s[off + b] - s[off + a] || a - b);
  return idx;
}

const pcaCache = new Map<string, Pca>();
function whitening(fitSet: SetName, d: VectorDesc, fit: Float32Array, w: NonNullable<Post['whiten']>, power = 0.5): Whitening {
  const key = `${fitSet}:${d.name}`;
  let pca = pcaCache.get(key);
  if (!pca) {
    const t = performance.now();
    pca = fitPca(fit, C);
    pcaCache.set(key, pca);
    log(`PCA ${key}: ${fit.length / C} × ${C} in ${Math.round(performance.now() - t)} ms`);
  }
  return whiteningFromPca(pca, { dims: w.dims, epsilon: w.epsilon, power });
}

/**
 * Similarities [queries × database] for one method. `fitSet` is the library the whitening is
 * learned on; `exclude(q, j)` removes database rows from query q's neighbours (leave-one-out).
 */
function similarity(m: Method, qset: SetName, qIds: number[], dset: SetName, dIds: number[], fitSet: SetName, exclude: (q: number, j: number) => boolean): Float32Array {
  if (m.kind === 'regional') {
    const nd = dIds.length;
    const best = new Float32Array(qIds.length * nd).fill(-Infinity);
    let project = (v: Float32Array) => v;
    let dim = C;
    if (m.reduce) {
      const w = whitening(fitSet, single(RGEM) as VectorDesc, desc[fitSet][NATIVE][RGEM], { dims: m.reduce, epsilon: 0 }, 0);
      project = (v) => applyWhitening(w, v);
      dim = w.outDims;
    }
    const wins = slidingWindows(7, 7, SIDES);
    const dbs = m.dbScales.map((s) => project(rows(desc[dset][s][RGEM], dIds, C)));
    // Per database scale, the windows searched against it.
    const winsFor = m.dbScales.map((s) => wins.map((w, r) => (m.pairs === 'all' || matchedScale(w.side, 7, NATIVE) === s ? r : -1)).filter((r) => r >= 0));
    for (let q0 = 0; q0 < qIds.length; q0 += 128) {
      const chunk = qIds.slice(q0, q0 + 128);
      m.dbScales.forEach((_, si) => {
        const ws = winsFor[si];
        if (ws.length === 0) return;
        const qw = project(rows(windowsOf[qset], chunk.flatMap((id) => ws.map((r) => id * R + r)), C));
        // max over the windows of each query, in tf: [(chunk·|ws|) × nd] → [chunk × nd]
        const t = tf.tidy(() => tf.max(tf.reshape(tf.matMul(tf.tensor2d(qw, [chunk.length * ws.length, dim]), tf.tensor2d(dbs[si], [nd, dim]), false, true), [chunk.length, ws.length, nd]), 1));
        const sc = t.dataSync() as Float32Array;
        t.dispose();
        const out = q0 * nd;
        for (let k = 0; k < sc.length; k++) if (sc[k] > best[out + k]) best[out + k] = sc[k];
      });
    }
    if (m.qe) {
      // αQE on the global 224 descriptors with the regional top n; final score = max(regional, expanded · d224).
      const d = rows(desc[dset][NATIVE][RGEM], dIds, C);
      const qg = rows(desc[qset][NATIVE][RGEM], qIds, C);
      const expanded = new Float32Array(qg.length);
      for (let r = 0; r < qIds.length; r++) {
        const top = ranked(best, r, nd, (j) => exclude(r, j)).slice(0, m.qe.n);
        expanded.set(expandVector(qg.subarray(r * C, (r + 1) * C), top.map((j) => d.subarray(j * C, (j + 1) * C)), top.map((j) => best[r * nd + j]), m.qe.alpha), r * C);
      }
      const s2 = sims(expanded, d, C);
      for (let k = 0; k < s2.length; k++) if (s2[k] > best[k]) best[k] = s2[k];
    }
    return best;
  }
  let q = rows(vectorsOf(qset, m), qIds, C);
  let d = rows(vectorsOf(dset, m), dIds, C);
  let dim = C;
  if (m.post.whiten) {
    const w = whitening(fitSet, m, vectorsOf(fitSet, m), m.post.whiten);
    q = applyWhitening(w, q);
    d = applyWhitening(w, d);
    dim = w.outDims;
  }
  if (m.post.dba) d = databaseAugmentation(d, dim, m.post.dba);
  if (m.post.qe) {
    const s0 = sims(q, d, dim);
    const nd = dIds.length;
    const expanded = new Float32Array(q.length);
    for (let r = 0; r < qIds.length; r++) {
      const top = ranked(s0, r, nd, (j) => exclude(r, j)).slice(0, m.post.qe.n);
      expanded.set(expandVector(q.subarray(r * dim, (r + 1) * dim), top.map((j) => d.subarray(j * dim, (j + 1) * dim)), top.map((j) => s0[r * nd + j]), m.post.qe.alpha), r * dim);
    }
    q = expanded;
  }
  return sims(q, d, dim);
}

const all = (n: number) => [...Array(n).keys()];
const hymTrain = all(hym.length).filter((i) => hym[i].split === 'train');
const hymVal = all(hym.length).filter((i) => hym[i].split !== 'train');

function flowersLoo(m: Method) {
  const n = flowers.length;
  const s = similarity(m, 'flowers', all(n), 'flowers', all(n), 'flowers', (q, j) => q === j);
  const labels = flowers.map((f) => f.label);
  let p1 = 0, p10 = 0, ap = 0;
  for (let r = 0; r < n; r++) {
    const rel = ranked(s, r, n, (j) => j === r).map((j) => labels[j] === labels[r]);
    p1 += rel[0] ? 1 : 0;
    p10 += precisionAtK(rel, 10);
    ap += averagePrecision(rel, labels.filter((l) => l === labels[r]).length - 1);
  }
  return { mAP: round(ap / n), p1: round(p1 / n), p10: round(p10 / n) };
}

function hymKnn(m: Method) {
  const s = similarity(m, 'hym', hymVal, 'hym', hymTrain, 'hym', () => false);
  const nd = hymTrain.length;
  const acc: Record<number, number> = { 1: 0, 5: 0, 10: 0 };
  hymVal.forEach((v, r) => {
    const top = ranked(s, r, nd, () => false).slice(0, 10);
    for (const k of [1, 5, 10]) {
      const vote = knnVote(top.slice(0, k).map((j) => ({ label: hym[hymTrain[j]].label, score: s[r * nd + j] })));
      if (vote.label === hym[v].label) acc[k]++;
    }
  });
  return { k1: round(acc[1] / hymVal.length), k5: round(acc[5] / hymVal.length), k10: round(acc[10] / hymVal.length) };
}

function instanceEval(m: Method) {
  const nd = flowers.length;
  const s = similarity(m, 'instance', all(instance.length), 'flowers', all(nd), 'flowers', () => false);
  const per: Record<string, { n: number; p1: number; r5: number }> = {};
  let p1 = 0, r5 = 0;
  instance.forEach((query, r) => {
    // Rank of the best accepted answer = database rows scoring strictly higher that are not accepted.
    const target = Math.max(...query.accept.map((a) => s[r * nd + a]));
    let rank = 0;
    for (let j = 0; j < nd; j++) if (s[r * nd + j] > target && !query.accept.includes(j)) rank++;
    const t = (per[query.transform] ??= { n: 0, p1: 0, r5: 0 });
    t.n++;
    if (rank === 0) { t.p1++; p1++; }
    if (rank < 5) { t.r5++; r5++; }
  });
  const perTransform = Object.fromEntries(INSTANCE_TRANSFORMS.filter((t) => per[t]).map((t) => [t, { p1: round(per[t].p1 / per[t].n), r5: round(per[t].r5 / per[t].n), n: per[t].n }]));
  return { p1: round(p1 / instance.length), r5: round(r5 / instance.length), perTransform };
}

// ---------------------------------------------------------------------------------------------
// Configurations

const W = { dims: Number(args['whiten-dims']), epsilon: Number(args['whiten-eps']) };
const QE = { n: Number(args['qe-n']), alpha: Number(args['qe-alpha']) };
const DBA = { n: Number(args['dba-n']), alpha: Number(args['qe-alpha']) };
const single = (base: string, post: Post = {}): Method => ({ kind: 'vector', name: descriptorName(BASES[base]), base, scales: [NATIVE], config: BASES[base], post });
const multi = (base: string, post: Post = {}): Method => {
  const b = BASES[base];
  const config: DescriptorConfig = { id: 'multiscale', scales: SCALES, base: b.id as 'gem', p: b.p, regionPooling: b.regionPooling, levels: b.levels };
  return { kind: 'vector', name: descriptorName(config), base, scales: SCALES, config, post };
};
const regional = (dbScales: number[], opts: { qe?: RegionalDesc['qe']; pairs?: 'all' | 'matched'; reduce?: number } = {}): RegionalDesc => ({
  kind: 'regional',
  name: `regional(windows ${SIDES.join(',')} x db ${dbScales.join('+')},${opts.pairs ?? 'all'} pairs${opts.reduce ? `,PCA ${opts.reduce}` : ''},gem p=${RP})`,
  dbScales, qe: opts.qe, pairs: opts.pairs ?? 'all', reduce: opts.reduce ?? 0,
});
const postName = (p: Post) => [p.whiten && `whiten(${p.whiten.dims},eps=${p.whiten.epsilon})`, p.dba && `dba(n=${p.dba.n})`, p.qe && `qe(n=${p.qe.n},a=${p.qe.alpha})`].filter(Boolean).join('+') || 'none';

const results: Array<Record<string, unknown>> = [];
function run(m: Method) {
  const t = performance.now();
  const row = {
    backbone: BACKBONE,
    descriptor: m.name,
    post: m.kind === 'vector' ? postName(m.post) : postName({ qe: m.qe }),
    flowers: flowersLoo(m),
    hymenoptera: hymKnn(m),
    instance: instanceEval(m),
    evalMs: Math.round(performance.now() - t),
  };
  results.push(row);
  console.log(JSON.stringify(row));
}

let methods: Method[];
if (args.sweep) {
  // Parameter sweeps used to choose the defaults: GeM p, R-MAC levels/pooling, whitening size/ε, QE n/α, database scales.
  methods = [
    ...['gem2', 'gem3', 'gem4', 'rmac', 'rmac2', 'rmacgem'].map((b) => single(b)),
    ...[128, 256, 512].flatMap((dims) => [0.1, 1, 4].map((epsilon) => single('gem3', { whiten: { dims, epsilon } }))),
    ...[1, 2, 3, 5].flatMap((n) => [1, 3].map((alpha) => single('gem3', { qe: { n, alpha } }))),
    ...[[224], [224, 160], [224, 192, 160], DB_SCALES].map((s) => regional(s)),
    regional(DB_SCALES, { pairs: 'matched' }),
    regional(DB_SCALES, { reduce: 256 }),
  ];
} else if (args.quick) {
  methods = [single('mean'), single(RGEM), single('gem3'), regional(DB_SCALES, { pairs: 'matched' }), regional(DB_SCALES, { pairs: 'matched', qe: QE })];
} else {
  const posts: Post[] = [{}, { qe: QE }, { whiten: W }, { whiten: W, qe: QE }, { whiten: W, dba: DBA, qe: QE }];
  methods = [
    ...['mean', 'gem3', 'rmac'].flatMap((b) => posts.map((p) => single(b, p))),
    ...(RGEM !== 'gem3' ? [single(RGEM), single(RGEM, { qe: QE })] : []),
    ...(SCALES.length > 1 ? ['gem3', 'rmac'].flatMap((b) => [{}, { qe: QE }].map((p) => multi(b, p))) : []),
    regional([NATIVE]),
    regional(DB_SCALES),
    regional(DB_SCALES, { pairs: 'matched' }),
    regional(DB_SCALES, { pairs: 'matched', qe: QE }),
    regional(DB_SCALES, { pairs: 'matched', reduce: 256 }),
  ];
}
if (args.filter) {
  const re = new RegExp(args.filter);
  methods = methods.filter((m) => re.test(`${m.name} [${m.kind === 'vector' ? postName(m.post) : postName({ qe: m.qe })}]`));
}
for (const m of methods) run(m);
if (args.sweep) process.exit(0);

// ---------------------------------------------------------------------------------------------
// Latency: JPEG bytes → top 10 through HNSW (the engine's path), batch 1

const latency: Record<string, { ms: number; ratio: number }> = {};
if (!args['no-latency']) {
  const plain = await Backbone.load(args.models!, BACKBONE);
  await plain.warmUp();
  const m = await model();
  const decodeAt = async (bytes: Buffer, size: number) => (await decodeImage(bytes, { size, maxInputPixels: 1e8 })).pixels;
  const indexOf = (vectors: Float32Array, dim: number) => {
    const index = AnnIndex.create(dim, DEFAULT_ANN, flowers.length);
    for (let i = 0; i < flowers.length; i++) index.add(i, vectors.subarray(i * dim, (i + 1) * dim));
    return index;
  };
  type Case = { name: string; run: (bytes: Buffer) => Promise<number[]> };
  const meanIndex = indexOf(desc.flowers[NATIVE].mean, C);
  const cases: Case[] = [{
    name: 'plain pooling (Backbone.pooledVectors)',
    run: async (bytes) => {
      const [v] = await plain.pooledVectors([await decodeAt(bytes, plain.spec.inputSize)]);
      return meanIndex.search(v, 10).map((h) => h.id);
    },
  }];
  const vectorCase = (name: string, mm: Method & { kind: 'vector' }) => {
    let db = vectorsOf('flowers', mm);
    let dim = C;
    let w: Whitening | undefined;
    if (mm.post.whiten) {
      w = whitening('flowers', mm, db, mm.post.whiten);
      db = applyWhitening(w, db);
      dim = w.outDims;
    }
    const index = indexOf(db, dim);
    cases.push({
      name,
      run: async (bytes) => {
        const pixels = await Promise.all(mm.scales.map((s) => decodeAt(bytes, s)));
        const maps = mm.scales.map((s, i) => m.featureMaps([pixels[i]], s));
        const t = describeScales(maps, mm.config);
        let v: Float32Array = (await t.data()) as Float32Array;
        tf.dispose([t, ...maps]);
        if (w) v = whitenVector(w, v);
        if (!mm.post.qe) return index.search(v, 10).map((h) => h.id);
        const first = index.search(v, mm.post.qe.n);
        v = expandVector(v, first.map((h) => index.vector(h.id)!), first.map((h) => h.score), mm.post.qe.alpha);
        return index.search(v, 10).map((h) => h.id);
      },
    });
  };
  vectorCase('mean', single('mean') as Method & { kind: 'vector' });
  vectorCase('gem(p=3)', single('gem3') as Method & { kind: 'vector' });
  if (RGEM !== 'gem3') vectorCase(`gem(p=${RP})`, single(RGEM) as Method & { kind: 'vector' });
  vectorCase('rmac', single('rmac') as Method & { kind: 'vector' });
  vectorCase('gem+qe', single('gem3', { qe: QE }) as Method & { kind: 'vector' });
  vectorCase('gem+whiten+qe', single('gem3', { whiten: W, qe: QE }) as Method & { kind: 'vector' });
  if (SCALES.length > 1) vectorCase('multiscale(gem)', multi('gem3') as Method & { kind: 'vector' });
  const wins = slidingWindows(7, 7, SIDES);
  const regionalCase = (pairs: 'all' | 'matched', reduce: number) => {
    let project = (v: Float32Array) => v;
    let dim = C;
    if (reduce) {
      const w = whitening('flowers', single(RGEM) as VectorDesc, desc.flowers[NATIVE][RGEM], { dims: reduce, epsilon: 0 }, 0);
      project = (v) => applyWhitening(w, v);
      dim = w.outDims;
    }
    const indexes = new Map(DB_SCALES.map((s) => [s, indexOf(project(desc.flowers[s][RGEM]), dim)]));
    const searches = wins.flatMap((win, r) => DB_SCALES.filter((s) => pairs === 'all' || s === matchedScale(win.side, 7, NATIVE)).map((s) => ({ r, index: indexes.get(s)! })));
    cases.push({
      name: `regional (${wins.length} windows, ${pairs} pairs: ${searches.length} searches${reduce ? `, PCA ${dim}-d` : ''})`,
      run: async (bytes) => {
        const map = m.featureMaps([await decodeAt(bytes, NATIVE)], NATIVE);
        const data = project(describeWindows((await map.data()) as Float32Array, 7, 7, C, wins, RP));
        map.dispose();
        const lists = searches.map(({ r, index }) => index.search(data.subarray(r * dim, (r + 1) * dim), 10));
        return mergeMaxHits(lists, 10).map((h) => h.id);
      },
    });
  };
  regionalCase('all', 0);
  regionalCase('matched', 0);
  regionalCase('matched', 256);
  const qs = instance.slice(0, Number(args['latency-queries']));
  for (const c of cases) await c.run(qs[0].bytes); // warm up every path (kernels, shapes)
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let round_ = 0; round_ < Number(args['latency-rounds']); round_++) {
    for (const q of qs) {
      for (const c of cases) {
        const t = performance.now();
        await c.run(q.bytes);
        samples.get(c.name)!.push(performance.now() - t);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(samples.get(cases[0].name)!);
  for (const c of cases) {
    const ms = median(samples.get(c.name)!);
    latency[c.name] = { ms: Math.round(ms * 10) / 10, ratio: Math.round((ms / base) * 100) / 100 };
  }
  console.log(JSON.stringify({ backbone: BACKBONE, latency, queries: qs.length, rounds: Number(args['latency-rounds']), note: 'ms per query, batch 1: decode + backbone + descriptor (+ whitening) + HNSW top 10 over 1360 (+ QE re-search; regional: one search per window and database scale); median' }));
  plain.dispose();
}

console.log(JSON.stringify({
  backbone: BACKBONE,
  summary: results.map((r) => {
    const f = r.flowers as { mAP: number; p1: number };
    const h = r.hymenoptera as { k1: number; k5: number; k10: number };
    const i = r.instance as { p1: number; r5: number };
    return `${r.descriptor} [${r.post}]: flowers ${f.mAP}/${f.p1}, hym ${h.k1}/${h.k5}/${h.k10}, instance ${i.p1}/${i.r5}`;
  }),
}));
anySize?.dispose();
