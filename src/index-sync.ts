/**
 * Index sync: keeps the in-memory HNSW index of the active embedding space in step with the
 * records. On open it loads the snapshot and replays the journal written after it (by this or
 * another process), or rebuilds from the stored vectors (the source of truth); `snapshot()` saves
 * it back with the journal position it covers. Used by the engine, indexing, training and check.
 */
import { AnnIndex } from './ann.ts';
import type { AnnOptions } from './config.ts';
import { PixdexError } from './errors.ts';
import type { BackboneSpec } from './models/backbone.ts';
import type { Records } from './store/records.ts';
import { spaceOf, type JournalEntry, type SpaceInfo } from './store/lmdb.ts';

/** 'backbone', or the model key of an autoencoder space (names what an HNSW snapshot indexes). */
export function spaceKey(space: SpaceInfo): string {
  return space.kind === 'backbone' ? 'backbone' : space.model;
}

/** Dimensions of the vectors of `space`. */
export function spaceDims(space: SpaceInfo, spec: BackboneSpec): number {
  return space.kind === 'backbone' ? spec.dims : space.dims;
}

/** A fresh HNSW index over every stored image's vector in `space`. */
export function buildIndex(records: Records, space: SpaceInfo, dims: number, params: AnnOptions): AnnIndex {
  const ann = AnnIndex.create(dims, params, Math.ceil(records.count() * 1.25));
  for (const id of records.ids()) {
    const v = records.spaceVector(space, id);
    if (v) ann.add(id, v); // AnnIndex normalises
  }
  return ann;
}

export class IndexSync {
  private ann: AnnIndex;
  private appliedSeq = 0;
  private snapshotSeq = 0;
  /** The space the in-memory index holds (switches when `train` or another process switches). */
  private indexed: SpaceInfo = { kind: 'backbone' };
  private loadedFrom: 'snapshot' | 'rebuilt' = 'rebuilt';

  constructor(
    private readonly records: Records,
    private readonly spec: BackboneSpec,
    private readonly params: AnnOptions,
    private readonly warn: (message: string) => void = (m) => console.error(`pixdex: warning: ${m}`),
  ) {
    this.ann = AnnIndex.create(spec.dims, params);
    this.load();
  }

  /** The index searches use (read-only outside this module). */
  get index(): AnnIndex {
    return this.ann;
  }

  /** The space the index holds. */
  get space(): SpaceInfo {
    return this.indexed;
  }

  /** Where the index came from when it was last loaded. */
  get source(): 'snapshot' | 'rebuilt' {
    return this.loadedFrom;
  }

  /** Loads the HNSW snapshot and replays later changes, or rebuilds from stored vectors. */
  private load(): void {
    const space = this.records.space();
    this.indexed = space;
    const dims = spaceDims(space, this.spec);
    const snap = this.records.snapshotMeta();
    const usable = snap && snap.dims === dims && (snap.space ?? 'backbone') === spaceKey(space);
    let ann: AnnIndex | undefined;
    if (usable) {
      try {
        // Straight from LMDB's memory map into hnswlib's reader: no Buffer of the whole index.
        ann = AnnIndex.restore((file) => this.records.loadSnapshotToFile(snap, file), dims, this.params, snap.live);
      } catch (err) {
        if (!(err instanceof PixdexError) || err.code !== 'SNAPSHOT_UNUSABLE') throw err;
        this.warn(`the HNSW snapshot could not be used (${err.message}); rebuilt from the stored vectors`);
      }
    }
    if (snap && ann) {
      this.ann = ann;
      this.appliedSeq = snap.seq;
      this.snapshotSeq = snap.seq;
      this.loadedFrom = 'snapshot';
      this.replayJournal();
    } else {
      this.rebuild();
    }
  }

  /** Rebuilds the index from the vectors in the records for the active space. */
  rebuild(): void {
    const meta = this.records.meta();
    const space = this.records.space();
    this.ann = buildIndex(this.records, space, spaceDims(space, this.spec), this.params);
    this.indexed = space;
    this.appliedSeq = meta.seq;
    this.snapshotSeq = 0;
    this.loadedFrom = 'rebuilt';
  }

  /** Applies journal entries written after the last one applied (by this or another process). */
  private replayJournal(): void {
    const snap = this.records.snapshotMeta();
    if (snap && snap.seq > this.appliedSeq) {
      // Another process saved a snapshot and dropped journal entries this one had not seen.
      this.load();
      return;
    }
    for (const { key, value } of this.records.journalAfter(this.appliedSeq)) {
      this.apply(value);
      this.appliedSeq = key;
    }
    this.appliedSeq = Math.max(this.appliedSeq, this.records.meta().seq);
  }

  private apply(e: JournalEntry): void {
    if (e.op === 'remove') {
      this.ann.remove(e.id);
      return;
    }
    const v = this.records.spaceVector(this.indexed, e.id);
    if (v && this.records.exists(e.id)) this.ann.add(e.id, v);
  }

  /**
   * Catches up with changes made by other processes sharing the store (cheap when none: one read
   * of the library's metadata). Returns the active space, the one the index is now of.
   */
  refresh(): SpaceInfo {
    const meta = this.records.meta();
    const space = spaceOf(meta);
    if (spaceKey(space) !== spaceKey(this.indexed)) this.load(); // switched by `train`
    else if (meta.seq !== this.appliedSeq) this.replayJournal();
    return this.indexed;
  }

  /** Changes written since the last snapshot (0 when there is none: the next open rebuilds). */
  pending(): number {
    return this.records.meta().seq - (this.records.snapshotMeta()?.seq ?? 0);
  }

  /**
   * Saves the HNSW index into LMDB with the journal position it covers, so the next open
   * loads it instead of rebuilding. Retries if another process wrote in between.
   */
  snapshot(): void {
    for (let attempt = 0; attempt < 5; attempt++) {
      this.refresh();
      const seq = this.appliedSeq;
      if (seq === this.snapshotSeq && this.records.snapshotMeta()) return;
      const key = spaceKey(this.indexed);
      const saved = this.records.saveSnapshot(this.ann.toBytes(), { seq, space: key, live: this.ann.size, dims: this.ann.dims, m: this.params.m, efConstruction: this.params.efConstruction }, (s) => spaceKey(s) === key);
      if (saved) {
        this.snapshotSeq = seq;
        return;
      }
    }
  }
}
