/**
 * The narrow table interface both stores implement: the part of lmdb-js's `Database` the records
 * use (synchronous reads, `putSync`/`removeSync` inside `Store.write`). LMDB's named databases
 * satisfy it as they are; the PostgreSQL store (`postgres.ts`) gives one table per named database.
 */

/** A key range, as lmdb-js reads it: `start` inclusive, `end` exclusive (with `reverse`, from `start` down). */
export interface RangeOptions<K> {
  start?: K;
  end?: K;
  reverse?: boolean;
  limit?: number;
  offset?: number;
}

export interface Table<V, K extends string | number> {
  get(key: K): V | undefined;
  /** The value's bytes (binary tables). */
  getBinary(key: K): Buffer | undefined;
  /** As `getBinary`; LMDB gives a view valid until the next read. */
  getBinaryFast(key: K): Buffer | undefined;
  doesExist(key: K): boolean;
  getCount(): number;
  getKeys(options?: RangeOptions<K>): Iterable<K>;
  getRange(options?: RangeOptions<K>): Iterable<{ key: K; value: V }>;
  putSync(key: K, value: V): unknown;
  removeSync(key: K): unknown;
  /** The values of many keys in one read (undefined where absent), in `keys`' order: a remote store's one round trip. */
  getManySync?(keys: readonly K[]): Array<V | undefined>;
}

/**
 * The values of many keys (undefined where absent), in `keys`' order: one round trip where the
 * table offers `getManySync` (PostgreSQL), else one read each (LMDB's reads are memory-mapped).
 * `binary` reads binary tables' bytes (`getBinary`).
 */
export function readMany<V, K extends string | number>(table: Table<V, K>, keys: readonly K[], binary = false): Array<V | undefined> {
  if (table.getManySync) return table.getManySync(keys);
  return keys.map((k) => (binary ? (table.getBinary(k) as V | undefined) : table.get(k)));
}

/** The named databases of a store (DESIGN.md Storage). */
export const TABLE_NAMES = ['images', 'paths', 'hashes', 'vectors', 'scales', 'codes', 'codes2', 'labels', 'models', 'meta', 'ann', 'journal', 'suggestions', 'features', 'words', 'dupes', 'dupesPending'] as const;
export type TableName = (typeof TABLE_NAMES)[number];

/** What a store runs on: its tables, its write transactions, its size and its end. */
export interface StoreBackend {
  /** Where the library lives, for messages: a data folder, or a database URL without its password. */
  readonly where: string;
  /** Bytes per HNSW snapshot chunk in `ann`. */
  readonly snapshotChunk: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  table(name: TableName): Table<any, any>;
  /** Runs `fn` in one write transaction (writers of every process one at a time). */
  write<T>(fn: () => T): T;
  /** Bytes each table uses. */
  tableBytes(): Record<string, number>;
  /** The store's size, in bytes. */
  sizeOnDisk(): number;
  close(): Promise<void>;
}
