/**
 * Near-duplicates at scale (issue 15): a library of N images with synthetic 1280-d pooled vectors
 * (mobilenet_v2's dims, no model, no local features) and a planted set of near-duplicate pairs —
 * `--copies` (default 2 %) of the images are copies of an earlier image, cosine drawn uniformly in
 * [0.97, 0.995], the difference pointing along the data's own subspace — is opened as an Engine
 * (HNSW snapshot, as `pixdex duplicates` would open it) and measured:
 *
 *   - `engine.dupes.check()` over every image: seconds, images/s, where the time goes (HNSW
 *     searches, vector reads, the LMDB write of each image's edges, the scan for unchecked images),
 *     candidates (neighbours above CANDIDATE_COSINE) per image, RSS/heap before, peak and after;
 *   - the `dupes` table's bytes;
 *   - `engine.duplicates({ kind: 'near' })` with nothing pending (grouping only): time, groups,
 *     and the recall of the planted pairs at the default thresholds (edge found, same group); for
 *     missed pairs, whether the HNSW search from each image reaches the image itself and its copy;
 *   - one new image at a time (`--adds`, default 20; half of them copies of a stored image) written
 *     the way the build writes (Records.writeFiles + IndexSync.refresh, as an upload does), then
 *     `engine.dupes.check()` with that one image pending, the scan for pending images alone, and
 *     `checkOne(id)`: medians;
 *   - separately, on real photos (smvs book_covers: reference, a re-encoded 75 % copy of it, its
 *     query photo, another reference), what one verification costs: decode of the stored features
 *     + matchFeatures + houghInliers, ms per pair — with the candidates per image measured here,
 *     an estimate of the check rate of a library whose images all have local features.
 *
 * Prints one JSON line. The library is built in a child process (so the measuring process starts
 * from a plain Engine.open) in a temporary folder, or in `--out DIR` (kept, and reused by a later
 * run with the same --n/--gen/--seed/--copies: its evidence is cleared and checked again).
 *
 *   npm run bench:duplicates-scale -- [--n 100000] [--out DIR] [--gen real|lowrank] [--copies 0.02]
 *                                     [--adds 20] [--pairs 8] [--seed 15]
 *
 * Generators (bench/ann.ts `generatorFor`, as bench/open.ts): `real` (default) — points between a
 * MobileNetV2 pooled vector of the shared datasets and one of its real neighbours plus noise with
 * the real data's covariance (embedded once, cached in the OS temp dir); `lowrank` — non-negative
 * rank-48 clusters. At 1280-d `lowrank` puts random pairs at cosine ~0.93 and nearest neighbours
 * at ~0.97 (measured, n = 5,000): every image is a "near duplicate" of its neighbours, so it is
 * only useful for timing, not for groups or recall.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { AnnIndex } from '../src/ann.ts';
import { DEFAULT_ANN } from '../src/config.ts';
import { CANDIDATE_COSINE, DUPLICATE_NEIGHBOURS, NEIGHBOUR_EF } from '../src/duplicates/finder.ts';
import { pairKind } from '../src/duplicates/groups.ts';
import { DEFAULT_THRESHOLDS } from '../src/duplicates/thresholds.ts';
import { Engine } from '../src/engine.ts';
import { decodeFeatures, encodeFeatures, extractFeatures, greyscale, loadOpenCv, REFERENCE_SIDE } from '../src/local/features.ts';
import { matchFeatures, prepareQuery } from '../src/local/match.ts';
import { houghInliers } from '../src/local/verify.ts';
import type { FileToWrite } from '../src/store/records.ts';
import { l2normalize } from '../src/vector.ts';
import { DATASETS, MODELS, generatorFor, load, median, rng, round, type Generator } from './ann.ts';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    out: { type: 'string' },
    gen: { type: 'string', default: 'real' },
    copies: { type: 'string', default: '0.02' },
    noise: { type: 'string', default: '1' },
    seed: { type: 'string', default: '15' },
    adds: { type: 'string', default: '20' },
    pairs: { type: 'string', default: '8' },
    build: { type: 'string' }, // internal: the child that builds the library in this folder
  },
});
const n = Number(values.n);
const seed = Number(values.seed);
const copyShare = Number(values.copies);
const DIMS = 1280;
const BACKBONE = 'mobilenet_v2';
const BATCH = 10_000;
const log = (s: string) => process.stderr.write(`[bench:duplicates-scale ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const mb = (x: number) => round(x / 2 ** 20, 1);
/** process.memoryUsage(), and on Linux the RSS split: anonymous (heap, hnswlib) vs file-backed (LMDB's memory map). */
const memory = () => {
  const m = process.memoryUsage();
  const split: Record<string, number> = {};
  try {
    for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
      const f = /^(RssAnon|RssFile):\s+(\d+) kB/.exec(line);
      if (f) split[`${f[1][3].toLowerCase()}${f[1].slice(4)}MB`] = round(Number(f[2]) / 1024, 1);
    }
  } catch {
    // not Linux
  }
  return { rssMB: mb(m.rss), ...split, heapUsedMB: mb(m.heapUsed), heapTotalMB: mb(m.heapTotal), externalMB: mb(m.external), arrayBuffersMB: mb(m.arrayBuffers) };
};
const quantiles = (xs: number[], d = 2) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => round(s[Math.min(s.length - 1, Math.floor(p * s.length))], d);
  return s.length ? { median: round(median(s), d), p10: q(0.1), p90: q(0.9), min: round(s[0], d), max: round(s.at(-1)!, d) } : null;
};

/** What the build leaves beside the library: the planted pairs, and what it was built from. */
interface Sidecar {
  n: number;
  gen: string;
  seed: number;
  noise: number;
  copies: number;
  generator: string;
  /** [original id, copy id, the cosine drawn]. */
  planted: Array<[number, number, number]>;
  build: Record<string, unknown>;
}

/**
 * The synthetic images in write order: originals from `gen`, and copies of earlier originals at
 * random later positions. A copy is `c·v + √(1−c²)·u`, cosine `c` ~ U[0.97, 0.995] to its
 * original `v`, `u` a unit direction orthogonal to `v` drawn in the data's own subspace (a random
 * combination of differences between recent vectors), as a re-encoding moves a real embedding.
 */
class Library {
  private readonly r: () => number;
  private readonly recent: Float32Array[] = [];
  constructor(private readonly gen: Generator, s: number) {
    this.r = rng(s);
  }

  /** The next original, L2-normalised. */
  original(): Float32Array {
    const v = new Float32Array(this.gen.dims);
    this.gen.next(v);
    const u = l2normalize(v);
    if (this.recent.length < 256) this.recent.push(u);
    else this.recent[Math.floor(this.r() * 256)] = u;
    return u;
  }

  /** A copy of `v` at cosine drawn in [0.97, 0.995]. */
  copyOf(v: Float32Array): { vector: Float32Array; cosine: number } {
    const c = 0.97 + 0.025 * this.r();
    const d = new Float32Array(v.length);
    for (let k = 0; k < 4; k++) {
      const a = this.recent[Math.floor(this.r() * this.recent.length)];
      const b = this.recent[Math.floor(this.r() * this.recent.length)];
      const w = this.r() - 0.5;
      for (let j = 0; j < d.length; j++) d[j] += w * (a[j] - b[j]);
    }
    let dv = 0;
    for (let j = 0; j < d.length; j++) dv += d[j] * v[j];
    for (let j = 0; j < d.length; j++) d[j] -= dv * v[j];
    const u = l2normalize(d);
    const s = Math.sqrt(1 - c * c);
    const out = new Float32Array(v.length);
    for (let j = 0; j < v.length; j++) out[j] = c * v[j] + s * u[j];
    return { vector: l2normalize(out), cosine: c };
  }
}

/** The record of synthetic image `i` (a copy: a smaller, later file beside its original's name). */
function fileFor(i: number, vector: Float32Array, copyOf?: number): FileToWrite {
  const name = copyOf === undefined ? `IMG_${String(i).padStart(7, '0')}.jpg` : `IMG_${String(copyOf).padStart(7, '0')}-copy-${i}.jpg`;
  const file = `/photos/library/${String(Math.floor(i / 1000)).padStart(4, '0')}/${name}`;
  const copy = copyOf !== undefined;
  return {
    path: file,
    sha256: createHash('sha256').update(file).digest('hex'),
    bytes: copy ? 900_000 + (i % 1000) * 500 : 2_000_000 + (i % 1000) * 1000,
    width: copy ? 2016 : 4032,
    height: copy ? 1512 : 3024,
    mtimeMs: 1_700_000_000_000 + i * 1000,
    embedding: { pooled: vector },
  };
}

const script = fileURLToPath(import.meta.url);
if (values.build) await build(path.resolve(values.build));
else await main();

/** Child: writes the library with the index run's write path, then closes (HNSW snapshot saved). */
async function build(dir: string): Promise<void> {
  const started = performance.now();
  const gen = await generatorFor(values.gen, DIMS, seed, Number(values.noise), log);
  const generatorSeconds = (performance.now() - started) / 1000;
  const lib = new Library(gen, seed + 100);
  // Which positions are copies, and of which earlier original.
  const r = rng(seed + 200);
  const copies = Math.round(n * copyShare);
  const isCopy = new Int32Array(n).fill(-1);
  const sourceUsed = new Uint8Array(n);
  let planted = 0;
  while (planted < copies) {
    const pos = 1 + Math.floor(r() * (n - 1));
    if (isCopy[pos] >= 0 || sourceUsed[pos]) continue;
    let src = -1;
    for (let attempt = 0; attempt < 50 && src < 0; attempt++) {
      const s = Math.floor(r() * pos);
      if (isCopy[s] < 0 && !sourceUsed[s]) src = s;
    }
    if (src < 0) continue;
    isCopy[pos] = src;
    sourceUsed[src] = 1;
    planted++;
  }

  const engine = await Engine.open({ dataDir: dir, modelsDir: MODELS, backbone: BACKBONE, localFeatures: false });
  const kept = new Map<number, Float32Array>(); // originals waiting for their copy
  const idOf = new Int32Array(n);
  const pairs: Array<[number, number, number]> = [];
  const drawn = new Map<number, number>();
  let genSeconds = 0, writeSeconds = 0, indexSeconds = 0, snapshotSeconds = 0;
  try {
    for (let start = 0; start < n; start += BATCH) {
      let t = performance.now();
      const files: FileToWrite[] = [];
      for (let i = start; i < Math.min(n, start + BATCH); i++) {
        if (isCopy[i] >= 0) {
          const src = isCopy[i];
          const c = lib.copyOf(kept.get(src)!);
          kept.delete(src);
          drawn.set(i, c.cosine);
          files.push(fileFor(i, c.vector, src));
        } else {
          const v = lib.original();
          if (sourceUsed[i]) kept.set(i, v);
          files.push(fileFor(i, v));
        }
      }
      genSeconds += (performance.now() - t) / 1000;
      t = performance.now();
      const written = engine.records.writeFiles(files); // the index run's write: records, vectors, journal
      writeSeconds += (performance.now() - t) / 1000;
      if (written.added !== files.length) throw new Error(`batch at ${start}: ${written.added} of ${files.length} added`);
      for (const [k, id] of written.ids) idOf[start + k] = id;
      t = performance.now();
      engine.sync.refresh(); // the journal into the in-memory HNSW index, as after an index batch
      indexSeconds += (performance.now() - t) / 1000;
      log(`built ${Math.min(n, start + BATCH)}/${n} (write ${round(writeSeconds, 1)} s, HNSW ${round(indexSeconds, 1)} s)`);
    }
    for (let i = 0; i < n; i++) if (isCopy[i] >= 0) pairs.push([idOf[isCopy[i]], idOf[i], round(drawn.get(i)!, 4)]);
  } finally {
    const t = performance.now();
    await engine.close(); // saves the HNSW snapshot
    snapshotSeconds = (performance.now() - t) / 1000;
  }
  const totalSeconds = (performance.now() - started) / 1000;
  const side: Sidecar = {
    n, gen: gen.name, seed, noise: Number(values.noise), copies: copyShare, generator: gen.description, planted: pairs,
    build: {
      seconds: round(totalSeconds, 1),
      generatorSetupSeconds: round(generatorSeconds, 1),
      vectorsSeconds: round(genSeconds, 1),
      writeSeconds: round(writeSeconds, 1),
      hnswInsertSeconds: round(indexSeconds, 1),
      hnswInsertsPerSec: round(n / indexSeconds, 0),
      snapshotSeconds: round(snapshotSeconds, 1),
      loadavgEnd: load(),
    },
  };
  fs.writeFileSync(path.join(dir, 'planted.json'), JSON.stringify(side));
  log(`built in ${round(totalSeconds, 1)} s: ${JSON.stringify(side.build)}`);
}

async function main(): Promise<void> {
  const loadStart = load();
  const root = values.out ? path.resolve(values.out) : fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-dupes-scale-'));
  const dir = path.join(root, 'library');
  const out: Record<string, unknown> = { bench: 'duplicates-scale', n, dims: DIMS, cores: os.cpus().length };
  try {
    // ------------------------------------------------------------- the library
    const sidecarFile = path.join(dir, 'planted.json');
    let side: Sidecar | undefined = fs.existsSync(sidecarFile) ? JSON.parse(fs.readFileSync(sidecarFile, 'utf8')) : undefined;
    // (a library asked as `real` may have been built as `lowrank`: the fallback without models or datasets)
    const matches = side && side.n === n && side.seed === seed && side.copies === copyShare && side.noise === Number(values.noise) && (side.gen === values.gen || values.gen === 'real');
    let reused = Boolean(matches);
    if (!matches) {
      if (fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      const child = spawnSync(process.execPath, ['--import', 'tsx', script, '--build', dir, '--n', String(n), '--gen', values.gen, '--copies', String(copyShare), '--seed', String(seed), '--noise', values.noise], { stdio: ['ignore', 'inherit', 'inherit'] });
      if (child.status !== 0) throw new Error(`the build failed (exit ${child.status})`);
      side = JSON.parse(fs.readFileSync(sidecarFile, 'utf8')) as Sidecar;
      reused = false;
    }
    const s = side!;
    out.generator = { name: s.gen, description: s.generator, seed: s.seed, noise: s.noise };
    out.planted = { pairs: s.planted.length, share: s.copies, cosine: quantiles(s.planted.map((p) => p[2]), 4) };
    out.build = reused ? { reused: dir, ...s.build } : s.build;

    // ------------------------------------------------------------- open
    gc();
    const memOpen0 = memory();
    let t = performance.now();
    const engine = await Engine.open({ dataDir: dir, modelsDir: MODELS, backbone: BACKBONE });
    const openSeconds = (performance.now() - t) / 1000;
    if (engine.records.count() !== n) throw new Error(`the library holds ${engine.records.count()} images, not ${n}`);
    out.open = { seconds: round(openSeconds, 2), index: engine.sync.source, memoryBefore: memOpen0 };
    try {
      if (engine.records.dupes.checkedCount() > 0) {
        t = performance.now();
        engine.records.dupes.clear();
        log(`cleared the evidence of an earlier run in ${round((performance.now() - t) / 1000, 1)} s`);
      }

      // ----------------------------------------------------------- the full check
      // Where the time goes: wrappers on this engine's instances (a few performance.now() per call).
      const spent = { searchMs: 0, vectorReadMs: 0, putMs: 0, putCpuMs: 0, compareMs: 0, searches: 0, candidates: 0, compared: 0 };
      const ann = engine.sync.index;
      const search = ann.search.bind(ann);
      ann.search = ((...a: Parameters<AnnIndex['search']>) => {
        const t0 = performance.now();
        try {
          return search(...a);
        } finally {
          spent.searchMs += performance.now() - t0;
          spent.searches++;
        }
      }) as AnnIndex['search'];
      const unitVector = engine.records.unitVector.bind(engine.records);
      engine.records.unitVector = (...a) => {
        const t0 = performance.now();
        try {
          return unitVector(...a);
        } finally {
          spent.vectorReadMs += performance.now() - t0;
        }
      };
      const put = engine.records.dupes.put.bind(engine.records.dupes);
      engine.records.dupes.put = (...a) => {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        try {
          return put(...a);
        } finally {
          spent.putMs += performance.now() - t0;
          const c = process.cpuUsage(c0);
          spent.putCpuMs += (c.user + c.system) / 1000; // well below putMs: waiting for the disk (one commit per image)
        }
      };
      const compare = engine.dupes.compare.bind(engine.dupes);
      engine.dupes.compare = (id) => {
        const t0 = performance.now();
        const edges = compare(id);
        spent.compareMs += performance.now() - t0;
        spent.candidates += edges.length;
        spent.compared++;
        return edges;
      };
      t = performance.now();
      const pendingBefore = engine.dupes.pending().length;
      const pendingScanSeconds = (performance.now() - t) / 1000;

      gc();
      const memBefore = memory();
      let peakRss = process.memoryUsage().rss;
      let lastLog = 0, lastT = performance.now();
      const tenths: number[] = []; // images/s over each tenth of the run
      const loadCheckStart = load();
      const cpu0 = process.cpuUsage();
      t = performance.now();
      const summary = await engine.dupes.check({
        onProgress: (p) => {
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
          if (p.done - lastLog >= p.total / 10 || p.done === p.total) {
            const now = performance.now();
            tenths.push(round((p.done - lastLog) / ((now - lastT) / 1000), 0));
            lastLog = p.done;
            lastT = now;
            log(`checked ${p.done}/${p.total} (${round(p.rate, 0)}/s, eta ${round(p.etaSeconds, 0)} s, rss ${mb(process.memoryUsage().rss)} MB)`);
          }
        },
      });
      const checkSeconds = (performance.now() - t) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const loadCheckEnd = load();
      const memAfter = memory();
      gc();
      const memAfterGc = memory();
      const perImage = (ms: number) => round(ms / Math.max(1, spent.compared), 3);
      const compareRest = spent.compareMs - spent.searchMs - spent.vectorReadMs;
      out.check = {
        checked: summary.checked,
        pendingBefore,
        seconds: round(checkSeconds, 1),
        imagesPerSec: round(summary.checked / checkSeconds, 0),
        cpuSeconds: round((cpu.user + cpu.system) / 1e6, 1),
        imagesPerSecByTenth: tenths,
        loadavg: { start: loadCheckStart, end: loadCheckEnd },
        perImageMs: {
          total: round((checkSeconds * 1000) / Math.max(1, summary.checked), 3),
          hnswSearch: perImage(spent.searchMs),
          vectorReads: perImage(spent.vectorReadMs),
          otherCompare: perImage(compareRest),
          lmdbPut: perImage(spent.putMs),
          lmdbPutCpu: perImage(spent.putCpuMs),
          scanForPending: round((pendingScanSeconds * 1000) / Math.max(1, summary.checked), 4),
        },
        neighbours: DUPLICATE_NEIGHBOURS,
        candidateCosine: CANDIDATE_COSINE,
        candidatesPerImage: round(spent.candidates / Math.max(1, spent.compared), 2),
        memory: { before: memBefore, peakRssMB: mb(peakRss), after: memAfter, afterGc: memAfterGc },
      };
      log(`check: ${JSON.stringify(out.check)}`);

      const tables = engine.store.tableBytes();
      out.dupesTable = { bytes: tables.dupes, bytesPerImage: round(tables.dupes / n, 0), vectorsBytes: tables.vectors, annSnapshotBytes: tables.ann };

      // ----------------------------------------------------------- groups (nothing pending)
      t = performance.now();
      const first = await engine.duplicates({ kind: 'near' });
      const firstSeconds = (performance.now() - t) / 1000;
      t = performance.now();
      const report = await engine.duplicates({ kind: 'near' });
      const secondSeconds = (performance.now() - t) / 1000;
      const groupOf = new Map<number, number>();
      report.groups.forEach((g, i) => g.members.forEach((m) => groupOf.set(m.id, i)));
      const plantedIds = new Map<number, number>();
      for (const [a, b] of s.planted) {
        plantedIds.set(a, b);
        plantedIds.set(b, a);
      }
      let edgeNear = 0, edgeAny = 0, sameGroup = 0, pureGroup = 0;
      const storedCosines: number[] = [];
      for (const [a, b] of s.planted) {
        const e = engine.records.dupes.edges(a).find((x) => x.id === b);
        if (e) {
          edgeAny++;
          storedCosines.push(e.cosine);
          if (pairKind(e, DEFAULT_THRESHOLDS) === 'near') edgeNear++;
        }
        const ga = groupOf.get(a);
        if (ga !== undefined && ga === groupOf.get(b)) {
          sameGroup++;
          if (report.groups[ga].members.length === 2) pureGroup++;
        }
      }
      // Near pairs among images that are not a planted pair (the generator's own close neighbours).
      let otherNearEdges = 0;
      for (const { id, edges } of engine.records.dupes.all()) {
        for (const e of edges) if (e.id > id && plantedIds.get(id) !== e.id && pairKind(e, DEFAULT_THRESHOLDS) === 'near') otherNearEdges++;
      }
      const sizes = report.groups.map((g) => g.members.length);
      const p = s.planted.length;
      out.groups = {
        kind: 'near',
        thresholds: report.thresholds,
        firstCallSeconds: round(firstSeconds, 2),
        firstCallChecked: first.checked.checked,
        secondCallSeconds: round(secondSeconds, 2),
        secondCallChecked: report.checked.checked,
        groups: report.groups.length,
        images: report.images,
        sizes: { two: sizes.filter((x) => x === 2).length, three: sizes.filter((x) => x === 3).length, fourToTen: sizes.filter((x) => x >= 4 && x <= 10).length, moreThanTen: sizes.filter((x) => x > 10).length, largest: Math.max(0, ...sizes) },
        otherNearEdges,
      };
      out.recall = {
        plantedPairs: p,
        edgeStored: round(edgeAny / p, 4),
        nearEdge: round(edgeNear / p, 4),
        sameGroup: round(sameGroup / p, 4),
        aloneInGroup: round(pureGroup / p, 4),
        storedCosine: quantiles(storedCosines, 4),
      };
      // Why a planted pair was missed: the HNSW search from an image (the finder's ef) does not
      // reach its copy — often not even the image itself (a pair left unreachable in the graph).
      const annNow = engine.sync.index;
      const reaches = (from: number, to: number, ef: number) => annNow.search(engine.records.unitVector({ kind: 'backbone' }, from)!, DUPLICATE_NEIGHBOURS + 1, undefined, ef).some((h) => h.id === to);
      const plantedImages = s.planted.flatMap(([a, b]) => [a, b]);
      const selfFound = (ef: number) => round(plantedImages.filter((id) => reaches(id, id, ef)).length / plantedImages.length, 4);
      (out.recall as Record<string, unknown>).missedPairs = s.planted
        .filter(([a, b]) => !engine.records.dupes.edges(a).some((e) => e.id === b))
        .slice(0, 10)
        .map(([a, b, c]) => ({ a, b, cosine: c, aFindsItself: reaches(a, a, NEIGHBOUR_EF), bFindsItself: reaches(b, b, NEIGHBOUR_EF), aFindsBAtEf600: reaches(a, b, DEFAULT_ANN.efSearch), bFindsAAtEf600: reaches(b, a, DEFAULT_ANN.efSearch) }));
      (out.recall as Record<string, unknown>).plantedImagesFindingThemselves = { [`ef${NEIGHBOUR_EF}`]: selfFound(NEIGHBOUR_EF), [`ef${DEFAULT_ANN.efSearch}`]: selfFound(DEFAULT_ANN.efSearch) };
      log(`groups: ${JSON.stringify(out.groups)} recall: ${JSON.stringify(out.recall)}`);

      // ----------------------------------------------------------- one new image at a time
      const gen = await generatorFor(s.gen, DIMS, seed + 7, s.noise);
      const lib = new Library(gen, seed + 300);
      const r = rng(seed + 400);
      const adds = Number(values.adds);
      const added: number[] = [];
      const inc = { writeMs: [] as number[], refreshMs: [] as number[], checkMs: [] as number[], checkOneMs: [] as number[], pendingScanMs: [] as number[], copiesFound: 0, copies: 0 };
      const loadIncStart = load();
      for (let i = 0; i < adds; i++) {
        let file: FileToWrite;
        let source: number | undefined;
        if (i % 2 === 1) {
          source = 1 + Math.floor(r() * n);
          const v = engine.records.unitVector({ kind: 'backbone' }, source)!;
          for (let w = 0; w < 8; w++) lib.original(); // fill the directions a copy is drawn along
          file = fileFor(n + i, lib.copyOf(v).vector, source);
        } else {
          file = fileFor(n + i, lib.original());
        }
        t = performance.now();
        const written = engine.records.writeFiles([file]);
        inc.writeMs.push(performance.now() - t);
        t = performance.now();
        engine.sync.refresh();
        inc.refreshMs.push(performance.now() - t);
        const id = written.ids.get(0)!;
        added.push(id);
        t = performance.now();
        const c = await engine.dupes.check();
        inc.checkMs.push(performance.now() - t);
        if (c.checked !== 1) throw new Error(`check() compared ${c.checked} images, not 1`);
        t = performance.now();
        engine.dupes.pending();
        inc.pendingScanMs.push(performance.now() - t);
        t = performance.now();
        engine.dupes.checkOne(id);
        inc.checkOneMs.push(performance.now() - t);
        if (source !== undefined) {
          inc.copies++;
          if (engine.records.dupes.edges(id).some((e) => e.id === source && pairKind(e, DEFAULT_THRESHOLDS) === 'near')) inc.copiesFound++;
        }
      }
      out.incremental = {
        additions: adds,
        medianMs: {
          writeFiles: round(median(inc.writeMs), 2),
          hnswRefresh: round(median(inc.refreshMs), 2),
          check: round(median(inc.checkMs), 2),
          scanForPending: round(median(inc.pendingScanMs), 2),
          checkOne: round(median(inc.checkOneMs), 2),
        },
        checkMs: quantiles(inc.checkMs),
        checkOneMs: quantiles(inc.checkOneMs),
        copiesFoundAsNear: `${inc.copiesFound}/${inc.copies}`,
        loadavg: { start: loadIncStart, end: load() },
      };
      log(`incremental: ${JSON.stringify(out.incremental)}`);
      for (const id of added) engine.records.remove(id); // the kept library stays at N images
      engine.sync.refresh();
    } finally {
      t = performance.now();
      await engine.close();
      out.closeSeconds = round((performance.now() - t) / 1000, 1);
    }

    // ------------------------------------------------------------- verification on real photos
    out.verification = await verificationCost(Number(values.pairs));
    const v = out.verification as { msPerPair?: { all: number } };
    const c = out.check as { perImageMs: { total: number }; candidatesPerImage: number };
    if (v.msPerPair) {
      const perImage = c.perImageMs.total + c.candidatesPerImage * v.msPerPair.all;
      out.estimate = {
        note: 'check rate if every image had local features: this run\'s ms per image + candidates per image x verification ms per pair (one thread)',
        msPerImage: round(perImage, 2),
        imagesPerSec: round(1000 / perImage, 0),
        secondsFor: round((n * perImage) / 1000, 0),
      };
    }
    out.loadavg = { start: loadStart, end: load() };
    console.log(JSON.stringify(out));
  } finally {
    if (!values.out) fs.rmSync(root, { recursive: true, force: true });
  }
}

/**
 * What one verification costs on real photos, the work `compare` does per candidate when both
 * images have local features: decode the stored features, matchFeatures against the prepared
 * query, houghInliers. Both sides as indexed (long side REFERENCE_SIDE). Pairs per reference:
 * `copy` (the reference re-encoded at 75 % size, JPEG q70: a near duplicate), `photo` (its smvs
 * query photo: the same object), `other` (another reference: a wrong pair).
 */
async function verificationCost(count: number): Promise<Record<string, unknown>> {
  const dir = path.join(DATASETS, 'smvs', 'book_covers');
  if (!fs.existsSync(path.join(dir, 'reference'))) return { skipped: `${dir} missing` };
  await loadOpenCv();
  const refs = fs.readdirSync(path.join(dir, 'reference')).filter((f) => /\.jpe?g$/i.test(f)).sort().slice(0, count + 1);
  const features = async (bytes: Buffer) => encodeFeatures(extractFeatures(await greyscale(bytes, REFERENCE_SIDE, 100_000_000)));
  const kinds = { copy: [] as number[], photo: [] as number[], other: [] as number[] };
  const inliers = { copy: [] as number[], photo: [] as number[], other: [] as number[] };
  const parts = { decodeMs: [] as number[], matchMs: [] as number[], houghMs: [] as number[], prepareMs: [] as number[] };
  const keypoints: number[] = [];
  const REPEAT = 7;
  for (let i = 0; i < Math.min(count, refs.length - 1); i++) {
    const refBytes = fs.readFileSync(path.join(dir, 'reference', refs[i]));
    const meta = await sharp(refBytes).metadata();
    const copyBytes = await sharp(refBytes).resize(Math.round((meta.width ?? 640) * 0.75)).jpeg({ quality: 70 }).toBuffer();
    const queryFile = path.join(dir, 'query', refs[i]);
    const stored = {
      copy: await features(copyBytes),
      photo: fs.existsSync(queryFile) ? await features(fs.readFileSync(queryFile)) : undefined,
      other: await features(fs.readFileSync(path.join(dir, 'reference', refs[i + 1]))),
    };
    const own = await features(refBytes);
    const t = performance.now();
    const q = prepareQuery(decodeFeatures(own)); // once per checked image
    parts.prepareMs.push(performance.now() - t);
    keypoints.push(q.features.count);
    for (const kind of ['copy', 'photo', 'other'] as const) {
      const bytes = stored[kind];
      if (!bytes) continue;
      const runs: number[] = [];
      let found = 0;
      for (let rep = 0; rep < REPEAT; rep++) {
        const t0 = performance.now();
        const ref = decodeFeatures(bytes);
        const t1 = performance.now();
        const m = matchFeatures(q, ref);
        const t2 = performance.now();
        found = houghInliers(q.features, ref, m).inliers;
        const t3 = performance.now();
        runs.push(t3 - t0);
        parts.decodeMs.push(t1 - t0);
        parts.matchMs.push(t2 - t1);
        parts.houghMs.push(t3 - t2);
      }
      kinds[kind].push(median(runs.slice(1))); // the first run warms up
      inliers[kind].push(found);
    }
  }
  const all = [...kinds.copy, ...kinds.photo, ...kinds.other];
  return {
    dataset: 'smvs/book_covers',
    side: REFERENCE_SIDE,
    references: kinds.copy.length,
    keypointsPerImage: quantiles(keypoints, 0),
    msPerPair: { all: round(median(all), 3), copy: round(median(kinds.copy), 3), photo: round(median(kinds.photo), 3), other: round(median(kinds.other), 3), max: round(Math.max(...all), 3) },
    medianMs: { decodeStored: round(median(parts.decodeMs), 3), matchFeatures: round(median(parts.matchMs), 3), houghInliers: round(median(parts.houghMs), 3), prepareQueryOncePerImage: round(median(parts.prepareMs), 3) },
    inliers: { copy: quantiles(inliers.copy, 0), photo: quantiles(inliers.photo, 0), other: quantiles(inliers.other, 0) },
    loadavg: load(),
  };
}
