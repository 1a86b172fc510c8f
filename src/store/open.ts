/**
 * The store factory: the one place that picks the store a library lives in, from `--store` /
 * PIXDEX_STORE. A `postgres://` URL: PostgreSQL with pgvector (`postgres.ts`); unset: LMDB in the
 * data folder (`lmdb.ts`). Everything above works on `Store` and does not know which.
 */
import type { PixdexConfig } from '../config.ts';
import { Store } from './lmdb.ts';
import { isPostgresUrl, openPostgresStore } from './postgres.ts';

export function openStore(config: Pick<PixdexConfig, 'dataDir' | 'store'>, options: { create?: boolean } = {}): Store {
  return isPostgresUrl(config.store) ? openPostgresStore(config.store, options) : Store.open(config.dataDir, options);
}

/** What kind of store `config` names (for `stats`). */
export function storeKind(config: Pick<PixdexConfig, 'store'>): 'postgres' | 'lmdb' {
  return isPostgresUrl(config.store) ? 'postgres' : 'lmdb';
}
