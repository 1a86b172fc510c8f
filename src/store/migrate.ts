/**
 * `pixdex migrate --from A --to B` (issue 20): copies a library between stores (an LMDB data
 * folder or a PostgreSQL URL, either way), table by table and row by row: images, paths, hashes,
 * vectors and codes, labels, suggestions, models (classifier, autoencoder, vocabulary), local
 * features, duplicate evidence, the settings in `meta` and the HNSW snapshot with its journal, so
 * the copy opens without a rebuild and `pixdex check` finds on it what it finds on the original.
 * The copy carries a `migrating` mark in `meta` until its last row: the next migrate into a copy
 * cut short starts it again from empty (into any other library it refuses).
 */
import { PixdexError } from '../errors.ts';
import type { Store } from './lmdb.ts';
import { TABLE_NAMES, type Table, type TableName } from './table.ts';

/** The mark of a copy in progress, in `meta`. */
export const MIGRATING = 'migrating';

/** Rows per write transaction on the destination. */
const BATCH = 500;

export interface MigrateReport {
  from: string;
  to: string;
  /** Rows copied per table. */
  rows: Record<string, number>;
  seconds: number;
}

export function migrateStore(from: Store, to: Store): MigrateReport {
  const started = performance.now();
  if (!from.getMeta()) throw new PixdexError('NOT_FOUND', `No pixdex library in ${from.where}`);
  if (to.getMeta() && to.meta.get(MIGRATING) === undefined) throw new PixdexError('STORE_MISMATCH', `${to.where} already holds a pixdex library; migrate into an empty folder or database`);
  // A copy cut short (still marked): start again from empty.
  to.write(() => {
    for (const name of TABLE_NAMES) for (const key of table(to, name).getKeys()) table(to, name).removeSync(key);
    to.meta.putSync(MIGRATING, { from: from.where, at: Date.now() });
    to.putMeta({ ...from.getMeta()! }); // first: PostgreSQL types its vector column from the library's dims
  });
  const rows: Record<string, number> = {};
  const order: TableName[] = ['meta', ...TABLE_NAMES.filter((n) => n !== 'meta')];
  for (const name of order) {
    let n = 0;
    let batch: Array<{ key: string | number; value: unknown }> = [];
    const flush = () => {
      const b = batch;
      batch = [];
      to.write(() => {
        for (const { key, value } of b) table(to, name).putSync(key, value);
      });
    };
    for (const entry of copyRange(from, name)) {
      batch.push(entry);
      n++;
      if (batch.length >= (name === 'ann' ? 1 : BATCH)) flush();
    }
    if (batch.length) flush();
    rows[name] = n;
  }
  to.write(() => to.meta.removeSync(MIGRATING));
  return { from: from.where, to: to.where, rows, seconds: (performance.now() - started) / 1000 };
}

/** A table's rows, binary values as their bytes (LMDB hands out views into its map: copied). */
function* copyRange(store: Store, name: TableName): Iterable<{ key: string | number; value: unknown }> {
  for (const { key, value } of table(store, name).getRange()) {
    yield { key, value: value instanceof Uint8Array ? Buffer.from(value) : value };
  }
}

function table(store: Store, name: TableName): Table<unknown, string | number> {
  return store[name] as Table<unknown, string | number>;
}
