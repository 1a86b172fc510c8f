/**
 * The server's query pool (issue 22): query photos are decoded and described in embedding worker
 * threads (indexer/workers, the `query` job), one wasm backend each, and their candidates are
 * verified there too (the `verify` job: matching and the Hough vote cost more than the backbone),
 * so concurrent photo queries use every core and the main thread stays free for requests that
 * need no model (similar-by-id, records, thumbnails). Verification of an admitted query goes ahead
 * of new photos. In front of it, a bounded FIFO queue: at most `maxQueued` photos wait for
 * a worker; one more is refused at once with `BusyError` (BUSY: 503 + Retry-After), never queued
 * without bound. A worker that crashes is restarted (its queries are tried once more elsewhere);
 * while no worker runs (starting, restarting, or none configured) queries are described in this
 * thread, so a query never hangs on a missing worker.
 */
import type { Worker } from 'node:worker_threads';
import type { Embedding } from './embed.ts';
import { BadImageError, PixdexError, type BadImageReason } from './errors.ts';
import type { Candidate, VerifiedCandidate } from './local/rerank.ts';
import type { LocalFeatures } from './local/types.ts';
import { startWorker } from '../indexer/workers/pool.ts';
import type { QueryJob, VerifyJob, WorkerInit, WorkerMessage } from '../indexer/workers/protocol.ts';

/**
 * Queries one worker holds at once: the decode of one (sharp, on libuv's threads) overlaps the
 * inference of the other, as in the index pool; more would only queue inside the worker, out of
 * the FIFO's reach.
 */
export const QUERIES_PER_WORKER = 2;
/** Queries described at once in this thread when no worker runs (the same overlap, one backend). */
export const MAIN_THREAD_QUERIES = 2;
/** A query whose worker died is tried this many times in all before it fails with WORKER_FAILED. */
const MAX_ATTEMPTS = 2;
/** Waits before restarting a worker, by failures in a row: a crash loop (a missing model) backs off to 30 s. */
const RESTART_DELAYS_MS = [0, 1_000, 5_000, 30_000];
/** Weight of the newest query in the service-time average behind Retry-After. */
const SERVICE_EWMA = 0.2;
/** Service time assumed before any query has run (a 1280 px photo on one wasm thread, ~40 ms). */
const INITIAL_SERVICE_MS = 50;

/** The queue is full: retry after `retryAfterSeconds` (HTTP 503 with Retry-After). */
export class BusyError extends PixdexError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super('BUSY', message);
  }
}

/** What describing a query photo gives: its embedding (with windows) and, when asked, its local features. */
export interface QueryDescription {
  embedding: Embedding;
  features?: LocalFeatures;
}

/** One query photo to describe. */
export interface QueryRequest {
  bytes: Uint8Array;
  /** Names the photo in error messages. */
  name: string;
  /** Extract its local features too (`QUERY_SIDE` greyscale). */
  localFeatures: boolean;
  /** In an autoencoder space: its key and its weights (read only when a worker lacks them; may throw). */
  autoencoder?: { key: string; weights: () => Uint8Array };
  /** The same description in this thread (`Describer`'s own path): used while no worker runs. */
  here: () => Promise<QueryDescription>;
}

export interface QueryPoolOptions {
  /** Worker threads (0: every query in this thread, still behind the bounded queue). */
  workers: number;
  /** Queries that may wait for a free worker; one more is a `BusyError`. */
  maxQueued: number;
  /** What each worker loads (backbone, descriptor, backend; `localFeatures` preloads OpenCV). */
  init: WorkerInit;
  /** Runs before the first worker starts (the backbone's download, when it is missing). */
  prepare?: () => Promise<void>;
  /** Worker starts, crashes and restarts (default: silent). */
  log?: (line: string) => void;
}

/** A query's candidates to verify geometrically (`verifyCandidates`). */
export interface VerifyRequest {
  query: LocalFeatures;
  candidates: readonly Candidate[];
  /** Candidates checked at least, even after a clear winner (the results asked for). */
  minChecked?: number;
  /** Each candidate's stored local-features record (undefined: none); copied to the worker. */
  records: ReadonlyArray<Uint8Array | undefined>;
  /** The same verification in this thread: used while no worker runs. */
  here: () => VerifiedCandidate[];
}

interface Job {
  /** Names the query in error messages. */
  name: string;
  /** The message for `slot`'s worker (fresh copies each time: a retry needs the bytes again). */
  build: (slot: Slot, jobId: number) => { message: QueryJob | VerifyJob; transfer: ArrayBuffer[] };
  here: () => Promise<unknown>;
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  attempts: number;
}

interface Slot {
  worker?: Worker;
  live: boolean;
  pending: Map<number, Job & { started: number }>;
  /** Autoencoder key this worker has loaded. */
  autoencoder?: string;
  /** Failed starts or crashes since it last ran a query. */
  failures: number;
}

export class QueryPool {
  /** Settles when every worker has started or failed to (never rejects: queries then run here). */
  readonly ready: Promise<void>;
  private readonly queue: Job[] = [];
  /** Verifications of admitted queries: served before new photos, never refused. */
  private readonly urgent: Job[] = [];
  private readonly slots: Slot[];
  private here = 0;
  private nextJob = 1;
  private closed = false;
  private serviceMs = INITIAL_SERVICE_MS;
  private readonly log: (line: string) => void;

  constructor(private readonly o: QueryPoolOptions) {
    this.log = o.log ?? (() => {});
    this.slots = Array.from({ length: o.workers }, () => ({ live: false, pending: new Map(), failures: 0 }));
    this.ready = this.startAll();
  }

  /** Photo queries waiting for a worker. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Queries being described (in workers or in this thread). */
  get inFlight(): number {
    return this.here + this.slots.reduce((n, s) => n + s.pending.size, 0);
  }

  /** Workers running now. */
  get liveWorkers(): number {
    return this.slots.filter((s) => s.live).length;
  }

  /** The worker threads, for tests and diagnostics (a stopped or restarting slot has none). */
  get threads(): Array<Worker | undefined> {
    return this.slots.map((s) => (s.live ? s.worker : undefined));
  }

  /** True when one more query would be refused: nothing free to run it and the queue is full. */
  get full(): boolean {
    return !this.hasRoom() && this.queue.length >= this.o.maxQueued;
  }

  /** The error one more query would get now (the queue is full, or the pool closed), or undefined. */
  refusal(): PixdexError | undefined {
    if (this.closed) return new PixdexError('NOT_READY', 'The server is shutting down');
    if (!this.full) return undefined;
    return new BusyError(`${this.inFlight} photo queries are running and ${this.queue.length} waiting (maxQueuedQueries ${this.o.maxQueued}); retry shortly`, this.retryAfter());
  }

  /** Describes a query photo in a worker (or here); `BusyError` at once when the queue is full. */
  describe(req: QueryRequest): Promise<QueryDescription> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return new Promise((resolve, reject) => {
      const build = (slot: Slot, jobId: number) => {
        let autoencoder: QueryJob['autoencoder'];
        const ae = req.autoencoder;
        if (ae) autoencoder = { key: ae.key, bytes: slot.autoencoder === ae.key ? undefined : new Uint8Array(ae.weights()) };
        if (autoencoder) slot.autoencoder = autoencoder.key; // messages are handled in order: the next job finds it loaded
        // A copy is transferred: the caller's buffer stays usable, and a retry has the bytes.
        const bytes = new Uint8Array(req.bytes);
        return { message: { type: 'query', jobId, name: req.name, bytes, localFeatures: req.localFeatures, autoencoder } as QueryJob, transfer: [bytes.buffer as ArrayBuffer] };
      };
      this.queue.push({ name: req.name, build, here: req.here, resolve, reject, attempts: 0 });
      this.pump();
    });
  }

  /** Verifies an admitted query's candidates in a worker (or here), ahead of the photos waiting. */
  verify(req: VerifyRequest): Promise<VerifiedCandidate[]> {
    if (this.closed) return Promise.reject(new PixdexError('NOT_READY', 'The server is shutting down'));
    return new Promise((resolve, reject) => {
      const build = (_slot: Slot, jobId: number) => {
        const records = req.records.map((r) => r && new Uint8Array(r));
        const transfer = records.flatMap((r) => (r ? [r.buffer as ArrayBuffer] : []));
        return { message: { type: 'verify', jobId, query: req.query, candidates: req.candidates.map((c) => ({ id: c.id, score: c.score })), minChecked: req.minChecked, records } as VerifyJob, transfer };
      };
      this.urgent.push({ name: 'verification', build, here: async () => req.here(), resolve, reject, attempts: 0 });
      this.pump();
    });
  }

  /** Refuses what waits, stops the workers. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = new PixdexError('NOT_READY', 'The server is shutting down');
    for (const job of [...this.urgent.splice(0), ...this.queue.splice(0)]) job.reject(stopped);
    await Promise.all(this.slots.map(async (s) => {
      s.live = false;
      for (const job of s.pending.values()) job.reject(stopped);
      s.pending.clear();
      await s.worker?.terminate();
    }));
  }

  /** Seconds until the queue has likely drained: what is queued and running, over the workers. */
  private retryAfter(): number {
    const ahead = this.queue.length + this.inFlight;
    return Math.max(1, Math.ceil((ahead * this.serviceMs) / Math.max(1, this.liveWorkers) / 1000));
  }

  private hasRoom(): boolean {
    const live = this.slots.filter((s) => s.live);
    if (live.length === 0) return this.here < MAIN_THREAD_QUERIES;
    return live.some((s) => s.pending.size < QUERIES_PER_WORKER);
  }

  /** Hands waiting jobs (verifications first, then photos, oldest first) to the least busy live worker, or to this thread when none runs. */
  private pump(): void {
    while (this.urgent.length + this.queue.length > 0 && !this.closed) {
      const next = () => (this.urgent.length > 0 ? this.urgent : this.queue).shift()!;
      const live = this.slots.filter((s) => s.live && s.pending.size < QUERIES_PER_WORKER);
      if (live.length > 0) {
        this.dispatch(live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a)), next());
      } else if (this.liveWorkers === 0 && this.here < MAIN_THREAD_QUERIES) {
        this.runHere(next());
      } else {
        return;
      }
    }
  }

  private runHere(job: Job): void {
    this.here++;
    const started = performance.now();
    job.here().then(
      (d) => {
        this.served(started);
        job.resolve(d);
      },
      job.reject,
    ).finally(() => {
      this.here--;
      this.pump();
    });
  }

  private dispatch(slot: Slot, job: Job): void {
    const jobId = this.nextJob++;
    let built: ReturnType<Job['build']>;
    try {
      built = job.build(slot, jobId);
    } catch (err) {
      job.reject(err as Error); // the autoencoder's weights are missing from the store
      return;
    }
    job.attempts++;
    slot.pending.set(jobId, { ...job, started: performance.now() });
    slot.worker!.postMessage(built.message, built.transfer);
  }

  private served(started: number): void {
    this.serviceMs += SERVICE_EWMA * (performance.now() - started - this.serviceMs);
  }

  private onMessage(slot: Slot, worker: Worker, m: WorkerMessage): void {
    if (m.type === 'query-result' || m.type === 'verify-result') {
      const job = slot.pending.get(m.jobId);
      slot.pending.delete(m.jobId);
      slot.failures = 0;
      if (job) {
        if (m.type === 'query-result') this.served(job.started);
        const r = m.result;
        if (!r.ok) job.reject(toError(r.code, r.message));
        else job.resolve('hits' in r ? r.hits : { embedding: r.embedding, features: r.features });
      }
      this.pump();
    } else if (m.type === 'fatal') {
      this.crashed(slot, worker, new PixdexError(m.code, m.message));
    }
  }

  /** A worker died: its queries are tried again (once) ahead of the queue, and it is restarted. */
  private crashed(slot: Slot, worker: Worker, err: Error): void {
    if (!slot.live || slot.worker !== worker) return; // already handled (an 'error' is followed by its 'exit')
    slot.live = false;
    slot.autoencoder = undefined;
    slot.worker = undefined;
    void worker.terminate();
    const retry: Job[] = [];
    for (const job of slot.pending.values()) {
      if (job.attempts < MAX_ATTEMPTS) retry.push(job);
      else job.reject(new PixdexError('WORKER_FAILED', `query worker failed on ${job.name}: ${err.message}`));
    }
    slot.pending.clear();
    this.urgent.unshift(...retry); // they were admitted: ahead of the photos still waiting
    if (!this.closed) {
      this.log(`query worker failed (${err.message}); restarting it`);
      slot.failures++;
      this.restart(slot);
    }
    this.pump();
  }

  private restart(slot: Slot): void {
    const delay = RESTART_DELAYS_MS[Math.min(slot.failures, RESTART_DELAYS_MS.length) - 1] ?? 0;
    setTimeout(() => void this.start(slot), delay).unref();
  }

  /** Starts the workers one at a time (the index pool's reason: tensorflow's process-wide start-up). */
  private async startAll(): Promise<void> {
    if (this.slots.length === 0) return;
    try {
      await this.o.prepare?.();
    } catch (err) {
      this.log(`query workers not started (${(err as Error).message}); photo queries run in the main thread`);
    }
    for (const slot of this.slots) await this.start(slot);
  }

  private async start(slot: Slot): Promise<void> {
    if (this.closed || slot.live) return;
    const { worker, ready } = startWorker(this.o.init);
    slot.worker = worker;
    try {
      await ready;
    } catch (err) {
      void worker.terminate();
      slot.worker = undefined;
      if (this.closed) return;
      slot.failures++;
      this.log(`query worker did not start (${(err as Error).message}); photo queries run in the other workers or the main thread meanwhile`);
      this.restart(slot);
      return;
    }
    if (this.closed) {
      await worker.terminate();
      return;
    }
    worker.on('message', (m: WorkerMessage) => this.onMessage(slot, worker, m));
    worker.on('error', (err) => this.crashed(slot, worker, err));
    worker.on('exit', (code) => this.crashed(slot, worker, new PixdexError('WORKER_FAILED', `query worker exited with code ${code}`)));
    slot.live = true;
    this.pump();
  }
}

const BAD_IMAGE: ReadonlySet<string> = new Set<BadImageReason>(['EMPTY_IMAGE', 'TRUNCATED_IMAGE', 'CORRUPT_IMAGE', 'UNSUPPORTED_IMAGE', 'IMAGE_TOO_LARGE']);

/** A worker's error, typed again as the main-thread path would throw it. */
function toError(code: PixdexError['code'], message: string): PixdexError {
  return BAD_IMAGE.has(code) ? new BadImageError(code as BadImageReason, message) : new PixdexError(code, message);
}
