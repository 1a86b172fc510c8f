/**
 * The LMDB environment and its named databases (DESIGN.md, Storage). Reads are synchronous
 * (memory-mapped); writes are grouped into `transactionSync` batches, atomic across databases.
 */
import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { NotFoundError } from '../errors.ts';
import type { LibraryDescriptor } from '../library-descriptor.ts';
import type { PhotoMetadata } from '../image/metadata.ts';
import { readMany, TABLE_NAMES, type StoreBackend, type Table, type TableName } from './table.ts';

/** A suggested label kept beside an image, distinct from a person's label. */
export interface SuggestionRecord {
  label?: string;
  confidence?: number;
  /** Labels a person rejected for this image: never suggested again. */
  rejected?: string[];
  at: number;
}

/** Bumped when the layout changes incompatibly. */
export const SCHEMA_VERSION = 1;

/**
 * What pixdex knows about one indexed image. The capture metadata (`takenAt`, `camera`,
 * `orientation`, `gps`: src/image/metadata.ts) is present when the photo's EXIF has it; records
 * written before metadata existed have none of it and no `metadata` version (the next index run
 * reads it; no schema change, nothing to migrate).
 */
export interface ImageRecord extends PhotoMetadata {
  path: string;
  sha256: string;
  bytes: number;
  width: number;
  height: number;
  mtimeMs: number;
  label?: string;
  addedAt: number;
  /** Version of the metadata read (`METADATA_VERSION`); absent: not read yet. */
  metadata?: number;
}

/**
 * An image's near-duplicate evidence (issue 15): the neighbours it was compared with and what the
 * comparison found. Kept symmetric: an edge a→b is also stored as b→a.
 */
export interface DupeRecord {
  /** Evidence version (edges of another version are recomputed). */
  v: number;
  edges: DupeEdge[];
}

/** One compared pair, seen from one side. */
export interface DupeEdge {
  id: number;
  /** Cosine of the two pooled backbone vectors. */
  cosine: number;
  /** Geometrically consistent local-feature matches (−1: not verified, e.g. no local features). */
  inliers: number;
}

/** An entry of the change journal replayed into the HNSW index after its last snapshot. */
export interface JournalEntry {
  op: 'add' | 'remove';
  id: number;
}

/** Store-wide facts kept in `meta`. */
export interface StoreMeta {
  schema: number;
  backbone: string;
  dims: number;
  /** Embedding space searched (absent or 'backbone' in stores made before spaces existed). */
  space: SpaceInfo | 'backbone';
  /** How images are described (absent in stores made before descriptors existed: 'pooled'). */
  descriptor?: LibraryDescriptor;
  /**
   * Local features (issue 14): whether images get keypoints + binary descriptors at indexing, and
   * the visual vocabulary learned from them. Absent in stores made before local features: off.
   */
  local?: LocalFeaturesMeta;
  /** Version of the near-duplicate evidence `dupesPending` tracks (absent: every image is listed there on first use). */
  dupes?: number;
  nextId: number;
  /** Bumped when metadata is read into records already stored (no journal entry): in-memory date caches rebuild. */
  metadataSeq?: number;
  /** Last journal sequence number written. */
  seq: number;
  createdAt: number;
}

/**
 * The embedding space searched. `backbone`: the pooled backbone vector (`vectors`), L2-normalised.
 * `autoencoder`: the pooled latent of the convolutional autoencoder trained on this library
 * (`models[model]`), stored in the codes table named by `codes`; training writes the new codes
 * into the other table and then switches, so search never mixes two spaces.
 */
export type SpaceInfo =
  | { kind: 'backbone' }
  | {
      kind: 'autoencoder';
      /** Key of the weights in `models`. */
      model: string;
      dims: number;
      codes: CodesTable;
      trainedAt: string;
      finalLoss: number;
      epochs: number;
      samples: number;
      trainSeconds: number;
      backend: string;
    };

/** The two tables codes alternate between. */
export type CodesTable = 'codes' | 'codes2';

/** A library's local-features setting and its visual vocabulary (kept in `models` under `VOCABULARY_KEY`). */
export interface LocalFeaturesMeta {
  enabled: boolean;
  vocabulary?: VocabularyInfo;
}

export interface VocabularyInfo {
  /** Bumped at every (re-)learning: a word list in `words` is valid only for its version. */
  version: number;
  /** Leaves (visual words). */
  words: number;
  /** Images whose features it was learned from (re-learned when the library has grown a lot). */
  images: number;
  learnedAt: number;
}

/** Key of the vocabulary's bytes in `models`. */
export const VOCABULARY_KEY = 'local-vocabulary';

/** Metadata of the HNSW snapshot in `ann`. */
export interface SnapshotMeta {
  /** Journal sequence included in the snapshot; later entries are replayed on open. */
  seq: number;
  /** Space the snapshot indexes: 'backbone' or the autoencoder's model key. */
  space?: string;
  chunks: number;
  bytes: number;
  live: number;
  dims: number;
  m: number;
  efConstruction: number;
  savedAt: number;
}

/** LMDB values larger than this are split (keeps single values well below the map's page runs). */
const SNAPSHOT_CHUNK = 64 * 1024 * 1024;

export class Store {
  readonly images: Table<ImageRecord, number>;
  readonly paths: Table<number, string>;
  readonly hashes: Table<number, string>;
  readonly vectors: Table<Buffer, number>;
  /** `regional` libraries: each image's GeM descriptors at the smaller sides, concatenated. */
  readonly scales: Table<Buffer, number>;
  readonly codes: Table<Buffer, number>;
  readonly codes2: Table<Buffer, number>;
  readonly labels: Table<number, string>;
  readonly models: Table<Buffer, string>;
  readonly meta: Table<unknown, string>;
  readonly ann: Table<Buffer, number>;
  readonly journal: Table<JournalEntry, number>;
  /** Suggested labels (label propagation), apart from the labels a person set. */
  readonly suggestions: Table<SuggestionRecord, number>;
  /** Local features per image (`src/local/features.ts` encoding). */
  readonly features: Table<Buffer, number>;
  /** Visual words per image: uint32 vocabulary version, then one uint32 word per keypoint. */
  readonly words: Table<Buffer, number>;
  /** Near-duplicate evidence per image: its checked neighbours (src/store/duplicates.ts). */
  readonly dupes: Table<DupeRecord, number>;
  /** Images not compared with their neighbours yet (new, changed, or given local features since). */
  readonly dupesPending: Table<true, number>;
  /** Where the library lives (a data folder, or a database URL without its password), for messages. */
  readonly where: string;

  /** A store on `backend`: LMDB (`Store.open`) or PostgreSQL (`src/store/postgres.ts`). */
  constructor(private readonly backend: StoreBackend) {
    this.where = backend.where;
    this.images = backend.table('images');
    this.paths = backend.table('paths');
    this.hashes = backend.table('hashes');
    this.vectors = backend.table('vectors');
    this.scales = backend.table('scales');
    this.codes = backend.table('codes');
    this.codes2 = backend.table('codes2');
    this.labels = backend.table('labels');
    this.models = backend.table('models');
    this.meta = backend.table('meta');
    this.ann = backend.table('ann');
    this.journal = backend.table('journal');
    this.suggestions = backend.table('suggestions');
    this.features = backend.table('features');
    this.words = backend.table('words');
    this.dupes = backend.table('dupes');
    this.dupesPending = backend.table('dupesPending');
  }

  /**
   * Opens `<dataDir>/pixdex.lmdb`, creating the folder and the store if needed. With
   * `create: false` a missing store is a `NotFoundError` and nothing is created (no folder, no
   * lock file): read-only commands on a mistyped `--data` must not leave an empty library behind.
   */
  static open(dataDir: string, options: { create?: boolean } = {}): Store {
    const file = path.join(dataDir, 'pixdex.lmdb');
    if (options.create === false && !fs.existsSync(file)) {
      throw new NotFoundError(`No pixdex library in ${dataDir}; run \`pixdex index <folder> --data ${dataDir}\` first`);
    }
    fs.mkdirSync(dataDir, { recursive: true });
    return new Store(new LmdbBackend(file, dataDir));
  }

  /** Runs `fn` in one write transaction: all its writes land together or not at all. */
  write<T>(fn: () => T): T {
    return this.backend.write(fn);
  }

  getMeta(): StoreMeta | undefined {
    return this.meta.get('store') as StoreMeta | undefined;
  }

  putMeta(meta: StoreMeta): void {
    this.meta.putSync('store', meta);
  }

  getSnapshotMeta(): SnapshotMeta | undefined {
    return this.meta.get('snapshot') as SnapshotMeta | undefined;
  }

  /** The pooled backbone vector of `id`, or undefined. */
  getVector(id: number): Float32Array | undefined {
    return toFloat32(this.vectors.getBinary(id));
  }

  putVector(id: number, v: Float32Array): void {
    this.vectors.putSync(id, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }

  /** The smaller-side descriptors of `id` in a `regional` library, or undefined. */
  getScales(id: number): Float32Array | undefined {
    return toFloat32(this.scales.getBinary(id));
  }

  putScales(id: number, v: Float32Array): void {
    this.scales.putSync(id, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }

  /** The library's descriptor ('pooled' for stores made before descriptors existed). */
  getDescriptor(): LibraryDescriptor {
    return this.getMeta()?.descriptor ?? 'pooled';
  }

  /** The active embedding space (stores written before spaces existed say 'backbone'). */
  getSpace(): SpaceInfo {
    return spaceOf(this.getMeta());
  }

  /** A codes table by name. */
  codesTable(name: CodesTable): Table<Buffer, number> {
    return name === 'codes' ? this.codes : this.codes2;
  }

  /** The vector `id` is searched by in `space`, or undefined. */
  getSpaceVector(space: SpaceInfo, id: number): Float32Array | undefined {
    return space.kind === 'backbone' ? this.getVector(id) : toFloat32(this.codesTable(space.codes).getBinary(id));
  }

  /** `getSpaceVector` of many ids in one read of the store (undefined where absent). */
  getSpaceVectors(space: SpaceInfo, ids: readonly number[]): Array<Float32Array | undefined> {
    return readMany(space.kind === 'backbone' ? this.vectors : this.codesTable(space.codes), ids, true).map(toFloat32);
  }

  /** `getScales` of many ids in one read of the store (undefined where absent). */
  getScalesMany(ids: readonly number[]): Array<Float32Array | undefined> {
    return readMany(this.scales, ids, true).map(toFloat32);
  }

  /** Stores a code in a codes table (inside a write transaction). */
  putCode(table: CodesTable, id: number, v: Float32Array): void {
    this.codesTable(table).putSync(id, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }

  /** Adjusts the count of `label` by `delta` (inside a write transaction). */
  countLabel(label: string | undefined, delta: number): void {
    if (label === undefined) return;
    const n = (this.labels.get(label) ?? 0) + delta;
    if (n > 0) this.labels.putSync(label, n);
    else this.labels.removeSync(label);
  }

  /** Appends journal entries (inside a write transaction); returns the last sequence number. */
  appendJournal(meta: StoreMeta, entries: JournalEntry[]): void {
    for (const e of entries) this.journal.putSync(++meta.seq, e);
  }

  /** Journal entries after `seq`, in order. */
  journalAfter(seq: number): Array<{ key: number; value: JournalEntry }> {
    return [...this.journal.getRange({ start: seq + 1 })];
  }

  /** Stores an HNSW snapshot and drops the journal it covers, atomically. */
  saveSnapshot(bytes: Buffer, meta: Omit<SnapshotMeta, 'chunks' | 'bytes' | 'savedAt'>): SnapshotMeta {
    return this.write(() => this.writeSnapshot(bytes, meta));
  }

  /** `saveSnapshot` without its own transaction: call inside `write` (e.g. with a space switch). */
  writeSnapshot(bytes: Buffer, meta: Omit<SnapshotMeta, 'chunks' | 'bytes' | 'savedAt'>): SnapshotMeta {
    return this.putSnapshot(bytes.length, (i) => bytes.subarray(i * this.backend.snapshotChunk, (i + 1) * this.backend.snapshotChunk), meta);
  }

  /**
   * `saveSnapshot` from a file (`AnnIndex.save`), read one chunk at a time: no Buffer holds the
   * whole snapshot, so it may exceed 4 GiB (1M x 1280-d is 5.3 GB).
   */
  saveSnapshotFile(file: string, meta: Omit<SnapshotMeta, 'chunks' | 'bytes' | 'savedAt'>): SnapshotMeta {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.allocUnsafe(Math.min(size, this.backend.snapshotChunk));
      return this.write(() => this.putSnapshot(size, (i) => {
        const want = Math.min(this.backend.snapshotChunk, size - i * this.backend.snapshotChunk);
        for (let got = 0; got < want; ) {
          const n = fs.readSync(fd, buf, got, want - got, i * this.backend.snapshotChunk + got);
          if (n === 0) throw new Error(`${file} ended before ${size} bytes`);
          got += n;
        }
        return buf.subarray(0, want); // putSync copies it into the map before the next chunk is read
      }, meta));
    } finally {
      fs.closeSync(fd);
    }
  }

  private putSnapshot(size: number, chunk: (i: number) => Buffer, meta: Omit<SnapshotMeta, 'chunks' | 'bytes' | 'savedAt'>): SnapshotMeta {
    const old = this.getSnapshotMeta();
    const chunks = Math.max(1, Math.ceil(size / this.backend.snapshotChunk));
    for (let i = 0; i < chunks; i++) this.ann.putSync(i, chunk(i));
    for (let i = chunks; i < (old?.chunks ?? 0); i++) this.ann.removeSync(i);
    for (const key of this.journal.getKeys({ end: meta.seq + 1 })) this.journal.removeSync(key);
    const full: SnapshotMeta = { ...meta, chunks, bytes: size, savedAt: Date.now() };
    this.meta.putSync('snapshot', full);
    return full;
  }

  /** Reads the snapshot bytes, or undefined when there is none or it is incomplete. */
  loadSnapshot(meta: SnapshotMeta): Buffer | undefined {
    // One copy, straight from the memory map into the result: getBinary + Buffer.from + concat
    // made three (1M x 256-d, 1.2 GB: 3.2 s before, 1.1 s now; bench/open.ts).
    const all = Buffer.allocUnsafe(meta.bytes);
    let offset = 0;
    for (let i = 0; i < meta.chunks; i++) {
      const part = this.ann.getBinaryFast(i); // a view, valid until the next read: copied at once
      if (!part || offset + part.length > meta.bytes) return undefined;
      all.set(part.subarray(0, part.length), offset); // its `length` is the value's; the view behind it can be longer
      offset += part.length;
    }
    return offset === meta.bytes ? all : undefined;
  }

  /**
   * Writes the snapshot bytes to `file` straight from the memory map, with no Buffer in between
   * (for `AnnIndex.restore`); false when there is none or it is incomplete.
   */
  loadSnapshotToFile(meta: SnapshotMeta, file: string): boolean {
    const fd = fs.openSync(file, 'w');
    try {
      let total = 0;
      for (let i = 0; i < meta.chunks; i++) {
        const part = this.ann.getBinaryFast(i); // a view, valid until the next read: written at once
        if (!part) return false;
        for (let o = 0; o < part.length; ) o += fs.writeSync(fd, part, o, part.length - o);
        total += part.length;
      }
      return total === meta.bytes;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Drops the snapshot (the index is then rebuilt from vectors on the next open). */
  dropSnapshot(): void {
    this.write(() => {
      for (const key of this.ann.getKeys()) this.ann.removeSync(key);
      this.meta.removeSync('snapshot');
    });
  }

  /** Bytes each named database uses (for `bench/open.ts`). */
  tableBytes(): Record<string, number> {
    return this.backend.tableBytes();
  }

  /** Size of the store, in bytes (LMDB: its data file on disk). */
  sizeOnDisk(): number {
    return this.backend.sizeOnDisk();
  }

  async close(): Promise<void> {
    await this.backend.close();
  }
}

/** The LMDB environment: one named database per table, writes in `transactionSync`. */
class LmdbBackend implements StoreBackend {
  readonly snapshotChunk = SNAPSHOT_CHUNK;
  private readonly root: RootDatabase;
  private readonly tables = new Map<TableName, Database>();

  constructor(private readonly file: string, readonly where: string) {
    this.root = open({ path: file, maxDbs: 20, compression: false });
    const uint32: TableName[] = ['images', 'vectors', 'scales', 'codes', 'codes2', 'ann', 'journal', 'suggestions', 'features', 'words', 'dupes', 'dupesPending'];
    const binary: TableName[] = ['vectors', 'scales', 'codes', 'codes2', 'models', 'ann', 'features', 'words'];
    for (const name of TABLE_NAMES) {
      this.tables.set(name, this.root.openDB({ name, ...(uint32.includes(name) ? { keyEncoding: 'uint32' } : {}), ...(binary.includes(name) ? { encoding: 'binary' } : {}) }));
    }
  }

  table(name: TableName): Database {
    return this.tables.get(name)!;
  }

  write<T>(fn: () => T): T {
    return this.root.transactionSync(fn);
  }

  tableBytes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of ['images', 'paths', 'hashes', 'vectors', 'scales', 'labels', 'meta', 'ann', 'journal', 'features', 'words', 'dupes'] as const) {
      const s = this.table(name).getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
      out[name] = s.pageSize * (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages);
    }
    return out;
  }

  sizeOnDisk(): number {
    try {
      return fs.statSync(this.file).size;
    } catch {
      return 0;
    }
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

/** The active embedding space a store's metadata names (stores written before spaces existed say 'backbone'). */
export function spaceOf(meta: StoreMeta | undefined): SpaceInfo {
  const space = meta?.space;
  return space === undefined || space === 'backbone' ? { kind: 'backbone' } : space;
}

/** Copies binary LMDB bytes into an aligned Float32Array. */
export function toFloat32(buf: Uint8Array | undefined): Float32Array | undefined {
  if (!buf) return undefined;
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return new Float32Array(copy.buffer);
}
