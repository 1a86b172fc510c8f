/**
 * An embedding worker: its own tfjs backend (wasm runs one thread per process, so parallelism
 * means one backend per worker thread) and its own backbone. Decodes with sharp (libuv threads)
 * while the previous batch runs through the model.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../backend.ts';
import { Backbone } from '../models/backbone.ts';
import { decodeImage } from '../image/decode.ts';
import { PixdexError } from '../errors.ts';
import { mapLimit } from '../pool.ts';
import type { EmbedItemResult, EmbedJob, WorkerInit, WorkerMessage } from './protocol.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const backend = await initBackend(init.backend);
  const model = await Backbone.load(init.modelsDir, init.backbone);
  await model.warmUp();
  const size = model.spec.inputSize;

  const decodeJob = (job: EmbedJob) =>
    mapLimit(job.items, 4, (item) => decodeImage(item.bytes, { size, maxInputPixels: init.maxInputPixels }, item.name));

  // Jobs are processed in arrival order; the decode of job n+1 starts before job n's inference.
  const queue: EmbedJob[] = [];
  let decoding: { job: EmbedJob; decoded: ReturnType<typeof decodeJob> } | undefined;
  let running = false;

  const pump = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      while (decoding || queue.length > 0) {
        if (!decoding) {
          const job = queue.shift()!;
          decoding = { job, decoded: decodeJob(job) };
        }
        const { job, decoded } = decoding;
        const results = await decoded;
        const nextJob = queue.shift();
        decoding = nextJob ? { job: nextJob, decoded: decodeJob(nextJob) } : undefined;
        const okIdx = results.flatMap((r, i) => ('value' in r ? [i] : []));
        const vectors = okIdx.length > 0 ? await model.pooledVectors(okIdx.map((i) => (results[i] as { value: { pixels: Uint8Array } }).value.pixels)) : [];
        const out: EmbedItemResult[] = results.map((r) => {
          if ('value' in r) return { ok: true, vector: new Float32Array(0), width: r.value.width, height: r.value.height };
          const e = r.error;
          return e instanceof PixdexError ? { ok: false, code: e.code, message: e.message } : { ok: false, code: 'CORRUPT_IMAGE', message: String((e as Error)?.message ?? e) };
        });
        okIdx.forEach((i, j) => ((out[i] as { vector: Float32Array }).vector = vectors[j]));
        post({ type: 'result', jobId: job.jobId, results: out }, vectors.map((v) => v.buffer as ArrayBuffer));
      }
    } finally {
      running = false;
    }
  };

  port.on('message', (job: EmbedJob) => {
    queue.push(job);
    void pump().catch((err) => post({ type: 'fatal', code: 'WORKER_FAILED', message: String(err?.message ?? err) }));
  });
  post({ type: 'ready', backend: backend.name });
} catch (err) {
  const e = err as PixdexError;
  post({ type: 'fatal', code: e.code ?? 'WORKER_FAILED', message: e.message ?? String(err) });
}
