/**
 * The façade the CLI, the server and `src/index.ts` use: it opens a library and wires the
 * modules that do the work, and owns no algorithm of its own.
 *
 *   records (src/store/records.ts)   the store's rules; the only code touching LMDB
 *   index sync (src/index-sync.ts)   the HNSW index of the active space: snapshot, journal, rebuild
 *   describe (src/describe.ts)       backend, backbone, autoencoder: images → vectors
 *   indexing (indexer/run.ts)        index runs and uploads
 *   search (src/search.ts)           query → shortlist → re-rank → hits
 *   labels (src/labels.ts)           kNN vote, head, propagation and suggestions
 *   training (src/train.ts)          the library's autoencoder
 *   check (src/store/check.ts)       the store's invariants, and their repair
 *   duplicates (src/duplicates/)     near-duplicate evidence (k-NN graph + verification) and groups
 *   browse (src/browse.ts)           the library page by page, all or one label's
 */
import path from 'node:path';
import type { BackendInfo } from './backend.ts';
import { resolveConfig, DEFAULT_BACKBONE, type PixdexConfig, type PixdexOptions } from './config.ts';
import { Describer } from './describe.ts';
import { NotFoundError, StoreMismatchError } from './errors.ts';
import { IndexSync } from './index-sync.ts';
import { Labels, type Classification, type ClassifyOptions, type PropagateOptions, type PropagateReport, type Suggestion } from './labels.ts';
import { DEFAULT_DESCRIPTOR, type LibraryDescriptor } from './library-descriptor.ts';
import { browse, type BrowseOptions, type BrowsePage } from './browse.ts';
import { backboneSpec, type Backbone, type BackboneSpec } from './models/backbone.ts';
import type { HeadReport } from './models/head.ts';
import type { FinetuneReport } from './models/finetune.ts';
import { Searcher, type SearchOptions, type SearchResult, type SpaceKind } from './search.ts';
import { checkStore, repairStore, type CheckReport, type RepairReport } from './store/check.ts';
import { SCHEMA_VERSION, type Store, type ImageRecord, type SpaceInfo } from './store/lmdb.ts';
import { openStore } from './store/open.ts';
import { Records, type LabelCount } from './store/records.ts';
import { libraryStats, type Stats } from './stats.ts';
import { VisualWords } from './local/visual-words.ts';
import { DuplicateFinder } from './duplicates/finder.ts';
import { duplicateReport, type DuplicateOptions, type DuplicateReport } from './duplicates/report.ts';
import { trainAutoencoder, type TrainOptions, type TrainReport } from './train.ts';
import { definedOnly, disposeLibraryTop, refuseStoredVectorWithTop, topProbabilities, trainLibraryTop, type ClassifierTrainRequest, type FinetuneLibrary } from './finetune.ts';
import { addUpload, indexFiles, type IndexOptions, type IndexSummary, type UploadOptions } from '../indexer/run.ts';

export type { IndexOptions, IndexProgress, IndexSummary } from '../indexer/run.ts';
export type { SearchOptions, SearchResult, SpaceKind } from './search.ts';
export type { Stats } from './stats.ts';
export type { BrowseOptions, BrowsePage } from './browse.ts';
export { MAX_EXPAND, MAX_K } from './search.ts';
export { checkLabel } from './store/records.ts';

export class Engine {
  private closed = false;

  private constructor(
    readonly config: PixdexConfig,
    readonly spec: BackboneSpec,
    readonly records: Records,
    readonly sync: IndexSync,
    readonly describer: Describer,
    readonly searcher: Searcher,
    readonly labelling: Labels,
    /** The visual vocabulary and inverted index over local features (issue 14). */
    readonly words: VisualWords,
    /** Near-duplicate evidence and groups (issue 15). */
    readonly dupes: DuplicateFinder,
  ) {}

  /**
   * Opens (or creates) the library in `dataDir` and loads its index; the model loads on first use.
   * `create: false`: a missing store is a `NotFoundError` and nothing is created on disk.
   */
  static async open(options: PixdexOptions = {}, { create = true }: { create?: boolean } = {}): Promise<Engine> {
    const config = resolveConfig(options);
    const store = openStore(config, { create });
    try {
      const records = new Records(store);
      const meta = store.getMeta();
      if (meta && meta.schema !== SCHEMA_VERSION) {
        throw new StoreMismatchError(`The store in ${store.where} has schema ${meta.schema}; this pixdex reads schema ${SCHEMA_VERSION}. Use a new --data folder and re-index.`);
      }
      const spec = backboneSpec(config.backbone ?? meta?.backbone ?? DEFAULT_BACKBONE, config.modelsDir);
      if (meta && meta.backbone !== spec.id) {
        throw new StoreMismatchError(
          `The store in ${store.where} was built with backbone ${meta.backbone} (${meta.dims}-d), not ${spec.id}. ` +
            `Open it without --backbone (or with --backbone ${meta.backbone}), or use a new --data folder for ${spec.id}.`,
        );
      }
      const descriptor = config.descriptor ?? (meta ? records.descriptor() : DEFAULT_DESCRIPTOR);
      if (meta && records.descriptor() !== descriptor) {
        throw new StoreMismatchError(
          `The store in ${store.where} was built with descriptor ${records.descriptor()}, not ${descriptor}. ` +
            `Open it without --descriptor (or with --descriptor ${records.descriptor()}), or use a new --data folder for ${descriptor}.`,
        );
      }
      if (!meta) records.create({ schema: SCHEMA_VERSION, backbone: spec.id, dims: spec.dims, space: { kind: 'backbone' }, descriptor, local: { enabled: config.localFeatures ?? true }, nextId: 1, seq: 0, createdAt: Date.now() });
      else if (config.localFeatures !== undefined) records.local.setEnabled(config.localFeatures);
      const resolved = { ...config, backbone: spec.id, descriptor };
      const sync = new IndexSync(records, spec, config.ann);
      const describer = new Describer(resolved, spec, descriptor, (key) => records.model(key));
      const words = new VisualWords(records);
      const searcher = new Searcher(records, sync, describer, spec, words);
      const labelling = new Labels(records, searcher, () => describer.backendInfo());
      const dupes = new DuplicateFinder(records, sync, words);
      return new Engine(resolved, spec, records, sync, describer, searcher, labelling, words, dupes);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** How this library describes images (`meta.descriptor`). */
  get descriptor(): LibraryDescriptor {
    return this.describer.descriptor;
  }

  /** The store underneath (LMDB or PostgreSQL), for tests and tools that inspect it; the product goes through `records`. */
  get store(): Store {
    return this.records.store;
  }

  /** The backend running the model (initialised on first call). */
  backendInfo(): Promise<BackendInfo> {
    return this.describer.backendInfo();
  }

  /** The backbone, loaded once and warmed up (the server's readiness). */
  model(): Promise<Backbone> {
    return this.describer.model();
  }

  /** The active embedding space. */
  space(): SpaceInfo {
    return this.records.space();
  }

  /** Catches up with changes made by other processes sharing the store. */
  refresh(): void {
    this.sync.refresh();
  }

  // ---------------------------------------------------------------- indexing

  /** Indexes files and folders: incremental, batched, resumable; bad files are reported and skipped. */
  index(inputs: readonly string[], options: IndexOptions = {}): Promise<IndexSummary> {
    return indexFiles(this, inputs, options);
  }

  /** Adds one encoded image (an upload). Identical content returns the existing id. */
  add(bytes: Uint8Array, options: UploadOptions = {}): Promise<{ id: number; created: boolean }> {
    return addUpload(this, bytes, options);
  }

  // ---------------------------------------------------------------- queries

  /** Duplicate groups of one kind; images not compared with their neighbours yet are compared first. */
  duplicates(options: DuplicateOptions = {}): Promise<DuplicateReport> {
    return duplicateReport(this.dupes, options);
  }

  /** Nearest images to an encoded query image. */
  search(query: Uint8Array, options: SearchOptions = {}): Promise<SearchResult[]> {
    return this.searcher.search(query, options);
  }

  /** Nearest images to an indexed image (itself excluded). */
  similar(id: number, options: SearchOptions = {}): SearchResult[] {
    return this.searcher.similar(id, options);
  }

  /** Nearest images to a (not necessarily normalised) vector of the searched space. */
  searchVector(vector: Float32Array, options: SearchOptions = {}): SearchResult[] {
    return this.searcher.searchVector(vector, options);
  }

  /** Classifies an encoded image by its labelled neighbours (kNN), the trained head, or both. */
  async classify(query: Uint8Array, options: ClassifyOptions = {}): Promise<Classification> {
    const e = await this.describer.describeQuery(query, this.space());
    const headProbabilities = await topProbabilities(this.tuned(), query, options.method);
    return this.labelling.classifyVector(e.code ?? e.pooled, { ...options, pooled: e.pooled, headProbabilities });
  }

  /** Classifies an indexed image (itself left out of the neighbours). */
  classifyId(id: number, options: ClassifyOptions = {}): Classification {
    const v = this.records.spaceVector(this.space(), id);
    if (!v || !this.records.exists(id)) throw new NotFoundError(`No image with id ${id}.`);
    refuseStoredVectorWithTop(this.tuned(), options.method);
    return this.labelling.classifyVector(v, { ...options, excludeId: id, pooled: this.records.vector(id) });
  }

  // ---------------------------------------------------------------- records

  /** Resolves a CLI/HTTP reference (numeric id or file path) to an id, or throws NotFoundError. */
  resolve(ref: string | number): number {
    if (typeof ref === 'number' || /^\d+$/.test(ref)) {
      const id = Number(ref);
      if (this.records.exists(id)) return id;
      if (typeof ref === 'number') throw new NotFoundError(`No image with id ${id}.`);
    }
    const id = this.records.idOfPath(path.resolve(String(ref)));
    if (id === undefined) throw new NotFoundError(`No indexed image with id or path ${JSON.stringify(ref)}. Run \`pixdex search\` or \`pixdex stats\` to see what is indexed.`);
    return id;
  }

  /** The record of an indexed image. */
  get(id: number): ImageRecord & { id: number } {
    const rec = this.records.get(id);
    if (!rec) throw new NotFoundError(`No image with id ${id}.`);
    return { id, ...rec };
  }

  /** Removes an image (by id or any of its paths) with every path that shows it. */
  remove(ref: string | number): number {
    const id = this.resolve(ref);
    this.records.remove(id);
    this.sync.refresh();
    return id;
  }

  /** Sets (or with null, clears) the label of an image. */
  label(ref: string | number, label: string | null): ImageRecord & { id: number } {
    const id = this.resolve(ref);
    this.records.setLabel(id, label ?? undefined);
    return this.get(id);
  }

  /** A page of the library, in the order added or by capture date, all or one label's (src/browse.ts). */
  images(options: BrowseOptions = {}): BrowsePage {
    return browse(this.records, this.searcher.dates, options);
  }

  /** Labels with their image counts, most frequent first. */
  labels(): LabelCount[] {
    return this.records.labels();
  }

  // ---------------------------------------------------------------- labelling and training

  /** Suggests labels for unlabelled images from their labelled neighbours (src/labels.ts). */
  propagate(options: PropagateOptions = {}): PropagateReport {
    return this.labelling.propagate(options);
  }

  /** Pending label suggestions, most confident first. */
  suggestions(): Suggestion[] {
    return this.labelling.suggestions();
  }

  acceptSuggestion(id: number): { id: number; label: string } {
    return this.labelling.accept(id);
  }

  rejectSuggestion(id: number): { id: number; rejected: string } {
    return this.labelling.reject(id);
  }

  /** Trains and stores the classifier: the softmax head (default), or the fine-tuned / scratch top (src/finetune.ts). */
  trainClassifier(options: ClassifierTrainRequest = {}, onEpoch?: (epoch: number, loss: number, valLoss: number) => void): Promise<HeadReport | FinetuneReport> {
    const { mode, ...rest } = definedOnly(options);
    return mode === 'finetune' || mode === 'scratch' ? trainLibraryTop(this.tuned(), { ...rest, mode }, onEpoch) : this.labelling.trainHead(rest, onEpoch);
  }

  /** This library as the fine-tuned classifier sees it. */
  tuned(): FinetuneLibrary {
    return { records: this.records, config: this.config, model: () => this.describer.model(), headTrainedAt: () => this.labelling.headInfo()?.trainedAt };
  }

  /** Trains the library's autoencoder, re-embeds everything and switches search to it (src/train.ts). */
  train(options: TrainOptions = {}): Promise<TrainReport> {
    return trainAutoencoder(this, options);
  }

  // ---------------------------------------------------------------- facts

  /** Verifies the store and its index (writes nothing). */
  check(): CheckReport {
    return checkStore(this);
  }

  /** Repairs what can be derived again (run it while no other process writes). */
  repair(): RepairReport {
    return repairStore(this);
  }

  /** Store, model and index facts (DESIGN.md `stats`). */
  stats(): Promise<Stats> {
    return libraryStats(this);
  }

  /** Saves the index snapshot and closes the store. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.sync.snapshot();
    } finally {
      this.labelling.dispose();
      disposeLibraryTop(this.records);
      await this.describer.dispose();
      await this.records.close();
    }
  }
}
