/**
 * The façade the CLI and the server both use: open a store, index files, search, label, remove,
 * report. It owns the LMDB store, the HNSW index and the (lazily loaded) backbone.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AnnIndex, type Hit } from './ann.ts';
import { initBackend, type BackendInfo } from './backend.ts';
import { resolveConfig, DEFAULT_BACKBONE, type PixdexConfig, type PixdexOptions } from './config.ts';
import { BadImageError, InvalidParameterError, NotFoundError, PixdexError, StoreMismatchError, intParam } from './errors.ts';
import { decodeImage } from './image/decode.ts';
import { Backbone, backboneSpec, type BackboneSpec } from './models/backbone.ts';
import { scanInputs, describeFsError, type ScannedFile } from './scan.ts';
import { SCHEMA_VERSION, Store, type ImageRecord, type JournalEntry, type SpaceInfo, type StoreMeta } from './store.ts';
import { ConvAutoencoder } from './models/autoencoder.ts';
import { embedBatch, type Embedding } from './embed.ts';
import { DEFAULT_DESCRIPTOR, libraryRegional, regionalScore, type LibraryDescriptor } from './library-descriptor.ts';

export type { Embedding };
import { dot, l2normalize } from './vector.ts';
import { expandVector } from './descriptors.ts';
import { mapLimit } from './pool.ts';
import { acceptSuggestion, classifyVector, headInfo, listSuggestions, propagate, rejectSuggestion, trainClassifier, type Classification, type ClassifyOptions, type PropagateOptions, type PropagateReport, type Suggestion } from './labels.ts';
import type { HeadOptions, HeadReport } from './models/head.ts';
import { trainAutoencoder, type TrainOptions, type TrainReport } from './train.ts';
import { LocalEmbedder, WorkerPool, type Embedder } from './workers/pool.ts';

/** Which embedding space: the backbone's pooled vector, or the library's autoencoder. */
export type SpaceKind = SpaceInfo['kind'];

/** Largest `k` a search accepts. */
export const MAX_K = 1000;

/** Summary of an index run (the CLI's `--json` output, DESIGN.md). */
export interface IndexSummary {
  added: number;
  updated: number;
  skipped: number;
  failed: number;
  removed: number;
  total: number;
  seconds: number;
  /** True when the run was stopped early (signal); what was done is kept. */
  interrupted?: boolean;
  errors: Array<{ path: string; error: string }>;
}

/** Progress of an index run, reported after every batch. */
export interface IndexProgress {
  done: number;
  total: number;
  /** Images per second over the files that needed work. */
  rate: number;
  etaSeconds: number;
  summary: IndexSummary;
}

export interface IndexOptions {
  /** Store each image's parent folder name as its label. */
  labelFromFolder?: boolean;
  onProgress?: (p: IndexProgress) => void;
  /** Told about trouble that does not stop the run (e.g. workers that could not start). */
  onWarning?: (message: string) => void;
  /** Stops the run after the batches in flight; the store stays consistent. */
  signal?: AbortSignal;
}

/** One search result (DESIGN.md CLI/HTTP contract). */
export interface SearchResult {
  id: number;
  path: string;
  /** Cosine similarity, highest first. */
  score: number;
  label: string | null;
}

export interface SearchOptions {
  /** Number of results (default: 10, 1..MAX_K). */
  k?: number;
  /** Only images with this label. */
  label?: string;
  /** Leave this id out (used for similar-by-id). */
  excludeId?: number;
  /** Only images that have a label (a kNN vote over labelled neighbours). */
  labelled?: boolean;
  /**
   * Search this space instead of the active one: `backbone` while an autoencoder space is active
   * is answered by exact search over the stored pooled vectors (default: the active space).
   */
  space?: SpaceKind;
  /**
   * Average query expansion (αQE): the query is averaged with the vectors of its `expand` best
   * hits (weighted by their similarity) and searched again; in a `regional` search the final
   * score is the better of the regional and the expanded match. 0 = off (default; 0..MAX_EXPAND).
   * Raises category retrieval (flowers17 mAP +0.03 to +0.04), lowers instance P@1: off by default.
   */
  expand?: number;
}

/** Largest `expand` of a search. */
export const MAX_EXPAND = 10;
/** αQE weight exponent: neighbour i weighs its similarity^α (α = 1 measured best with n = 2; bench/descriptors.ts). */
const QE_ALPHA = 1;

/** What `stats` reports (DESIGN.md). */
export interface Stats {
  images: number;
  labels: Record<string, number>;
  backbone: string;
  dims: number;
  /** How the library describes images (src/library-descriptor.ts). */
  descriptor: LibraryDescriptor;
  backend: string;
  backendReason: string;
  /** The active embedding space (DESIGN.md: a name). */
  space: SpaceKind;
  /** Its details: for an autoencoder, dims, when and how it was trained, final loss. */
  spaceInfo: SpaceInfo;
  index: {
    type: 'hnsw';
    metric: 'cosine';
    m: number;
    efConstruction: number;
    efSearch: number;
    dims: number;
    size: number;
    capacity: number;
    snapshotSeq: number | null;
    snapshotBytes: number | null;
    pendingChanges: number;
  };
  storeBytes: number;
  dataDir: string;
  /** Pending label suggestions. */
  suggestions: number;
  /** The trained classifier head, if any. */
  classifier: (HeadReport & { bytes: number }) | null;
}

/** One file prepared for embedding. */
interface Prepared {
  file: ScannedFile;
  sha256: string;
  /** The encoded file, present while it still needs embedding (absent for known content). */
  bytes?: Uint8Array;
  width: number;
  height: number;
  label?: string;
}

/** Files read and decoded at once while the model runs (sharp works on its own threads). */
const DECODE_CONCURRENCY = 4;
/** Candidates each query window brings to the exact regional re-ranking (at least k). */
const REGIONAL_SHORTLIST = 10;
/** HNSW beam of the window searches: they gather candidates, the re-ranking orders them. */
const REGIONAL_EF = 64;
/**
 * A window within this cosine of one already searched is not searched again (its neighbours are
 * the same): 8 searches instead of 30 on average, with the same P@1 and R@5 on the flowers17
 * instance set (bench/instance.ts); every window still takes part in the re-ranking.
 */
const REGIONAL_SAME_WINDOW = 0.97;

export class Engine {
  readonly config: PixdexConfig;
  readonly store: Store;
  readonly spec: BackboneSpec;
  private ann: AnnIndex;
  private appliedSeq: number;
  private snapshotSeq: number;
  private backbone?: Promise<Backbone>;
  private backend?: BackendInfo;
  private closed = false;
  /** The space the in-memory index holds (switches when `train` or another process switches). */
  private indexed: SpaceInfo = { kind: 'backbone' };
  private autoencoderCache?: { key: string; model: ConvAutoencoder };

  private constructor(config: PixdexConfig, store: Store, spec: BackboneSpec) {
    this.config = config;
    this.store = store;
    this.spec = spec;
    this.ann = AnnIndex.create(spec.dims, config.ann);
    this.appliedSeq = 0;
    this.snapshotSeq = 0;
  }

  /**
   * Opens (or creates) the store in `dataDir` and loads its index; the model loads on first use.
   * `create: false`: a missing store is a `NotFoundError` and nothing is created on disk.
   */
  static async open(options: PixdexOptions = {}, { create = true }: { create?: boolean } = {}): Promise<Engine> {
    const config = resolveConfig(options);
    const store = Store.open(config.dataDir, { create });
    try {
      const meta = store.getMeta();
      if (meta && meta.schema !== SCHEMA_VERSION) {
        throw new StoreMismatchError(`The store in ${config.dataDir} has schema ${meta.schema}; this pixdex reads schema ${SCHEMA_VERSION}. Use a new --data folder and re-index.`);
      }
      const id = config.backbone ?? meta?.backbone ?? DEFAULT_BACKBONE;
      const spec = backboneSpec(id);
      if (meta && meta.backbone !== spec.id) {
        throw new StoreMismatchError(
          `The store in ${config.dataDir} was built with backbone ${meta.backbone} (${meta.dims}-d), not ${spec.id}. ` +
            `Open it without --backbone (or with --backbone ${meta.backbone}), or use a new --data folder for ${spec.id}.`,
        );
      }
      const descriptor = config.descriptor ?? (meta ? store.getDescriptor() : DEFAULT_DESCRIPTOR);
      if (meta && store.getDescriptor() !== descriptor) {
        throw new StoreMismatchError(
          `The store in ${config.dataDir} was built with descriptor ${store.getDescriptor()}, not ${descriptor}. ` +
            `Open it without --descriptor (or with --descriptor ${store.getDescriptor()}), or use a new --data folder for ${descriptor}.`,
        );
      }
      if (!meta) {
        store.write(() => store.putMeta({ schema: SCHEMA_VERSION, backbone: spec.id, dims: spec.dims, space: { kind: 'backbone' }, descriptor, nextId: 1, seq: 0, createdAt: Date.now() }));
      }
      const engine = new Engine({ ...config, backbone: spec.id, descriptor }, store, spec);
      engine.loadIndex();
      return engine;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  // ---------------------------------------------------------------- index lifecycle

  /** Loads the HNSW snapshot and replays later changes, or rebuilds from stored vectors. */
  private loadIndex(): void {
    const space = this.store.getSpace();
    this.indexed = space;
    const dims = spaceDims(space, this.spec);
    const snap = this.store.getSnapshotMeta();
    const usable = snap && snap.dims === dims && (snap.space ?? 'backbone') === spaceKey(space);
    // Straight from LMDB's memory map into hnswlib's reader: no Buffer of the whole index.
    let ann: AnnIndex | undefined;
    try {
      ann = usable ? AnnIndex.restore((file) => this.store.loadSnapshotToFile(snap, file), dims, this.config.ann, snap.live) : undefined;
    } catch (err) {
      // Truncated, corrupt, or of another M (`ann.m` changed): AnnIndex checked it before hnswlib
      // saw it, and the vectors in LMDB are the source of truth.
      if (!(err instanceof PixdexError && err.code === 'SNAPSHOT_UNUSABLE')) throw err;
      console.error(`pixdex: warning: the HNSW snapshot could not be used (${err.message}); rebuilt from the stored vectors`);
    }
    if (snap && ann) {
      this.ann = ann;
      this.appliedSeq = snap.seq;
      this.snapshotSeq = snap.seq;
      this.replayJournal();
    } else {
      this.rebuildIndex();
    }
  }

  /** Rebuilds the index from the vectors in LMDB (the source of truth) for the active space. */
  rebuildIndex(): void {
    const meta = this.meta();
    const space = this.store.getSpace();
    this.ann = this.buildIndex(space);
    this.indexed = space;
    this.appliedSeq = meta.seq;
    this.snapshotSeq = 0;
  }

  /** A fresh HNSW index over every stored image's vector in `space`. */
  private buildIndex(space: SpaceInfo): AnnIndex {
    const count = this.store.images.getCount();
    const ann = AnnIndex.create(spaceDims(space, this.spec), this.config.ann, Math.ceil(count * 1.25));
    for (const id of this.store.images.getKeys()) {
      const v = this.store.getSpaceVector(space, id);
      if (v) ann.add(id, l2normalize(v));
    }
    return ann;
  }

  /** Applies journal entries written after the last one applied (by this or another process). */
  private replayJournal(): void {
    const snap = this.store.getSnapshotMeta();
    if (snap && snap.seq > this.appliedSeq) {
      // Another process saved a snapshot and dropped journal entries this one had not seen.
      this.loadIndex();
      return;
    }
    for (const { key, value } of this.store.journalAfter(this.appliedSeq)) {
      this.applyEntry(value);
      this.appliedSeq = key;
    }
    this.appliedSeq = Math.max(this.appliedSeq, this.meta().seq);
  }

  private applyEntry(e: JournalEntry): void {
    if (e.op === 'remove') {
      this.ann.remove(e.id);
      return;
    }
    const v = this.store.getSpaceVector(this.indexed, e.id);
    if (v && this.store.images.doesExist(e.id)) this.ann.add(e.id, l2normalize(v));
  }

  /** The HNSW index searches use, as loaded (snapshot + journal) or rebuilt; read-only (`pixdex check`). */
  get annIndex(): AnnIndex {
    return this.ann;
  }

  /** Catches up with changes made by other processes sharing the store (cheap when none). */
  refresh(): void {
    if (spaceKey(this.store.getSpace()) !== spaceKey(this.indexed)) this.loadIndex(); // switched by `train`
    else if (this.meta().seq !== this.appliedSeq) this.replayJournal();
  }

  /**
   * Saves the HNSW index into LMDB with the journal position it covers, so the next open
   * loads it instead of rebuilding. Retries if another process wrote in between.
   */
  snapshot(): void {
    for (let attempt = 0; attempt < 5; attempt++) {
      this.refresh();
      const seq = this.appliedSeq;
      if (seq === this.snapshotSeq && this.store.getSnapshotMeta()) return;
      const bytes = this.ann.toBytes();
      const saved = this.store.write(() => {
        if (this.meta().seq !== seq) return false;
        if (spaceKey(this.store.getSpace()) !== spaceKey(this.indexed)) return false;
        this.store.saveSnapshot(bytes, { seq, space: spaceKey(this.indexed), live: this.ann.size, dims: this.ann.dims, m: this.config.ann.m, efConstruction: this.config.ann.efConstruction });
        return true;
      });
      if (saved) {
        this.snapshotSeq = seq;
        return;
      }
    }
  }

  private meta(): StoreMeta {
    return this.store.getMeta()!;
  }

  // ---------------------------------------------------------------- model

  /** The backend running the model (initialised on first call). */
  async backendInfo(): Promise<BackendInfo> {
    this.backend ??= await initBackend(this.config.backend);
    return this.backend;
  }

  /** The backbone, loaded once and warmed up. */
  model(): Promise<Backbone> {
    this.backbone ??= (async () => {
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

  /** Decodes an encoded image into model input pixels (typed errors for bad input). */
  decode(bytes: Uint8Array, what: string, smallerSides?: readonly number[]): ReturnType<typeof decodeImage> {
    return decodeImage(bytes, { size: this.spec.inputSize, maxInputPixels: this.config.maxInputPixels, smallerSides }, what);
  }

  /** The smaller database sides images are decoded at for `descriptor` (a `regional` library's), or undefined. */
  smallerSides(descriptor = this.descriptor): number[] | undefined {
    return descriptor === 'regional' ? libraryRegional(this.spec).smaller : undefined;
  }

  /** The active embedding space. */
  space(): SpaceInfo {
    return this.store.getSpace();
  }

  /** The autoencoder of `space` (loaded once from LMDB `models`), or undefined for the backbone space. */
  async autoencoder(space: SpaceInfo = this.space()): Promise<ConvAutoencoder | undefined> {
    if (space.kind !== 'autoencoder') return undefined;
    if (this.autoencoderCache?.key !== space.model) {
      await this.backendInfo();
      const bytes = this.store.models.getBinary(space.model);
      if (!bytes) throw new StoreMismatchError(`The autoencoder ${space.model} of the active space is missing from the store; run \`pixdex train\` again or \`pixdex check --repair\`.`);
      this.autoencoderCache?.model.dispose();
      this.autoencoderCache = { key: space.model, model: ConvAutoencoder.fromBytes(bytes) };
    }
    return this.autoencoderCache.model;
  }

  /**
   * One backbone pass per batch of decoded images: the pooled vectors (not normalised) and, when
   * `space` is an autoencoder space, its codes from the same pass's feature maps.
   */
  async embedPixels(pixels: Uint8Array[], options: { space?: SpaceInfo; descriptor?: LibraryDescriptor; windows?: boolean; smaller?: boolean; smallerPixels?: ReadonlyArray<readonly Uint8Array[] | undefined> } = {}): Promise<Embedding[]> {
    const { space = this.space(), descriptor = this.descriptor, windows = false, smaller = !windows, smallerPixels } = options;
    return embedBatch(await this.model(), await this.autoencoder(space), pixels, this.config.batchSize, { descriptor, windows, smaller, smallerPixels });
  }

  /** The embedding of an encoded image in the active space (with its query windows in a `regional` library). */
  async embedImage(bytes: Uint8Array, what = 'image'): Promise<Embedding> {
    const img = await this.decode(bytes, what);
    const [e] = await this.embedPixels([img.pixels], { windows: true });
    return e;
  }

  /** How this library describes images (`meta.descriptor`). */
  get descriptor(): LibraryDescriptor {
    return this.config.descriptor ?? 'pooled';
  }

  /** The vector an indexed image is searched by in the active space. */
  spaceVectorOf(id: number): Float32Array | undefined {
    return this.store.getSpaceVector(this.space(), id);
  }

  // ---------------------------------------------------------------- indexing

  /** Indexes files and folders: incremental, batched, resumable; bad files are reported and skipped. */
  async index(inputs: readonly string[], options: IndexOptions = {}): Promise<IndexSummary> {
    const started = performance.now();
    const summary: IndexSummary = { added: 0, updated: 0, skipped: 0, failed: 0, removed: 0, total: 0, seconds: 0, errors: [] };
    const fail = (p: string, error: string): void => {
      summary.failed++;
      summary.errors.push({ path: p, error });
    };
    const scan = await scanInputs(inputs, this.config.extensions);
    for (const e of scan.errors) fail(e.path, `UNREADABLE_FILE: ${e.error}`); // like every error: "CODE: message"
    summary.total = scan.files.length;

    const todo: ScannedFile[] = [];
    for (const file of scan.files) {
      const label = options.labelFromFolder ? folderLabel(file.path) : undefined;
      const id = this.store.paths.get(file.path);
      const rec = id === undefined ? undefined : this.store.images.get(id);
      if (rec && rec.bytes === file.size && rec.mtimeMs === file.mtimeMs) {
        if (label !== undefined && rec.label !== label && rec.path === file.path) {
          this.setLabelSync(id!, label);
          summary.updated++;
        } else {
          summary.skipped++;
        }
      } else {
        todo.push(file);
      }
    }

    const report = (done: number): void => {
      const elapsed = (performance.now() - started) / 1000;
      const rate = done / Math.max(elapsed, 1e-3);
      options.onProgress?.({ done: summary.total - todo.length + done, total: summary.total, rate, etaSeconds: rate > 0 ? (todo.length - done) / rate : 0, summary });
    };

    const batchSize = this.config.batchSize;
    const batches: ScannedFile[][] = [];
    for (let i = 0; i < todo.length; i += batchSize) batches.push(todo.slice(i, i + batchSize));
    let sinceSnapshot = 0;
    let done = 0;
    const embedder = await this.embedderFor(todo.length, options);
    try {
      const inflight = new Set<Promise<void>>();
      for (const batch of batches) {
        if (options.signal?.aborted) break;
        const read = await this.readBatch(batch, options, fail);
        const task = (async () => {
          const counts = await this.embedAndWrite(read, embedder, fail);
          summary.added += counts.added;
          summary.updated += counts.updated;
          summary.skipped += counts.skipped;
          sinceSnapshot += counts.added + counts.updated;
          done += batch.length;
          report(done);
          if (sinceSnapshot >= this.config.snapshotEvery) {
            this.snapshot();
            sinceSnapshot = 0;
          }
        })().catch((err) => {
          for (const p of read) fail(p.file.path, errorText(err));
        });
        inflight.add(task);
        void task.finally(() => inflight.delete(task));
        if (inflight.size >= embedder.parallelism) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    } finally {
      await embedder.close();
    }
    if (options.signal?.aborted && done < todo.length) summary.interrupted = true;
    if (!summary.interrupted) summary.removed = await this.pruneMissing(scan.roots, scan.files);
    this.snapshot();
    summary.seconds = Math.round((performance.now() - started) / 10) / 100;
    return summary;
  }

  /** In-thread decoding and inference, or a worker pool when there is enough work for it. */
  private async embedderFor(images: number, options: IndexOptions): Promise<Embedder> {
    return this.embedderForSpace(this.space(), images, options.onWarning);
  }

  /**
   * An embedder producing global vectors (and smaller sides) as `descriptor` says and, for an
   * autoencoder space, codes (`train` asks for `pooled`: it only needs the codes).
   */
  async embedderForSpace(space: SpaceInfo, images: number, onWarning?: (message: string) => void, descriptor = this.descriptor): Promise<Embedder> {
    const sides = this.smallerSides(descriptor);
    const local = new LocalEmbedder((bytes, name) => this.decode(bytes, name, sides), (pixels, smallerPixels) => this.embedPixels(pixels, { space, descriptor, smallerPixels }));
    const workers = Math.min(this.config.workers, Math.ceil(images / this.config.batchSize));
    if (workers <= 1) return local;
    try {
      const autoencoder = space.kind === 'autoencoder' ? this.store.models.getBinary(space.model) : undefined;
      return await WorkerPool.start(workers, { modelsDir: this.config.modelsDir, backbone: this.spec.id, descriptor, backend: this.config.backend, maxInputPixels: this.config.maxInputPixels, autoencoder: autoencoder ? new Uint8Array(autoencoder) : undefined });
    } catch (err) {
      onWarning?.(`could not start ${workers} embedding workers (${errorText(err)}); working in one thread`);
      return local;
    }
  }

  /** Reads and hashes one batch (no decoding); unreadable files go to `fail`. */
  private async readBatch(files: ScannedFile[], options: IndexOptions, fail: (p: string, e: string) => void): Promise<Prepared[]> {
    const results = await mapLimit(files, DECODE_CONCURRENCY, (f) => this.readFile(f, options));
    const out: Prepared[] = [];
    results.forEach((r, i) => {
      if ('value' in r) out.push(r.value);
      else fail(files[i].path, errorText(r.error));
    });
    return out;
  }

  /** Embeds what needs it, reports bad images, and writes the batch. */
  private async embedAndWrite(read: Prepared[], embedder: Embedder, fail: (p: string, e: string) => void, retried = false): Promise<{ added: number; updated: number; skipped: number }> {
    const needed = read.filter((p) => p.bytes);
    const results = needed.length > 0 ? await embedder.embed(needed.map((p) => ({ name: p.file.path, bytes: p.bytes! }))) : [];
    const embedded: Prepared[] = [];
    const vectors: Embedding[] = [];
    const failed = new Set<Prepared>();
    results.forEach((r, i) => {
      const p = needed[i];
      p.bytes = undefined;
      if (r.ok) {
        p.width = r.width;
        p.height = r.height;
        embedded.push(p);
        vectors.push({ pooled: r.vector, code: r.code, scales: r.scales });
      } else {
        failed.add(p);
        fail(p.file.path, `${r.code}: ${r.message}`);
      }
    });
    const written = this.writeBatch(read.filter((p) => !failed.has(p)), embedded, vectors);
    const counts = { added: written.added, updated: written.updated, skipped: written.skipped };
    if (written.retry.length > 0 && !retried) {
      const again = await this.embedAndWrite(await this.rereadBatch(written.retry, fail), embedder, fail, true);
      counts.added += again.added;
      counts.updated += again.updated;
      counts.skipped += again.skipped;
    }
    return counts;
  }

  /** Reads files of a batch again with their bytes (content that has to be embedded after all). */
  private async rereadBatch(prepared: Prepared[], fail: (p: string, e: string) => void): Promise<Prepared[]> {
    const out: Prepared[] = [];
    for (const p of prepared) {
      try {
        const bytes = await readImageFile(p.file.path, this.config.maxFileBytes);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        out.push({ ...p, file: { ...p.file, size: bytes.length }, sha256, bytes });
      } catch (err) {
        fail(p.file.path, errorText(err));
      }
    }
    return out;
  }

  /**
   * Vectors of image files in `space` without indexing them (for `eval`): decoding of the next
   * batch overlaps inference of the current one. Failed files get `undefined` and an error.
   */
  async embedFiles(files: readonly string[], onProgress?: (done: number, total: number) => void, space: SpaceInfo = this.space()): Promise<{ vectors: Array<Float32Array | undefined>; failed: Array<{ path: string; error: string }> }> {
    const { embeddings, failed } = await this.describeFiles(files, { space, descriptor: this.descriptor, onProgress });
    return { vectors: embeddings.map((e) => e && (e.code ?? e.pooled)), failed };
  }

  /**
   * Embeddings of image files without indexing them (for `eval`), as `descriptor` describes them
   * (default: the library's), with query windows and smaller sides when asked for. Decoding of
   * the next batch overlaps inference of the current one. Failed files get `undefined` and an error.
   */
  async describeFiles(files: readonly string[], options: { space?: SpaceInfo; descriptor?: LibraryDescriptor; windows?: boolean; smaller?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<{ embeddings: Array<Embedding | undefined>; failed: Array<{ path: string; error: string }> }> {
    const { space = this.space(), descriptor = this.descriptor, windows = false, smaller = false, onProgress } = options;
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

  private async readFile(file: ScannedFile, options: IndexOptions): Promise<Prepared> {
    const bytes = await readImageFile(file.path, this.config.maxFileBytes);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const label = options.labelFromFolder ? folderLabel(file.path) : undefined;
    const prepared: Prepared = { file: { ...file, size: bytes.length }, sha256, width: 0, height: 0, label };
    const sameContent = this.store.hashes.get(sha256);
    if (sameContent === undefined || !this.store.images.doesExist(sameContent)) prepared.bytes = bytes;
    return prepared; // identical content is stored once: no decode, no embedding
  }

  /**
   * Writes one batch in one transaction (records, vectors, journal), then updates the index.
   * Content is looked up again inside the transaction: two identical files in one batch, in two
   * batches in flight at once or from two workers are stored once, the later paths as aliases.
   */
  private writeBatch(prepared: Prepared[], embedded: Prepared[], vectors: Embedding[]): { added: number; updated: number; skipped: number; ids: Map<Prepared, number>; retry: Prepared[] } {
    const counts = { added: 0, updated: 0, skipped: 0, ids: new Map<Prepared, number>(), retry: [] as Prepared[] };
    const vectorOf = new Map(embedded.map((p, i) => [p, vectors[i]]));
    const { store } = this;
    store.write(() => {
      const meta = this.meta();
      const space = store.getSpace();
      const journal: JournalEntry[] = [];
      for (const p of prepared) {
        const filePath = p.file.path;
        const curId = store.paths.get(filePath);
        const cur = curId === undefined ? undefined : store.images.get(curId);
        const sameId = store.hashes.get(p.sha256);
        const same = sameId === undefined ? undefined : store.images.get(sameId);
        if (same && sameId !== undefined) {
          // This content is stored already (by an earlier run, or earlier in this one).
          if (sameId === curId) {
            if (same.path === filePath) store.images.putSync(sameId, { ...same, mtimeMs: p.file.mtimeMs, bytes: p.file.size });
          } else {
            if (curId !== undefined) this.detachPath(filePath, curId, meta, journal);
            store.paths.putSync(filePath, sameId); // a duplicate file: an alias of the stored image
            if (cur) counts.updated++;
          }
          if (!(cur && sameId !== curId)) counts.skipped++;
          counts.ids.set(p, sameId);
          continue;
        }
        const e = vectorOf.get(p);
        const v = e?.pooled;
        if (!v) {
          // Its content was stored when the file was read and is gone since (removed, or replaced
          // earlier in this batch): it needs embedding after all.
          counts.retry.push(p);
          continue;
        }
        const label = p.label ?? (cur?.path === filePath ? cur.label : undefined);
        const rec: ImageRecord = { path: filePath, sha256: p.sha256, bytes: p.file.size, width: p.width, height: p.height, mtimeMs: p.file.mtimeMs, addedAt: cur?.addedAt ?? Date.now() };
        if (label !== undefined) rec.label = label;
        let id: number;
        if (cur && curId !== undefined && cur.path === filePath && this.aliasesOf(curId, cur.path).length === 0) {
          id = curId; // changed content of a file with no identical copies: re-embedded in place
          if (store.hashes.get(cur.sha256) === id) store.hashes.removeSync(cur.sha256);
          store.countLabel(cur.label, -1);
          counts.updated++;
        } else {
          if (curId !== undefined) this.detachPath(filePath, curId, meta, journal);
          id = meta.nextId++;
          if (cur) counts.updated++;
          else counts.added++;
        }
        store.images.putSync(id, rec);
        store.paths.putSync(rec.path, id);
        store.hashes.putSync(rec.sha256, id);
        store.putVector(id, v);
        if (e?.scales) store.putScales(id, e.scales);
        else store.scales.removeSync(id);
        if (space.kind === 'autoencoder') {
          // Embedded before a switch of space, a batch has no code for the new space: `train`
          // embeds it before switching, so only a race with a concurrent `train` lands here.
          if (e?.code && e.code.length === space.dims) store.putCode(space.codes, id, e.code);
        }
        store.countLabel(rec.label, +1);
        journal.push({ op: 'add', id });
        counts.ids.set(p, id);
      }
      store.appendJournal(meta, journal);
      store.putMeta(meta);
    });
    this.refresh();
    return counts;
  }

  /** The other paths (aliases: identical files) that point to image `id`, sorted; `primary` excluded. */
  private aliasesOf(id: number, primary: string): string[] {
    const out: string[] = [];
    for (const { key, value } of this.store.paths.getRange()) if (value === id && key !== primary) out.push(key);
    return out.sort();
  }

  /**
   * Inside a write: `filePath` no longer shows image `id` (its file is gone, removed, or now holds
   * other content). An alias is just dropped; the image's own path hands the record over to its
   * first alias, and an image left with no path at all is removed.
   */
  private detachPath(filePath: string, id: number, meta: StoreMeta, journal: JournalEntry[]): void {
    const { store } = this;
    const rec = store.images.get(id);
    if (store.paths.get(filePath) === id) store.paths.removeSync(filePath);
    if (!rec || rec.path !== filePath) return;
    const [heir] = this.aliasesOf(id, filePath);
    if (heir !== undefined) store.images.putSync(id, { ...rec, path: heir });
    else this.deleteImage(id, meta, journal);
  }

  /** Inside a write: deletes image `id` with everything stored for it and every path to it. */
  private deleteImage(id: number, meta: StoreMeta, journal: JournalEntry[]): boolean {
    const { store } = this;
    const rec = store.images.get(id);
    if (!rec) return false;
    for (const alias of this.aliasesOf(id, rec.path)) store.paths.removeSync(alias);
    store.images.removeSync(id);
    if (store.paths.get(rec.path) === id) store.paths.removeSync(rec.path);
    if (store.hashes.get(rec.sha256) === id) store.hashes.removeSync(rec.sha256);
    store.vectors.removeSync(id);
    store.scales.removeSync(id);
    store.codes.removeSync(id);
    store.codes2.removeSync(id); // either table may be the active space's
    store.suggestions.removeSync(id);
    store.countLabel(rec.label, -1);
    journal.push({ op: 'remove', id });
    return true;
  }

  /** Removes images whose files were under a scanned folder and are gone from disk. */
  private async pruneMissing(roots: string[], seen: ScannedFile[]): Promise<number> {
    const present = new Set(seen.map((f) => f.path));
    const gone: string[] = [];
    for (const root of roots) {
      const prefix = root.endsWith(path.sep) ? root : root + path.sep;
      for (const key of this.store.paths.getKeys({ start: prefix })) {
        if (!key.startsWith(prefix)) break;
        if (present.has(key)) continue;
        try {
          await fs.access(key);
        } catch {
          gone.push(key);
        }
      }
    }
    let removed = 0;
    for (const p of gone) if (this.removePath(p)) removed++;
    return removed;
  }

  /** Adds one encoded image (an upload). Identical content returns the existing id. */
  async add(bytes: Uint8Array, options: { path?: string; label?: string } = {}): Promise<{ id: number; created: boolean }> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const existing = this.store.hashes.get(sha256);
    if (existing !== undefined && this.store.images.doesExist(existing)) {
      if (options.label !== undefined) this.label(existing, options.label);
      return { id: existing, created: false };
    }
    const label = options.label === undefined ? undefined : checkLabel(options.label);
    const img = await this.decode(bytes, options.path ?? 'upload', this.smallerSides());
    const [v] = await this.embedPixels([img.pixels], { smallerPixels: [img.smaller] });
    const file: ScannedFile = { path: options.path ?? `upload:${sha256}`, size: bytes.length, mtimeMs: 0 };
    const p: Prepared = { file, sha256, width: img.width, height: img.height, label };
    const written = this.writeBatch([p], [p], [v]);
    const id = written.ids.get(p);
    if (id === undefined) throw new PixdexError('STORE_CONFLICT', 'The image was removed by another request while it was being added; send it again.');
    return { id, created: written.added === 1 };
  }

  // ---------------------------------------------------------------- queries

  /** Nearest images to an encoded query image. */
  async search(query: Uint8Array, options: SearchOptions = {}): Promise<SearchResult[]> {
    const e = await this.embedImage(query, 'query image');
    if (e.windows && (options.space === 'backbone' || this.space().kind === 'backbone')) return this.searchWindows(e.windows, options);
    return this.searchVector(options.space === 'backbone' ? e.pooled : e.code ?? e.pooled, options);
  }

  /**
   * Regional matching (a `regional` library, backbone space): each query window (but those
   * nearly the same as one already searched) finds its `REGIONAL_SHORTLIST` nearest global
   * vectors through HNSW, and the union is re-ranked exactly
   * by the best window × database-side match (src/library-descriptor.ts). The full window is the
   * global query, so an ordinary query keeps its plain answer among the candidates.
   */
  private searchWindows(windows: Float32Array, options: SearchOptions): SearchResult[] {
    const k = intParam('k', options.k ?? 10, 1, MAX_K);
    this.refresh();
    const d = this.spec.dims;
    const plan = libraryRegional(this.spec);
    const filter = this.searchFilter(options);
    const shortlist = Math.max(k, REGIONAL_SHORTLIST);
    const exact = this.space().kind !== 'backbone'; // `--space backbone` while an autoencoder space is active: no HNSW over `vectors`
    const candidates = new Set<number>();
    const searched: Float32Array[] = [];
    for (let r = plan.windows - 1; r >= 0; r--) { // the full window (the global query) first, then smaller ones
      const w = windows.subarray(r * d, (r + 1) * d);
      if (searched.some((x) => dot(x, w) >= REGIONAL_SAME_WINDOW)) continue; // it would bring the same candidates
      searched.push(w);
      const hits = exact ? this.exactSearch(w, { kind: 'backbone' }, shortlist, filter) : this.ann.search(w, shortlist, filter, REGIONAL_EF);
      for (const h of hits) candidates.add(h.id);
    }
    const globals = new Map<number, Float32Array>();
    const scored = new Map<number, number>();
    const score = (id: number): void => {
      if (scored.has(id)) return;
      const g = this.store.getVector(id);
      if (!g) return;
      const u = l2normalize(g);
      globals.set(id, u);
      scored.set(id, regionalScore(plan, windows, u, this.store.getScales(id), d));
    };
    for (const id of candidates) score(id);
    const ranked = (): Hit[] => [...scored].map(([id, s]) => ({ id, score: s })).sort((a, b) => b.score - a.score || a.id - b.id);
    const expand = intParam('expand', options.expand ?? 0, 0, MAX_EXPAND);
    if (expand > 0 && scored.size > 0) {
      // αQE on the global vectors: the full window (the query's global vector) averaged with the best regional hits.
      const top = ranked().slice(0, expand);
      const q = expandVector(windows.subarray((plan.windows - 1) * d, plan.windows * d), top.map((h) => globals.get(h.id)!), top.map((h) => h.score), QE_ALPHA);
      const more = exact ? this.exactSearch(q, { kind: 'backbone' }, shortlist, filter) : this.ann.search(q, shortlist, filter, REGIONAL_EF);
      for (const h of more) score(h.id);
      for (const [id, u] of globals) scored.set(id, Math.max(scored.get(id)!, dot(q, u)));
    }
    return this.toResults(ranked().slice(0, k));
  }

  /** The id filter of a search's options (label, labelled, excluded id), or undefined for none. */
  private searchFilter(options: SearchOptions): ((id: number) => boolean) | undefined {
    const { label, excludeId, labelled } = options;
    if (label === undefined && excludeId === undefined && !labelled) return undefined;
    return (id) => {
      if (id === excludeId) return false;
      if (label === undefined && !labelled) return true;
      const l = this.store.images.get(id)?.label;
      return label === undefined ? l !== undefined : l === label;
    };
  }

  /** Nearest images to an indexed image (itself excluded). */
  similar(id: number, options: SearchOptions = {}): SearchResult[] {
    const v = options.space === 'backbone' ? this.store.getVector(id) : this.spaceVectorOf(id);
    if (!v || !this.store.images.doesExist(id)) throw new NotFoundError(`No image with id ${id}.`);
    return this.searchVector(v, { ...options, excludeId: id });
  }

  /** Nearest images to a (not necessarily normalised) vector of the active space. */
  searchVector(vector: Float32Array, options: SearchOptions = {}): SearchResult[] {
    const k = intParam('k', options.k ?? 10, 1, MAX_K);
    this.refresh();
    const filter = this.searchFilter(options);
    const expand = intParam('expand', options.expand ?? 0, 0, MAX_EXPAND);
    const active = this.space();
    let space: SpaceInfo = active;
    let run = (q: Float32Array, n: number): Hit[] => this.ann.search(q, n, filter);
    if (options.space !== undefined && options.space !== active.kind) {
      if (options.space === 'autoencoder') throw new InvalidParameterError('The library has no autoencoder space yet: run `pixdex train` first, or use --space backbone.');
      space = { kind: 'backbone' };
      run = (q, n) => this.exactSearch(q, { kind: 'backbone' }, n, filter);
    }
    const query = l2normalize(vector);
    const hits = run(query, Math.max(k, expand));
    if (expand === 0 || hits.length === 0) return this.toResults(hits.slice(0, k));
    const top = hits.slice(0, expand).flatMap((h) => {
      const v = this.store.getSpaceVector(space, h.id);
      return v ? [{ v: l2normalize(v), score: h.score }] : [];
    });
    return this.toResults(run(expandVector(query, top.map((t) => t.v), top.map((t) => t.score), QE_ALPHA), k));
  }

  /** Exact cosine search over every stored vector of `space` (for a space without an index). */
  private exactSearch(query: Float32Array, space: SpaceInfo, k: number, filter?: (id: number) => boolean): Hit[] {
    const hits: Hit[] = [];
    for (const id of this.store.images.getKeys()) {
      if (filter && !filter(id)) continue;
      const v = this.store.getSpaceVector(space, id);
      if (!v) continue;
      const u = l2normalize(v);
      let s = 0;
      for (let i = 0; i < u.length; i++) s += u[i] * query[i];
      hits.push({ id, score: s });
    }
    return hits.sort((a, b) => b.score - a.score || a.id - b.id).slice(0, k);
  }

  private toResults(hits: Hit[]): SearchResult[] {
    const out: SearchResult[] = [];
    for (const h of hits) {
      const rec = this.store.images.get(h.id);
      if (rec) out.push({ id: h.id, path: rec.path, score: Math.min(1, h.score), label: rec.label ?? null });
    }
    return out;
  }

  // ---------------------------------------------------------------- records

  /** Resolves a CLI/HTTP reference (numeric id or file path) to an id, or throws NotFoundError. */
  resolve(ref: string | number): number {
    if (typeof ref === 'number' || /^\d+$/.test(ref)) {
      const id = Number(ref);
      if (this.store.images.doesExist(id)) return id;
      if (typeof ref === 'number') throw new NotFoundError(`No image with id ${id}.`);
    }
    const id = this.store.paths.get(path.resolve(String(ref)));
    if (id === undefined || !this.store.images.doesExist(id)) {
      throw new NotFoundError(`No indexed image with id or path ${JSON.stringify(ref)}. Run \`pixdex search\` or \`pixdex stats\` to see what is indexed.`);
    }
    return id;
  }

  /** The record of an indexed image. */
  get(id: number): ImageRecord & { id: number } {
    const rec = this.store.images.get(id);
    if (!rec) throw new NotFoundError(`No image with id ${id}.`);
    return { id, ...rec };
  }

  /** Removes an image by id or path; its slot in the index is freed for reuse. */
  remove(ref: string | number): number {
    const id = this.resolve(ref);
    this.removeId(id);
    return id;
  }

  /** A file gone from disk: its alias is dropped, or its image removed (or handed to an alias). True if an image went. */
  private removePath(p: string): boolean {
    const id = this.store.paths.get(p);
    if (id === undefined) return false;
    const removed = this.store.write(() => {
      const meta = this.meta();
      const journal: JournalEntry[] = [];
      this.detachPath(p, id, meta, journal);
      if (journal.length === 0) return false;
      this.store.appendJournal(meta, journal);
      this.store.putMeta(meta);
      return true;
    });
    this.refresh();
    return removed;
  }

  /** Removes image `id` and every path that shows it (identical files included). */
  private removeId(id: number): boolean {
    const removed = this.store.write(() => {
      const meta = this.meta();
      const journal: JournalEntry[] = [];
      if (!this.deleteImage(id, meta, journal)) return false;
      this.store.appendJournal(meta, journal);
      this.store.putMeta(meta);
      return true;
    });
    this.refresh();
    return removed;
  }

  /** Sets (or with null, clears) the label of an image. */
  label(ref: string | number, label: string | null): ImageRecord & { id: number } {
    const id = this.resolve(ref);
    this.setLabelSync(id, label === null ? undefined : checkLabel(label));
    return this.get(id);
  }

  private setLabelSync(id: number, label: string | undefined): void {
    const { store } = this;
    store.write(() => {
      const rec = store.images.get(id);
      if (!rec || rec.label === label) return;
      store.countLabel(rec.label, -1);
      const next = { ...rec };
      if (label === undefined) delete next.label;
      else next.label = label;
      store.images.putSync(id, next);
      store.countLabel(label, +1);
      if (label !== undefined) store.suggestions.removeSync(id); // a person's label settles it
    });
  }

  /** Labels with their image counts, most frequent first. */
  labels(): Array<{ label: string; count: number }> {
    const out = [...this.store.labels.getRange()].map(({ key, value }) => ({ label: key, count: value }));
    return out.sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : 1));
  }

  // ---------------------------------------------------------------- labelling (src/labels.ts)

  /** Classifies an encoded image by its labelled neighbours (kNN), the trained head, or both. */
  async classify(query: Uint8Array, options: ClassifyOptions = {}): Promise<Classification> {
    const e = await this.embedImage(query, 'query image');
    return classifyVector(this, e.code ?? e.pooled, { ...options, pooled: e.pooled });
  }

  /** Classifies an indexed image (itself left out of the neighbours). */
  classifyId(id: number, options: ClassifyOptions = {}): Classification {
    const v = this.spaceVectorOf(id);
    if (!v || !this.store.images.doesExist(id)) throw new NotFoundError(`No image with id ${id}.`);
    return classifyVector(this, v, { ...options, excludeId: id, pooled: this.store.getVector(id) });
  }

  /** Suggests labels for unlabelled images from their labelled neighbours (see labels.ts). */
  propagate(options: PropagateOptions = {}): PropagateReport {
    return propagate(this, options);
  }

  /** Pending label suggestions, most confident first. */
  suggestions(): Suggestion[] {
    return listSuggestions(this);
  }

  acceptSuggestion(id: number): { id: number; label: string } {
    return acceptSuggestion(this, id);
  }

  rejectSuggestion(id: number): { id: number; rejected: string } {
    return rejectSuggestion(this, id);
  }

  /** Trains and stores the softmax head on the embeddings of labelled images. */
  trainClassifier(options: Partial<HeadOptions> = {}, onEpoch?: (epoch: number, loss: number, valLoss: number) => void): Promise<HeadReport> {
    return trainClassifier(this, options, onEpoch);
  }

  /** Trains the library's autoencoder, re-embeds everything and switches search to it (src/train.ts). */
  train(options: TrainOptions = {}): Promise<TrainReport> {
    return trainAutoencoder(this, options);
  }

  /** The space named by a CLI/HTTP `space` option, checked against what exists (default: active). */
  spaceFor(kind?: SpaceKind): SpaceInfo {
    const active = this.space();
    if (kind === undefined || kind === active.kind) return active;
    if (kind === 'backbone') return { kind: 'backbone' };
    throw new InvalidParameterError('The library has no autoencoder space yet: run `pixdex train` first, or use --space backbone.');
  }

  /** Store, model and index facts (DESIGN.md `stats`). */
  async stats(): Promise<Stats> {
    this.refresh();
    const backend = await this.backendInfo();
    const snap = this.store.getSnapshotMeta();
    return {
      images: this.store.images.getCount(),
      labels: Object.fromEntries(this.labels().map((l) => [l.label, l.count])),
      backbone: this.spec.id,
      dims: this.spec.dims,
      descriptor: this.descriptor,
      backend: backend.name,
      backendReason: backend.reason,
      space: this.space().kind,
      spaceInfo: this.space(),
      index: {
        type: 'hnsw',
        metric: 'cosine',
        m: this.config.ann.m,
        efConstruction: this.config.ann.efConstruction,
        efSearch: this.config.ann.efSearch,
        dims: this.ann.dims,
        size: this.ann.size,
        capacity: this.ann.capacity,
        snapshotSeq: snap?.seq ?? null,
        snapshotBytes: snap?.bytes ?? null,
        pendingChanges: this.meta().seq - (snap?.seq ?? 0),
      },
      storeBytes: this.store.sizeOnDisk(),
      dataDir: this.config.dataDir,
      suggestions: listSuggestions(this).length,
      classifier: headInfo(this),
    };
  }

  /** Saves the index snapshot and closes the store. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.snapshot();
    } finally {
      (await this.backbone?.catch(() => undefined))?.dispose();
      await this.store.close();
    }
  }
}

/** 'backbone', or the model key of an autoencoder space (names what an HNSW snapshot indexes). */
export function spaceKey(space: SpaceInfo): string {
  return space.kind === 'backbone' ? 'backbone' : space.model;
}

/** Dimensions of the vectors of `space`. */
export function spaceDims(space: SpaceInfo, spec: BackboneSpec): number {
  return space.kind === 'backbone' ? spec.dims : space.dims;
}

/** The parent folder name of a file, used as its label by `--label-from-folder`. */
export function folderLabel(file: string): string {
  return path.basename(path.dirname(file));
}

/** Validates a label: 1–200 characters, no control characters. */
export function checkLabel(label: unknown): string {
  if (typeof label !== 'string' || label.trim() === '' || label.length > 200 || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new InvalidParameterError(`Expected a label of 1 to 200 printable characters but received ${JSON.stringify(label)}`);
  }
  return label.trim();
}

/** Reads an image file, refusing files over `maxBytes` before reading them. */
async function readImageFile(file: string, maxBytes: number): Promise<Buffer> {
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

function errorText(err: unknown): string {
  if (err instanceof PixdexError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
