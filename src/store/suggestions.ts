/**
 * Suggested labels (label propagation, `pixdex label propagate --apply`): each image's pending
 * suggestion and the labels a person rejected for it, in the store's `suggestions` table, apart
 * from the labels a person set. Reached as `Records.suggested`.
 */
import { NotFoundError } from '../errors.ts';
import type { Store, SuggestionRecord } from './lmdb.ts';

export class SuggestionRecords {
  constructor(private readonly store: Store) {}

  /** The suggestion (pending label and rejections) of `id`. */
  get(id: number): SuggestionRecord | undefined {
    return this.store.suggestions.get(id);
  }

  /** Every image's suggestion, in id order. */
  *all(): Iterable<{ id: number; value: SuggestionRecord }> {
    for (const { key, value } of this.store.suggestions.getRange()) yield { id: key, value };
  }

  /** Replaces every pending suggestion with `next` (rejections are kept). */
  replace(next: ReadonlyArray<{ id: number; label: string; confidence: number }>): void {
    const { store } = this;
    const ids = new Set(next.map((s) => s.id));
    store.write(() => {
      const now = Date.now();
      for (const { key, value } of store.suggestions.getRange()) {
        if (ids.has(key)) continue;
        if (value.rejected?.length) store.suggestions.putSync(key, { rejected: value.rejected, at: value.at });
        else store.suggestions.removeSync(key);
      }
      for (const s of next) {
        const old = store.suggestions.get(s.id);
        store.suggestions.putSync(s.id, { label: s.label, confidence: s.confidence, rejected: old?.rejected, at: now });
      }
    });
  }

  /** Drops the pending suggestion of `id` and remembers its label was rejected; returns that label. */
  reject(id: number): string {
    const { store } = this;
    return store.write(() => {
      const s = store.suggestions.get(id);
      if (!s?.label) throw new NotFoundError(`No pending suggestion for image ${id}.`);
      store.suggestions.putSync(id, { rejected: [...new Set([...(s.rejected ?? []), s.label])], at: Date.now() });
      return s.label;
    });
  }
}
