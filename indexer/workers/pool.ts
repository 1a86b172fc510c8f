/**
 * Embedders: turn encoded images into pooled backbone vectors. `LocalEmbedder` runs in this
 * thread; `WorkerPool` spreads batches over worker threads, each with its own tfjs backend
 * (wasm is single-threaded, so this is how indexing uses every core).
 */
import { Worker } from 'node:worker_threads';
import { PixdexError } from '../../src/errors.ts';
import type { GreyImage } from '../../src/image/decode.ts';
import { readMetadata } from '../../src/image/metadata.ts';
import { mapLimit } from '../../src/pool.ts';
import { prepareTensorflowCpu } from '../../src/tensorflow-cpu.ts';
import type { EmbedItemResult, WorkerInit, WorkerMessage } from './protocol.ts';

/** One encoded image to embed; `name` is used in error messages. */
export interface EmbedItem {
  name: string;
  bytes: Uint8Array;
}

export interface Embedder {
  /** Decodes and embeds a batch; bad images come back as `{ ok: false }`, never as a throw. */
  embed(items: EmbedItem[]): Promise<EmbedItemResult[]>;
  /** Number of batches it can usefully have in flight. */
  readonly parallelism: number;
  /** The workers' backend (a worker pool); undefined in this thread. */
  readonly backend?: string;
  close(): Promise<void>;
}

/** Runs decode + inference in this thread (decodes overlap inference through libuv). */
export class LocalEmbedder implements Embedder {
  readonly parallelism = 2;
  constructor(
    private readonly decode: (bytes: Uint8Array, name: string) => Promise<{ pixels: Uint8Array; width: number; height: number; smaller?: Uint8Array[]; grey?: GreyImage }>,
    private readonly embedPixels: (pixels: Uint8Array[], smaller: Array<Uint8Array[] | undefined>) => Promise<Array<{ pooled: Float32Array; code?: Float32Array; scales?: Float32Array }>>,
    /** Encoded local features of a decoded greyscale image (a library with local features). */
    private readonly localFeatures?: (grey: GreyImage) => Uint8Array,
  ) {}

  async embed(items: EmbedItem[]): Promise<EmbedItemResult[]> {
    const decoded = await mapLimit(items, 4, (it) => this.decode(it.bytes, it.name));
    // Capture metadata from the same bytes (no second read); a bad EXIF block reads as none.
    const metadata = await Promise.all(items.map((it, i) => ('value' in decoded[i] ? readMetadata(it.bytes) : {})));
    const okIdx = decoded.flatMap((r, i) => ('value' in r ? [i] : []));
    const images = okIdx.map((i) => (decoded[i] as { value: { pixels: Uint8Array; smaller?: Uint8Array[] } }).value);
    const vectors = okIdx.length > 0 ? await this.embedPixels(images.map((x) => x.pixels), images.map((x) => x.smaller)) : [];
    const out: EmbedItemResult[] = decoded.map((r, i) => ('value' in r ? { ok: true, vector: new Float32Array(0), width: r.value.width, height: r.value.height, metadata: metadata[i] } : toFailure(r.error)));
    okIdx.forEach((i, j) => Object.assign(out[i], { vector: vectors[j].pooled, code: vectors[j].code, scales: vectors[j].scales }));
    if (this.localFeatures) {
      for (const i of okIdx) {
        const grey = (decoded[i] as { value: { grey?: GreyImage } }).value.grey;
        // An image whose features cannot be computed is still indexed; the next run tries again.
        if (grey) Object.assign(out[i], { features: tryFeatures(this.localFeatures, grey) });
      }
    }
    return out;
  }

  async close(): Promise<void> {}
}

function tryFeatures(f: (grey: GreyImage) => Uint8Array, grey: GreyImage): Uint8Array | undefined {
  try {
    return f(grey);
  } catch {
    return undefined;
  }
}

/** Turns any error into an item failure with a code. */
export function toFailure(err: unknown): EmbedItemResult {
  if (err instanceof PixdexError) return { ok: false, code: err.code, message: err.message };
  return { ok: false, code: 'CORRUPT_IMAGE', message: String((err as Error)?.message ?? err) };
}

interface Pending {
  resolve: (r: EmbedItemResult[]) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  dead?: Error;
}

const WORKER_URL = new URL('./embed-worker.mjs', import.meta.url);

/**
 * Starts one embedding worker; `ready` settles with its backend's name once it has loaded and
 * warmed its model, or rejects (the worker is then dead or dying). Shared by the index pool and
 * the server's query pool (src/query-pool.ts).
 */
export function startWorker(init: WorkerInit): { worker: Worker; ready: Promise<string> } {
  // TensorFlow's CPU setting is process-wide environment: set on this (main) thread, copied to the worker.
  if (init.backend !== 'wasm' && init.backend !== 'cpu') prepareTensorflowCpu();
  const worker = new Worker(WORKER_URL, { workerData: init, stdout: false, stderr: false });
  const ready = new Promise<string>((resolve, reject) => {
    worker.once('message', (m: WorkerMessage) => {
      if (m.type === 'ready') resolve(m.backend);
      else reject(new PixdexError(m.type === 'fatal' ? m.code : 'WORKER_FAILED', m.type === 'fatal' ? m.message : 'embedding worker did not start'));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new PixdexError('WORKER_FAILED', `embedding worker exited with code ${code} while starting`)));
  });
  return { worker, ready };
}

/** Worker threads, each with its own backend and backbone; batches go to the least busy one. */
export class WorkerPool implements Embedder {
  private nextJob = 1;
  readonly backend: string;

  private constructor(private readonly slots: Slot[], backend: string) {
    this.backend = backend;
  }

  get parallelism(): number {
    return this.slots.length * 2;
  }

  /** Starts `n` workers and waits until each has loaded and warmed its model. */
  static async start(n: number, init: WorkerInit): Promise<WorkerPool> {
    const slots: Slot[] = [];
    const readies: Promise<string>[] = [];
    // Side by side: each worker's imports and model loading overlap the others'; only the backend's
    // native initialisation (process-wide TensorFlow state) runs one worker at a time, in turn
    // (`WorkerInit.start`). A tensorflow run in CI once died of SIGSEGV while two workers
    // initialised at once; starting them strictly one after another cost ~1 s per worker.
    const gate = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < n; i++) {
      const started = startWorker({ ...init, start: { gate, turn: i } });
      slots.push({ worker: started.worker, pending: new Map() });
      readies.push(started.ready);
    }
    let backends: string[];
    try {
      backends = await Promise.all(readies);
    } catch (err) {
      // A worker that failed before passing its turn leaves the later ones waiting: stop them all.
      await Promise.all(slots.map((s) => s.worker.terminate()));
      throw err;
    }
    for (const slot of slots) {
      slot.worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'result') {
          const p = slot.pending.get(m.jobId);
          slot.pending.delete(m.jobId);
          p?.resolve(m.results);
        } else if (m.type === 'fatal') {
          fail(slot, new PixdexError(m.code, m.message));
        }
      });
      slot.worker.on('error', (err) => fail(slot, err));
      slot.worker.on('exit', (code) => fail(slot, new PixdexError('WORKER_FAILED', `embedding worker exited with code ${code}`)));
    }
    return new WorkerPool(slots, backends[0]);
  }

  embed(items: EmbedItem[]): Promise<EmbedItemResult[]> {
    const live = this.slots.filter((s) => !s.dead);
    if (live.length === 0) return Promise.reject(this.slots[0].dead ?? new PixdexError('WORKER_FAILED', 'no embedding worker is running'));
    const slot = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const jobId = this.nextJob++;
    return new Promise((resolve, reject) => {
      slot.pending.set(jobId, { resolve, reject });
      // Copies of the bytes are transferred so the caller's buffers stay usable.
      const copies = items.map((it) => ({ name: it.name, bytes: new Uint8Array(it.bytes) }));
      slot.worker.postMessage({ type: 'job', jobId, items: copies }, copies.map((c) => c.bytes.buffer as ArrayBuffer));
    });
  }

  async close(): Promise<void> {
    for (const s of this.slots) s.dead ??= new PixdexError('WORKER_FAILED', 'pool closed');
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

function fail(slot: Slot, err: Error): void {
  slot.dead ??= err;
  for (const p of slot.pending.values()) p.reject(err);
  slot.pending.clear();
}
