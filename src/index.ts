/**
 * pixdex as a library: the public API for embedding pixdex in another Node program.
 *
 * ```ts
 * import { open } from 'pixdex';
 * import fs from 'node:fs/promises';
 *
 * const pixdex = await open({ dataDir: './data', modelsDir: process.env.PIXDEX_MODELS });
 * try {
 *   await pixdex.index(['/photos'], { labelFromFolder: true });
 *   const hits = await pixdex.search(await fs.readFile('query.jpg'), { k: 5 });
 * } finally {
 *   await pixdex.close();
 * }
 * ```
 *
 * Everything here comes from the engine façade (`src/engine.ts`), the typed errors
 * (`src/errors.ts`) and the error table (`src/contracts/errors.ts`); this module adds no
 * behaviour of its own. Types are derived from the
 * façade's method signatures, so they always match what the engine accepts and returns.
 */
import { Engine } from './engine.ts';
import { PixdexError, type ErrorCode } from './errors.ts';

export { Engine };
export {
  PixdexError,
  BadImageError,
  NotFoundError,
  InvalidParameterError,
  ModelNotFoundError,
  StoreMismatchError,
  SnapshotUnusableError,
  BackendError,
  type BadImageReason,
  type ErrorCode,
} from './errors.ts';
/**
 * The error table: every `ErrorCode` with its CLI exit code, HTTP status and meaning
 * (`ERRORS.NOT_FOUND` → `{ exit: 3, status: 404, meaning }`), and the codes in table order.
 */
export { ERRORS, ERROR_CODES, isErrorCode, type ErrorContract } from './contracts/errors.ts';

// ------------------------------------------------------------------------------- types

/**
 * Options of `open` (all optional; unset ones come from the environment, then the defaults):
 * `dataDir` (env `PIXDEX_DATA`, default `./data`), `modelsDir` (env `PIXDEX_MODELS`), `backbone`,
 * `descriptor`, `backend` (`auto` | `tensorflow` | `wasm` | `cpu`), `workers`, `ann`, `server`...
 */
export type PixdexOptions = NonNullable<Parameters<typeof Engine.open>[0]>;

/** `open`'s options plus `create: false`, which refuses to create a library that does not exist. */
export type OpenOptions = PixdexOptions & {
  /** Create the library when `dataDir` holds none (default: true); false: `NotFoundError` instead, nothing written. */
  create?: boolean;
};

/** Options of `index`: `labelFromFolder`, `onProgress`, `onWarning`, `signal` (AbortSignal). */
export type IndexOptions = NonNullable<Parameters<Engine['index']>[1]>;
/** What `index` returns: `{ added, updated, skipped, failed, removed, total, seconds, errors }`. */
export type IndexSummary = Awaited<ReturnType<Engine['index']>>;
/** Progress of an index run, passed to `IndexOptions.onProgress` after every batch. */
export type IndexProgress = Parameters<NonNullable<IndexOptions['onProgress']>>[0];

/** Options of `search` and `similar`: `k` (1..1000, default 10), `label` filter, `space`, `expand`... */
export type SearchOptions = NonNullable<Parameters<Engine['search']>[1]>;
/** One hit: `{ id, path, score, label }`, `score` = cosine similarity, highest first. */
export type SearchResult = Awaited<ReturnType<Engine['search']>>[number];

/** Options of `classify`: `k`, `minConfidence`, `method` (`knn` | `head` | `both`)... */
export type ClassifyOptions = NonNullable<Parameters<Engine['classify']>[1]>;
/** A classification: `{ label (null = unknown), confidence, votes, neighbors, method }`. */
export type Classification = Awaited<ReturnType<Engine['classify']>>;
/** How to classify: the neighbours' vote, the trained head, or both. */
export type ClassifyMethod = Classification['method'];

/** Options of `add` (one encoded image, e.g. an upload): `path` (a name to show), `label`. */
export type AddOptions = NonNullable<Parameters<Engine['add']>[1]>;
/** What `get` and `label` return: the record of an indexed image with its `id`. */
export type ImageInfo = ReturnType<Engine['get']>;
/** A reference to an indexed image: its numeric id or one of its file paths. */
export type ImageRef = Parameters<Engine['resolve']>[0];

/** One entry of `labels()`: `{ label, count }`, most frequent first. */
export type LabelCount = ReturnType<Engine['labels']>[number];
/** What `check()` finds (writes nothing): `{ ok, problems, counts... }`, as `pixdex check --json`. */
export type CheckReport = ReturnType<Engine['check']>;
/** What `repair()` did (as `pixdex check --repair`); stop other pixdex processes first. */
export type RepairReport = ReturnType<Engine['repair']>;

/** What `stats` reports: images, labels with counts, backbone, dims, backend, space, index facts... */
export type Stats = Awaited<ReturnType<Engine['stats']>>;
/** Which embedding space searches use: the backbone's vectors or the library's autoencoder. */
export type SpaceKind = Stats['space'];

/** Options of `propagate` (label suggestions from labelled neighbours): `k`, `minConfidence`, `apply`. */
export type PropagateOptions = NonNullable<Parameters<Engine['propagate']>[0]>;
/** What `propagate` reports: counts and the suggestions made. */
export type PropagateReport = ReturnType<Engine['propagate']>;
/** A pending label suggestion: `{ id, path, label, confidence }`. */
export type Suggestion = ReturnType<Engine['suggestions']>[number];

/** Options of `trainClassifier` (the classifier head): `hidden`, `epochs`, `patience`, `seed`... */
export type HeadOptions = NonNullable<Parameters<Engine['trainClassifier']>[0]>;
/** What `trainClassifier` reports (held-out accuracy, labels, epochs...). */
export type HeadReport = Awaited<ReturnType<Engine['trainClassifier']>>;
/** Options of `train` (the autoencoder): `dim`, `epochs`, `sample`, `onProgress`... */
export type TrainOptions = NonNullable<Parameters<Engine['train']>[0]>;
/** What `train` reports: the new space, timings, losses, re-embedded and removed images. */
export type TrainReport = Awaited<ReturnType<Engine['train']>>;
/** Options of `engine.duplicates()`: kind (exact, near, similar), a cosine threshold, progress. */
export type DuplicateOptions = NonNullable<Parameters<Engine['duplicates']>[0]>;
/** Groups of copies, edits and bursts, best copy first, with the thresholds used. */
export type DuplicateReport = Awaited<ReturnType<Engine['duplicates']>>;

// ------------------------------------------------------------------------------- functions

/**
 * Opens the library in `options.dataDir` (created unless `create: false`) and loads its index;
 * the model loads on first use. Close it with `close()` when done (it saves the index snapshot).
 */
export function open(options: OpenOptions = {}): Promise<Engine> {
  const { create, ...rest } = options;
  return Engine.open(rest, { create: create ?? true });
}

/**
 * Opens the library, runs `fn` with it and closes it afterwards, also when `fn` throws;
 * resolves to what `fn` returns.
 */
export async function withPixdex<T>(options: OpenOptions, fn: (pixdex: Engine) => Promise<T> | T): Promise<T> {
  const pixdex = await open(options);
  try {
    return await fn(pixdex);
  } finally {
    await pixdex.close();
  }
}

/** True when `err` is an error pixdex threw on purpose (with `code`, if given, as its code). */
export function isPixdexError(err: unknown, code?: ErrorCode): err is PixdexError & { code: ErrorCode } {
  return err instanceof PixdexError && (code === undefined || err.code === code);
}
