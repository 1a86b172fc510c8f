/**
 * The records: the store's rules, and the only code (with `check.ts` beside it) that reads or
 * writes LMDB's sub-databases. Images, their paths (identical files: one image, the other paths
 * its aliases), content hashes, labels and their counts, suggestions, model weights, vectors and
 * codes, and the journal every change appends to (replayed into the HNSW index by
 * `src/index-sync.ts`). Every method that writes does so in one transaction.
 */
import path from 'node:path';
import { MAX_LABEL_LENGTH } from '../contracts/limits.ts';
import { InvalidParameterError, PixdexError } from '../errors.ts';
import { needsMetadata, withMetadata, type PhotoMetadata } from '../image/metadata.ts';
import type { LibraryDescriptor } from '../library-descriptor.ts';
import { l2normalize } from '../vector.ts';
import { DUPES_VERSION, DuplicateRecords, dropDupes, recheckDupes } from './duplicates.ts';
import { LocalRecords, dropLocal, putLocal, type LocalToWrite } from './local.ts';
import { Store, toFloat32, type CodesTable, type ImageRecord, type JournalEntry, type SnapshotMeta, type SpaceInfo, type StoreMeta } from './lmdb.ts';
import { readMany } from './table.ts';
import { SuggestionRecords } from './suggestions.ts';

/** One file of an index batch, as the indexer read it. */
export type { LocalToWrite };

export interface FileToWrite {
  path: string;
  sha256: string;
  /** Size and mtime of the file (what a later run compares to skip it unread). */
  bytes: number;
  mtimeMs: number;
  width: number;
  height: number;
  /** A label to give a new image (e.g. `--label-from-folder`). */
  label?: string;
  /** Its description, when its content had to be embedded. */
  embedding?: { pooled: Float32Array; scales?: Float32Array; code?: Float32Array };
  /** Its local features (encoded) and, when the library has a vocabulary, their visual words. */
  local?: LocalToWrite;
  /** Its capture metadata, when read (new content; or stored content whose record has none yet). */
  metadata?: PhotoMetadata;
}

/** What `writeFiles` did, file by file. */
export interface WriteResult {
  added: number;
  updated: number;
  skipped: number;
  /** The image each written file shows (by index in the batch). */
  ids: Map<number, number>;
  /** Files whose content was stored when read and is gone now: embed them, then write again. */
  retry: number[];
}

/** The other name for the label-level entries in `labels`: a count per label. */
export interface LabelCount {
  label: string;
  count: number;
}

/** Validates a label: 1–MAX_LABEL_LENGTH characters, no control characters; returns it trimmed. */
export function checkLabel(label: unknown): string {
  if (typeof label !== 'string' || label.trim() === '' || label.length > MAX_LABEL_LENGTH || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new InvalidParameterError(`Expected a label of 1 to ${MAX_LABEL_LENGTH} printable characters but received ${JSON.stringify(label)}`);
  }
  return label.trim();
}

export class Records {
  /**
   * Inside one write: the paths that show each image, built by one scan of `paths` the first time
   * a write needs an image's aliases and kept in step with that write's path changes, so a batch
   * of changed or vanished files costs one scan, not one per file.
   */
  private byImage?: Map<number, Set<string>>;

  /** Local features, visual words and the vocabulary (issue 14). */
  readonly local: LocalRecords;
  /** Near-duplicate evidence (issue 15). */
  readonly dupes: DuplicateRecords;
  /** Suggested labels (label propagation), apart from the labels a person set. */
  readonly suggested: SuggestionRecords;

  constructor(readonly store: Store) {
    this.local = new LocalRecords(store);
    this.dupes = new DuplicateRecords(store);
    this.suggested = new SuggestionRecords(store);
  }

  // ------------------------------------------------------------------ library facts

  meta(): StoreMeta {
    const meta = this.store.getMeta();
    if (!meta) throw new PixdexError('STORE_MISMATCH', `The store in ${this.store.where} has no metadata; run \`pixdex check --repair\`.`);
    return meta;
  }

  /** Creates the library's metadata (a new store: every image it gets is listed for the duplicate check); a process that created it first wins. */
  create(meta: StoreMeta): void {
    this.store.write(() => this.store.getMeta() ?? this.store.putMeta({ ...meta, dupes: DUPES_VERSION }));
  }

  space(): SpaceInfo {
    return this.store.getSpace();
  }

  descriptor(): LibraryDescriptor {
    return this.store.getDescriptor();
  }

  count(): number {
    return this.store.images.getCount();
  }

  ids(): Iterable<number> {
    return this.store.images.getKeys();
  }

  /** Every image with its record, in id order (or `limit` of them after skipping `offset`). */
  *images(range: { offset?: number; limit?: number } = {}): Iterable<{ id: number; rec: ImageRecord }> {
    for (const { key, value } of this.store.images.getRange(range)) yield { id: key, rec: value };
  }

  get(id: number): ImageRecord | undefined {
    return this.store.images.get(id);
  }

  /** The records of `ids` (undefined where gone), in one read of the store. */
  getMany(ids: readonly number[]): Array<ImageRecord | undefined> {
    return readMany(this.store.images, ids);
  }

  exists(id: number): boolean {
    return this.store.images.doesExist(id);
  }

  /** The image a path shows (its own path or an alias), if it is still stored. */
  idOfPath(file: string): number | undefined {
    const id = this.store.paths.get(file);
    return id !== undefined && this.exists(id) ? id : undefined;
  }

  /** The image with this content, if stored. */
  idOfContent(sha256: string): number | undefined {
    const id = this.store.hashes.get(sha256);
    return id !== undefined && this.exists(id) ? id : undefined;
  }

  /** Every indexed path at or below `folder` (for pruning files gone from disk). */
  *pathsUnder(folder: string): Iterable<string> {
    const prefix = folder.endsWith(path.sep) ? folder : folder + path.sep;
    for (const key of this.store.paths.getKeys({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      yield key;
    }
  }

  vector(id: number): Float32Array | undefined {
    return this.store.getVector(id);
  }

  scales(id: number): Float32Array | undefined {
    return this.store.getScales(id);
  }

  /** `scales` of many ids in one read of the store. */
  scalesOf(ids: readonly number[]): Array<Float32Array | undefined> {
    return this.store.getScalesMany(ids);
  }

  /** The vector `id` is searched by in `space` (its pooled vector, or its autoencoder code). */
  spaceVector(space: SpaceInfo, id: number): Float32Array | undefined {
    return this.store.getSpaceVector(space, id);
  }

  /** `spaceVector` at unit length, as every comparison uses it (stored vectors keep their norm: the head reads it). */
  unitVector(space: SpaceInfo, id: number): Float32Array | undefined {
    const v = this.store.getSpaceVector(space, id);
    return v && l2normalize(v);
  }

  /** `unitVector` of many ids in one read of the store. */
  unitVectors(space: SpaceInfo, ids: readonly number[]): Array<Float32Array | undefined> {
    return this.store.getSpaceVectors(space, ids).map((v) => v && l2normalize(v));
  }

  hasCode(table: CodesTable, id: number): boolean {
    return this.store.codesTable(table).doesExist(id);
  }

  /** Labels with their image counts, most frequent first. */
  labels(): LabelCount[] {
    const out = [...this.store.labels.getRange()].filter((e) => typeof e.value === 'number').map(({ key, value }) => ({ label: key, count: value }));
    return out.sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : 1));
  }

  // ------------------------------------------------------------------ images

  /**
   * Writes one index batch in one transaction. Content is looked up again inside it: identical
   * files in one batch, in two batches in flight or from two workers are stored once, the later
   * paths as aliases. A file whose content changed is re-embedded in place when nothing else shows
   * its old content; otherwise the old image stays with its other paths.
   */
  writeFiles(files: readonly FileToWrite[]): WriteResult {
    const result: WriteResult = { added: 0, updated: 0, skipped: 0, ids: new Map(), retry: [] };
    const { store } = this;
    this.change((meta, journal) => {
      const space = store.getSpace();
      files.forEach((f, i) => {
        const curId = store.paths.get(f.path);
        const cur = curId === undefined ? undefined : store.images.get(curId);
        const sameId = this.idOfContent(f.sha256);
        if (sameId !== undefined) {
          // This content is stored already (by an earlier run, or earlier in this one).
          let same = store.images.get(sameId)!;
          if (f.metadata && needsMetadata(same)) { // stored by an older pixdex: no journal entry, so a counter tells readers (CaptureDates)
            store.images.putSync(sameId, (same = withMetadata(same, f.metadata)));
            meta.metadataSeq = (meta.metadataSeq ?? 0) + 1;
          }
          if (f.local && !store.features.doesExist(sameId)) {
            putLocal(store, sameId, f.local); // features added to an existing library
            recheckDupes(store, sameId); // its comparisons had no inliers: checked again
          }
          if (sameId === curId) {
            if (same.path === f.path) store.images.putSync(sameId, { ...same, mtimeMs: f.mtimeMs, bytes: f.bytes });
            result.skipped++;
          } else {
            if (curId !== undefined) this.detach(f.path, curId, meta, journal);
            this.setPath(f.path, sameId); // a duplicate file: an alias of the stored image
            if (cur) result.updated++;
            else result.skipped++;
          }
          result.ids.set(i, sameId);
          return;
        }
        const e = f.embedding;
        if (!e) {
          result.retry.push(i); // its content was stored when read and is gone since
          return;
        }
        const label = f.label ?? (cur?.path === f.path ? cur.label : undefined);
        let rec: ImageRecord = { path: f.path, sha256: f.sha256, bytes: f.bytes, width: f.width, height: f.height, mtimeMs: f.mtimeMs, addedAt: cur?.addedAt ?? Date.now() };
        if (f.metadata) rec = withMetadata(rec, f.metadata);
        if (label !== undefined) rec.label = label;
        let id: number;
        if (cur && curId !== undefined && cur.path === f.path && this.aliasesOf(curId, cur.path).length === 0) {
          id = curId; // changed content of a file with no identical copies: re-embedded in place
          if (store.hashes.get(cur.sha256) === id) store.hashes.removeSync(cur.sha256);
          store.countLabel(cur.label, -1);
          result.updated++;
        } else {
          if (curId !== undefined) this.detach(f.path, curId, meta, journal);
          id = meta.nextId++;
          if (cur) result.updated++;
          else result.added++;
        }
        store.images.putSync(id, rec);
        this.setPath(rec.path, id);
        store.hashes.putSync(rec.sha256, id);
        store.putVector(id, e.pooled);
        if (e.scales) store.putScales(id, e.scales);
        else store.scales.removeSync(id);
        // Embedded before a switch of space, a batch has no code for the new space: `train`
        // embeds it before switching, so only a race with a concurrent `train` lands here.
        if (space.kind === 'autoencoder' && e.code && e.code.length === space.dims) store.putCode(space.codes, id, e.code);
        if (f.local) putLocal(store, id, f.local);
        else dropLocal(store, id);
        recheckDupes(store, id);
        store.countLabel(rec.label, +1);
        journal.push({ op: 'add', id });
        result.ids.set(i, id);
      });
    });
    return result;
  }

  /** Removes image `id` and every path that shows it; false when there is no such image. */
  remove(id: number): boolean {
    return this.change((meta, journal) => this.deleteImage(id, meta, journal));
  }

  /**
   * Files gone from disk: an alias is dropped, an image handed to its first alias, or removed when
   * no other path shows it. One transaction; returns how many images went.
   */
  removePaths(files: readonly string[]): number {
    return this.change((meta, journal) => {
      for (const file of files) {
        const id = this.store.paths.get(file);
        if (id !== undefined) this.detach(file, id, meta, journal);
      }
      return journal.length;
    });
  }

  /** Sets (undefined: clears) a person's label; it settles any suggestion for the image. */
  setLabel(id: number, label: string | undefined): void {
    if (label !== undefined) label = checkLabel(label);
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
      if (label !== undefined) store.suggestions.removeSync(id);
    });
  }

  /** Runs `fn` in a write with the metadata and a journal to append to; saved when it journalled. */
  private change<T>(fn: (meta: StoreMeta, journal: JournalEntry[]) => T): T {
    const { store } = this;
    return store.write(() => {
      const meta = this.meta();
      const journal: JournalEntry[] = [];
      const before = [meta.nextId, meta.metadataSeq];
      this.byImage = undefined;
      try {
        const out = fn(meta, journal);
        if (journal.length > 0 || meta.nextId !== before[0] || meta.metadataSeq !== before[1]) {
          store.appendJournal(meta, journal);
          store.putMeta(meta);
        }
        return out;
      } finally {
        this.byImage = undefined;
      }
    });
  }

  /** Inside a write: the other paths (aliases) that show image `id`, sorted; `own` excluded. */
  private aliasesOf(id: number, own: string): string[] {
    if (!this.byImage) {
      this.byImage = new Map();
      for (const { key, value } of this.store.paths.getRange()) this.indexPath(key, value);
    }
    return [...(this.byImage.get(id) ?? [])].filter((p) => p !== own).sort();
  }

  /** Inside a write: `file` shows image `id` from now on. */
  private setPath(file: string, id: number): void {
    const old = this.store.paths.get(file);
    this.store.paths.putSync(file, id);
    if (!this.byImage) return;
    if (old !== undefined) this.byImage.get(old)?.delete(file);
    this.indexPath(file, id);
  }

  private indexPath(file: string, id: number): void {
    const paths = this.byImage!.get(id);
    if (paths) paths.add(file);
    else this.byImage!.set(id, new Set([file]));
  }

  /** Inside a write: `file` shows no image any more. */
  private dropPath(file: string): void {
    const old = this.store.paths.get(file);
    this.store.paths.removeSync(file);
    if (old !== undefined) this.byImage?.get(old)?.delete(file);
  }

  /** Inside a write: `file` no longer shows image `id` (see `removePaths`). */
  private detach(file: string, id: number, meta: StoreMeta, journal: JournalEntry[]): void {
    const { store } = this;
    const rec = store.images.get(id);
    if (store.paths.get(file) === id) this.dropPath(file);
    if (!rec || rec.path !== file) return;
    const [heir] = this.aliasesOf(id, file);
    if (heir !== undefined) store.images.putSync(id, { ...rec, path: heir });
    else this.deleteImage(id, meta, journal);
  }

  /** Inside a write: deletes image `id`, everything stored for it and every path to it. */
  private deleteImage(id: number, _meta: StoreMeta, journal: JournalEntry[]): boolean {
    const { store } = this;
    const rec = store.images.get(id);
    if (!rec) return false;
    for (const alias of this.aliasesOf(id, rec.path)) this.dropPath(alias);
    store.images.removeSync(id);
    if (store.paths.get(rec.path) === id) this.dropPath(rec.path);
    if (store.hashes.get(rec.sha256) === id) store.hashes.removeSync(rec.sha256);
    store.vectors.removeSync(id);
    store.scales.removeSync(id);
    store.codes.removeSync(id);
    store.codes2.removeSync(id); // either table may be the active space's
    store.suggestions.removeSync(id);
    dropLocal(store, id);
    dropDupes(store, id);
    store.countLabel(rec.label, -1);
    journal.push({ op: 'remove', id });
    return true;
  }

  // ------------------------------------------------------------------ models and codes

  /** Weights or config bytes stored under `key` (the classifier head, autoencoders). */
  model(key: string): Buffer | undefined {
    return this.store.models.getBinary(key);
  }

  putModel(key: string, bytes: Uint8Array): void {
    this.store.write(() => this.store.models.putSync(key, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)));
  }

  /** Empties a codes table (before `train` fills it for a new space). */
  clearCodes(table: CodesTable): void {
    const t = this.store.codesTable(table);
    this.store.write(() => {
      for (const id of t.getKeys()) t.removeSync(id);
    });
  }

  /** Stores autoencoder codes for images that still exist, in one transaction. */
  putCodes(table: CodesTable, codes: ReadonlyArray<{ id: number; code: Float32Array }>): void {
    this.store.write(() => {
      for (const { id, code } of codes) if (this.store.images.doesExist(id)) this.store.putCode(table, id, code);
    });
  }

  /** Drops a space that is no longer in use: its codes and its weights. */
  dropSpace(space: SpaceInfo & { kind: 'autoencoder' }): void {
    const t = this.store.codesTable(space.codes);
    this.store.write(() => {
      for (const id of t.getKeys()) t.removeSync(id);
      this.store.models.removeSync(space.model);
    });
  }

  // ------------------------------------------------------------------ journal and snapshot

  journalAfter(seq: number): Array<{ key: number; value: JournalEntry }> {
    return this.store.journalAfter(seq);
  }

  snapshotMeta(): SnapshotMeta | undefined {
    return this.store.getSnapshotMeta();
  }

  loadSnapshotToFile(meta: SnapshotMeta, file: string): boolean {
    return this.store.loadSnapshotToFile(meta, file);
  }

  /**
   * Saves an HNSW snapshot covering the journal up to `meta.seq`, only if nothing was written
   * since and `spaceKey` is still the active space; false otherwise (the caller catches up and
   * tries again). With `activate`, the space becomes the active one in the same transaction, if
   * every image has a code in it (`train`'s switch).
   */
  saveSnapshot(bytes: Buffer, meta: Omit<SnapshotMeta, 'chunks' | 'bytes' | 'savedAt'>, isActive: (space: SpaceInfo) => boolean, activate?: SpaceInfo & { kind: 'autoencoder' }): boolean {
    const { store } = this;
    return store.write(() => {
      const current = this.meta();
      if (current.seq !== meta.seq) return false;
      if (activate) {
        for (const id of store.images.getKeys()) if (!store.codesTable(activate.codes).doesExist(id)) return false;
      } else if (!isActive(store.getSpace())) {
        return false;
      }
      store.writeSnapshot(bytes, meta);
      if (activate) store.putMeta({ ...current, space: activate });
      return true;
    });
  }

  sizeOnDisk(): number {
    return this.store.sizeOnDisk();
  }

  /** Where the library lives: its data folder, or its database URL without the password. */
  where(): string {
    return this.store.where;
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

export { toFloat32 };
