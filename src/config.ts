/**
 * The one configuration home: defaults (with reasons) → environment → explicit options.
 * No other module reads `process.env`.
 */
import path from 'node:path';
import os from 'node:os';
import { intParam, invalidParameter } from './errors.ts';
import { checkDescriptor, type LibraryDescriptor } from './descriptor-kind.ts';

/** Which tfjs backend runs the model. `auto` = tensorflow if it loads, else wasm, else cpu. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';

/** HNSW parameters (hnswlib-node). */
export interface AnnOptions {
  /** Graph degree. 16 is hnswlib's recommended default for 128–1280-d data (default: 16). */
  m: number;
  /** Build-time beam. 200 gives near-exact graphs at ~2x the build cost of 100 (default: 200). */
  efConstruction: number;
  /**
   * Search beam (raised to k when k is larger). 800 keeps recall@10 >= 0.99 against exact search
   * at 1M vectors (bench/ann.ts `--gen real`, 256-d, M=16/efConstruction=200: ef 400 0.985, 600
   * 0.987, 800 0.991, 1200 0.994); higher costs QPS (default: 800).
   */
  efSearch: number;
}

export interface PixdexConfig {
  /** Data directory holding `pixdex.lmdb` (default: ./data, env PIXDEX_DATA). */
  dataDir: string;
  /**
   * Where the library's records live (issue 20; env PIXDEX_STORE): a `postgres://` URL puts them
   * in that PostgreSQL database (src/store/postgres.ts); unset, `pixdex.lmdb` in `dataDir`. The
   * data folder still holds what is per machine: uploads, watch status.
   */
  store: string | undefined;
  /**
   * Folder of the backbone model folders (option/--models or env PIXDEX_MODELS; default:
   * `<cacheDir>/models`, where missing built-in backbones are downloaded on first use).
   */
  modelsDir: string;
  /**
   * pixdex's cache: downloaded models live in `<cacheDir>/models` (env PIXDEX_CACHE_DIR; default:
   * `$XDG_CACHE_HOME/pixdex`, else `~/.cache/pixdex`).
   */
  cacheDir: string;
  /**
   * Whether a missing built-in backbone is downloaded (pinned SHA-256) into `modelsDir`: on for the
   * cache, off when the models folder was named (a folder the user manages is never written to).
   */
  fetchModels: boolean;
  /**
   * Base URL of a mirror of the models folder (`<mirror>/<dir>/<file>`) to download from instead
   * of the public origins: an internal mirror, or the tests' loopback server (env PIXDEX_MODELS_MIRROR).
   */
  modelMirror: string | undefined;
  /** Called while a model downloads (the CLI draws a progress line). */
  onModelDownload?: (progress: { model: string; file: string; received: number; total: number }) => void;
  /**
   * Backbone id from the registry (env PIXDEX_BACKBONE). Unset: the store's backbone, or
   * `DEFAULT_BACKBONE` for a new store.
   */
  backbone: string | undefined;
  /**
   * How a new library describes images (env PIXDEX_DESCRIPTOR): `regional2` (default), `regional`,
   * `gem` or `pooled` (src/library-descriptor.ts). Unset: the store's descriptor, or `DEFAULT_DESCRIPTOR`.
   */
  descriptor: LibraryDescriptor | undefined;
  /**
   * Local features and geometric verification (issue 14; env PIXDEX_LOCAL_FEATURES on|off): each
   * image's keypoints are stored at indexing and query photos are verified against their
   * candidates. Unset: the library's setting, on for a new library. Set on an existing library,
   * it switches it (on: the next `pixdex index` adds the features; off: they are dropped).
   */
  localFeatures: boolean | undefined;
  /** tfjs backend (default: auto, env PIXDEX_BACKEND). */
  backend: BackendChoice;
  /** Images per inference batch: 16 is where wasm throughput stops improving (default: 16). */
  batchSize: number;
  /**
   * Images per index batch, when the batch size was given (option batchSize); unset, indexing
   * uses `batchSize`, or TENSORFLOW_INDEX_BATCH in tensorflow workers (indexer/run.ts).
   */
  indexBatchSize: number | undefined;
  /**
   * Embedding worker threads for indexing, each with its own tfjs backend (wasm uses one core
   * per thread). 1 = in this thread, no worker start-up cost (default: one per core, env
   * PIXDEX_WORKERS).
   */
  workers: number;
  /**
   * Largest decoded image, in pixels. 100 MP covers any camera (a 50 MP photo is 8660x5773) and
   * stops decompression bombs before libvips allocates them (default: 100_000_000).
   */
  maxInputPixels: number;
  /** Largest image file read, in bytes (default: 200 MiB). */
  maxFileBytes: number;
  /** File extensions indexed (lower case, with dot). */
  extensions: readonly string[];
  /**
   * Write an HNSW snapshot after this many journalled changes during long runs: 20000 1280-d
   * vectors make ~100 MB of snapshot, about a second to write (NOTES.md: 23 MB in 177 ms)
   * against minutes of indexing (default: 20000, env PIXDEX_SNAPSHOT_EVERY; the crash test sets
   * it low so that snapshots happen mid-run).
   */
  snapshotEvery: number;
  ann: AnnOptions;
  /** HTTP server options (`pixdex serve`, `createApp`). */
  server: ServerConfig;
  /** Watch mode (`pixdex index --watch`, `pixdex serve --watch`; indexer/watch.ts). */
  watch: WatchConfig;
}

/** Timings of watch mode: how changes are gathered into passes, and how roots are checked. */
export interface WatchConfig {
  /**
   * A pass starts after this long without a new change: a copy of a folder arrives as a burst of
   * events, and one pass over the burst embeds it in full batches (default: 1000 ms, env PIXDEX_WATCH_QUIET_MS).
   */
  quietMs: number;
  /** ...or at the latest this long after the first change waiting, so a steady trickle is not held back (default: 5000 ms). */
  maxWaitMs: number;
  /**
   * A new or changed file is taken once its size has not changed for this long, so a file still
   * being copied is not indexed half-written (default: 500 ms).
   */
  stableMs: number;
  /** How often each watched folder is checked for having gone (unmounted) or come back (default: 2000 ms). */
  rootPollMs: number;
}

/** Options of the HTTP server (server/, `pixdex serve`). */
export interface ServerConfig {
  /** Interface to bind: loopback, so nothing is reachable from the network unless asked (default: 127.0.0.1, env PIXDEX_HOST). */
  host: string;
  /** TCP port; 0 picks a free one (default: 8080, env PIXDEX_PORT). */
  port: number;
  /** Bearer token required on every mutating route; unset = no authentication (default: unset, env PIXDEX_TOKEN). */
  token: string | undefined;
  /**
   * Largest upload in bytes. 25 MiB holds a full-size 50 MP camera JPEG while bounding the memory
   * one request can take (uploads are kept in memory) (default: 25 MiB).
   */
  maxUploadBytes: number;
  /** Longest side of thumbnails in pixels: sharp enough for a result grid on a HiDPI screen (default: 256). */
  thumbnailSize: number;
  /** Memory for cached thumbnails in bytes: ~2000 thumbnails of ~16 KB (default: 32 MiB). */
  thumbnailCacheBytes: number;
  /** Folder where uploaded images are kept, so they can be thumbnailed and re-indexed (default: <dataDir>/uploads). */
  uploadsDir: string;
  /** Time in-flight requests get on shutdown before their connections are closed (default: 10000 ms). */
  shutdownGraceMs: number;
  /**
   * Embedding worker threads for query photos (POST /api/search, /api/classify), each with its own
   * backend: wasm runs one core per thread, so one per core lets concurrent queries use them all
   * and keeps inference off the thread that answers every other request. 0 = in the main thread
   * (default: one per core, env PIXDEX_QUERY_WORKERS).
   */
  queryWorkers: number;
  /**
   * Photo queries that may wait for a worker; one more gets 503 BUSY with Retry-After. Four per
   * worker (at least 4): a 1280 px photo takes ~40 ms of one wasm thread, so the last in a full
   * queue waits about 4 × 40 ms more than it would alone, a burst of (2 running + 4 waiting) ×
   * workers clients is absorbed, and the uploads held in memory stay bounded
   * (default: 4 × max(1, queryWorkers), env PIXDEX_MAX_QUEUED_QUERIES).
   */
  maxQueuedQueries: number;
}

/** Options accepted by `Engine.open` and the CLI: any subset of the config. */
export type PixdexOptions = Partial<Omit<PixdexConfig, 'ann' | 'server' | 'watch'>> & { ann?: Partial<AnnOptions>; server?: Partial<ServerConfig>; watch?: Partial<WatchConfig> };

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
export const DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
export const DEFAULT_THUMBNAIL_SIZE = 256;
export const DEFAULT_THUMBNAIL_CACHE_BYTES = 32 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** Photo queries that may wait per query worker (see `ServerConfig.maxQueuedQueries`). */
export const QUEUED_QUERIES_PER_WORKER = 4;

export const DEFAULT_EXTENSIONS = Object.freeze([
  '.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif',
]);

/** MobileNetV2: the fastest of the three on wasm with the best hymenoptera kNN (NOTES.md). */
export const DEFAULT_BACKBONE = 'mobilenet_v2';

/** Journalled changes between HNSW snapshots during an index run (see `snapshotEvery`). */
export const DEFAULT_SNAPSHOT_EVERY = 20_000;

/**
 * HNSW defaults. efSearch 800 (was 600, 128 before): at 1M vectors of bench/ann.ts's `real`
 * generator ef 600 finds 98.7% of the exact top 10, 800 finds 99.1% (470 queries/s on one core
 * with the native build, ~2.1 ms against ~40 ms for the backbone on a query photo). M: at recall
 * 0.99, M=24 gave 0.98x the QPS of M=16 at 100k and 1.08x at 200k (same process, interleaved
 * batches; more at 0.995); no 1M graph with M=24 was measured, so 16 stays (README, "The HNSW
 * build").
 */
export const DEFAULT_ANN: Readonly<AnnOptions> = Object.freeze({ m: 16, efConstruction: 200, efSearch: 800 });

const BACKENDS: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** Resolves the configuration once: defaults, then env, then explicit options. */
export function resolveConfig(options: PixdexOptions = {}, env: NodeJS.ProcessEnv = process.env): PixdexConfig {
  const backend = (options.backend ?? env.PIXDEX_BACKEND ?? 'auto') as BackendChoice;
  if (!BACKENDS.includes(backend)) {
    throw invalidParameter('backend', `one of ${BACKENDS.join(', ')}`, backend);
  }
  const dataDir = path.resolve(options.dataDir ?? env.PIXDEX_DATA ?? 'data');
  const cacheDir = path.resolve(options.cacheDir ?? (env.PIXDEX_CACHE_DIR || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'pixdex')));
  const namedModels = options.modelsDir ?? (env.PIXDEX_MODELS || undefined);
  return {
    dataDir,
    store: optionalStore(options.store ?? (env.PIXDEX_STORE || undefined)),
    modelsDir: path.resolve(namedModels ?? path.join(cacheDir, 'models')),
    cacheDir,
    fetchModels: options.fetchModels ?? namedModels === undefined,
    modelMirror: optionalUrl('modelMirror', options.modelMirror ?? (env.PIXDEX_MODELS_MIRROR || undefined)),
    onModelDownload: options.onModelDownload,
    backbone: options.backbone ?? (env.PIXDEX_BACKBONE || undefined),
    descriptor: optionalDescriptor(options.descriptor ?? (env.PIXDEX_DESCRIPTOR || undefined)),
    localFeatures: options.localFeatures ?? optionalSwitch('localFeatures', env.PIXDEX_LOCAL_FEATURES || undefined),
    backend,
    batchSize: options.batchSize ?? 16,
    indexBatchSize: options.batchSize,
    workers: intParam('workers', options.workers ?? env.PIXDEX_WORKERS ?? coreCount(), 1, 64),
    maxInputPixels: options.maxInputPixels ?? 100_000_000,
    maxFileBytes: options.maxFileBytes ?? 200 * 1024 * 1024,
    extensions: options.extensions ?? DEFAULT_EXTENSIONS,
    snapshotEvery: intParam('snapshotEvery', options.snapshotEvery ?? (env.PIXDEX_SNAPSHOT_EVERY || DEFAULT_SNAPSHOT_EVERY), 1, 2 ** 31 - 1),
    ann: { ...DEFAULT_ANN, ...options.ann },
    server: resolveServerConfig(options.server ?? {}, env, dataDir),
    watch: {
      quietMs: intParam('watch.quietMs', options.watch?.quietMs ?? (env.PIXDEX_WATCH_QUIET_MS || 1000), 0, 600_000),
      maxWaitMs: intParam('watch.maxWaitMs', options.watch?.maxWaitMs ?? 5000, 0, 3_600_000),
      stableMs: intParam('watch.stableMs', options.watch?.stableMs ?? 500, 50, 600_000),
      rootPollMs: intParam('watch.rootPollMs', options.watch?.rootPollMs ?? 2000, 50, 600_000),
    },
  };
}

/** A PostgreSQL URL (postgres:// or postgresql://), or undefined for the LMDB store in the data folder. */
function optionalStore(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^postgres(ql)?:\/\/\S+$/i.test(value)) throw invalidParameter('store', 'a postgres://user:password@host:port/database URL (the LMDB library in a folder is --data)', value);
  return value;
}

/** An http(s) URL, or undefined. */
function optionalUrl(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw invalidParameter(name, 'an http:// or https:// URL', value);
  return value;
}

/** `on`/`off` (also true/false, 1/0) as a boolean; undefined stays undefined. */
export function optionalSwitch(name: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  const v = String(value).toLowerCase();
  if (['on', 'true', '1', 'yes'].includes(v)) return true;
  if (['off', 'false', '0', 'no'].includes(v)) return false;
  throw invalidParameter(name, 'on or off', value);
}

function optionalDescriptor(value: unknown): LibraryDescriptor | undefined {
  return value === undefined ? undefined : checkDescriptor(value);
}

function resolveServerConfig(o: Partial<ServerConfig>, env: NodeJS.ProcessEnv, dataDir: string): ServerConfig {
  const token = o.token ?? (env.PIXDEX_TOKEN || undefined);
  if (token !== undefined && (typeof token !== 'string' || token === '' || /\s/.test(token))) {
    throw invalidParameter('token', 'a non-empty string without spaces', token);
  }
  const queryWorkers = intParam('queryWorkers', o.queryWorkers ?? (env.PIXDEX_QUERY_WORKERS || coreCount()), 0, 64);
  return {
    host: o.host ?? (env.PIXDEX_HOST || DEFAULT_HOST),
    port: intParam('port', o.port ?? (env.PIXDEX_PORT || DEFAULT_PORT), 0, 65535),
    token,
    maxUploadBytes: intParam('maxUploadBytes', o.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES, 1, 2 ** 31 - 1),
    thumbnailSize: intParam('thumbnailSize', o.thumbnailSize ?? DEFAULT_THUMBNAIL_SIZE, 16, 2048),
    thumbnailCacheBytes: intParam('thumbnailCacheBytes', o.thumbnailCacheBytes ?? DEFAULT_THUMBNAIL_CACHE_BYTES, 0, 2 ** 40),
    uploadsDir: path.resolve(o.uploadsDir ?? path.join(dataDir, 'uploads')),
    shutdownGraceMs: intParam('shutdownGraceMs', o.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS, 0, 600_000),
    queryWorkers,
    maxQueuedQueries: intParam('maxQueuedQueries', o.maxQueuedQueries ?? (env.PIXDEX_MAX_QUEUED_QUERIES || QUEUED_QUERIES_PER_WORKER * Math.max(1, queryWorkers)), 0, 10_000),
  };
}

/** Number of CPU cores usable for worker threads. */
export function coreCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}
