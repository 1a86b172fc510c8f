/**
 * Load on the real server: `pixdex serve` in a child process over a freshly indexed library,
 * `clients` concurrent clients sending `requests` searches each (POST /api/search with a photo)
 * while one more client adds (POST /api/images) and deletes (DELETE /api/images/:id) images.
 * Then every acknowledged write is verified: each add still standing is found first by its own
 * photo, each delete is gone — on the running server, and again after the server is killed
 * with SIGKILL and restarted. Prints one JSON line; exits 1 on any 5xx or lost write.
 *
 *   node --import tsx bench/load.ts [--clients 8] [--requests 200] [--library DIR] [--limit 120]
 *        [--models DIR] [--backend NAME] [--queries DIR] [--query-side 400] [--verify on|off]
 *        [--query-workers N] [--writes on|off] [--data DIR] [--repo DIR]
 *
 * Query photos (issue 22): `--queries` names their folder (default: the writer's folder, every
 * other photo) and `--query-side 0` sends them as they are (real phone uploads) instead of 400 px
 * copies; `--verify off` asks for the visual ranking alone; `--query-workers` sets the server's
 * PIXDEX_QUERY_WORKERS; `--writes off` measures searches alone. `--data` keeps the indexed
 * library there (indexed once, reused by the next run); `--repo` serves another checkout's
 * pixdex (a before/after comparison on the same library and photos).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DEFAULT_EXTENSIONS } from '../src/config.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(REPO, 'bin', 'pixdex.js');
const DATASETS = path.resolve(process.env.PIXDEX_DATASETS ?? path.join(REPO, '../shared/datasets'));

export interface LoadOptions {
  /** Concurrent search clients (default: 8). */
  clients?: number;
  /** Searches per client (default: 200). */
  requests?: number;
  /** Photos indexed before the load (default: hymenoptera train). */
  library?: string;
  /** At most this many library photos (default: 120). */
  limit?: number;
  /** Photos the writer adds, besides deleting (default: hymenoptera val). */
  writerImages?: string;
  /** Adds the writer makes at most; it stops early when the searches are done (default: 60). */
  maxAdds?: number;
  modelsDir?: string;
  backend?: string;
  /** Folder of query photos (default: every other photo of `writerImages`). */
  queries?: string;
  /** Longest side of the query copies sent, px; 0 = the files as they are (default: 400). */
  querySide?: number;
  /** Query photos taken from `queries` (default: 40). */
  queryLimit?: number;
  /** Geometric verification of photo queries (default: true; false sends verify=false). */
  verify?: boolean;
  /** The server's PIXDEX_QUERY_WORKERS (default: the server's default). */
  queryWorkers?: number;
  /** Searches before the measured ones, not counted (default: 2 per client). */
  warmup?: number;
  /** A writer adds and deletes during the load, then the writes are checked (default: true). */
  writes?: boolean;
  /** Keep the indexed library here and reuse it when it exists (default: a temporary folder). */
  dataDir?: string;
  /** The checkout whose `bin/pixdex.js` serves and indexes (default: this one). */
  repo?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface LoadReport {
  clients: number;
  requests: number;
  searches: number;
  seconds: number;
  searchesPerSecond: number;
  /** Answers by class; `network` = no HTTP answer at all. */
  errors: { '5xx': number; '4xx': number; network: number };
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  writes: { adds: number; deletes: number; addLatencyMsP50: number; deleteLatencyMsP50: number };
  /** Acknowledged writes not visible afterwards: on the live server, then after SIGKILL + restart. */
  lostWrites: { adds: number; deletes: number; afterRestart: { adds: number; deletes: number } };
  /** Lines the server logged as unexpected errors. */
  serverErrors: number;
  /** 503 BUSY answers (counted in `errors['5xx']` too). */
  busy: number;
  /** The 1-minute load average before and after the measured searches. */
  loadAverage: { before: number; after: number };
  verify: boolean;
  queryPhotos: { count: number; meanBytes: number; querySide: number };
}

const TOKEN = 'load-token-0123456789abcdef';

function imagesIn(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && DEFAULT_EXTENSIONS.includes(path.extname(e.name).toLowerCase()))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] * 10) / 10;
}

interface Server {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function startServer(dataDir: string, env: NodeJS.ProcessEnv, cli = CLI): Promise<Server> {
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--data', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) resolve(m[1]);
    });
    void exited.then(() => reject(new Error(`pixdex serve exited: ${stderr}`)));
  });
  for (let i = 0; i < 600; i++) {
    if ((await fetch(`${url}/readyz`)).status === 200) return { url, child, stderr: () => stderr, exited };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the server never became ready');
}

/** Small JPEG copies (longest side 400 px): what a client would upload, and quick to decode. */
async function queryBytes(files: string[], side = 400): Promise<Buffer[]> {
  if (side === 0) return files.map((f) => fs.readFileSync(f));
  return Promise.all(files.map((f) => sharp(f).rotate().resize(side, side, { fit: 'inside' }).jpeg({ quality: 85 }).toBuffer()));
}

/** Runs the load and the checks; the server and the temporary store are removed afterwards. */
export async function runLoad(o: LoadOptions = {}): Promise<LoadReport> {
  const clients = o.clients ?? 8;
  const requests = o.requests ?? 200;
  const log = o.log ?? (() => {});
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-load-'));
  const cli = o.repo ? path.join(path.resolve(o.repo), 'bin', 'pixdex.js') : CLI;
  const writes = o.writes ?? true;
  const verifyParam = o.verify === false ? '&verify=false' : '';
  const env: NodeJS.ProcessEnv = { ...process.env, PIXDEX_TOKEN: TOKEN };
  if (o.queryWorkers !== undefined) env.PIXDEX_QUERY_WORKERS = String(o.queryWorkers);
  if (o.modelsDir) env.PIXDEX_MODELS = o.modelsDir;
  else env.PIXDEX_MODELS ??= path.join(REPO, '../shared/models');
  if (o.backend) env.PIXDEX_BACKEND = o.backend;
  let server: Server | undefined;
  try {
    // 1. A library, indexed by the CLI (or the one kept in `dataDir` by an earlier run).
    const dataDir = o.dataDir ? path.resolve(o.dataDir) : path.join(tmp, 'data');
    if (!fs.existsSync(path.join(dataDir, 'pixdex.lmdb'))) {
      const library = path.join(tmp, 'library');
      const libraryFiles = imagesIn(o.library ?? path.join(DATASETS, 'hymenoptera_data', 'train')).slice(0, o.limit ?? 120);
      for (const f of libraryFiles) {
        const dest = path.join(library, path.basename(path.dirname(f)), path.basename(f));
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.copyFileSync(f, dest);
      }
      log(`indexing ${libraryFiles.length} photos`);
      const indexed = spawnSync(process.execPath, [cli, 'index', library, '--data', dataDir, '--label-from-folder', '--json'], { env, encoding: 'utf8' });
      if (indexed.status !== 0) throw new Error(`pixdex index failed: ${indexed.stderr}`);
      log(`indexed: ${indexed.stdout.trim()}`);
    }

    const writerFiles = writes ? imagesIn(o.writerImages ?? path.join(DATASETS, 'hymenoptera_data', 'val')).filter((_, i) => i % 2 === 1).slice(0, o.maxAdds ?? 60) : [];
    const queryFiles = (o.queries ? imagesIn(o.queries) : imagesIn(o.writerImages ?? path.join(DATASETS, 'hymenoptera_data', 'val')).filter((_, i) => i % 2 === 0)).slice(0, o.queryLimit ?? 40);
    const querySide = o.querySide ?? 400;
    const [queries, writerBytes] = await Promise.all([queryBytes(queryFiles, querySide), queryBytes(writerFiles)]);

    server = await startServer(dataDir, env, cli);
    log(`server ready at ${server.url}`);
    let url = server.url; // changes on restart (port 0)

    // 2. The load: searchers, and one writer until they are done.
    const latencies: number[] = [];
    const errors = { '5xx': 0, '4xx': 0, network: 0 };
    let busy = 0;
    const search = async (bytes: Buffer, k = 10): Promise<{ status: number; body: any }> => {
      const started = performance.now();
      try {
        const res = await fetch(`${url}/api/search?k=${k}${verifyParam}`, { method: 'POST', body: new Uint8Array(bytes), headers: { 'content-type': 'image/jpeg' } });
        const body = await res.json();
        latencies.push(performance.now() - started);
        if (res.status === 503 && body?.error?.code === 'BUSY') busy++;
        if (res.status >= 500) errors['5xx']++;
        else if (res.status >= 400) errors['4xx']++;
        return { status: res.status, body };
      } catch {
        errors.network++;
        return { status: 0, body: undefined };
      }
    };
    // Warm-up (JIT, caches, each worker's first inference): not counted.
    const warmup = o.warmup ?? 2 * clients;
    await Promise.all(Array.from({ length: clients }, async (_, c) => {
      for (let i = c; i < warmup; i += clients) await search(queries[i % queries.length]);
    }));
    latencies.length = 0;
    Object.assign(errors, { '5xx': 0, '4xx': 0, network: 0 });
    busy = 0;
    let searchesDone = false;
    const loadBefore = os.loadavg()[0];
    const started = performance.now();
    const searchers = Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < requests; i++) await search(queries[(c * 7 + i) % queries.length]);
    });

    const added = new Map<number, Buffer>(); // acknowledged adds still standing, with their photo
    const deleted = new Map<number, Buffer>(); // acknowledged deletes, with their photo
    const addLatencies: number[] = [];
    const deleteLatencies: number[] = [];
    const authed = { authorization: `Bearer ${TOKEN}` };
    const writer = (async () => {
      let libraryNext = 1;
      for (let i = 0; i < writerBytes.length && !searchesDone; i++) {
        let t = performance.now();
        const res = await fetch(`${url}/api/images`, { method: 'POST', body: new Uint8Array(writerBytes[i]), headers: { ...authed, 'content-type': 'image/jpeg' } }).catch(() => undefined);
        if (!res) {
          errors.network++;
          continue;
        }
        const body = (await res.json()) as { id: number };
        if (res.status >= 500) errors['5xx']++;
        if (res.status === 201) {
          added.set(body.id, writerBytes[i]);
          addLatencies.push(performance.now() - t);
        }
        // Every other add, delete one: alternately an image just added and one of the library.
        if (i % 2 === 1) {
          const ownIds = [...added.keys()];
          const id = i % 4 === 1 && ownIds.length > 0 ? ownIds[Math.floor(ownIds.length / 2)] : libraryNext++ * 3;
          let bytes = added.get(id);
          if (!bytes) {
            const meta = await fetch(`${url}/api/images/${id}`).catch(() => undefined);
            const rec = meta?.status === 200 ? ((await meta.json()) as { path: string }) : undefined;
            if (!rec) continue;
            bytes = fs.readFileSync(rec.path);
          }
          t = performance.now();
          const del = await fetch(`${url}/api/images/${id}`, { method: 'DELETE', headers: authed }).catch(() => undefined);
          if (!del) {
            errors.network++;
            continue;
          }
          await del.arrayBuffer();
          if (del.status >= 500) errors['5xx']++;
          if (del.status === 200) {
            deleteLatencies.push(performance.now() - t);
            deleted.set(id, bytes);
            added.delete(id);
          }
        }
      }
    })();
    await Promise.all(searchers);
    searchesDone = true;
    await writer;
    const seconds = (performance.now() - started) / 1000;
    const loadAfter = os.loadavg()[0];
    log(`${clients * requests} searches in ${seconds.toFixed(1)} s; ${addLatencies.length} adds, ${deleteLatencies.length} deletes`);

    // 3. Lost writes: every acknowledged add is found first by its own photo; every delete is gone.
    const verify = async (): Promise<{ adds: number; deletes: number }> => {
      let lostAdds = 0;
      let lostDeletes = 0;
      for (const [id, bytes] of added) {
        const meta = await fetch(`${url}/api/images/${id}`);
        await meta.arrayBuffer();
        const r = await search(bytes, 3);
        if (meta.status !== 200 || r.body?.results?.[0]?.id !== id) lostAdds++;
      }
      for (const [id, bytes] of deleted) {
        const meta = await fetch(`${url}/api/images/${id}`);
        await meta.arrayBuffer();
        const r = await search(bytes, 20);
        if (meta.status !== 404 || r.status !== 200 || r.body.results.some((x: { id: number }) => x.id === id)) lostDeletes++;
      }
      return { adds: lostAdds, deletes: lostDeletes };
    };
    const live = await verify();

    // 4. Durability: SIGKILL the server (no clean shutdown, no snapshot), restart, verify again.
    let restarted = { adds: 0, deletes: 0 };
    let serverErrors = 0;
    if (writes) {
      server.child.kill('SIGKILL');
      await server.exited;
      serverErrors += (server.stderr().match(/^.*error: /gm) ?? []).length;
      server = await startServer(dataDir, env, cli);
      url = server.url;
      restarted = await verify();
    }
    serverErrors += (server.stderr().match(/^.*error: /gm) ?? []).length;

    const sorted = latencies.slice(0, clients * requests).sort((a, b) => a - b);
    const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
    return {
      clients,
      requests,
      searches: clients * requests,
      seconds: Math.round(seconds * 10) / 10,
      searchesPerSecond: Math.round(((clients * requests) / seconds) * 10) / 10,
      errors,
      latencyMs: { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: percentile(sorted, 100) },
      writes: { adds: addLatencies.length, deletes: deleteLatencies.length, addLatencyMsP50: median(addLatencies), deleteLatencyMsP50: median(deleteLatencies) },
      lostWrites: { ...live, afterRestart: restarted },
      serverErrors,
      busy,
      loadAverage: { before: Math.round(loadBefore * 100) / 100, after: Math.round(loadAfter * 100) / 100 },
      verify: o.verify !== false,
      queryPhotos: { count: queries.length, meanBytes: Math.round(queries.reduce((n, q) => n + q.length, 0) / Math.max(1, queries.length)), querySide },
    };
  } finally {
    if (server) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '8' },
      requests: { type: 'string', default: '200' },
      library: { type: 'string' },
      limit: { type: 'string' },
      models: { type: 'string' },
      backend: { type: 'string' },
      queries: { type: 'string' },
      'query-side': { type: 'string' },
      'query-limit': { type: 'string' },
      verify: { type: 'string', default: 'on' },
      'query-workers': { type: 'string' },
      warmup: { type: 'string' },
      writes: { type: 'string', default: 'on' },
      data: { type: 'string' },
      repo: { type: 'string' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const report = await runLoad({
    clients: Number(values.clients),
    requests: Number(values.requests),
    library: values.library,
    limit: values.limit ? Number(values.limit) : undefined,
    modelsDir: values.models,
    backend: values.backend,
    queries: values.queries,
    querySide: num(values['query-side']),
    queryLimit: num(values['query-limit']),
    verify: values.verify !== 'off',
    queryWorkers: num(values['query-workers']),
    warmup: num(values.warmup),
    writes: values.writes !== 'off',
    dataDir: values.data,
    repo: values.repo,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(JSON.stringify(report) + '\n');
  const bad = report.errors['5xx'] > 0 || report.lostWrites.adds + report.lostWrites.deletes + report.lostWrites.afterRestart.adds + report.lostWrites.afterRestart.deletes > 0;
  process.exitCode = bad ? 1 : 0;
}
