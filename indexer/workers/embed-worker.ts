/**
 * An embedding worker: its own tfjs backend (wasm runs one thread per process, so parallelism
 * means one backend per worker thread), its own backbone and, in an autoencoder space, its own
 * copy of the autoencoder. Jobs run concurrently, so the decode of the next batch (sharp, on
 * libuv threads) overlaps the inference of the current one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../../src/backend.ts';
import { Backbone } from '../../src/models/backbone.ts';
import { ConvAutoencoder } from '../../src/models/autoencoder.ts';
import { decodeImage } from '../../src/image/decode.ts';
import { embedBatch } from '../../src/embed.ts';
import { libraryRegional } from '../../src/library-descriptor.ts';
import { PixdexError } from '../../src/errors.ts';
import { LocalEmbedder } from './pool.ts';
import { encodeFeatures, extractFeatures, loadOpenCv, REFERENCE_SIDE } from '../../src/local/features.ts';
import type { EmbedJob, WorkerInit, WorkerMessage } from './protocol.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const backend = await initBackend(init.backend);
  const model = await Backbone.load(init.modelsDir, init.backbone);
  await model.warmUp();
  const autoencoder = init.autoencoder ? ConvAutoencoder.fromBytes(init.autoencoder) : undefined;
  const size = model.spec.inputSize;
  const smallerSides = init.descriptor === 'regional' ? libraryRegional(model.spec).smaller : undefined;
  if (init.localFeatures) await loadOpenCv();
  const greySide = init.localFeatures ? REFERENCE_SIDE : undefined;
  const embedder = new LocalEmbedder(
    (bytes, name) => decodeImage(bytes, { size, maxInputPixels: init.maxInputPixels, smallerSides, greySide }, name),
    (pixels, smallerPixels) => embedBatch(model, autoencoder, pixels, pixels.length, { descriptor: init.descriptor, smallerPixels }),
    init.localFeatures ? (grey) => encodeFeatures(extractFeatures(grey)) : undefined,
  );
  port.on('message', (job: EmbedJob) => {
    embedder.embed(job.items).then(
      (results) => {
        const transfer = results.flatMap((r) => (r.ok ? [r.vector.buffer, ...(r.code ? [r.code.buffer] : []), ...(r.scales ? [r.scales.buffer] : []), ...(r.features ? [r.features.buffer] : [])] : [])) as ArrayBuffer[];
        post({ type: 'result', jobId: job.jobId, results }, transfer);
      },
      (err) => post({ type: 'fatal', code: 'WORKER_FAILED', message: String(err?.message ?? err) }),
    );
  });
  post({ type: 'ready', backend: backend.name });
} catch (err) {
  const e = err as PixdexError;
  post({ type: 'fatal', code: e.code ?? 'WORKER_FAILED', message: e.message ?? String(err) });
}
