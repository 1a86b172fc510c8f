/** Messages between the indexer (main thread) and its embedding workers. */
import type { BackendChoice } from '../../src/config.ts';
import type { ErrorCode } from '../../src/contracts/errors.ts';
import type { LibraryDescriptor } from '../../src/library-descriptor.ts';
import type { Embedding } from '../../src/embed.ts';
import type { LocalFeatures } from '../../src/local/types.ts';
import type { Candidate, VerifiedCandidate } from '../../src/local/rerank.ts';
import type { PhotoMetadata } from '../../src/image/metadata.ts';

/** Sent once when a worker starts. */
export interface WorkerInit {
  modelsDir: string;
  backbone: string;
  /** The library's descriptor (what the global vector is; `regional` adds smaller sides). */
  descriptor: LibraryDescriptor;
  backend: BackendChoice;
  maxInputPixels: number;
  /** Autoencoder weights (`ConvAutoencoder.toBytes`) when the space is an autoencoder's. */
  autoencoder?: Uint8Array;
  /** Also compute each image's local features (the library's setting, issue 14). */
  localFeatures?: boolean;
  /**
   * Workers started together initialise their backend one at a time: worker `turn` waits until
   * `gate[0]` reaches `turn`, initialises, then adds 1 (`src/pool.ts`, `awaitTurn`/`passTurn`).
   */
  start?: { gate: Int32Array; turn: number };
}

/** One batch to decode and embed: encoded bytes (transferred, not copied) with their names. */
export interface EmbedJob {
  type: 'job';
  jobId: number;
  items: Array<{ name: string; bytes: Uint8Array }>;
}

/** Outcome for one item of a job: its pooled vector, original size and capture metadata (EXIF), or an error. */
export type EmbedItemResult =
  | { ok: true; vector: Float32Array; code?: Float32Array; scales?: Float32Array; width: number; height: number; features?: Uint8Array; metadata: PhotoMetadata }
  | { ok: false; code: ErrorCode; message: string };

/**
 * One query photo (the server's query pool, src/query-pool.ts): decoded at the query side and
 * described with its windows, as `Describer.describeQueryWithFeatures` does in the main thread.
 */
export interface QueryJob {
  type: 'query';
  jobId: number;
  /** Names the photo in error messages. */
  name: string;
  /** The encoded photo (transferred). */
  bytes: Uint8Array;
  /** Also extract the photo's local features at `QUERY_SIDE` (a library with local features, verification on). */
  localFeatures: boolean;
  /**
   * The active autoencoder space's model key, and its weights when this worker has not loaded
   * that key yet (the pool remembers what each worker holds); absent in the backbone space.
   */
  autoencoder?: { key: string; bytes?: Uint8Array };
}

/**
 * A query's description, or its error. Local features travel raw (float keypoints, descriptor
 * bytes: both transferred), not as the quantised stored record, so verification on the main
 * thread sees exactly what the main-thread path would.
 */
export type QueryResult =
  | { ok: true; embedding: Embedding; features?: LocalFeatures }
  | { ok: false; code: ErrorCode; message: string };

/**
 * Geometric verification of a query's candidates (the server's query pool): the query's features
 * and each candidate's stored local-features record (transferred; undefined: it has none), so the
 * matching, the Hough vote and the outlines run off the main thread.
 */
export interface VerifyJob {
  type: 'verify';
  jobId: number;
  query: LocalFeatures;
  candidates: Candidate[];
  /** `verifyCandidates`' minChecked. */
  minChecked?: number;
  records: Array<Uint8Array | undefined>;
}

/** The verified candidates in rank order (`verifyCandidates`), or its error. */
export type VerifyResult =
  | { ok: true; hits: VerifiedCandidate[] }
  | { ok: false; code: ErrorCode; message: string };

export type WorkerMessage =
  | { type: 'ready'; backend: string }
  | { type: 'result'; jobId: number; results: EmbedItemResult[] }
  | { type: 'query-result'; jobId: number; result: QueryResult }
  | { type: 'verify-result'; jobId: number; result: VerifyResult }
  | { type: 'fatal'; code: ErrorCode; message: string };
