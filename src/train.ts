/**
 * `pixdex train`: trains the convolutional autoencoder on a sample of the library, re-embeds every
 * image into the new space (codes written to the codes table not in use), then switches the
 * index over in one LMDB transaction. Until the switch, search keeps using the old space.
 */
import fs from 'node:fs/promises';
import { tf } from './backend.ts';
import type { PixdexConfig } from './config.ts';
import type { Describer } from './describe.ts';
import { buildIndex, type IndexSync } from './index-sync.ts';
import type { BackboneSpec } from './models/backbone.ts';
import type { Records } from './store/records.ts';
import { TRAIN_BATCH_SIZE, TRAIN_DIM, TRAIN_EPOCHS, TRAIN_SAMPLE } from './contracts/limits.ts';
import { InvalidParameterError, intParam } from './errors.ts';
import { ConvAutoencoder, type AutoencoderConfig, type StepLoss } from './models/autoencoder.ts';
import { seededRandom } from './random.ts';
import { mapLimit, pipeline } from './pool.ts';
import type { CodesTable, SpaceInfo } from './store/lmdb.ts';

/** What training works with: the records, the model side and the index of the active space. */
export interface TrainContext {
  records: Records;
  describer: Describer;
  sync: IndexSync;
  config: PixdexConfig;
  spec: BackboneSpec;
}

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

/** Trains the autoencoder, re-embeds the library and switches the search space to it. */
export async function trainAutoencoder(ctx: TrainContext, o: TrainOptions = {}): Promise<TrainReport> {
  const dim = intParam('dim', o.dim ?? TRAIN_DIM.default, TRAIN_DIM.min, TRAIN_DIM.max);
  const epochs = intParam('epochs', o.epochs ?? TRAIN_EPOCHS.default, TRAIN_EPOCHS.min, TRAIN_EPOCHS.max);
  const batchSize = intParam('batchSize', o.batchSize ?? TRAIN_BATCH_SIZE.default, TRAIN_BATCH_SIZE.min, TRAIN_BATCH_SIZE.max);
  const seed = o.seed ?? 1;
  const { records, describer, spec, config } = ctx;
  const ids = [...records.ids()];
  if (ids.length < 2 * batchSize) {
    throw new InvalidParameterError(`Training needs at least ${2 * batchSize} indexed images; the library has ${ids.length}. Index more images first (pixdex index DIR).`);
  }
  const sampleSize = Math.min(intParam('sample', o.sample ?? TRAIN_SAMPLE.default, batchSize, TRAIN_SAMPLE.max), ids.length);
  const sample = evenSample(ids, sampleSize);
  const model = await describer.model();

  // 1. Feature maps of the sample, computed once (decode + backbone), kept in one buffer.
  let t = performance.now();
  const [h, w, c] = spec.featureMap.shape;
  const mapSize = h * w * c;
  const maps = new Float32Array(sample.length * mapSize);
  const kept: number[] = [];
  for (let i = 0; i < sample.length; i += config.batchSize) {
    const chunk = sample.slice(i, i + config.batchSize);
    const decoded = await mapLimit(chunk, 4, async (id) => {
      const rec = records.get(id)!;
      return (await describer.decode(await fs.readFile(rec.path), rec.path)).pixels;
    });
    const ok = decoded.flatMap((r, j) => ('value' in r ? [j] : []));
    if (ok.length > 0) {
      const { pooled, featureMap } = model.infer(ok.map((j) => (decoded[j] as { value: Uint8Array }).value), true);
      const data = (await featureMap!.data()) as Float32Array;
      tf.dispose([pooled, featureMap!]);
      maps.set(data, kept.length * mapSize);
      for (const j of ok) kept.push(chunk[j]);
    }
    o.onProgress?.({ phase: 'features', done: Math.min(i + config.batchSize, sample.length), total: sample.length });
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
  const current = records.space();
  const table: CodesTable = current.kind === 'autoencoder' && current.codes === 'codes' ? 'codes2' : 'codes';
  const key = `autoencoder-${Date.now()}`;
  const weights = Buffer.from(ae.toBytes());
  records.putModel(key, weights);
  records.clearCodes(table);
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
    const missing = [...records.ids()].filter((id) => !records.hasCode(table, id));
    if (missing.length === 0) {
      const switched = switchSpace(ctx, next);
      if (switched) break;
      continue;
    }
    reembedded += await reembed(ctx, next, table, missing, removed, (done) => o.onProgress?.({ phase: 'embed', done: reembedded + done, total: records.count() }));
  }
  o.onProgress?.({ phase: 'switch' });
  const embedSeconds = (performance.now() - t) / 1000;

  // 4. The previous space's codes and weights are no longer needed.
  if (current.kind === 'autoencoder' && records.space().kind === 'autoencoder') records.dropSpace(current);
  ae.dispose();
  ctx.sync.refresh(); // load the new space's index
  return { space: records.space(), removed, reembedded, featureSeconds: round1(featureSeconds), trainSeconds: round1(trainSeconds), embedSeconds: round1(embedSeconds), bytesPerImage: dim * 4, lossByEpoch };
}

/** Embeds `ids` into `space`, writing codes to `table`; unreadable images are removed. */
async function reembed(ctx: TrainContext, space: SpaceInfo, table: CodesTable, ids: number[], removed: TrainReport['removed'], onDone: (done: number) => void): Promise<number> {
  const { records, config } = ctx;
  const embedder = await ctx.describer.embedder(space, ids.length, undefined, 'pooled'); // codes only: no smaller sides
  let done = 0;
  try {
    const batches: number[][] = [];
    for (let i = 0; i < ids.length; i += config.batchSize) batches.push(ids.slice(i, i + config.batchSize));
    await pipeline(batches, embedder.parallelism, (batch) => mapLimit(batch, 4, async (id) => fs.readFile(records.get(id)!.path)), async (batch, read) => {
      const okIdx = read.flatMap((r, j) => ('value' in r ? [j] : []));
      const results = await embedder.embed(okIdx.map((j) => ({ name: records.get(batch[j])!.path, bytes: (read[j] as { value: Buffer }).value })));
      const gone: number[] = read.flatMap((r, j) => ('error' in r ? [batch[j]] : []));
      const codes: Array<{ id: number; code: Float32Array }> = [];
      results.forEach((r, k) => {
        const id = batch[okIdx[k]];
        if (r.ok && r.code) codes.push({ id, code: r.code });
        else gone.push(id);
      });
      records.putCodes(table, codes);
      for (const id of gone) {
        const rec = records.get(id);
        if (!rec) continue;
        removed.push({ path: rec.path, error: 'the file could not be read or decoded for re-embedding: removed; index it again once it is back' });
        records.remove(id);
      }
      done += batch.length;
      onDone(done);
    });
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
function switchSpace(ctx: TrainContext, space: SpaceInfo & { kind: 'autoencoder' }): boolean {
  const { records, config } = ctx;
  const seq = records.meta().seq;
  const ann = buildIndex(records, space, space.dims, config.ann);
  return records.saveSnapshot(ann.toBytes(), { seq, space: space.model, live: ann.size, dims: space.dims, m: config.ann.m, efConstruction: config.ann.efConstruction }, () => true, space);
}

/** `n` ids spread evenly over the library (deterministic, covers every folder in order). */
function evenSample(ids: number[], n: number): number[] {
  if (n >= ids.length) return [...ids];
  return Array.from({ length: n }, (_, i) => ids[Math.floor((i * ids.length) / n)]);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
