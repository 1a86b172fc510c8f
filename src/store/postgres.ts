/**
 * The library in PostgreSQL with pgvector (issue 20; `--store postgres://…`): one table per named
 * database of the LMDB store, the same records on top. Vectors live in a `vector(n)` column with
 * a cosine HNSW index; strings are keyed in byte order (COLLATE "C", LMDB's order); a write
 * transaction is BEGIN … COMMIT holding `pg_advisory_xact_lock`, so writers of every process take
 * turns as LMDB's do. The schema is versioned (`schema_migrations`) and migrated on open.
 */
import { NotFoundError } from '../errors.ts';
import { literal, PgBridge, redactUrl, type Row } from './pg-bridge.ts';
import { Store } from './lmdb.ts';
import type { RangeOptions, StoreBackend, Table, TableName } from './table.ts';

/** The advisory lock every writer holds for its transaction ('pixd'). */
const WRITE_LOCK = 0x70697864;
/** Rows fetched per round trip when a range is iterated. */
const PAGE = 1000;
/** pgvector's HNSW index takes `vector` columns up to this many dimensions. */
const HNSW_MAX_DIMS = 2000;
/** pgvector's `hnsw.ef_search` pixdex documents: recall@10 0.992 against exact at 100k vectors (bench/pgvector.ts, README). */
export const PG_EF_SEARCH = 100;

/** How one named database is laid out as a table. */
interface TableSpec {
  sql: string;
  key: string;
  /** The value's columns, as selected. */
  cols: string;
  decode(row: Row): unknown;
  /** The value's column literals, in `cols` order. */
  encode(value: unknown): string;
  keyKind: 'int' | 'text';
}

/** bytea arrives from the worker as a Uint8Array (structured clone): seen as the Buffer LMDB gives. */
const bytes = (row: Row) => {
  const u = row.data as Uint8Array;
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
};
const json = (row: Row) => row.record;
const bin = (name: string, key = 'id'): TableSpec => ({ sql: name, key, cols: 'data', decode: bytes, encode: (v) => literal(v as Buffer), keyKind: key === 'id' || key === 'chunk' ? 'int' : 'text' });
const rec = (name: string): TableSpec => ({ sql: name, key: 'id', cols: 'record', decode: json, encode: (v) => literal(v ?? null), keyKind: 'int' });

const SPECS: Record<TableName, TableSpec> = {
  images: rec('images'),
  paths: { sql: 'paths', key: 'path', cols: 'image_id', decode: (r) => r.image_id, encode: (v) => literal(v), keyKind: 'text' },
  hashes: { sql: 'hashes', key: 'sha256', cols: 'image_id', decode: (r) => r.image_id, encode: (v) => literal(v), keyKind: 'text' },
  vectors: { sql: 'vectors', key: 'id', cols: 'embedding', decode: (r) => vectorBytes(r.embedding as string), encode: (v) => `'${vectorText(v as Buffer)}'`, keyKind: 'int' },
  scales: bin('scales'),
  codes: bin('codes'),
  codes2: bin('codes2'),
  labels: { sql: 'labels', key: 'label', cols: 'count', decode: (r) => r.count, encode: (v) => literal(v), keyKind: 'text' },
  models: bin('models', 'key'),
  meta: { sql: 'meta', key: 'key', cols: 'value', decode: (r) => r.value, encode: (v) => literal(v ?? null), keyKind: 'text' },
  ann: bin('ann', 'chunk'),
  journal: { sql: 'journal', key: 'seq', cols: 'op, image_id', decode: (r) => ({ op: r.op, id: r.image_id }), encode: (v) => { const e = v as { op: string; id: number }; return `${literal(e.op)}, ${literal(e.id)}`; }, keyKind: 'int' },
  suggestions: rec('suggestions'),
  features: bin('features'),
  words: bin('words'),
  dupes: rec('dupes'),
  dupesPending: { sql: 'dupes_pending', key: 'id', cols: 'TRUE AS pending', decode: () => true, encode: () => '', keyKind: 'int' },
};

/** Versioned schema: each entry runs once, in order, recorded in `schema_migrations`. */
const MIGRATIONS: Array<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'tables of the LMDB layout, vectors in pgvector',
    sql: `
      CREATE EXTENSION IF NOT EXISTS vector;
      CREATE TABLE images (id integer PRIMARY KEY, record jsonb NOT NULL);
      CREATE TABLE paths (path text COLLATE "C" PRIMARY KEY, image_id integer NOT NULL);
      CREATE INDEX paths_image ON paths (image_id);
      CREATE TABLE hashes (sha256 text COLLATE "C" PRIMARY KEY, image_id integer NOT NULL);
      CREATE TABLE vectors (id integer PRIMARY KEY, embedding vector NOT NULL);
      CREATE TABLE scales (id integer PRIMARY KEY, data bytea NOT NULL);
      CREATE TABLE codes (id integer PRIMARY KEY, data bytea NOT NULL);
      CREATE TABLE codes2 (id integer PRIMARY KEY, data bytea NOT NULL);
      CREATE TABLE labels (label text COLLATE "C" PRIMARY KEY, count integer NOT NULL);
      CREATE TABLE models (key text COLLATE "C" PRIMARY KEY, data bytea NOT NULL);
      CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value jsonb);
      CREATE TABLE ann (chunk integer PRIMARY KEY, data bytea NOT NULL);
      CREATE TABLE journal (seq bigint PRIMARY KEY, op text NOT NULL, image_id integer NOT NULL);
      CREATE TABLE suggestions (id integer PRIMARY KEY, record jsonb NOT NULL);
      CREATE TABLE features (id integer PRIMARY KEY, data bytea NOT NULL);
      CREATE TABLE words (id integer PRIMARY KEY, data bytea NOT NULL);
      CREATE TABLE dupes (id integer PRIMARY KEY, record jsonb NOT NULL);
      CREATE TABLE dupes_pending (id integer PRIMARY KEY);`,
  },
];

/** Is `value` a PostgreSQL connection URL (`--store`)? */
export function isPostgresUrl(value: string | undefined): value is string {
  return value !== undefined && /^postgres(ql)?:\/\//i.test(value);
}

/**
 * Opens the library in the database at `url`, applying the schema migrations it lacks. With
 * `create: false` a database without a pixdex library is a `NotFoundError` and nothing is created.
 */
export function openPostgresStore(url: string, { create = true }: { create?: boolean } = {}): Store {
  const backend = new PgBackend(url);
  try {
    backend.migrate(create);
  } catch (err) {
    void backend.close();
    throw err;
  }
  return new Store(backend);
}

class PgBackend implements StoreBackend {
  readonly where: string;
  /** Smaller than LMDB's: each chunk travels as one hex literal. */
  readonly snapshotChunk = 16 * 1024 * 1024;
  readonly db: PgBridge;
  private readonly tables = new Map<TableName, PgTable>();
  private depth = 0;
  /** A read snapshot is open (see `read`). */
  private reading = false;
  /** The vector column's dimensions once typed (`vector(n)` with its HNSW index). */
  private vectorDims?: number;

  constructor(url: string) {
    this.where = redactUrl(url);
    this.db = new PgBridge(url, this.where);
    for (const [name, spec] of Object.entries(SPECS) as Array<[TableName, TableSpec]>) {
      this.tables.set(name, new PgTable(this, spec, name === 'vectors' ? () => this.typeVectors() : undefined));
    }
  }

  /** Applies the migrations this database lacks, one transaction each, writers locked out. */
  migrate(create: boolean): void {
    const present = this.db.query(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`)[0].present as boolean;
    if (!present && !create) throw new NotFoundError(`No pixdex library in ${this.where}; run \`pixdex index <folder> --store ${this.where}\` first`);
    this.write(() => {
      this.db.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      const done = new Set(this.db.query('SELECT version FROM schema_migrations').map((r) => r.version as number));
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        this.db.query(m.sql);
        this.db.query(`INSERT INTO schema_migrations (version, name) VALUES (${m.version}, ${literal(m.name)})`);
      }
    });
    this.typeVectors();
  }

  /**
   * Gives the vector column its dimensions and the cosine HNSW index, once the library's `dims` is
   * known (its metadata is written after the tables exist). Idempotent; true when typed.
   */
  typeVectors(): boolean {
    if (this.vectorDims !== undefined) return true;
    const typed = () => (this.db.query(`SELECT atttypmod FROM pg_attribute WHERE attrelid = 'vectors'::regclass AND attname = 'embedding'`)[0]?.atttypmod as number | undefined) ?? -1;
    if (typed() > 0) return (this.vectorDims = typed()), true;
    const dims = (this.tables.get('meta')!.get('store') as { dims?: number } | undefined)?.dims;
    if (!dims) return false;
    this.write(() => {
      if (typed() > 0) return; // another process typed it meanwhile
      this.db.query(`ALTER TABLE vectors ALTER COLUMN embedding TYPE vector(${dims})`);
      if (dims <= HNSW_MAX_DIMS) this.db.query('CREATE INDEX IF NOT EXISTS vectors_embedding_hnsw ON vectors USING hnsw (embedding vector_cosine_ops)');
    });
    this.vectorDims = dims;
    return true;
  }

  table(name: TableName): PgTable {
    return this.tables.get(name)!;
  }

  /**
   * Runs a read. Outside a write, the reads of one synchronous stretch of code see one snapshot,
   * as lmdb-js's do (its read transaction is renewed per event-loop turn): the first opens a
   * REPEATABLE READ transaction, ended at the next turn or by a write. So `meta.seq` and the
   * journal read together agree even while another process commits.
   */
  read(sql: string): Row[] {
    if (this.depth > 0 || this.reading) return this.db.query(sql);
    const rows = this.db.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ${sql}`);
    this.reading = true;
    setImmediate(() => this.endRead());
    return rows;
  }

  private endRead(): void {
    if (!this.reading) return;
    this.reading = false;
    try {
      this.db.query('COMMIT');
    } catch {
      // the connection is gone: nothing was written in it
    }
  }

  write<T>(fn: () => T): T {
    if (this.depth > 0) return fn(); // nested: part of the transaction already open (as lmdb-js)
    this.endRead();
    this.db.query(`BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK})`);
    this.depth++;
    let result: T;
    try {
      result = fn();
    } catch (err) {
      this.depth--;
      try {
        this.db.query('ROLLBACK');
      } catch {
        // the connection is gone: the server rolled back already
      }
      throw err;
    }
    this.depth--;
    this.db.query('COMMIT');
    return result;
  }

  tableBytes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, spec] of Object.entries(SPECS)) out[name] = Number(this.db.query(`SELECT pg_total_relation_size('${spec.sql}') AS n`)[0].n);
    return out;
  }

  sizeOnDisk(): number {
    return Object.values(this.tableBytes()).reduce((a, b) => a + b, 0);
  }

  close(): Promise<void> {
    this.endRead();
    return this.db.close();
  }
}

/** One named database as a table: the lmdb-js calls the records make, as SQL. */
class PgTable implements Table<unknown, string | number> {
  private readonly key: string;

  constructor(private readonly backend: PgBackend, private readonly spec: TableSpec, private readonly beforePut?: () => boolean) {
    this.key = spec.keyKind === 'text' ? `${spec.key} COLLATE "C"` : spec.key;
  }

  private q(sql: string): Row[] {
    return this.backend.read(sql);
  }

  /** A change: inside the write transaction open, or in one of its own (writers take turns). */
  private change(sql: string): Row[] {
    return this.backend.write(() => this.backend.db.query(sql));
  }

  get(key: string | number): unknown {
    const row = this.q(`SELECT ${this.spec.cols} FROM ${this.spec.sql} WHERE ${this.spec.key} = ${literal(key)}`)[0];
    return row === undefined ? undefined : this.spec.decode(row);
  }

  getBinary(key: string | number): Buffer | undefined {
    return this.get(key) as Buffer | undefined;
  }

  getManySync(keys: readonly (string | number)[]): unknown[] {
    if (keys.length === 0) return [];
    const rows = this.q(`SELECT ${this.spec.key} AS k, ${this.spec.cols} FROM ${this.spec.sql} WHERE ${this.spec.key} IN (${keys.map(literal).join(', ')})`);
    const found = new Map(rows.map((row) => [String(row.k), this.spec.decode(row)])); // int8 keys arrive as strings
    return keys.map((k) => found.get(String(k)));
  }

  getBinaryFast(key: string | number): Buffer | undefined {
    return this.getBinary(key);
  }

  doesExist(key: string | number): boolean {
    return this.q(`SELECT 1 FROM ${this.spec.sql} WHERE ${this.spec.key} = ${literal(key)}`).length > 0;
  }

  getCount(): number {
    return Number(this.q(`SELECT count(*)::int8 AS n FROM ${this.spec.sql}`)[0].n);
  }

  *getKeys(options: RangeOptions<string | number> = {}): Iterable<string | number> {
    for (const row of this.rows(options, this.spec.key)) yield row.k as string | number;
  }

  *getRange(options: RangeOptions<string | number> = {}): Iterable<{ key: string | number; value: unknown }> {
    for (const row of this.rows(options, `${this.spec.key}, ${this.spec.cols}`)) yield { key: row.k as string | number, value: this.spec.decode(row) };
  }

  /** The rows of a range, a page at a time (keyset: rows written or removed meanwhile are seen as LMDB's cursor would). */
  private *rows(o: RangeOptions<string | number>, cols: string): Iterable<Row> {
    const desc = o.reverse === true;
    const bound = (lo: string | number | undefined, hi: string | number | undefined, hiInclusive: boolean): string[] => [
      ...(lo !== undefined ? [`${this.key} ${desc && !hiInclusive ? '>' : '>='} ${literal(lo)}`] : []),
      ...(hi !== undefined ? [`${this.key} ${hiInclusive ? '<=' : '<'} ${literal(hi)}`] : []),
    ];
    // lmdb-js: start inclusive, end exclusive; reversed, start is the top (inclusive) and end the bottom (exclusive).
    const fixed = desc ? bound(o.end, o.start, true) : bound(o.start, o.end, false);
    let remaining = o.limit ?? Infinity;
    let offset = o.offset ?? 0;
    let after: string | number | undefined;
    while (remaining > 0) {
      const where = [...fixed, ...(after !== undefined ? [`${this.key} ${desc ? '<' : '>'} ${literal(after)}`] : [])];
      const n = Math.min(PAGE, remaining);
      const page = this.q(
        `SELECT ${cols.replace(this.spec.key, `${this.spec.key} AS k`)} FROM ${this.spec.sql}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ` +
          `ORDER BY ${this.key} ${desc ? 'DESC' : 'ASC'} LIMIT ${n}${offset ? ` OFFSET ${offset}` : ''}`,
      );
      offset = 0;
      for (const row of page) yield row;
      remaining -= page.length;
      if (page.length < n) return;
      after = page[page.length - 1].k as string | number;
    }
  }

  putSync(key: string | number, value: unknown): boolean {
    if (this.beforePut && !this.beforePut()) throw new Error('The library has no dimensions yet: vectors cannot be stored');
    const cols = this.spec.cols === 'TRUE AS pending' ? '' : this.spec.cols;
    const conflict = cols === '' ? 'DO NOTHING' : `DO UPDATE SET ${cols.split(',').map((c) => `${c.trim()} = EXCLUDED.${c.trim()}`).join(', ')}`;
    this.change(`INSERT INTO ${this.spec.sql} (${this.spec.key}${cols ? `, ${cols}` : ''}) VALUES (${literal(key)}${cols ? `, ${this.spec.encode(value)}` : ''}) ON CONFLICT (${this.spec.key}) ${conflict}`);
    return true;
  }

  removeSync(key: string | number): boolean {
    return this.change(`DELETE FROM ${this.spec.sql} WHERE ${this.spec.key} = ${literal(key)} RETURNING 1`).length > 0;
  }
}

/** A float32 vector's bytes as pgvector's text form (each float printed exactly: shortest round trip). */
function vectorText(buf: Uint8Array): string {
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  const v = new Float32Array(copy.buffer);
  for (const x of v) if (!Number.isFinite(x)) throw new Error('A vector with a non-finite value cannot be stored in PostgreSQL');
  return `[${Array.from(v, (x) => String(x)).join(',')}]`;
}

/** pgvector's text form back to float32 bytes. */
function vectorBytes(text: string): Buffer {
  const v = Float32Array.from(text.slice(1, -1).split(','), Number);
  return Buffer.from(v.buffer);
}

/** Keeps `Store` and the PostgreSQL store's tables in one import for the factory. */
export type { Store };
