/** Messages between the indexer (main thread) and its embedding workers. */
import type { BackendChoice } from '../../src/config.ts';
import type { ErrorCode } from '../../src/contracts/errors.ts';
import type { LibraryDescriptor } from '../../src/library-descriptor.ts';

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
}

/** One batch to decode and embed: encoded bytes (transferred, not copied) with their names. */
export interface EmbedJob {
  type: 'job';
  jobId: number;
  items: Array<{ name: string; bytes: Uint8Array }>;
}

/** Outcome for one item of a job: its pooled vector and original size, or an error. */
export type EmbedItemResult =
  | { ok: true; vector: Float32Array; code?: Float32Array; scales?: Float32Array; width: number; height: number; features?: Uint8Array }
  | { ok: false; code: ErrorCode; message: string };

export type WorkerMessage =
  | { type: 'ready'; backend: string }
  | { type: 'result'; jobId: number; results: EmbedItemResult[] }
  | { type: 'fatal'; code: ErrorCode; message: string };
