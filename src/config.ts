/**
 * The one configuration home: defaults (with reasons) → environment → explicit options.
 * No other module reads `process.env`.
 */
import path from 'node:path';
import os from 'node:os';
import { intParam, invalidParameter } from './errors.ts';

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
   * Search beam (raised to k when k is larger). 128 measured recall@10 ≥ 0.99 against exact
   * search on real embeddings (bench/ann.ts); higher costs QPS (default: 128).
   */
  efSearch: number;
}

export interface PixdexConfig {
  /** Data directory holding `pixdex.lmdb` (default: ./data, env PIXDEX_DATA). */
  dataDir: string;
  /** Directory containing the backbone model folders (env PIXDEX_MODELS, default: ./models). */
  modelsDir: string;
  /**
   * Backbone id from the registry (env PIXDEX_BACKBONE). Unset: the store's backbone, or
   * `DEFAULT_BACKBONE` for a new store.
   */
  backbone: string | undefined;
  /** tfjs backend (default: auto, env PIXDEX_BACKEND). */
  backend: BackendChoice;
  /** Images per inference batch: 16 is where wasm throughput stops improving (default: 16). */
  batchSize: number;
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
  /** Write an HNSW snapshot after this many journalled changes during long runs (default: 20000). */
  snapshotEvery: number;
  ann: AnnOptions;
}

/** Options accepted by `Engine.open` and the CLI: any subset of the config. */
export type PixdexOptions = Partial<Omit<PixdexConfig, 'ann'>> & { ann?: Partial<AnnOptions> };

export const DEFAULT_EXTENSIONS = Object.freeze([
  '.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif',
]);

/** MobileNetV2: the fastest of the three on wasm with the best hymenoptera kNN (NOTES.md). */
export const DEFAULT_BACKBONE = 'mobilenet_v2';

export const DEFAULT_ANN: Readonly<AnnOptions> = Object.freeze({ m: 16, efConstruction: 200, efSearch: 128 });

const BACKENDS: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** Resolves the configuration once: defaults, then env, then explicit options. */
export function resolveConfig(options: PixdexOptions = {}, env: NodeJS.ProcessEnv = process.env): PixdexConfig {
  const backend = (options.backend ?? env.PIXDEX_BACKEND ?? 'auto') as BackendChoice;
  if (!BACKENDS.includes(backend)) {
    throw invalidParameter('backend', `one of ${BACKENDS.join(', ')}`, backend);
  }
  return {
    dataDir: path.resolve(options.dataDir ?? env.PIXDEX_DATA ?? 'data'),
    modelsDir: path.resolve(options.modelsDir ?? env.PIXDEX_MODELS ?? 'models'),
    backbone: options.backbone ?? (env.PIXDEX_BACKBONE || undefined),
    backend,
    batchSize: options.batchSize ?? 16,
    workers: intParam('workers', options.workers ?? env.PIXDEX_WORKERS ?? coreCount(), 1, 64),
    maxInputPixels: options.maxInputPixels ?? 100_000_000,
    maxFileBytes: options.maxFileBytes ?? 200 * 1024 * 1024,
    extensions: options.extensions ?? DEFAULT_EXTENSIONS,
    snapshotEvery: options.snapshotEvery ?? 20_000,
    ann: { ...DEFAULT_ANN, ...options.ann },
  };
}

/** Number of CPU cores usable for worker threads. */
export function coreCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}
