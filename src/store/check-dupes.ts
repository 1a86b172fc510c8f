/**
 * `pixdex check` for near-duplicate evidence (issue 15): no evidence kept for an image that is
 * gone, every edge points to an existing image and is stored on both sides. Repair drops the
 * evidence of the images concerned; they are compared with their neighbours again by the next
 * index run or `pixdex duplicates`.
 */
import { dropDupes, recheckDupes } from './duplicates.ts';
import type { Store } from './lmdb.ts';

export type DupesProblemKind =
  | 'DUPES_WITHOUT_IMAGE' // near-duplicate evidence kept for no image
  | 'DUPES_EDGE'; // an edge to no image, or stored on one side only

export interface DupesProblem {
  kind: DupesProblemKind;
  message: string;
  id?: number;
}

/** What is wrong, and the images whose evidence a repair drops. */
export function planDupes(store: Store): { problems: DupesProblem[]; drop: number[] } {
  const problems: DupesProblem[] = [];
  const drop = new Set<number>();
  for (const { key: id, value } of store.dupes.getRange()) {
    if (!store.images.doesExist(id)) {
      problems.push({ kind: 'DUPES_WITHOUT_IMAGE', id, message: `near-duplicate evidence ${id} belongs to no image` });
      drop.add(id);
      continue;
    }
    for (const e of value.edges ?? []) {
      const other = store.images.doesExist(e.id) ? store.dupes.get(e.id) : undefined;
      if (!other?.edges?.some((x) => x.id === id)) {
        problems.push({ kind: 'DUPES_EDGE', id, message: `image ${id}: near-duplicate edge to ${e.id}, which ${store.images.doesExist(e.id) ? 'does not have it back' : 'is no image'}` });
        drop.add(id);
      }
    }
  }
  for (const id of store.dupesPending.getKeys()) {
    if (store.images.doesExist(id)) continue;
    problems.push({ kind: 'DUPES_WITHOUT_IMAGE', id, message: `image ${id} is listed for the duplicate check but is no image` });
    drop.add(id);
  }
  return { problems, drop: [...drop] };
}

/** Inside a write: drops the evidence of `drop` (and its edges on the other side); existing images are compared again later. */
export function applyDupes(store: Store, drop: readonly number[]): Record<string, number> {
  for (const id of drop) {
    if (store.images.doesExist(id)) recheckDupes(store, id);
    else dropDupes(store, id);
  }
  return drop.length ? { 'near-duplicate evidence dropped': drop.length } : {};
}
