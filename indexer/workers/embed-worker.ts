/**
 * An embedding worker: its own tfjs backend (wasm runs one thread per process, so parallelism
 * means one backend per worker thread), its own backbone and, in an autoencoder space, its own
 * copy of the autoencoder. Jobs run concurrently, so the decode of the next batch (sharp, on
 * libuv threads) overlaps the inference of the current one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend, type BackendInfo } from '../../src/backend.ts';
import { Backbone } from '../../src/models/backbone.ts';
import { ConvAutoencoder } from '../../src/models/autoencoder.ts';
import { decodeImage } from '../../src/image/decode.ts';
import { embedBatch } from '../../src/embed.ts';
import { isRegional, libraryRegional } from '../../src/library-descriptor.ts';
import { PixdexError } from '../../src/errors.ts';
import { awaitTurn, passTurn } from '../../src/pool.ts';
import { LocalEmbedder } from './pool.ts';
import { decodeFeatures, encodeFeatures, extractFeatures, loadOpenCv, QUERY_KEYPOINTS, QUERY_PYRAMID, QUERY_SIDE, REFERENCE_SIDE } from '../../src/local/features.ts';
import { verifyCandidates } from '../../src/local/rerank.ts';
import type { LocalFeatures } from '../../src/local/types.ts';
import type { EmbedJob, QueryJob, QueryResult, VerifyJob, VerifyResult, WorkerInit, WorkerMessage } from './protocol.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  // Started beside other workers: TensorFlow's native initialisation runs one worker at a time.
  if (init.start) awaitTurn(init.start.gate, init.start.turn);
  let backend: BackendInfo;
  try {
    backend = await initBackend(init.backend);
  } finally {
    if (init.start) passTurn(init.start.gate);
  }
  const model = await Backbone.load(init.modelsDir, init.backbone);
  await model.warmUp();
  const autoencoder = init.autoencoder ? ConvAutoencoder.fromBytes(init.autoencoder) : undefined;
  const size = model.spec.inputSize;
  const smallerSides = isRegional(init.descriptor) ? libraryRegional(model.spec, init.descriptor).smaller : undefined;
  if (init.localFeatures) await loadOpenCv();
  const greySide = init.localFeatures ? REFERENCE_SIDE : undefined;
  const embedder = new LocalEmbedder(
    (bytes, name) => decodeImage(bytes, { size, maxInputPixels: init.maxInputPixels, smallerSides, greySide }, name),
    (pixels, smallerPixels) => embedBatch(model, autoencoder, pixels, pixels.length, { descriptor: init.descriptor, smallerPixels }),
    init.localFeatures ? (grey) => encodeFeatures(extractFeatures(grey)) : undefined,
  );
  // Query photos (the server's query pool): the autoencoder of the space the query names, by key.
  let queryAutoencoder: { key: string; model: ConvAutoencoder } | undefined;
  const describeQuery = async (job: QueryJob): Promise<QueryResult> => {
    try {
      if (job.autoencoder && queryAutoencoder?.key !== job.autoencoder.key) {
        if (!job.autoencoder.bytes) throw new PixdexError('WORKER_FAILED', `query worker has no weights for autoencoder ${job.autoencoder.key}`);
        queryAutoencoder?.model.dispose();
        queryAutoencoder = { key: job.autoencoder.key, model: ConvAutoencoder.fromBytes(job.autoencoder.bytes) };
      }
      if (job.localFeatures) await loadOpenCv();
      // as Describer.describeQueryWithFeatures: the native side only, windows, grey at QUERY_SIDE, QUERY_KEYPOINTS
      const img = await decodeImage(job.bytes, { size, maxInputPixels: init.maxInputPixels, greySide: job.localFeatures ? QUERY_SIDE : undefined }, job.name);
      const [embedding] = await embedBatch(model, job.autoencoder ? queryAutoencoder!.model : undefined, [img.pixels], 1, { descriptor: init.descriptor, windows: true, smaller: false });
      return { ok: true, embedding, features: img.grey && extractFeatures(img.grey, QUERY_KEYPOINTS, QUERY_PYRAMID) };
    } catch (err) {
      const e = err as PixdexError;
      return { ok: false, code: e instanceof PixdexError ? e.code : 'INTERNAL', message: e?.message ?? String(err) };
    }
  };
  // Verification of a query's candidates: as Searcher does in the main thread (VisualWords.featuresOf decodes the same records).
  const verify = async (job: VerifyJob): Promise<VerifyResult> => {
    try {
      await loadOpenCv();
      const refs = new Map<number, LocalFeatures | undefined>(job.candidates.map((c, i) => [c.id, tryDecode(job.records[i])]));
      return { ok: true, hits: verifyCandidates(job.query, job.candidates, (id) => refs.get(id), { minChecked: job.minChecked }) };
    } catch (err) {
      const e = err as PixdexError;
      return { ok: false, code: e instanceof PixdexError ? e.code : 'INTERNAL', message: e?.message ?? String(err) };
    }
  };
  port.on('message', (job: EmbedJob | QueryJob | VerifyJob) => {
    if (job.type === 'query') {
      void describeQuery(job).then((result) => post({ type: 'query-result', jobId: job.jobId, result }, result.ok ? transferables(result) : []));
      return;
    }
    if (job.type === 'verify') {
      void verify(job).then((result) => post({ type: 'verify-result', jobId: job.jobId, result }));
      return;
    }
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

/** The buffers of a query result that can move instead of being copied (each once, only whole ones). */
function transferables(r: QueryResult & { ok: true }): ArrayBuffer[] {
  const arrays = [r.embedding.pooled, r.embedding.code, r.embedding.windows, r.embedding.scales, r.features?.keypoints, r.features?.descriptors];
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) if (a && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength) out.add(a.buffer as ArrayBuffer);
  return [...out];
}

function tryDecode(bytes: Uint8Array | undefined): LocalFeatures | undefined {
  if (!bytes) return undefined;
  try {
    return decodeFeatures(bytes);
  } catch {
    return undefined;
  }
}
