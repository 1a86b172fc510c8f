/**
 * `pixdex train`: trains the convolutional autoencoder on a sample of the library, re-embeds every
 * image into the new space (codes written to the codes table not in use), then switches the
 * index over in one LMDB transaction. Until the switch, search keeps using the old space.
 */
import fs from 'node:fs/promises';
import { tf } from './backend.ts';
import type { Engine } from './engine.ts';
import { InvalidParameterError, intParam } from './errors.ts';
import { ConvAutoencoder, type AutoencoderConfig, type StepLoss } from './models/autoencoder.ts';
import { seededRandom } from './random.ts';
import { mapLimit } from './pool.ts';
import { AnnIndex } from './ann.ts';
import { l2normalize } from './vector.ts';
import type { CodesTable, SpaceInfo } from './store.ts';

export interface TrainOptions {
  /** Embedding size (default: 256). */
  dim?: number;
  /** Passes over the sample (default: 30). */
  epochs?: number;
  /** Images trained on, drawn evenly from the library (default: 1000, at most the library). */
  sample?: number;
  /** Adam learning rate (default: 1e-3). */
  learningRate?: number;
  /** Images per training step (default: 32). */
  batchSize?: number;
  /** Seed of the sample and the initial weights (default: 1). */
  seed?: number;
  /** Other autoencoder settings (hidden size, pooling, similarity weight...). */
  model?: Partial<AutoencoderConfig>;
  onProgress?: (p: TrainProgress) => void;
}

/** Progress of a training run, by phase. */
export type TrainProgress =
  | { phase: 'features'; done: number; total: number }
  | { phase: 'train'; epoch: number; epochs: number; loss: StepLoss & { seconds: number } }
  | { phase: 'embed'; done: number; total: number }
  | { phase: 'switch' };

export interface TrainReport {
  space: SpaceInfo;
  /** Images whose files could not be read for re-embedding: removed from the library. */
  removed: Array<{ path: string; error: string }>;
  reembedded: number;
  featureSeconds: number;
  trainSeconds: number;
  embedSeconds: number;
  /** Bytes of one embedding (float32). */
  bytesPerImage: number;
  lossByEpoch: number[];
}

/** Feature maps are held in memory for training: 1000 MobileNetV2 maps (7x7x1280 float32) = 250 MB. */
const MAX_SAMPLE = 4000;

/** Trains the autoencoder, re-embeds the library and switches the search space to it. */
export async function trainAutoencoder(engine: Engine, o: TrainOptions = {}): Promise<TrainReport> {
  const dim = intParam('dim', o.dim ?? 256, 8, 4096);
  const epochs = intParam('epochs', o.epochs ?? 30, 1, 10000);
  const batchSize = intParam('batchSize', o.batchSize ?? 32, 2, 1024);
  const seed = o.seed ?? 1;
  const { store, spec } = engine;
  const ids = [...store.images.getKeys()];
  if (ids.length < 2 * batchSize) {
    throw new InvalidParameterError(`Training needs at least ${2 * batchSize} indexed images; the library has ${ids.length}. Index more images first (pixdex index DIR).`);
  }
  const sampleSize = Math.min(intParam('sample', o.sample ?? 1000, batchSize, MAX_SAMPLE), ids.length);
  const sample = evenSample(ids, sampleSize);
  const model = await engine.model();

  // 1. Feature maps of the sample, computed once (decode + backbone), kept in one buffer.
  let t = performance.now();
  const [h, w, c] = spec.featureMap.shape;
  const mapSize = h * w * c;
  const maps = new Float32Array(sample.length * mapSize);
  const kept: number[] = [];
  for (let i = 0; i < sample.length; i += engine.config.batchSize) {
    const chunk = sample.slice(i, i + engine.config.batchSize);
    const decoded = await mapLimit(chunk, 4, async (id) => {
      const rec = store.images.get(id)!;
      return (await engine.decode(await fs.readFile(rec.path), rec.path)).pixels;
    });
    const ok = decoded.flatMap((r, j) => ('value' in r ? [j] : []));
    if (ok.length > 0) {
      const { pooled, featureMap } = model.infer(ok.map((j) => (decoded[j] as { value: Uint8Array }).value), true);
      const data = (await featureMap!.data()) as Float32Array;
      tf.dispose([pooled, featureMap!]);
      maps.set(data, kept.length * mapSize);
      for (const j of ok) kept.push(chunk[j]);
    }
    o.onProgress?.({ phase: 'features', done: Math.min(i + engine.config.batchSize, sample.length), total: sample.length });
  }
  if (kept.length < 2 * batchSize) throw new InvalidParameterError(`Only ${kept.length} sampled images could be read; re-index the library (pixdex index) and retry.`);
  const featureSeconds = (performance.now() - t) / 1000;

  // 2. Train, shuffling the sample each epoch (deterministic from the seed).
  t = performance.now();
  const ae = ConvAutoencoder.create({ inChannels: c, height: h, width: w, ...o.model, dim }, seed);
  const lossByEpoch: number[] = [];
  const order = kept.map((_, i) => i);
  const random = seededRandom(seed + 7);
  await ae.fit(
    function* () {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (let i = 0; i + batchSize <= order.length; i += batchSize) {
        const batch = new Float32Array(batchSize * mapSize);
        for (let b = 0; b < batchSize; b++) batch.set(maps.subarray(order[i + b] * mapSize, (order[i + b] + 1) * mapSize), b * mapSize);
        yield tf.tensor4d(batch, [batchSize, h, w, c]);
      }
    },
    {
      epochs,
      learningRate: o.learningRate ?? 1e-3,
      onEpoch: (epoch, loss, detail) => {
        lossByEpoch.push(loss);
        o.onProgress?.({ phase: 'train', epoch: epoch + 1, epochs, loss: detail });
      },
    },
  );
  const trainSeconds = (performance.now() - t) / 1000;
  const info = ae.trainingInfo!;

  // 3. Store the weights and re-embed everything into the codes table not in use.
  const current = store.getSpace();
  const table: CodesTable = current.kind === 'autoencoder' && current.codes === 'codes' ? 'codes2' : 'codes';
  const key = `autoencoder-${Date.now()}`;
  const weights = Buffer.from(ae.toBytes());
  store.write(() => {
    store.models.putSync(key, weights);
    for (const id of store.codesTable(table).getKeys()) store.codesTable(table).removeSync(id);
  });
  const next: SpaceInfo = {
    kind: 'autoencoder',
    model: key,
    dims: dim,
    codes: table,
    trainedAt: info.trainedAt,
    finalLoss: info.finalLoss,
    epochs: info.epochs,
    samples: info.samples,
    trainSeconds: Math.round(trainSeconds * 10) / 10,
    backend: info.backend,
  };
  t = performance.now();
  const removed: TrainReport['removed'] = [];
  let reembedded = 0;
  // Until the switch, images may be added (by this process or another): loop until every stored
  // image has a code, then switch inside a transaction that checks nothing new arrived.
  for (let round = 0; round < 10; round++) {
    const missing = [...store.images.getKeys()].filter((id) => !store.codesTable(table).doesExist(id));
    if (missing.length === 0) {
      const switched = switchSpace(engine, next, table);
      if (switched) break;
      continue;
    }
    reembedded += await reembed(engine, next, table, missing, removed, (done) => o.onProgress?.({ phase: 'embed', done: reembedded + done, total: store.images.getCount() }));
  }
  o.onProgress?.({ phase: 'switch' });
  const embedSeconds = (performance.now() - t) / 1000;

  // 4. The previous space's codes and weights are no longer needed.
  if (current.kind === 'autoencoder' && store.getSpace().kind === 'autoencoder') {
    store.write(() => {
      for (const id of store.codesTable(current.codes).getKeys()) store.codesTable(current.codes).removeSync(id);
      store.models.removeSync(current.model);
    });
  }
  ae.dispose();
  engine.refresh(); // load the new space's index in this engine
  return { space: store.getSpace(), removed, reembedded, featureSeconds: round1(featureSeconds), trainSeconds: round1(trainSeconds), embedSeconds: round1(embedSeconds), bytesPerImage: dim * 4, lossByEpoch };
}

/** Embeds `ids` into `space`, writing codes to `table`; unreadable images are removed. */
async function reembed(engine: Engine, space: SpaceInfo, table: CodesTable, ids: number[], removed: TrainReport['removed'], onDone: (done: number) => void): Promise<number> {
  const { store } = engine;
  const embedder = await engine.embedderForSpace(space, ids.length, undefined, 'pooled'); // codes only: no smaller sides
  let done = 0;
  try {
    const batches: number[][] = [];
    for (let i = 0; i < ids.length; i += engine.config.batchSize) batches.push(ids.slice(i, i + engine.config.batchSize));
    const inflight = new Set<Promise<void>>();
    for (const batch of batches) {
      const read = await mapLimit(batch, 4, async (id) => fs.readFile(store.images.get(id)!.path));
      const task = (async () => {
        const okIdx = read.flatMap((r, j) => ('value' in r ? [j] : []));
        const results = await embedder.embed(okIdx.map((j) => ({ name: store.images.get(batch[j])!.path, bytes: (read[j] as { value: Buffer }).value })));
        const gone: number[] = read.flatMap((r, j) => ('error' in r ? [batch[j]] : []));
        store.write(() => {
          results.forEach((r, k) => {
            const id = batch[okIdx[k]];
            if (r.ok && r.code) store.putCode(table, id, r.code);
            else gone.push(id);
          });
        });
        for (const id of gone) {
          const rec = store.images.get(id);
          if (!rec) continue;
          removed.push({ path: rec.path, error: 'the file could not be read or decoded for re-embedding: removed; index it again once it is back' });
          engine.remove(id);
        }
        done += batch.length;
        onDone(done);
      })();
      inflight.add(task);
      void task.finally(() => inflight.delete(task));
      if (inflight.size >= embedder.parallelism) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  } finally {
    await embedder.close();
  }
  return done;
}

/**
 * Builds the new space's HNSW index and, in one transaction that first checks every image has a
 * code, saves it as the snapshot and makes the space active. Returns false when images arrived
 * meanwhile (the caller embeds them and tries again).
 */
function switchSpace(engine: Engine, space: SpaceInfo & { kind: 'autoencoder' }, table: CodesTable): boolean {
  const { store } = engine;
  const seq = store.getMeta()!.seq;
  const ann = AnnIndex.create(space.dims, engine.config.ann, Math.ceil(store.images.getCount() * 1.25));
  for (const id of store.images.getKeys()) {
    const v = store.getSpaceVector(space, id);
    if (v) ann.add(id, l2normalize(v));
  }
  const bytes = ann.toBytes();
  return store.write(() => {
    const meta = store.getMeta()!;
    if (meta.seq !== seq) return false; // something was added or removed meanwhile
    for (const id of store.images.getKeys()) if (!store.codesTable(table).doesExist(id)) return false;
    store.writeSnapshot(bytes, { seq, space: space.model, live: ann.size, dims: space.dims, m: engine.config.ann.m, efConstruction: engine.config.ann.efConstruction });
    store.putMeta({ ...meta, space });
    return true;
  });
}

/** `n` ids spread evenly over the library (deterministic, covers every folder in order). */
function evenSample(ids: number[], n: number): number[] {
  if (n >= ids.length) return [...ids];
  return Array.from({ length: n }, (_, i) => ids[Math.floor((i * ids.length) / n)]);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
