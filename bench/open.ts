/**
 * Open time at scale: creates a pixdex store with N synthetic images (records, paths, hashes,
 * vectors, labels, journal and meta written through src/store.ts in batched transactions, as
 * Engine.index does, then an HNSW snapshot saved with store.saveSnapshot), and measures in fresh
 * processes: open (snapshot load, never a rebuild) and the first query answered, plus store
 * bytes per image. Prints one JSON object.
 *
 *   npm run bench:open -- [--n 1000000] [--dims 256] [--runs 3] [--index FILE] [--data DIR] [--keep]
 *
 * `--index FILE`: an index saved by `bench:ann --save-index FILE` for the same n/dims/generator
 * (checked against FILE.json), instead of building one here (1M x 256-d takes ~30 min).
 *
 * How the fresh process opens the store: the backbone registry fixes the dims of a store
 * (mobilenet_v2 = 1280, mobilenet_v1_0.75 = 768, mobilenet_v1_embedding = 1024). When `--dims`
 * is one of those, mode `engine` runs the real `Engine.open` + `engine.searchVector` (the model
 * is never loaded for a vector query). Other dims (e.g. 256, the size of a compact embedding)
 * have no backbone to open the store with, so mode `streamed` runs the steps Engine.open performs
 * (`Store.open`, meta, `Store.loadSnapshotToFile` + `AnnIndex.restore`: chunks go from LMDB's
 * memory map straight to the temp file hnswlib reads; journal replay; then `ann.search` + record
 * lookups as `searchVector` does). Mode `store` is the earlier path (`loadSnapshot` into one
 * Buffer + `AnnIndex.fromBytes`), for comparison. Wrapping `AnnIndex.restore`/`fromBytes` and
 * `Engine.prototype.rebuildIndex` proves a snapshot was loaded and nothing was rebuilt.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AnnIndex } from '../src/ann.ts';
import { DEFAULT_ANN } from '../src/config.ts';
import { Engine } from '../src/engine.ts';
import { IndexSync } from '../src/index-sync.ts';
import { BACKBONES } from '../src/models/backbone.ts';
import { SCHEMA_VERSION, Store, type StoreMeta } from '../src/store/lmdb.ts';
import { Records, type FileToWrite } from '../src/store/records.ts';
import { l2normalize } from '../src/vector.ts';
import { generatorFor, load, median, round, sample } from './ann.ts';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000000' },
    dims: { type: 'string', default: '256' },
    runs: { type: 'string', default: '3' },
    index: { type: 'string' },
    data: { type: 'string' },
    keep: { type: 'boolean', default: false },
    gen: { type: 'string', default: 'real' },
    noise: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
    child: { type: 'string' },
  },
});
const n = Number(values.n);
const dims = Number(values.dims);
const log = (s: string) => process.stderr.write(`[bench:open ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const backboneFor = (d: number) => Object.values(BACKBONES).find((b) => b.dims === d)?.id;
const LABELS = 17;
const BATCH = 10_000;

type Mode = 'engine' | 'store' | 'streamed';
if (values.child) await child(values.child.replace(/:\w+$/, ''), values.child.split(':').pop() as Mode);
else await parent();

/** Measures one open + first query in this (fresh) process; prints one JSON line. */
async function child(dataDir: string, mode: Mode): Promise<void> {
  const importedMs = performance.now(); // since process start: node + tsx + module graph
  let snapshotLoads = 0;
  let rebuilds = 0;
  const fromBytes = AnnIndex.fromBytes.bind(AnnIndex);
  AnnIndex.fromBytes = (...a: Parameters<typeof AnnIndex.fromBytes>) => (snapshotLoads++, fromBytes(...a));
  const restore = AnnIndex.restore.bind(AnnIndex);
  AnnIndex.restore = (...a: Parameters<typeof AnnIndex.restore>) => (snapshotLoads++, restore(...a));
  const rebuild = IndexSync.prototype.rebuild;
  IndexSync.prototype.rebuild = function (this: IndexSync) {
    rebuilds++;
    return rebuild.call(this);
  };
  const queryId = Math.floor(n / 2) + 1;
  const perturb = (v: Float32Array) => v.map((x, i) => x * (1 + 0.01 * Math.sin(i)));
  const cpu0 = process.cpuUsage();
  let t = performance.now();
  let openMs: number, firstMs: number, secondMs: number, top: number | undefined, close: () => Promise<void>;
  if (mode === 'engine') {
    const engine = await Engine.open({ dataDir, backbone: backboneFor(dims) });
    openMs = performance.now() - t;
    const q = perturb(engine.store.getVector(queryId)!);
    t = performance.now();
    top = engine.searchVector(q, { k: 10 })[0]?.id;
    firstMs = performance.now() - t;
    t = performance.now();
    engine.searchVector(perturb(engine.store.getVector(queryId + 1)!), { k: 10 });
    secondMs = performance.now() - t;
    close = () => engine.close(); // nothing changed: no new snapshot is written
  } else {
    const store = Store.open(dataDir);
    const meta = store.getMeta()!;
    const snap = store.getSnapshotMeta();
    if (!snap || snap.dims !== meta.dims) throw new Error('no snapshot in the store');
    let ann: AnnIndex | undefined;
    if (mode === 'store') {
      const bytes = store.loadSnapshot(snap);
      ann = bytes && AnnIndex.fromBytes(bytes, meta.dims, DEFAULT_ANN, snap.live);
    } else {
      ann = AnnIndex.restore((file) => store.loadSnapshotToFile(snap, file), meta.dims, DEFAULT_ANN, snap.live);
    }
    if (!ann) throw new Error('incomplete snapshot');
    store.journalAfter(snap.seq); // the replay Engine.open does (empty here)
    openMs = performance.now() - t;
    const records = new Records(store);
    const search = (v: Float32Array) => ann!.search(l2normalize(v), 10).map((h) => ({ ...h, rec: records.get(h.id) }));
    const q = perturb(store.getVector(queryId)!);
    t = performance.now();
    top = search(q)[0]?.id;
    firstMs = performance.now() - t;
    t = performance.now();
    search(perturb(store.getVector(queryId + 1)!));
    secondMs = performance.now() - t;
    close = () => store.close();
  }
  const cpu = process.cpuUsage(cpu0); // open + 2 queries; on an idle machine wall time ≈ this
  const rss = process.memoryUsage().rss;
  await close();
  console.log(JSON.stringify({ mode, importedMs, openMs, cpuMs: (cpu.user + cpu.system) / 1000, firstQueryMs: firstMs, secondQueryMs: secondMs, openPlusFirstMs: openMs + firstMs, sinceProcessStartMs: importedMs + openMs + firstMs, rss, snapshotLoads, rebuilds, topIsQueryId: top === queryId }));
}

async function parent(): Promise<void> {
  const loadStart = load();
  const dataDir = path.resolve(values.data ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-open-')));
  const backbone = backboneFor(dims);
  const out: Record<string, unknown> = { bench: 'open', n, dims, dataDir, backbone: backbone ?? null };
  try {
    const existing = fs.existsSync(path.join(dataDir, 'pixdex.lmdb')) ? Store.open(dataDir) : undefined;
    const reuse = existing?.getMeta()?.dims === dims && new Records(existing).count() === n && existing.getSnapshotMeta() !== undefined;
    await existing?.close();
    if (reuse) {
      log(`reusing the store in ${dataDir}`);
    } else {
      Object.assign(out, await build(dataDir, backbone));
    }
    out.storeBytes = storeBytes(dataDir);

    // Fresh processes, page cache warm (the store was just written or read).
    const runs: Array<Record<string, number | boolean | string>> = [];
    const modes: Mode[] = backbone ? ['engine', 'store', 'streamed'] : ['store', 'streamed'];
    for (let r = 0; r < Number(values.runs); r++) {
      for (const mode of modes) {
        const script = fileURLToPath(import.meta.url);
        const res = spawnSync(process.execPath, ['--import', 'tsx', script, '--child', `${dataDir}:${mode}`, '--n', String(n), '--dims', String(dims)], { encoding: 'utf8', maxBuffer: 1 << 20 });
        if (res.status !== 0) throw new Error(`child failed: ${res.stderr}`);
        const line = JSON.parse(res.stdout.trim().split('\n').pop()!);
        log(`${mode} run ${r + 1}: open ${round(line.openMs, 0)} ms (cpu ${round(line.cpuMs, 0)} ms), first query ${round(line.firstQueryMs, 1)} ms, from process start ${round(line.sinceProcessStartMs, 0)} ms`);
        runs.push(line);
      }
    }
    const summary: Record<string, unknown> = {};
    for (const mode of modes) {
      const rs = runs.filter((x) => x.mode === mode);
      const med = (key: string) => round(median(rs.map((x) => x[key] as number)), 1);
      summary[mode] = {
        openMs: med('openMs'),
        firstQueryMs: med('firstQueryMs'),
        secondQueryMs: med('secondQueryMs'),
        openPlusFirstQueryMs: med('openPlusFirstMs'),
        openAndQueriesCpuMs: med('cpuMs'),
        sinceProcessStartMs: med('sinceProcessStartMs'),
        importMs: med('importedMs'),
        rssBytes: med('rss'),
        loadedSnapshot: rs.every((x) => x.snapshotLoads === 1 && x.rebuilds === 0),
        topHitIsQueryImage: rs.every((x) => x.topIsQueryId),
        openMsRuns: rs.map((x) => round(x.openMs as number, 0)),
      };
    }
    out.open = summary;
    out.modes = {
      engine: 'Engine.open + engine.searchVector (registry dims only)',
      streamed: "Engine.open's steps: Store.open, loadSnapshotToFile + AnnIndex.restore, journal; ann.search + record lookups",
      store: 'the earlier path: loadSnapshot (one Buffer) + AnnIndex.fromBytes, for comparison',
    };
    out.acceptance = { limitMs: 5000, openPlusFirstQueryOk: Object.fromEntries(modes.map((m) => [m, (summary[m] as { openPlusFirstQueryMs: number }).openPlusFirstQueryMs <= 5000])) };
    out.loadavg = { start: loadStart, end: load() };
    console.log(JSON.stringify(out));
  } finally {
    if (!values.keep && !values.data) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Writes N records + vectors in batched transactions, then the HNSW snapshot. */
async function build(dataDir: string, backbone: string | undefined): Promise<Record<string, unknown>> {
  const gen = await generatorFor(values.gen, dims, Number(values.seed), Number(values.noise), log);
  let t = performance.now();
  const data = sample(gen, n); // the same vectors bench:ann indexes for the same n/dims/seed
  log(`generated ${n} vectors in ${round((performance.now() - t) / 1000, 1)} s`);

  const store = Store.open(dataDir);
  const meta: StoreMeta = { schema: SCHEMA_VERSION, backbone: backbone ?? `synthetic-${dims}`, dims, space: 'backbone', nextId: 1, seq: 0, createdAt: Date.now() };
  const records = new Records(store);
  records.create(meta);
  t = performance.now();
  for (let start = 0; start < n; start += BATCH) {
    // The write path of an index run: one transaction a batch (records, vectors, label counts, journal).
    const files: FileToWrite[] = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) {
      const label = `label_${i % LABELS}`;
      const file = `/photos/library/${label}/${String(Math.floor(i / 1000)).padStart(4, '0')}/IMG_${String(i).padStart(7, '0')}.jpg`;
      files.push({ path: file, sha256: createHash('sha256').update(file).digest('hex'), bytes: 2_000_000 + (i % 1000) * 1000, width: 4032, height: 3024, mtimeMs: 1_700_000_000_000 + i, label, embedding: { pooled: data.subarray(i * dims, (i + 1) * dims) } });
    }
    records.writeFiles(files);
  }
  const writeSeconds = (performance.now() - t) / 1000;
  log(`wrote ${n} images in ${round(writeSeconds, 1)} s`);

  const params = { ...DEFAULT_ANN };
  let bytes: Buffer;
  let indexFrom: string;
  const sidecar = values.index && fs.existsSync(values.index + '.json') ? JSON.parse(fs.readFileSync(values.index + '.json', 'utf8')) : undefined;
  if (sidecar && sidecar.n === n && sidecar.dims === dims && sidecar.gen === gen.name && sidecar.seed === Number(values.seed) && sidecar.noise === Number(values.noise) && sidecar.m === params.m && sidecar.efConstruction === params.efConstruction) {
    bytes = fs.readFileSync(values.index!);
    indexFrom = values.index!;
  } else {
    if (values.index) log(`${values.index} does not match n/dims/generator/params: building`);
    t = performance.now();
    const ann = AnnIndex.create(dims, params, n);
    for (let i = 0; i < n; i++) {
      ann.add(i + 1, data.subarray(i * dims, (i + 1) * dims));
      if ((i + 1) % Math.max(1, Math.floor(n / 10)) === 0) log(`indexed ${i + 1}/${n}`);
    }
    indexFrom = `built here in ${round((performance.now() - t) / 1000, 1)} s`;
    bytes = ann.toBytes();
  }
  t = performance.now();
  records.saveSnapshot(bytes, { seq: records.meta().seq, space: 'backbone', live: n, dims, m: params.m, efConstruction: params.efConstruction }, () => true);
  const saveSnapshotSeconds = (performance.now() - t) / 1000;
  await store.close();
  return {
    generator: gen.description,
    writeSeconds: round(writeSeconds, 1),
    writeImagesPerSec: round(n / writeSeconds, 0),
    index: indexFrom,
    snapshotBytes: bytes.length,
    saveSnapshotSeconds: round(saveSnapshotSeconds, 2),
  };
}

/** File size and the pages each named database uses, per image. */
function storeBytes(dataDir: string): Record<string, unknown> {
  const file = path.join(dataDir, 'pixdex.lmdb');
  const fileBytes = fs.statSync(file).size;
  const store = Store.open(dataDir);
  const perDb = store.tableBytes();
  const used = Object.values(perDb).reduce((a, b) => a + b, 0);
  void store.close();
  const perImage = (x: number) => round(x / n, 0);
  return {
    fileBytes,
    usedBytes: used,
    perImage: { file: perImage(fileBytes), used: perImage(used), withoutSnapshot: perImage(used - perDb.ann) },
    perDbPerImage: Object.fromEntries(Object.entries(perDb).map(([k, v]) => [k, perImage(v)])),
  };
}
