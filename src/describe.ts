/**
 * Describe: encoded images → what the library stores and searches by. Owns the model side: the
 * backend, the backbone (loaded once, on first use), the library's autoencoder (cached by key),
 * decoding with the library's sides, and the embedders that indexing and training use (this
 * thread, or a pool of worker threads).
 */
import fs from 'node:fs/promises';
import { initBackend, type BackendInfo } from './backend.ts';
import type { PixdexConfig } from './config.ts';
import { PixdexError, StoreMismatchError, BadImageError } from './errors.ts';
import { decodeImage } from './image/decode.ts';
import { Backbone, type BackboneSpec } from './models/backbone.ts';
import { ensureBackbone } from './models/ensure.ts';
import { ConvAutoencoder } from './models/autoencoder.ts';
import { embedBatch, type Embedding } from './embed.ts';
import { isRegional, libraryRegional, type LibraryDescriptor } from './library-descriptor.ts';
import { mapLimit } from './pool.ts';
import { encodeFeatures, extractFeatures, loadOpenCv, QUERY_KEYPOINTS, QUERY_PYRAMID, QUERY_SIDE, REFERENCE_SIDE } from './local/features.ts';
import { describeFsError } from '../indexer/scan.ts';
import { LocalEmbedder, WorkerPool, type Embedder } from '../indexer/workers/pool.ts';
import type { SpaceInfo } from './store/lmdb.ts';
import { QueryPool, type QueryDescription } from './query-pool.ts';

export type { Embedding };

/** Files read and decoded at once while the model runs (sharp works on its own threads). */
export const DECODE_CONCURRENCY = 4;

/** Where an autoencoder's weights come from (the records' `models`). */
export type WeightsSource = (key: string) => Uint8Array | undefined;

/** How long a failed model download is not retried (see `ensureModel`). */
const ENSURE_RETRY_MS = 30_000;

export class Describer {
  private backbone?: Promise<Backbone>;
  private ensured?: Promise<void>;
  private backend?: BackendInfo;
  private autoencoderCache?: { key: string; model: ConvAutoencoder };
  private queries?: QueryPool;

  constructor(
    readonly config: PixdexConfig,
    readonly spec: BackboneSpec,
    /** How this library describes images (`meta.descriptor`). */
    readonly descriptor: LibraryDescriptor,
    private readonly weights: WeightsSource,
  ) {}

  /** The backend running the model (initialised on first call). */
  async backendInfo(): Promise<BackendInfo> {
    this.backend ??= await initBackend(this.config.backend);
    return this.backend;
  }

  /**
   * Downloads the backbone into the cache if it is missing there (src/models/ensure.ts). A failure
   * is remembered for 30 s, so an index run's batches fail at once instead of each waiting for its
   * own retries; after that the next request tries again (a server recovers when the network does).
   */
  private ensureModel(): Promise<void> {
    this.ensured ??= ensureBackbone(this.config, this.spec.id);
    const attempt = this.ensured;
    attempt.catch(() => {
      setTimeout(() => {
        if (this.ensured === attempt) this.ensured = undefined;
      }, ENSURE_RETRY_MS).unref();
    });
    return attempt;
  }

  /** The backbone, loaded once and warmed up. */
  model(): Promise<Backbone> {
    this.backbone ??= (async () => {
      await this.ensureModel();
      Backbone.check(this.config.modelsDir, this.spec.id); // fail fast, before a backend starts
      await this.backendInfo();
      const b = await Backbone.load(this.config.modelsDir, this.spec.id);
      await b.warmUp();
      return b;
    })();
    this.backbone.catch(() => {
      this.backbone = undefined;
    });
    return this.backbone;
  }

  /** The smaller database sides images are decoded at for `descriptor` (a `regional` library's), or undefined. */
  smallerSides(descriptor = this.descriptor): number[] | undefined {
    return isRegional(descriptor) ? libraryRegional(this.spec, descriptor).smaller : undefined;
  }

  /** Decodes an encoded image into model input pixels (typed errors for bad input). */
  decode(bytes: Uint8Array, what: string, smallerSides?: readonly number[], greySide?: number): ReturnType<typeof decodeImage> {
    return decodeImage(bytes, { size: this.spec.inputSize, maxInputPixels: this.config.maxInputPixels, smallerSides, greySide }, what);
  }

  /** The autoencoder of `space` (loaded once), or undefined for the backbone space. */
  async autoencoder(space: SpaceInfo): Promise<ConvAutoencoder | undefined> {
    if (space.kind !== 'autoencoder') return undefined;
    if (this.autoencoderCache?.key !== space.model) {
      await this.backendInfo();
      const bytes = this.weights(space.model);
      if (!bytes) missingAutoencoder(space.model);
      this.autoencoderCache?.model.dispose();
      this.autoencoderCache = { key: space.model, model: ConvAutoencoder.fromBytes(bytes) };
    }
    return this.autoencoderCache.model;
  }

  /**
   * One backbone pass per batch of decoded images: the global vectors (not normalised), smaller
   * sides or query windows as the descriptor says, and, in an autoencoder space, the codes.
   */
  async embedPixels(pixels: Uint8Array[], options: { space: SpaceInfo; descriptor?: LibraryDescriptor; windows?: boolean; smaller?: boolean; smallerPixels?: ReadonlyArray<readonly Uint8Array[] | undefined> }): Promise<Embedding[]> {
    const { space, descriptor = this.descriptor, windows = false, smaller = !windows, smallerPixels } = options;
    return embedBatch(await this.model(), await this.autoencoder(space), pixels, this.config.batchSize, { descriptor, windows, smaller, smallerPixels });
  }

  /** A query image's description in `space` (with its windows in a `regional` library). */
  async describeQuery(bytes: Uint8Array, space: SpaceInfo, what = 'query image'): Promise<Embedding> {
    return (await this.describeQueryWithFeatures(bytes, space, what, false)).embedding;
  }

  /**
   * `describeQuery` and, with `localFeatures`, the photo's local features (greyscale at
   * `QUERY_SIDE`) from the same decode: in the query pool's workers once `startQueryPool` ran (the
   * server), else in this thread.
   */
  async describeQueryWithFeatures(bytes: Uint8Array, space: SpaceInfo, what: string, localFeatures: boolean): Promise<QueryDescription> {
    const here = () => this.describeQueryHere(bytes, space, what, localFeatures);
    if (!this.queries) return here();
    if (localFeatures) await loadOpenCv(); // verification (the caller's next step) runs OpenCV in this thread
    const autoencoder = space.kind === 'autoencoder' ? { key: space.model, weights: () => this.weights(space.model) ?? missingAutoencoder(space.model) } : undefined;
    return this.queries.describe({ bytes, name: what, localFeatures, autoencoder, here });
  }

  /**
   * Moves query photos off this thread (issue 22): `workers` embedding workers behind a queue of
   * at most `maxQueued` (src/query-pool.ts); 0 workers keeps them here, behind the same queue.
   * Once per describer (the pool it returns is shared); `dispose` stops it.
   */
  startQueryPool(options: { workers: number; maxQueued: number; localFeatures: boolean; log?: (line: string) => void }): QueryPool {
    this.queries ??= new QueryPool({
      workers: options.workers,
      maxQueued: options.maxQueued,
      init: { modelsDir: this.config.modelsDir, backbone: this.spec.id, descriptor: this.descriptor, backend: this.config.backend, maxInputPixels: this.config.maxInputPixels, localFeatures: options.localFeatures },
      prepare: () => this.ensureModel(),
      log: options.log,
    });
    return this.queries;
  }

  /** The query pool once `startQueryPool` ran (the server), else undefined. */
  get queryPool(): QueryPool | undefined {
    return this.queries;
  }

  /** The main-thread path of `describeQueryWithFeatures`. */
  private async describeQueryHere(bytes: Uint8Array, space: SpaceInfo, what: string, localFeatures: boolean): Promise<QueryDescription> {
    if (localFeatures) await loadOpenCv();
    const img = await this.decode(bytes, what, undefined, localFeatures ? QUERY_SIDE : undefined);
    const [embedding] = await this.embedPixels([img.pixels], { space, windows: true });
    return { embedding, features: img.grey && extractFeatures(img.grey, QUERY_KEYPOINTS, QUERY_PYRAMID) };
  }

  /** An image to store (an upload): decoded at the library's sides and described, with its encoded local features when asked for. */
  async describeForStore(bytes: Uint8Array, space: SpaceInfo, what: string, localFeatures = false): Promise<{ embedding: Embedding; width: number; height: number; features?: Uint8Array }> {
    if (localFeatures) await loadOpenCv();
    const img = await this.decode(bytes, what, this.smallerSides(), localFeatures ? REFERENCE_SIDE : undefined);
    const [embedding] = await this.embedPixels([img.pixels], { space, smallerPixels: [img.smaller] });
    return { embedding, width: img.width, height: img.height, features: img.grey && encodeFeatures(extractFeatures(img.grey)) };
  }


  /**
   * Descriptions of image files without storing them (for `eval`), as `descriptor` says, with
   * query windows and smaller sides when asked for. Decoding of the next batch overlaps inference
   * of the current one. Failed files get `undefined` and an error.
   */
  async describeFiles(files: readonly string[], options: { space: SpaceInfo; descriptor?: LibraryDescriptor; windows?: boolean; smaller?: boolean; onProgress?: (done: number, total: number) => void }): Promise<{ embeddings: Array<Embedding | undefined>; failed: Array<{ path: string; error: string }> }> {
    const { space, descriptor = this.descriptor, windows = false, smaller = false, onProgress } = options;
    const vectors: Array<Embedding | undefined> = new Array(files.length).fill(undefined);
    const failed: Array<{ path: string; error: string }> = [];
    const bs = this.config.batchSize;
    const sides = smaller ? this.smallerSides(descriptor) : undefined;
    const decodeBatch = (start: number) => mapLimit(files.slice(start, start + bs), DECODE_CONCURRENCY, async (f) => this.decode(await readImageFile(f, this.config.maxFileBytes), f, sides));
    let next = files.length > 0 ? decodeBatch(0) : undefined;
    for (let start = 0; start < files.length; start += bs) {
      const decoded = await next!;
      next = start + bs < files.length ? decodeBatch(start + bs) : undefined;
      const ok: number[] = [];
      decoded.forEach((r, i) => {
        if ('value' in r) ok.push(i);
        else failed.push({ path: files[start + i], error: errorText(r.error) });
      });
      const images = ok.map((i) => (decoded[i] as { value: { pixels: Uint8Array; smaller?: Uint8Array[] } }).value);
      const es = await this.embedPixels(images.map((x) => x.pixels), { space, windows, descriptor, smaller, smallerPixels: images.map((x) => x.smaller) });
      ok.forEach((i, j) => (vectors[start + i] = es[j]));
      onProgress?.(Math.min(start + bs, files.length), files.length);
    }
    return { embeddings: vectors, failed };
  }

  /**
   * An embedder producing global vectors (and smaller sides) as `descriptor` says and, for an
   * autoencoder space, codes: in this thread, or a worker pool when there is enough work for it
   * (`train` asks for `pooled`: it only needs the codes).
   */
  async embedder(space: SpaceInfo, images: number, onWarning?: (message: string) => void, descriptor = this.descriptor, localFeatures = false): Promise<Embedder> {
    const sides = this.smallerSides(descriptor);
    if (localFeatures) await loadOpenCv();
    const local = new LocalEmbedder(
      (bytes, name) => this.decode(bytes, name, sides, localFeatures ? REFERENCE_SIDE : undefined),
      (pixels, smallerPixels) => this.embedPixels(pixels, { space, descriptor, smallerPixels }),
      localFeatures ? (grey) => encodeFeatures(extractFeatures(grey)) : undefined,
    );
    // A backbone still to download comes first: the workers load it from the models folder, and
    // when the download fails the run stops with its one message instead of failing every file.
    if (images > 0 && this.config.fetchModels) await this.ensureModel();
    const workers = Math.min(this.config.workers, Math.ceil(images / this.config.batchSize));
    if (workers <= 1) return local;
    await this.ensureModel();
    try {
      const autoencoder = space.kind === 'autoencoder' ? this.weights(space.model) : undefined;
      return await WorkerPool.start(workers, { modelsDir: this.config.modelsDir, backbone: this.spec.id, descriptor, backend: this.config.backend, maxInputPixels: this.config.maxInputPixels, autoencoder: autoencoder ? new Uint8Array(autoencoder) : undefined, localFeatures });
    } catch (err) {
      onWarning?.(`could not start ${workers} embedding workers (${errorText(err)}); working in one thread`);
      return local;
    }
  }

  /** Stops the query pool and frees the model's memory. */
  async dispose(): Promise<void> {
    await this.queries?.close();
    (await this.backbone?.catch(() => undefined))?.dispose();
    this.autoencoderCache?.model.dispose();
    this.autoencoderCache = undefined;
  }
}

function missingAutoencoder(key: string): never {
  throw new StoreMismatchError(`The autoencoder ${key} of the active space is missing from the store; run \`pixdex train\` again or \`pixdex check --repair\`.`);
}

/** Reads an image file, refusing files over `maxBytes` before reading them. */
export async function readImageFile(file: string, maxBytes: number): Promise<Buffer> {
  let size: number;
  try {
    size = (await fs.stat(file)).size;
  } catch (err) {
    throw new PixdexError('UNREADABLE_FILE', `${file}: ${describeFsError(err)}`, { cause: err });
  }
  if (size > maxBytes) {
    throw new BadImageError('IMAGE_TOO_LARGE', `${file} is ${size} bytes, over the limit of ${maxBytes} bytes (maxFileBytes)`);
  }
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new PixdexError('UNREADABLE_FILE', `${file}: ${describeFsError(err)}`, { cause: err });
  }
}

/** "CODE: message" for a typed error, the message otherwise. */
export function errorText(err: unknown): string {
  if (err instanceof PixdexError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
