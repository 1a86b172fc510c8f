/**
 * A synchronous PostgreSQL connection: the records run on synchronous reads and transactions
 * (LMDB's model), so a PostgreSQL store answers them through one `pg` Client in a worker thread
 * (`pg-worker.mjs`), waited for with Atomics.wait on a shared flag and read back with
 * receiveMessageOnPort. One connection per store: a transaction is BEGIN … COMMIT on it.
 * Statements go as text with their values inlined as literals (`literal`), one protocol message
 * each (see the worker).
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { PixdexError } from '../errors.ts';

/** Longest wait for one statement before the store is declared unreachable. */
const STATEMENT_TIMEOUT_MS = 10 * 60_000;

export type Row = Record<string, unknown>;

export class PgBridge {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private closed = false;

  constructor(url: string, private readonly where: string) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(new URL('./pg-worker.mjs', import.meta.url), {
      workerData: { url, port: port2, flag: this.flag.buffer },
      transferList: [port2],
      stdout: false,
      stderr: false,
    });
    this.worker.unref();
    this.port.unref();
  }

  /** Runs `sql` (one or more statements) and returns the last one's rows. */
  query(sql: string): Row[] {
    if (this.closed) throw new PixdexError('STORE_UNAVAILABLE', `The store ${this.where} is closed`);
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage({ sql });
    if (Atomics.wait(this.flag, 0, 0, STATEMENT_TIMEOUT_MS) === 'timed-out') {
      throw new PixdexError('STORE_UNAVAILABLE', `The store ${this.where} did not answer in ${STATEMENT_TIMEOUT_MS / 1000} s`);
    }
    const got = receiveMessageOnPort(this.port)?.message as { rows: Row[]; error?: { message: string; code?: string; connection: boolean } } | undefined;
    if (!got) throw new PixdexError('STORE_UNAVAILABLE', `The store ${this.where} gave no answer (its connection thread ended)`);
    if (got.error) {
      const { message, code } = got.error;
      if (got.error.connection || /^(08|28|3D)/.test(code ?? '')) throw new PixdexError('STORE_UNAVAILABLE', `Cannot use the store ${this.where}: ${message}`);
      throw new Error(`PostgreSQL (${this.where}): ${message}${code ? ` [${code}]` : ''}`);
    }
    return got.rows;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      this.query('SELECT 1'); // fails fast when the connection is already gone
      Atomics.store(this.flag, 0, 0);
      this.port.postMessage({ close: true });
      Atomics.wait(this.flag, 0, 0, 5000);
    } catch {
      // closing a broken connection: nothing to flush
    } finally {
      this.closed = true;
      await this.worker.terminate();
    }
  }
}

/** A SQL literal for a value: numbers, strings, booleans, null, bytes (bytea) and JSON objects (jsonb). */
export function literal(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`Not a finite number: ${v}`);
    return String(v);
  }
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  if (typeof v === 'string') return quote(v);
  if (v instanceof Uint8Array) return `'\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}'::bytea`;
  return `${quote(JSON.stringify(v))}::jsonb`;
}

/** A string literal (standard_conforming_strings: only the quote is doubled); NUL bytes are refused. */
function quote(s: string): string {
  if (s.includes('\u0000')) throw new Error('A text value cannot hold a NUL character in PostgreSQL');
  return `'${s.replace(/'/g, "''")}'`;
}

/** The URL without its password, for messages and `stats`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}
