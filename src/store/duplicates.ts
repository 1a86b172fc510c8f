/**
 * The records of near-duplicate evidence (issue 15): per image, the neighbours it was compared
 * with (`dupes` table) and what each comparison found (cosine, inliers). Edges are symmetric —
 * checking a new image writes the edge on both sides — so removing an image removes it from its
 * neighbours' lists in the same transaction, and an image without a record is one not checked yet.
 */
import type { DupeEdge, DupeRecord, Store } from './lmdb.ts';

/** Version of the evidence: records of another version count as unchecked. */
export const DUPES_VERSION = 1;

export class DuplicateRecords {
  constructor(private readonly store: Store) {}

  /** Whether `id` was checked (with this evidence version). */
  checked(id: number): boolean {
    return this.store.dupes.get(id)?.v === DUPES_VERSION;
  }

  /** The edges of `id`: its own comparisons and those of neighbours checked after it. */
  edges(id: number): DupeEdge[] {
    return usable(this.store.dupes.get(id))?.edges ?? [];
  }

  /** Every image with edges, in id order. */
  *all(): Iterable<{ id: number; edges: DupeEdge[] }> {
    for (const { key, value } of this.store.dupes.getRange()) {
      const r = usable(value);
      if (r && r.edges.length > 0) yield { id: key, edges: r.edges };
    }
  }

  /** How many images were checked. */
  checkedCount(): number {
    let n = 0;
    for (const { value } of this.store.dupes.getRange()) if (value.v === DUPES_VERSION) n++;
    return n;
  }

  /**
   * Stores the comparisons of image `id` with its neighbours, on both sides, in one transaction,
   * and marks `id` checked. Edges written earlier by other images' checks are kept (a neighbour
   * relation is not symmetric: an older image may have found `id` where `id` did not find it).
   * False when `id` no longer exists; neighbours that vanished are left out.
   */
  put(id: number, edges: readonly DupeEdge[]): boolean {
    const { store } = this;
    return store.write(() => {
      if (!store.images.doesExist(id)) return false;
      const kept = edges.filter((e) => e.id !== id && store.images.doesExist(e.id)).map((e) => ({ id: e.id, cosine: e.cosine, inliers: e.inliers }));
      const merged = new Map((usable(store.dupes.get(id))?.edges ?? []).map((e) => [e.id, e]));
      for (const e of kept) merged.set(e.id, e);
      store.dupes.putSync(id, { v: DUPES_VERSION, edges: [...merged.values()].sort((x, y) => x.id - y.id) });
      for (const e of kept) {
        const other = usable(store.dupes.get(e.id));
        const list = (other?.edges ?? []).filter((x) => x.id !== id);
        list.push({ id, cosine: e.cosine, inliers: e.inliers });
        // A neighbour not checked itself yet gets a record marked unchecked (v 0): it is still checked later.
        store.dupes.putSync(e.id, { v: other?.v ?? 0, edges: list.sort((x, y) => x.id - y.id) });
      }
      return true;
    });
  }

  /** Ids of the images not checked yet, in id order. */
  unchecked(): number[] {
    const out: number[] = [];
    for (const id of this.store.images.getKeys()) if (!this.checked(id)) out.push(id);
    return out;
  }

  /** Images shown by more than one path (identical files stored once), with all their paths sorted. */
  aliasGroups(): Map<number, string[]> {
    const byId = new Map<number, string[]>();
    for (const { key, value } of this.store.paths.getRange()) {
      const list = byId.get(value);
      if (list) list.push(key);
      else byId.set(value, [key]);
    }
    for (const [id, paths] of byId) {
      if (paths.length < 2) byId.delete(id);
      else paths.sort();
    }
    return byId;
  }

  /** Forgets every comparison (they are computed again by the next check). */
  clear(): void {
    const { store } = this;
    store.write(() => {
      for (const id of store.dupes.getKeys()) store.dupes.removeSync(id);
    });
  }
}

/** A record still usable: this version's, or edges left by neighbours on an unchecked image (v 0). */
function usable(r: DupeRecord | undefined): DupeRecord | undefined {
  return r && (r.v === DUPES_VERSION || r.v === 0) ? r : undefined;
}

/** Inside a write: removes image `id`'s evidence and `id` from its neighbours' lists. */
export function dropDupes(store: Store, id: number): void {
  const own = store.dupes.get(id);
  if (!own) return;
  for (const e of own.edges) {
    const other = store.dupes.get(e.id);
    if (!other) continue;
    const list = other.edges.filter((x) => x.id !== id);
    if (list.length !== other.edges.length) store.dupes.putSync(e.id, { v: other.v, edges: list });
  }
  store.dupes.removeSync(id);
}
