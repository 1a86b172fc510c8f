/**
 * ANN at scale: builds an HNSW index (src/ann.ts, the engine's wrapper) over synthetic vectors
 * shaped like real embeddings, then reports build time, memory, snapshot round trip and, for
 * each ef, single-thread QPS and recall@k against exact search. Prints one JSON object.
 *
 *   npm run bench:ann -- [--n 100000] [--dims 256] [--queries 1000] [--ef 16,32,64,128,200,400]
 *                        [--m 16] [--efc 200] [--gen real|lowrank] [--noise 1] [--repeat 3]
 *                        [--save-index FILE]   (hnswlib bytes + FILE.json, reused by bench:open
 *                                               and by --load-index; FILE.truth.json: exact kNN)
 *                        [--load-index FILE]   (skip the build: sweep more ef over a saved index)
 *                        [--ab portable,native[,BUILD@GRAPH...]] [--batch 100]
 *                                              (instead of the sweep: builds and graphs in one
 *                                               process, interleaved batches: bench/lib/ann-ab.ts)
 *
 * The JSON names the hnswlib-node build measured (`annBuild`: native or portable, src/ann-build.ts);
 * PIXDEX_PORTABLE_ANN=1 runs the portable build instead of the native one, for a before/after at
 * equal ef on one saved index (--load-index).
 *
 * Generators (`generatorFor`, also used by bench/open.ts):
 * - `real` (default): MobileNetV2 pooled vectors of the shared datasets (~1.7k photos, embedded
 *   once and cached in the OS temp dir), randomly projected to `dims` (a Gaussian projection keeps
 *   cosines), then each synthetic vector is a random point on the segment between a real vector
 *   and one of its 10 nearest real neighbours plus noise drawn with the real data's covariance
 *   (`noise` × a random combination of centred real vectors). Calibration: the real photos (1758,
 *   1280-d) have local intrinsic dimensionality (MLE over 20 NN) 20 and mean top-1 cosine 0.80;
 *   at the same n, noise 0.3 gives 12 / 0.90 (too easy), 0.6 gives 18 / 0.82, 1 gives 24 / 0.73:
 *   the default 1 is slightly harder than real data. Falls back to `lowrank` without models or
 *   datasets.
 * - `lowrank`: clustered, rank-48, non-negative (ReLU of a random non-negative mixing).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { AnnIndex, annBuild } from '../src/ann.ts';
import { DEFAULT_ANN } from '../src/config.ts';
import { recallAgainstExact } from '../src/classify.ts';
import { exactKnn, l2normalize } from '../src/vector.ts';
import { parseArms, runAb } from './lib/ann-ab.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MODELS = path.resolve(process.env.PIXDEX_MODELS ?? path.join(REPO, '../shared/models'));
export const DATASETS = path.resolve(process.env.PIXDEX_DATASETS ?? path.join(REPO, '../shared/datasets'));

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws (Box–Muller) from a uniform PRNG. */
function gaussian(r: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    spare = m * Math.sin(2 * Math.PI * v);
    return m * Math.cos(2 * Math.PI * v);
  };
}

/** A deterministic source of embedding-like vectors. */
export interface Generator {
  name: string;
  dims: number;
  description: string;
  /** Writes the next vector (not normalised) into `out`. */
  next(out: Float32Array): void;
}

/** MobileNetV2 pooled vectors of the shared datasets, embedded once and cached in the temp dir. */
export async function realEmbeddings(log: (s: string) => void = () => {}): Promise<{ vectors: Float32Array; count: number; dims: number } | undefined> {
  // PIXDEX_BENCH_CACHE: bench:smoke points it at its own folder, so tiny inputs never replace this cache.
  const cacheDir = process.env.PIXDEX_BENCH_CACHE ?? path.join(os.tmpdir(), 'pixdex-bench-cache');
  const cache = path.join(cacheDir, 'mobilenet_v2-pooled.f32');
  if (fs.existsSync(cache)) {
    const buf = fs.readFileSync(cache);
    const vectors = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    return { vectors, count: vectors.length / 1280, dims: 1280 };
  }
  if (!fs.existsSync(path.join(MODELS, 'mobilenet_v2_1.0_224_quant', 'model.json')) || !fs.existsSync(DATASETS)) return undefined;
  const { Engine } = await import('../src/engine.ts');
  const { scanInputs } = await import('../indexer/scan.ts');
  const { DEFAULT_EXTENSIONS } = await import('../src/config.ts');
  const scan = await scanInputs([DATASETS], DEFAULT_EXTENSIONS);
  const files = scan.files.map((f) => f.path).sort();
  log(`embedding ${files.length} real images once (cached in ${cache})`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-embed-'));
  try {
    const engine = await Engine.open({ dataDir, modelsDir: MODELS, backbone: 'mobilenet_v2' });
    const { embeddings } = await engine.describer.describeFiles(files, { space: engine.space() });
    const vectors = embeddings.map((e) => e?.pooled);
    await engine.close();
    const ok = vectors.filter((v): v is Float32Array => v !== undefined);
    const all = new Float32Array(ok.length * 1280);
    ok.forEach((v, i) => all.set(v, i * 1280));
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(cache + '.tmp', Buffer.from(all.buffer));
    fs.renameSync(cache + '.tmp', cache);
    return { vectors: all, count: ok.length, dims: 1280 };
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The generator named `gen` (falls back to `lowrank` when real embeddings are unavailable). */
export async function generatorFor(gen: string, dims: number, seed: number, noise: number, log: (s: string) => void = () => {}): Promise<Generator> {
  if (gen === 'real') {
    const real = await realEmbeddings(log);
    if (real) return realGenerator(real.vectors, real.count, real.dims, dims, seed, noise);
    log('real embeddings unavailable (models or datasets missing): using lowrank');
  } else if (gen !== 'lowrank') {
    throw new Error(`--gen must be real or lowrank, not ${gen}`);
  }
  return lowRankGenerator(dims, seed);
}

function realGenerator(src: Float32Array, count: number, srcDims: number, dims: number, seed: number, noise: number): Generator {
  const g = gaussian(rng(seed));
  // Gaussian random projection srcDims -> dims (identity when equal): inner products are kept.
  let y: Float32Array;
  if (dims === srcDims) {
    y = src.slice(0, count * dims);
  } else {
    const p = new Float32Array(srcDims * dims);
    const scale = 1 / Math.sqrt(dims);
    for (let i = 0; i < p.length; i++) p[i] = g() * scale;
    y = new Float32Array(count * dims);
    const acc = new Float64Array(dims);
    for (let r = 0; r < count; r++) {
      acc.fill(0);
      for (let i = 0; i < srcDims; i++) {
        const x = src[r * srcDims + i];
        if (x === 0) continue;
        const off = i * dims;
        for (let j = 0; j < dims; j++) acc[j] += x * p[off + j];
      }
      for (let j = 0; j < dims; j++) y[r * dims + j] = acc[j];
    }
  }
  // Mean, and each real vector's 10 nearest real neighbours (cosine).
  const mean = new Float32Array(dims);
  for (let r = 0; r < count; r++) for (let j = 0; j < dims; j++) mean[j] += y[r * dims + j] / count;
  const unit = new Float32Array(count * dims);
  for (let r = 0; r < count; r++) unit.set(l2normalize(y.subarray(r * dims, (r + 1) * dims)), r * dims);
  const nn: Int32Array[] = [];
  for (let r = 0; r < count; r++) {
    const hits = exactKnn(unit.subarray(r * dims, (r + 1) * dims), unit, dims, 11, (row) => row === r);
    nn.push(Int32Array.from(hits.slice(0, 10), (h) => h.index));
  }
  const u = rng(seed + 1);
  const z = gaussian(rng(seed + 2));
  const pick = () => Math.floor(u() * count);
  return {
    name: 'real',
    dims,
    description: `MobileNetV2 pooled vectors of ${count} dataset photos, Gaussian-projected ${srcDims}->${dims}; each vector = random point between a real vector and one of its 10 real nearest neighbours + ${noise} x noise with the real data's covariance`,
    next(out) {
      const a = pick();
      const b = nn[a][Math.floor(u() * nn[a].length)];
      const t = u();
      for (let j = 0; j < dims; j++) out[j] = (1 - t) * y[a * dims + j] + t * y[b * dims + j];
      for (let c = 0; c < 4; c++) {
        const w = (noise / 2) * z();
        const o = pick() * dims;
        for (let j = 0; j < dims; j++) out[j] += w * (y[o + j] - mean[j]);
      }
    },
  };
}

function lowRankGenerator(dims: number, seed: number): Generator {
  const rank = 48;
  const clusters = 2000;
  const r = rng(seed);
  const g = gaussian(rng(seed + 1));
  const mix = Float32Array.from({ length: rank * dims }, () => (r() < 0.25 ? r() : 0));
  const centres = Array.from({ length: clusters }, () => Float32Array.from({ length: rank }, () => Math.abs(g())));
  return {
    name: 'lowrank',
    dims,
    description: `${clusters} clusters in a rank-${rank} latent space, ReLU of a random non-negative mixing to ${dims}-d`,
    next(out) {
      const c = centres[Math.floor(r() * clusters)];
      const latent = c.map((x) => x + 0.5 * g());
      for (let j = 0; j < dims; j++) {
        let s = 0;
        for (let i = 0; i < rank; i++) s += latent[i] * mix[i * dims + j];
        out[j] = Math.max(0, s);
      }
    },
  };
}

/** `n` L2-normalised vectors, row-major. */
export function sample(gen: Generator, n: number): Float32Array {
  const m = new Float32Array(n * gen.dims);
  const v = new Float32Array(gen.dims);
  for (let i = 0; i < n; i++) {
    gen.next(v);
    m.set(l2normalize(v), i * gen.dims);
  }
  return m;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

export const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
export const load = () => os.loadavg().map((x) => round(x, 2));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '100000' },
      dims: { type: 'string', default: '256' },
      queries: { type: 'string', default: '1000' },
      ef: { type: 'string', default: '16,32,64,128,200,400' },
      k: { type: 'string', default: '10' },
      m: { type: 'string', default: String(DEFAULT_ANN.m) },
      efc: { type: 'string', default: String(DEFAULT_ANN.efConstruction) },
      gen: { type: 'string', default: 'real' },
      noise: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
      repeat: { type: 'string', default: '3' },
      'save-index': { type: 'string' },
      'load-index': { type: 'string' },
      ab: { type: 'string' },
      batch: { type: 'string', default: '100' },
    },
  });
  const n = Number(values.n);
  const dims = Number(values.dims);
  const nq = Number(values.queries);
  const k = Number(values.k);
  const efs = values.ef.split(',').map(Number);
  const params = { m: Number(values.m), efConstruction: Number(values.efc), efSearch: DEFAULT_ANN.efSearch };
  const repeat = Number(values.repeat);
  const log = (s: string) => process.stderr.write(`[bench:ann ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  const loadStart = load();
  log(`hnswlib-node build: ${annBuild.build}${annBuild.flags ? ` (${annBuild.flags}${annBuild.hugePages ? ', huge pages' : ''})` : ''}`);

  const gen = await generatorFor(values.gen, dims, Number(values.seed), Number(values.noise), log);
  let t = performance.now();
  const data = sample(gen, n);
  const queries = sample(gen, nq);
  log(`generated ${n} + ${nq} vectors in ${round((performance.now() - t) / 1000, 1)} s`);

  const describe = { n, dims, gen: gen.name, seed: Number(values.seed), noise: Number(values.noise), m: params.m, efConstruction: params.efConstruction };
  const saved = values['load-index'] ? path.resolve(values['load-index']) : undefined;
  if (saved) {
    const side = JSON.parse(fs.readFileSync(saved + '.json', 'utf8')) as Record<string, unknown>;
    for (const [key, v] of Object.entries(describe)) if (side[key] !== v) throw new Error(`${saved}: ${key} is ${side[key]}, not ${v}`);
  }

  // Build through AnnIndex.add (what Engine does), one thread; or load a saved build.
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  t = performance.now();
  const cpu0 = process.cpuUsage();
  let ann: AnnIndex;
  if (saved) {
    ann = AnnIndex.fromBytes(fs.readFileSync(saved), dims, params, n);
  } else {
    ann = AnnIndex.create(dims, params, n);
    const step = Math.max(1, Math.floor(n / 20));
    for (let i = 0; i < n; i++) {
      ann.add(i + 1, data.subarray(i * dims, (i + 1) * dims));
      if ((i + 1) % step === 0) log(`built ${i + 1}/${n} (${round((i + 1) / ((performance.now() - t) / 1000), 0)}/s)`);
    }
  }
  const buildSeconds = saved ? NaN : (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const buildCpuSeconds = (cpu.user + cpu.system) / 1e6; // less sensitive than wall time to other load
  global.gc?.();
  const rssDelta = process.memoryUsage().rss - rss0;

  // Snapshot round trip (the bytes Engine.snapshot stores in LMDB).
  t = performance.now();
  let bytes: Buffer | undefined = ann.toBytes();
  const toBytesSeconds = (performance.now() - t) / 1000;
  const snapshotBytes = bytes.length;
  t = performance.now();
  let copy: AnnIndex | undefined = AnnIndex.fromBytes(bytes, dims, params, ann.size);
  const fromBytesSeconds = (performance.now() - t) / 1000;
  const identical = Array.from({ length: Math.min(50, nq) }, (_, i) => queries.subarray(i * dims, (i + 1) * dims))
    .every((q) => JSON.stringify(copy!.search(q, k)) === JSON.stringify(ann.search(q, k)));
  if (values['save-index']) {
    const file = path.resolve(values['save-index']);
    fs.writeFileSync(file, bytes);
    fs.writeFileSync(file + '.json', JSON.stringify({ ...describe, live: ann.size }));
    log(`saved index to ${file}`);
  }
  // --ab: the arms load this run's graph from a file (a temp copy when it was neither loaded nor saved).
  let abGraph = saved ?? (values['save-index'] && path.resolve(values['save-index']));
  if (values.ab && !abGraph) {
    abGraph = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-ab-')), 'graph.bin');
    fs.writeFileSync(abGraph, bytes);
    process.on('exit', () => fs.rmSync(path.dirname(abGraph!), { recursive: true, force: true }));
  }
  const abArms = values.ab ? parseArms(values.ab, abGraph!) : undefined;
  for (const arm of abArms ?? []) {
    if (arm.graph === abGraph) continue;
    const side = JSON.parse(fs.readFileSync(arm.graph + '.json', 'utf8')) as Record<string, unknown>;
    for (const key of ['n', 'dims', 'gen', 'seed', 'noise'] as const) if (side[key] !== describe[key]) throw new Error(`--ab ${arm.name}: ${key} is ${side[key]}, not ${describe[key]}`);
  }
  bytes = undefined;
  copy = undefined;
  global.gc?.(); // frees the copy's native memory before the sweeps
  log(`built in ${round(buildSeconds, 1)} s; snapshot ${snapshotBytes} B, toBytes ${round(toBytesSeconds)} s, fromBytes ${round(fromBytesSeconds)} s`);

  // Ground truth by exact search (cached next to a saved index: same data, same queries).
  const truthFile = (values['save-index'] ?? saved) && path.resolve(values['save-index'] ?? saved!) + `.truth-${nq}-${k}.json`;
  t = performance.now();
  let exact: number[][] = [];
  let exactSeconds = NaN;
  if (saved && truthFile && fs.existsSync(truthFile)) {
    exact = JSON.parse(fs.readFileSync(truthFile, 'utf8')) as number[][];
  } else {
    for (let i = 0; i < nq; i++) exact.push(exactKnn(queries.subarray(i * dims, (i + 1) * dims), data, dims, k).map((h) => h.index + 1));
    exactSeconds = (performance.now() - t) / 1000;
    if (truthFile) fs.writeFileSync(truthFile, JSON.stringify(exact));
  }
  log(`exact kNN for ${nq} queries in ${round(exactSeconds, 1)} s`);
  // How "crowded" the data is: cosine of a query to its 1st and k-th exact neighbour, and to random points.
  const r = rng(7);
  let cos1 = 0, cosK = 0, cosRandom = 0;
  for (let i = 0; i < nq; i++) {
    const q = queries.subarray(i * dims, (i + 1) * dims);
    const cosRow = (row: number) => { let s = 0; for (let j = 0; j < dims; j++) s += q[j] * data[row * dims + j]; return s; };
    cos1 += cosRow(exact[i][0] - 1) / nq;
    cosK += cosRow(exact[i][k - 1] - 1) / nq;
    cosRandom += cosRow(Math.floor(r() * n)) / nq;
  }

  const results: Array<{ ef: number; qps: number; qpsRuns: number[]; recall: number; meanLatencyUs: number }> = [];
  const ab = abArms && runAb(abArms, dims, queries, exact, k, efs, Number(values.batch), repeat, log);
  for (const ef of ab ? [] : efs) {
    const runs: number[] = [];
    let recall = 0;
    for (let rep = 0; rep < repeat; rep++) {
      const approx: number[][] = [];
      t = performance.now();
      for (let i = 0; i < nq; i++) approx.push(ann.search(queries.subarray(i * dims, (i + 1) * dims), k, undefined, ef).map((h) => h.id));
      runs.push(nq / ((performance.now() - t) / 1000));
      recall = recallAgainstExact(approx, exact, k);
    }
    const qps = median(runs);
    results.push({ ef, qps: round(qps, 0), qpsRuns: runs.map((x) => round(x, 0)), recall: round(recall, 4), meanLatencyUs: round(1e6 / qps, 0) });
    log(`ef=${ef}: ${round(qps, 0)} QPS, recall@${k} ${round(recall, 4)}`);
  }
  const best = results.find((x) => x.recall >= 0.99);

  console.log(JSON.stringify({
    bench: 'ann',
    n,
    dims,
    queries: nq,
    k,
    m: params.m,
    efConstruction: params.efConstruction,
    annBuild: { build: annBuild.build, flags: annBuild.flags, vector: annBuild.vector, hugePages: annBuild.hugePages },
    generator: { name: gen.name, description: gen.description, seed: Number(values.seed), noise: Number(values.noise) },
    data: { meanCosTop1: round(cos1), [`meanCosTop${k}`]: round(cosK), meanCosRandom: round(cosRandom) },
    buildSeconds: saved ? null : round(buildSeconds, 1),
    buildPerSec: saved ? null : round(n / buildSeconds, 0),
    buildCpuSeconds: saved ? null : round(buildCpuSeconds, 1),
    loadedIndex: saved ?? null,
    rssDeltaBytes: rssDelta,
    rssBytesPerVector: round(rssDelta / n, 0),
    snapshot: { bytes: snapshotBytes, bytesPerVector: round(snapshotBytes / n, 0), toBytesSeconds: round(toBytesSeconds), fromBytesSeconds: round(fromBytesSeconds), identicalResults: identical },
    exact: Number.isNaN(exactSeconds) ? { cached: truthFile } : { seconds: round(exactSeconds, 1), qps: round(nq / exactSeconds, 1) },
    results,
    ab: ab ? { arms: abArms!.map((a) => ({ name: a.name, addon: a.addon, graph: a.graph })), batch: Number(values.batch), rounds: repeat, ...ab } : null,
    smallestEfWithRecall099: best?.ef ?? null,
    repeat,
    loadavg: { start: loadStart, end: load() },
    cores: os.cpus().length,
  }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main();
}
