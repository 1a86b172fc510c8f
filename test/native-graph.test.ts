/**
 * The TensorFlow graph runtime (src/models/native-graph.ts): on the tensorflow backend mobilenet_v2
 * runs as one TensorFlow graph instead of tfjs op by op — the same features from real photos,
 * faster, nothing leaked; graphs it cannot convert keep the tfjs path and say why.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { initBackend, tf } from '../src/backend.ts';
import { Backbone } from '../src/models/backbone.ts';
import { STALE_MS, plainNodes, sweepStale, type JsonNode } from '../src/models/native-graph.ts';
import os from 'node:os';
import path from 'node:path';
import { decodeImage } from '../src/image/decode.ts';
import { tfjsNodeDir } from '../src/tensorflow-cpu.ts';
import { HYM_VAL, MODELS, imagesIn } from './fixtures.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const conv = (fused: string[], args = 1): JsonNode => ({
  name: 'block/Relu6',
  op: '_FusedConv2D',
  input: ['x', 'block/weights', ...Array.from({ length: args }, (_, i) => `block/arg${i}`)],
  attr: { T: { type: 'DT_FLOAT' }, strides: { list: { i: ['1', '1', '1', '1'] } }, padding: { s: b64('SAME') }, fused_ops: { list: { s: fused.map(b64) } }, num_args: { i: String(args) }, epsilon: { f: 0 } },
});

describe('fused tfjs ops split back into TensorFlow ops', () => {
  it('convolution + bias + ReLU6 becomes Conv2D -> BiasAdd -> Relu6, the last keeping the node name', () => {
    const out = plainNodes([conv(['BiasAdd', 'Relu6'])]) as JsonNode[];
    assert.deepEqual(out.map((n) => n.op), ['Conv2D', 'BiasAdd', 'Relu6']);
    assert.deepEqual(out[0].input, ['x', 'block/weights']);
    assert.deepEqual(out[1].input, [out[0].name, 'block/arg0']);
    assert.deepEqual(out[2].input, [out[1].name]);
    assert.equal(out[2].name, 'block/Relu6');
    // Conv2D takes no fused-op attributes
    assert.deepEqual(Object.keys(out[0].attr!).sort(), ['T', 'padding', 'strides']);
  });

  it('a bias alone (a projection without activation) keeps its name on the BiasAdd', () => {
    const out = plainNodes([{ ...conv(['BiasAdd']), op: 'FusedDepthwiseConv2dNative' }]) as JsonNode[];
    assert.deepEqual(out.map((n) => [n.op, n.name]), [['DepthwiseConv2dNative', 'block/Relu6/pixdex_DepthwiseConv2dNative'], ['BiasAdd', 'block/Relu6']]);
  });

  it('fusions it does not know are refused with the node named, so the graph stays on tfjs', () => {
    assert.equal(plainNodes([conv(['BiasAdd', 'Prelu'], 2)]), 'block/Relu6: fused BiasAdd+Prelu');
    assert.equal(plainNodes([conv(['FusedBatchNorm'], 4)]), 'block/Relu6: fused FusedBatchNorm');
  });
});

describe('the temporary graph folders', () => {
  it('one left by a process killed mid-load is removed by the next load; a recent one (a load in progress) is kept', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-test-sweep-'));
    try {
      for (const name of ['pixdex-graph-killed', 'pixdex-graph-loading', 'someone-elses']) {
        fs.mkdirSync(path.join(tmp, name, 'variables'), { recursive: true });
        fs.writeFileSync(path.join(tmp, name, 'saved_model.pb'), 'x');
      }
      const old = new Date(Date.now() - STALE_MS - 60_000);
      fs.utimesSync(path.join(tmp, 'pixdex-graph-killed'), old, old);
      fs.utimesSync(path.join(tmp, 'someone-elses'), old, old);
      sweepStale(tmp);
      assert.deepEqual(fs.readdirSync(tmp).sort(), ['pixdex-graph-loading', 'someone-elses']);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

const skip = tfjsNodeDir() ? false : '@tensorflow/tfjs-node is not installed (npm run setup:tensorflow)';

describe('mobilenet_v2 in TensorFlow\'s graph runtime', { skip }, () => {
  let graph: Backbone;
  let ops: Backbone;
  let photos: { pixels: Uint8Array; smaller: Uint8Array[] }[];

  before(async () => {
    await initBackend('tensorflow');
    graph = await Backbone.load(MODELS, 'mobilenet_v2');
    ops = await Backbone.load(MODELS, 'mobilenet_v2', { nativeGraph: false });
    photos = await Promise.all(imagesIn(HYM_VAL).slice(0, 6).map(async (f) => {
      const img = await decodeImage(fs.readFileSync(f), { size: 224, smallerSides: [160], maxInputPixels: 1e8 }, f);
      return { pixels: img.pixels, smaller: img.smaller! };
    }));
  });
  after(() => {
    graph?.dispose();
    ops?.dispose();
  });

  it('is the default for mobilenet_v2 on tensorflow, and says so', () => {
    assert.equal(graph.runtime, 'TensorFlow graph');
    assert.equal(ops.runtime, 'tfjs ops');
  });

  const close = async (a: tf.Tensor, b: tf.Tensor) => {
    assert.deepEqual(a.shape, b.shape);
    const [x, y] = [await a.data(), await b.data()];
    let worst = 0;
    let peak = 0;
    for (let i = 0; i < x.length; i++) {
      worst = Math.max(worst, Math.abs(x[i] - y[i]));
      peak = Math.max(peak, Math.abs(y[i]));
    }
    assert.ok(peak > 1, 'the features are not all zero');
    assert.ok(worst < 1e-3, `largest difference ${worst}`); // float32 reordering; measured 8e-5
  };

  it('gives the features of the tfjs path from real photos: pooled and 7x7 map at 224, 5x5 map at 160', async () => {
    const pixels = photos.map((p) => p.pixels);
    const a = graph.infer(pixels, true);
    const b = ops.infer(pixels, true);
    await close(a.pooled, b.pooled);
    await close(a.featureMap!, b.featureMap!);
    assert.deepEqual(a.featureMap!.shape, [6, 7, 7, 1280]);
    const small = photos.map((p) => p.smaller[0]);
    const [c, d] = [graph.featureMaps(small, 160), ops.featureMaps(small, 160)];
    await close(c, d);
    assert.deepEqual(c.shape, [6, 5, 5, 1280]);
    const pooledOnly = graph.infer(pixels);
    await close(pooledOnly.pooled, b.pooled);
    tf.dispose([a.pooled, a.featureMap!, b.pooled, b.featureMap!, c, d, pooledOnly.pooled]);
  });

  it('leaks no tensors, whatever is asked', async () => {
    const pixels = photos.map((p) => p.pixels);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const a = graph.infer(pixels, i % 2 === 0);
      tf.dispose([a.pooled, ...(a.featureMap ? [a.featureMap] : [])]);
      graph.featureMaps(photos.map((p) => p.smaller[0]), 160).dispose();
      await graph.pooledVectors(pixels);
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it('mobilenet_v1_embedding keeps the tfjs path (measured slower as one graph)', async () => {
    const v1 = await Backbone.load(MODELS, 'mobilenet_v1_embedding');
    assert.equal(v1.runtime, 'tfjs ops');
    v1.dispose();
    const forced = await Backbone.load(MODELS, 'mobilenet_v1_embedding', { nativeGraph: true });
    assert.equal(forced.runtime, 'TensorFlow graph'); // its graph converts; it is just not faster
    forced.dispose();
  });
});
