import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../src/backend.ts';
import { ConvAutoencoder, batchesFromTensor, normalizeMap, type AutoencoderConfig } from '../src/models/autoencoder.ts';
import { seededRandom } from '../src/models/matconv.ts';

before(async () => {
  await initBackend('wasm');
});

const H = 7;
const W = 7;
const C = 64;

/**
 * Feature maps shaped like a backbone's last ReLU6 layer, small enough for tests: sparse,
 * non-negative, clipped at 6, and low-rank (a few channel patterns mixed by smooth spatial
 * weights) so that an autoencoder can learn them.
 */
function syntheticMaps(n: number, seed: number, channels = C, rank = 4): tf.Tensor4D {
  const rnd = seededRandom(seed);
  const basis = Array.from({ length: rank }, () => Float32Array.from({ length: channels }, () => (rnd() < 0.3 ? rnd() * 3 : 0)));
  const v = new Float32Array(n * H * W * channels);
  for (let s = 0; s < n; s++) {
    const weights = Array.from({ length: rank }, () => ({ a: rnd() * 2, cy: rnd() * H, cx: rnd() * W }));
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const base = ((s * H + y) * W + x) * channels;
        for (const [r, wgt] of weights.entries()) {
          const g = wgt.a * Math.exp(-((y - wgt.cy) ** 2 + (x - wgt.cx) ** 2) / 8);
          for (let c = 0; c < channels; c++) v[base + c] += g * basis[r][c];
        }
        for (let c = 0; c < channels; c++) v[base + c] = Math.min(6, Math.max(0, v[base + c] - 0.05));
      }
    }
  }
  return tf.tensor4d(v, [n, H, W, channels]);
}

const small: Pick<AutoencoderConfig, 'inChannels' | 'height' | 'width'> & Partial<AutoencoderConfig> = {
  inChannels: C,
  height: H,
  width: W,
  hidden: 32,
  dim: 16,
};

test('encode returns L2-normalised [N, dim] embeddings', () => {
  const ae = ConvAutoencoder.create(small, 1);
  const x = syntheticMaps(5, 1);
  const e = ae.encode(x);
  assert.deepEqual(e.shape, [5, 16]);
  const norms = tf.tidy(() => tf.norm(e, 2, 1).dataSync());
  for (const v of norms) assert.ok(Math.abs(v - 1) < 1e-5, `norm ${v}`);
  tf.dispose([x, e]);
  ae.dispose();
});

test('the loss falls over a few epochs on wasm', async () => {
  assert.equal(tf.getBackend(), 'wasm');
  const ae = ConvAutoencoder.create(small, 2);
  const data = syntheticMaps(96, 2);
  const losses: number[] = [];
  const info = await ae.fit(batchesFromTensor(data, 16, 1), { epochs: 6, learningRate: 3e-3, onEpoch: (_e, loss) => void losses.push(loss) });
  assert.equal(losses.length, 6);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses.at(-1)! < 0.5 * losses[0], `losses ${losses.map((l) => l.toFixed(3)).join(' → ')}`);
  assert.equal(info.epochs, 6);
  assert.equal(info.samples, 96);
  assert.equal(info.finalLoss, losses.at(-1));
  assert.equal(info.backend, 'wasm');
  assert.deepEqual(ae.trainingInfo, info);
  data.dispose();
  ae.dispose();
});

test('toBytes/fromBytes round-trips bit-exactly', async () => {
  const ae = ConvAutoencoder.create({ ...small, pooling: 'gem', latentStride: 2, similarityWeight: 0.5 }, 3);
  const data = syntheticMaps(32, 3);
  await ae.fit(batchesFromTensor(data, 16), { epochs: 1 });
  const bytes = ae.toBytes();
  const loaded = ConvAutoencoder.fromBytes(bytes);
  assert.deepEqual(loaded.config, ae.config);
  assert.deepEqual(loaded.trainingInfo, ae.trainingInfo);
  assert.deepEqual(loaded.toBytes(), bytes);
  const a = ae.encode(data);
  const b = loaded.encode(data);
  assert.deepEqual(b.dataSync(), a.dataSync());
  // A copy at an unaligned offset inside a larger buffer loads too (LMDB hands out such views).
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  const again = ConvAutoencoder.fromBytes(shifted.subarray(3));
  assert.deepEqual(again.toBytes(), bytes);
  assert.throws(() => ConvAutoencoder.fromBytes(bytes.subarray(0, bytes.length - 4)), /truncated|bytes/);
  assert.throws(() => ConvAutoencoder.fromBytes(new Uint8Array(64)), /PXAE/);
  tf.dispose([data, a, b]);
  for (const m of [ae, loaded, again]) m.dispose();
});

test('weights are deterministic from the seed', () => {
  const a = ConvAutoencoder.create(small, 42);
  const b = ConvAutoencoder.create(small, 42);
  const c = ConvAutoencoder.create(small, 43);
  assert.deepEqual(a.toBytes(), b.toBytes());
  assert.notDeepEqual(a.toBytes(), c.toBytes());
  for (const m of [a, b, c]) m.dispose();
});

test('no tensor leaks across a training epoch, encode and evaluate', async () => {
  const start = tf.memory().numTensors;
  const ae = ConvAutoencoder.create({ ...small, similarityWeight: 1 }, 4);
  const data = syntheticMaps(48, 4);
  const source = batchesFromTensor(data, 16, 2);
  await ae.fit(source, { epochs: 1 }); // creates Adam's slots
  const before = tf.memory().numTensors;
  await ae.fit(source, { epochs: 1 });
  assert.equal(tf.memory().numTensors, before, 'after an epoch');
  ae.encode(data).dispose();
  ae.reconstruct(data).dispose();
  ae.evaluate(data);
  ae.trainStep(data);
  assert.equal(tf.memory().numTensors, before, 'after encode/reconstruct/evaluate/trainStep');
  const loaded = ConvAutoencoder.fromBytes(ae.toBytes());
  loaded.dispose();
  ae.dispose();
  data.dispose();
  assert.equal(tf.memory().numTensors, start, 'after dispose (weights and optimizer state freed)');
});

test('the similarity term is reported and can be switched off', () => {
  const data = syntheticMaps(8, 5);
  const withSim = ConvAutoencoder.create({ ...small, similarityWeight: 2 }, 5);
  const without = ConvAutoencoder.create({ ...small, similarityWeight: 0 }, 5);
  const a = withSim.evaluate(data);
  const b = without.evaluate(data);
  assert.ok(a.similarity > 0);
  assert.equal(b.similarity, 0);
  assert.ok(Math.abs(a.reconstruction - b.reconstruction) < 1e-6, 'same weights, same reconstruction');
  assert.ok(Math.abs(a.total - (a.reconstruction + 2 * a.similarity)) < 1e-5);
  data.dispose();
  withSim.dispose();
  without.dispose();
});

test('latent stride 2 gives a 4x4 latent; mean pooling (linear latent) trains', () => {
  const ae = ConvAutoencoder.create({ ...small, latentStride: 2, pooling: 'mean' }, 6);
  assert.deepEqual(ae.latentSize(), [4, 4]);
  const data = syntheticMaps(16, 6);
  const first = ae.trainStep(data, 3e-3);
  let last = first;
  for (let i = 0; i < 15; i++) last = ae.trainStep(data, 3e-3);
  assert.ok(last.total < first.total, `${first.total} → ${last.total}`);
  const r = ae.reconstruct(data);
  assert.deepEqual(r.shape, [16, H, W, C]);
  tf.dispose([data, r]);
  ae.dispose();
});

test('native tf.conv2d and the matMul form give the same embeddings from the same weights', () => {
  const ae = ConvAutoencoder.create({ ...small, latentStride: 2 }, 7);
  const data = syntheticMaps(4, 7);
  tf.tidy(() => {
    const viaMatMul = ae.encode(data, 'matmul').dataSync();
    const viaNative = ae.encode(data, 'native').dataSync();
    for (let i = 0; i < viaMatMul.length; i++) assert.ok(Math.abs(viaMatMul[i] - viaNative[i]) < 1e-5);
  });
  data.dispose();
  ae.dispose();
});

test('normalizeMap gives positions unit mean squared norm', () => {
  tf.tidy(() => {
    const x = syntheticMaps(3, 8);
    const ms = tf.div(tf.sum(tf.square(normalizeMap(x)), [1, 2, 3]), H * W).dataSync();
    for (const v of ms) assert.ok(Math.abs(v - 1) < 1e-4, `${v}`);
  });
});

test('bad configs and inputs are refused with clear messages', () => {
  assert.throws(() => ConvAutoencoder.create({ ...small, dim: 0 }), /Expected integer between 1 and 65536 for dim/);
  assert.throws(() => ConvAutoencoder.create({ ...small, latentStride: 3 as 1 }), /latentStride/);
  assert.throws(() => ConvAutoencoder.create({ ...small, pooling: 'max' as 'mean' }), /pooling/);
  const ae = ConvAutoencoder.create(small);
  const wrong = tf.zeros([2, 7, 7, C + 1]) as tf.Tensor4D;
  assert.throws(() => ae.encode(wrong), /\[N,7,7,64\]/);
  wrong.dispose();
  ae.dispose();
  const one = syntheticMaps(1, 9);
  assert.throws(() => ae.encode(one), /disposed/);
  one.dispose();
});
