/**
 * pixdex's TFLite → tfjs graph-model converter (src/models/tflite/convert.ts), a TypeScript port of
 * models/_tools/tflite2tfjs.py. The shipped MobileNet models were made by that script from the
 * Google TFLite files kept beside them in source/, so converting those files again must give:
 *   1. the shipped weights manifest and weight bytes, and the shipped nodes;
 *   2. the shipped model's pooled features on real photos;
 *   3. the feature map and pooled nodes pixdex's backbone registry uses;
 * and 4. anything that is not a TFLite file of supported ops is refused with UNSUPPORTED_MODEL.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { ByteBuffer } from 'flatbuffers';
import { initBackend, tf } from '../src/backend.ts';
import { PixdexError } from '../src/errors.ts';
import { BACKBONES } from '../src/models/backbone.ts';
import { builtinCode } from '../src/models/tflite/builtin-ops.ts';
import { convertTflite, writeConverted, type ConvertedModel } from '../src/models/tflite/convert.ts';
import { seededRandom } from '../src/random.ts';
import { BACKEND, HYM_VAL, MODELS, imagesIn, tempDir } from './fixtures.ts';

/** The two converted models pixdex ships, their source file and where their features are. */
const SOURCES = [
  {
    backbone: 'mobilenet_v2',
    dir: 'mobilenet_v2_1.0_224_quant',
    tflite: 'source/mobilenet_v2_1.0_224_quant.tflite',
    features: { featureMap: { name: 'MobilenetV2/Conv_1/Relu6', shape: [7, 7, 1280] }, pooled: 'MobilenetV2/Logits/AvgPool', dims: 1280 },
  },
  {
    backbone: 'mobilenet_v1_embedding',
    dir: 'mobilenet_v1_1.0_224_embedding',
    tflite: 'source/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite',
    features: { featureMap: { name: 'MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6', shape: [7, 7, 1024] }, pooled: 'MobilenetV1/Logits/AvgPool_1a/AvgPool', dims: 1024 },
  },
] as const;

interface WeightSpec { name: string; shape: number[]; dtype: string; quantization?: { dtype: string; scale: number; min: number } }
interface ModelJson {
  format: string;
  modelTopology: { node: { name: string; op: string; input?: string[]; attr: unknown }[] };
  signature: unknown;
  weightsManifest: { paths: string[]; weights: WeightSpec[] }[];
}

/** Bytes a weight takes in the shard: uint8 when quantized, else 4 per element. */
function byteLength(w: WeightSpec): number {
  return w.shape.reduce((n, d) => n * d, 1) * (w.quantization ? 1 : 4);
}

/** An in-memory IOHandler, as src/models/backbone.ts builds one from files. */
function memoryHandler(json: ModelJson, weightData: Uint8Array): tf.io.IOHandler {
  return {
    async load() {
      const copy = structuredClone(json); // tfjs may adjust the topology it is given
      return {
        modelTopology: copy.modelTopology as tf.io.ModelArtifacts['modelTopology'],
        weightSpecs: copy.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[],
        weightData: weightData.slice().buffer,
        format: copy.format,
        signature: copy.signature as tf.io.ModelArtifacts['signature'],
      };
    },
  };
}

/** 4 real photos (2 ants, 2 bees) as one [4,224,224,3] batch scaled to [-1, 1], the models' input range. */
async function photoBatch(): Promise<tf.Tensor4D> {
  const all = imagesIn(HYM_VAL);
  const files = [...all.filter((f) => f.includes(`${path.sep}ants${path.sep}`)).slice(0, 2), ...all.filter((f) => f.includes(`${path.sep}bees${path.sep}`)).slice(0, 2)];
  assert.equal(files.length, 4, `4 photos expected in ${HYM_VAL}`);
  const pixels = await Promise.all(files.map((f) => sharp(f).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer()));
  const flat = new Float32Array(4 * 224 * 224 * 3);
  pixels.forEach((p, i) => p.forEach((v, j) => { flat[i * p.length + j] = v / 127.5 - 1; }));
  return tf.tensor4d(flat, [4, 224, 224, 3]);
}

/** Runs `fn` and returns the PixdexError it must throw with code UNSUPPORTED_MODEL. */
function refusal(fn: () => unknown, what: string): PixdexError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PixdexError, `${what}: ${(err as Error)?.constructor?.name} ${(err as Error)?.message} (a PixdexError expected)`);
    assert.equal(err.code, 'UNSUPPORTED_MODEL', `${what}: ${err.message}`);
    return err;
  }
  assert.fail(`${what}: converted without an error`);
}

/**
 * Where the operator code of builtin `code` keeps its two code fields (deprecated_builtin_code,
 * an int8 in slot 0, and builtin_code, an int32 in slot 3), found with flatbuffers' ByteBuffer
 * alone so the patch does not rely on the reader under test.
 */
function operatorCodeFields(bytes: Uint8Array, code: number): { deprecated: number; builtin: number } {
  const bb = new ByteBuffer(bytes);
  const field = (table: number, slot: number): number => {
    const vtable = table - bb.readInt32(table);
    const entry = 4 + 2 * slot;
    return entry < bb.readUint16(vtable) ? bb.readUint16(vtable + entry) : 0;
  };
  const root = bb.readUint32(0);
  const codesAt = root + field(root, 1); // Model.operator_codes
  const vector = codesAt + bb.readUint32(codesAt);
  for (let i = 0; i < bb.readUint32(vector); i++) {
    const at = vector + 4 + 4 * i;
    const table = at + bb.readUint32(at);
    const deprecated = field(table, 0);
    const builtin = field(table, 3);
    if (deprecated && builtin && bb.readInt8(table + deprecated) === code) return { deprecated: table + deprecated, builtin: table + builtin };
  }
  throw new Error(`no operator code ${code} with both code fields present`);
}

describe('TFLite → tfjs converter (src/models/tflite)', () => {
  before(async () => {
    await initBackend(BACKEND);
  });

  for (const source of SOURCES) {
    describe(`${source.dir}/${source.tflite}`, () => {
      const dir = path.join(MODELS, source.dir);
      let converted: ConvertedModel;
      let shipped: ModelJson;
      let shippedBin: Buffer;

      before(() => {
        const bytes = fs.readFileSync(path.join(dir, source.tflite));
        converted = convertTflite(bytes);
        shipped = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
        shippedBin = fs.readFileSync(path.join(dir, 'group1-shard1of1.bin'));
      });

      it('writes the shipped weights manifest, tensor for tensor (name, shape, dtype, quantization)', () => {
        const ours = (converted.modelJson as unknown as ModelJson).weightsManifest;
        assert.equal(ours.length, 1);
        assert.deepEqual(ours[0].paths, ['group1-shard1of1.bin']);
        const theirs = shipped.weightsManifest[0].weights;
        assert.equal(ours[0].weights.length, theirs.length, 'number of weights');
        theirs.forEach((w, i) => assert.deepEqual(ours[0].weights[i], w, `weight ${i} (${w.name})`));
      });

      it('writes byte-identical weight data, per tensor and as a whole', () => {
        const ours = Buffer.from(converted.weightData.buffer, converted.weightData.byteOffset, converted.weightData.byteLength);
        let at = 0;
        for (const w of shipped.weightsManifest[0].weights) {
          const n = byteLength(w);
          assert.ok(ours.subarray(at, at + n).equals(shippedBin.subarray(at, at + n)), `bytes of ${w.name} (${at}..${at + n})`);
          at += n;
        }
        assert.equal(at, shippedBin.length, 'the manifest covers the whole shard');
        assert.equal(ours.length, shippedBin.length);
        assert.ok(ours.equals(shippedBin), 'whole shard');
      });

      it('builds the shipped nodes: names, ops, inputs and attrs, in order; the same signature', () => {
        const ours = (converted.modelJson as unknown as ModelJson).modelTopology.node;
        const theirs = shipped.modelTopology.node;
        assert.equal(ours.length, theirs.length, 'number of nodes');
        theirs.forEach((node, i) => assert.deepEqual(ours[i], node, `node ${i} (${node.name})`));
        assert.deepEqual((converted.modelJson as unknown as ModelJson).signature, shipped.signature);
        assert.equal(converted.modelJson.format, 'graph-model');
        assert.deepEqual(converted.nodes.map((n) => [n.name, n.op]), theirs.map((n) => [n.name, n.op]));
        assert.deepEqual(converted.input, { name: 'input', shape: [1, 224, 224, 3], quantization: { scale: 1 / 128, zeroPoint: 128 } });
      });

      it(`finds the feature map and the pooled vector from the graph, as the ${source.backbone} backbone names them`, () => {
        assert.deepEqual(converted.features, source.features);
        const spec = BACKBONES[source.backbone];
        assert.deepEqual([spec.featureMap.name, [...spec.featureMap.shape], spec.pooled, spec.dims], [source.features.featureMap.name, [...source.features.featureMap.shape], source.features.pooled, source.features.dims]);
        const byName = new Map(converted.nodes.map((n) => [n.name, n]));
        assert.deepEqual(byName.get(source.features.featureMap.name)?.shape, [1, ...source.features.featureMap.shape]);
      });

      it('gives the shipped model\'s pooled features on 4 real photos (max abs diff ≤ 1e-6)', async () => {
        const [theirs, ours] = await Promise.all([
          tf.loadGraphModel(memoryHandler(shipped, new Uint8Array(shippedBin))),
          tf.loadGraphModel(memoryHandler(converted.modelJson as unknown as ModelJson, converted.weightData)),
        ]);
        const x = await photoBatch();
        try {
          const a = theirs.execute(x, source.features.pooled) as tf.Tensor;
          const b = ours.execute(x, source.features.pooled) as tf.Tensor;
          assert.deepEqual(b.shape, [4, 1, 1, source.features.dims]);
          const [va, vb] = [await a.data(), await b.data()];
          tf.dispose([a, b]);
          let diff = 0;
          let max = 0;
          for (let i = 0; i < va.length; i++) {
            diff = Math.max(diff, Math.abs(va[i] - vb[i]));
            max = Math.max(max, va[i]);
          }
          assert.ok(max > 0.1, `the features are not all ~0 (max ${max})`);
          assert.ok(diff <= 1e-6, `max abs diff ${diff}`);
        } finally {
          x.dispose();
          theirs.dispose();
          ours.dispose();
        }
      });
    });
  }

  describe('writeConverted', () => {
    const tmp = tempDir('pixdex-tflite-');
    after(() => tmp.cleanup());

    it('writes model.json and group1-shard1of1.bin that read back as converted, leaving no temporary file', async () => {
      const source = SOURCES[1];
      const converted = convertTflite(fs.readFileSync(path.join(MODELS, source.dir, source.tflite)));
      const out = path.join(tmp.dir, 'model');
      await writeConverted(converted, out);
      assert.deepEqual(fs.readdirSync(out).sort(), ['group1-shard1of1.bin', 'model.json']);
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')), converted.modelJson);
      assert.ok(fs.readFileSync(path.join(out, 'group1-shard1of1.bin')).equals(Buffer.from(converted.weightData)));
    });
  });

  describe('refusals: UNSUPPORTED_MODEL, never another error', () => {
    const v1 = () => new Uint8Array(fs.readFileSync(path.join(MODELS, SOURCES[1].dir, SOURCES[1].tflite)));

    it('refuses a model with an unsupported op, naming it with its count, the supported ops and what to do', () => {
      const bytes = v1();
      const resize = builtinCode('RESIZE_BILINEAR')!;
      const at = operatorCodeFields(bytes, builtinCode('AVERAGE_POOL_2D')!);
      bytes[at.deprecated] = resize;
      new DataView(bytes.buffer, bytes.byteOffset).setInt32(at.builtin, resize, true);
      const err = refusal(() => convertTflite(bytes), 'AVERAGE_POOL_2D patched to RESIZE_BILINEAR');
      assert.match(err.message, /does not support: RESIZE_BILINEAR \(1 use\)\./);
      assert.match(err.message, /Supported: ADD, AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D, .*SQUEEZE\./);
      assert.match(err.message, /Use a model made of the supported ops .*open an issue/);
    });

    it('counts each unsupported op: 14 CONV_2D patched to a custom op are named by the custom code', () => {
      const bytes = v1();
      const at = operatorCodeFields(bytes, builtinCode('CONV_2D')!);
      bytes[at.deprecated] = builtinCode('CUSTOM')!;
      new DataView(bytes.buffer, bytes.byteOffset).setInt32(at.builtin, builtinCode('CUSTOM')!, true);
      const err = refusal(() => convertTflite(bytes), 'CONV_2D patched to CUSTOM');
      assert.match(err.message, /does not support: custom op "\?" \(14 uses\)\./);
    });

    it('refuses an empty file, a truncated model, a JPEG and random bytes', () => {
      const real = v1();
      const random = seededRandom(7);
      const noise = Uint8Array.from({ length: 65536 }, () => Math.floor(random() * 256));
      const noiseTfl3 = noise.slice();
      noiseTfl3.set(Buffer.from('TFL3'), 4); // past the identifier check, into the table reader
      const jpeg = fs.readFileSync(imagesIn(HYM_VAL)[0]);
      assert.match(refusal(() => convertTflite(new Uint8Array(0)), 'empty').message, /0 bytes long/);
      assert.match(refusal(() => convertTflite(real.subarray(0, 1000)), 'first 1000 bytes').message, /outside the 1000-byte file/);
      assert.match(refusal(() => convertTflite(jpeg), 'a JPEG').message, /identifier .* not "TFL3"/);
      refusal(() => convertTflite(noise), 'random bytes');
      refusal(() => convertTflite(noiseTfl3), 'random bytes with the TFL3 identifier');
    });

    it('meets truncated and corrupted copies with its own checks (200 seeded cases, none ends in a stray exception)', () => {
      const real = v1();
      const random = seededRandom(20240611);
      let refused = 0;
      for (let i = 0; i < 200; i++) {
        let bytes: Uint8Array;
        if (i % 2 === 0) {
          bytes = real.subarray(0, Math.floor(random() * real.length));
        } else {
          // the FlatBuffer tables sit in the last ~50 KB (the weights before them); corrupt a few bytes there
          bytes = real.slice();
          for (let k = 0; k < 4; k++) bytes[bytes.length - 1 - Math.floor(random() * 50_000)] = Math.floor(random() * 256);
        }
        try {
          convertTflite(bytes);
        } catch (err) {
          assert.ok(err instanceof PixdexError && err.code === 'UNSUPPORTED_MODEL', `case ${i}: ${(err as Error).message}`);
          // a check of the reader or converter caught it: not a TypeError/RangeError wrapped on the way out
          assert.equal(err.cause, undefined, `case ${i}: ${err.message}`);
          refused++;
        }
      }
      assert.ok(refused >= 100, `${refused} of 200 refused (every truncation should be)`);
    });
  });
});
