/**
 * The records of near-duplicate evidence (issue 15): per image, the neighbours it was compared
 * with (`dupes` table) and what each comparison found (cosine, inliers). Edges are symmetric —
 * checking a new image writes the edge on both sides — so removing an image removes it from its
 * neighbours' lists in the same transaction. Which images are still to compare is the
 * `dupesPending` list alone, written with the image.
 */
import type { DupeEdge, DupeRecord, Store } from './lmdb.ts';

/** Version of the evidence: records of another version are ignored (and their images listed again). */
export const DUPES_VERSION = 1;

export class DuplicateRecords {
  constructor(private readonly store: Store) {}

  /** Whether `id` was compared with its neighbours (with this evidence version). */
  checked(id: number): boolean {
    const { store } = this;
    return store.images.doesExist(id) && store.getMeta()?.dupes === DUPES_VERSION && !store.dupesPending.doesExist(id);
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
    return this.store.getMeta()?.dupes === DUPES_VERSION ? this.store.images.getCount() - this.store.dupesPending.getCount() : 0;
  }

  /** Stores one image's comparisons (see `putMany`). */
  put(id: number, edges: readonly DupeEdge[]): boolean {
    return this.putMany([{ id, edges }]) === 1;
  }

  /**
   * Stores the comparisons of images with their neighbours, on both sides, in one transaction,
   * and marks the images checked. Edges written earlier by other images' checks are kept (a
   * neighbour relation is not symmetric: an older image may have found `id` where `id` did not
   * find it). Images that no longer exist are skipped, neighbours that vanished left out.
   * Returns how many were stored.
   */
  putMany(batch: ReadonlyArray<{ id: number; edges: readonly DupeEdge[] }>): number {
    const { store } = this;
    return store.write(() => {
      let stored = 0;
      for (const { id, edges } of batch) {
        if (!store.images.doesExist(id)) continue;
        const kept = edges.filter((e) => e.id !== id && store.images.doesExist(e.id)).map((e) => ({ id: e.id, cosine: e.cosine, inliers: e.inliers }));
        const merged = new Map((usable(store.dupes.get(id))?.edges ?? []).map((e) => [e.id, e]));
        for (const e of kept) merged.set(e.id, e);
        store.dupes.putSync(id, { v: DUPES_VERSION, edges: [...merged.values()].sort((x, y) => x.id - y.id) });
        store.dupesPending.removeSync(id);
        for (const e of kept) {
          const other = usable(store.dupes.get(e.id));
          const list = (other?.edges ?? []).filter((x) => x.id !== id);
          list.push({ id, cosine: e.cosine, inliers: e.inliers });
          store.dupes.putSync(e.id, { v: DUPES_VERSION, edges: list.sort((x, y) => x.id - y.id) });
        }
        stored++;
      }
      return stored;
    });
  }

  /**
   * Ids of the images not checked yet, in id order: the `dupesPending` list, which every write of
   * a new or changed image adds to. A store from before that list gets it filled once, here.
   */
  unchecked(): number[] {
    const { store } = this;
    if (store.getMeta()?.dupes !== DUPES_VERSION) {
      store.write(() => {
        const meta = store.getMeta();
        if (!meta || meta.dupes === DUPES_VERSION) return;
        for (const id of store.images.getKeys()) store.dupesPending.putSync(id, true);
        store.putMeta({ ...meta, dupes: DUPES_VERSION });
      });
    }
    return [...store.dupesPending.getKeys()].filter((id) => store.images.doesExist(id));
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
      for (const id of store.images.getKeys()) store.dupesPending.putSync(id, true);
    });
  }
}

/** A record of this evidence version. */
function usable(r: DupeRecord | undefined): DupeRecord | undefined {
  return r?.v === DUPES_VERSION ? r : undefined;
}

/** Inside a write: `id` is new, changed or has new local features: it is compared again. */
export function recheckDupes(store: Store, id: number): void {
  dropDupes(store, id);
  store.dupesPending.putSync(id, true);
}

/** Inside a write: removes image `id`'s evidence and `id` from its neighbours' lists. */
export function dropDupes(store: Store, id: number): void {
  store.dupesPending.removeSync(id);
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
