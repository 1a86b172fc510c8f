/**
 * `train-classifier --mode finetune|scratch` on real photos: a few hymenoptera ants and bees,
 * labelled by folder. A short fine-tune beats the untrained top on the held-out split, the weights
 * round-trip bit-exactly through LMDB, classify --method head|both uses them, training leaks no
 * tensors, and an abort keeps the best weights so far. `--mode` goes through the verb schema.
 * Retraining inverted-residual blocks (--blocks > 0) needs the tensorflow backend: those tests run
 * there and are skipped on wasm, where the typed error naming `npm run setup:tensorflow` is tested
 * instead (CI runs this file on both backends); Conv_1 alone (--blocks 0) is tested on both.
 * `--mode scratch` (the whole MobileNetV2 from fresh weights, from pixels) likewise trains only on
 * tensorflow (a short run at 64 px: round trip, classify, abort, no leaks; no accuracy bound — two
 * epochs from fresh weights on a dozen photos learn next to nothing, which is the mode's point) and
 * is refused on wasm; its layer table is checked against the graph's weight shapes on both.
 * A mobilenet_v1_embedding library fine-tunes its last 1x1 convolution (on both backends): the split
 * rebuilds the graph's pooled vector, a short run beats the untrained top, classify uses it.
 * The zoomed-out training view is checked pixel by pixel on a real photo.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { tf } from '../src/backend.ts';
import sharp from 'sharp';
import { FINETUNE_KEY, featureSet, libraryTop, queryFeatures, zoomOut } from '../src/finetune.ts';
import { FinetunedTop, MOBILENET_V1_EMBEDDING_TOP, MOBILENET_V2_TOP, topSplit, type TopSplit } from '../src/models/finetune.ts';
import { FINETUNE_BLOCKS } from '../src/contracts/limits.ts';
import { MOBILENET_V2_BLOCKS, MOBILENET_V2_LAST, MOBILENET_V2_STEM, ScratchNet } from '../src/models/scratch-net.ts';
import { decodeImage } from '../src/image/decode.ts';
import { seededRandom } from '../src/random.ts';
import { stratifiedSplit } from '../src/models/head.ts';
import { parseParams, VERBS } from '../src/contracts/verbs.ts';
import type { PixdexError } from '../src/errors.ts';
import { HYM_TRAIN, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const truth = (file: string) => path.basename(path.dirname(file));
/** Every `step`-th file of a class folder: a small, deterministic sample of real photos. */
const sample = (dir: string, step: number) => imagesIn(dir).filter((_, i) => i % step === 0);
/** True when the backend in use trains depthwise convolutions (blocks above Conv_1). */
const trainsBlocks = () => tf.getBackend() === 'tensorflow';

/** Every describe's library: 12 labelled hymenoptera train photos; `val` are 16 val photos. */
const labelled = [...sample(path.join(HYM_TRAIN, 'ants'), 6), ...sample(path.join(HYM_TRAIN, 'bees'), 6)];
const val = [...sample(path.join(HYM_VAL, 'ants'), 8), ...sample(path.join(HYM_VAL, 'bees'), 8)];

/** A short fine-tune of `split` against the untrained top (epochs 0) on the same held-out photos (the labelled photos' 30 % and `val`), counting tensors. */
async function shortFinetune(engine: Engine, split: TopSplit, epochs = 3): Promise<void> {
  const backbone = await engine.describer.model();
  const labels = labelled.map(truth);
  const { train, held } = stratifiedSplit(labels, 0.3, 42);
  const classes = ['ants', 'bees'];
  const files = labelled.map((p, i) => ({ path: p, label: labels[i] }));
  const trainSet = await featureSet(backbone, split, train.map((i) => files[i]), classes, 2, engine.config.maxInputPixels, 42, () => {});
  const heldSet = await featureSet(backbone, split, [...held.map((i) => files[i]), ...val.map((p) => ({ path: p, label: truth(p) }))], classes, 1, engine.config.maxInputPixels, 42, () => {});
  const weight = (name: string) => backbone.graphWeight(name);
  const before = tf.memory().numTensors;
  const untrained = await FinetunedTop.train(split, weight, classes, trainSet, heldSet, { trainImages: train.length, views: 2 }, { epochs: 0 });
  const start = untrained.evaluate(heldSet).accuracy;
  untrained.dispose();
  const trained = await FinetunedTop.train(split, weight, classes, trainSet, heldSet, { trainImages: train.length, views: 2 }, { epochs, patience: epochs });
  const end = trained.evaluate(heldSet).accuracy;
  assert.equal(trained.weights().length, 6 * (split.blocks?.length ?? 0) + 4, 'one variable per kernel and bias of every retrained layer');
  trained.dispose();
  assert.equal(tf.memory().numTensors, before, 'training and disposing leaves no tensor behind');
  assert.ok(end > start, `held-out accuracy after ${epochs} epochs ${end.toFixed(3)} should beat the untrained top's ${start.toFixed(3)}`);
  assert.ok(end >= 0.8, `held-out accuracy ${end.toFixed(3)}`);
}

describe('Fine-tuning the top of mobilenet_v2 on hymenoptera', () => {
  const tmp = tempDir();
  let engine: Engine;

  before(async () => {
    engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
    await engine.index(labelled, { labelFromFolder: true });
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('parses --mode through the train-classifier verb schema and refuses unknown modes', () => {
    assert.equal(parseParams(VERBS['train-classifier'], {}).mode, 'head');
    assert.equal(parseParams(VERBS['train-classifier'], { mode: 'finetune' }).mode, 'finetune');
    assert.throws(() => parseParams(VERBS['train-classifier'], { mode: 'full' }), (e: PixdexError) => e.code === 'INVALID_PARAMETER' && /head, finetune or scratch/.test(e.message));
  });

  it('a short fine-tune of Conv_1 alone (--blocks 0) raises held-out accuracy above the untrained top, without leaking tensors', async () => {
    await shortFinetune(engine, MOBILENET_V2_TOP);
  });

  it('on tensorflow: a short fine-tune of the top blocks (expanded_conv_15, 16 + Conv_1) raises held-out accuracy above the untrained top, without leaking tensors', async (t) => {
    if (!trainsBlocks()) return t.skip(`needs the tensorflow backend (running on ${tf.getBackend()})`);
    await shortFinetune(engine, topSplit('mobilenet_v2', 2));
  });

  it('on wasm: retraining blocks is refused with BACKEND_UNAVAILABLE naming npm run setup:tensorflow, before any feature pass', async (t) => {
    if (trainsBlocks()) return t.skip('the tensorflow backend trains blocks');
    let features = 0;
    await assert.rejects(engine.trainClassifier({ mode: 'finetune', onFeatures: () => features++ }), (e: PixdexError) => e.code === 'BACKEND_UNAVAILABLE' && /npm run setup:tensorflow/.test(e.message) && /--blocks 0/.test(e.message));
    assert.equal(features, 0, 'refused before the backbone ran');
    const backbone = await engine.describer.model();
    await assert.rejects(FinetunedTop.train(topSplit('mobilenet_v2', 1), (n) => backbone.graphWeight(n), ['ants', 'bees'], { data: new Float32Array(0), labels: new Int32Array(0), size: 7840 }, { data: new Float32Array(0), labels: new Int32Array(0), size: 7840 }, { trainImages: 0, views: 1 }), (e: PixdexError) => e.code === 'BACKEND_UNAVAILABLE');
  });

  it('stores the fine-tuned weights bit-exactly, and classify --method head|both uses them', async () => {
    const blocks = trainsBlocks() ? undefined : 0; // the default (2 blocks) on tensorflow
    const report = await engine.trainClassifier({ mode: 'finetune', epochs: 3, views: 2, blocks });
    assert.ok('mode' in report && report.mode === 'finetune');
    const retrained = trainsBlocks() ? topSplit('mobilenet_v2').blocks!.map((b) => b.name) : [];
    if (trainsBlocks()) assert.equal(retrained.length, FINETUNE_BLOCKS.default);
    assert.deepEqual(report.trained, [...retrained, 'MobilenetV2/Conv_1/Conv2D_Fold', 'dense softmax (new)']);
    const bytes = engine.store.models.getBinary(FINETUNE_KEY)!;
    const copy = FinetunedTop.fromBytes(bytes);
    assert.deepEqual(Buffer.from(copy.toBytes()), Buffer.from(bytes), 'save/load is bit-exact');
    const live = libraryTop(engine.tuned())!;
    assert.deepEqual(copy.weights(), live.weights(), 'weights equal bit for bit');

    const query = fs.readFileSync(val[0]);
    const features = await queryFeatures(await engine.describer.model(), copy.split, query, engine.config.maxInputPixels);
    const expected = Object.fromEntries(copy.predict(features).map((p) => [p.label, p.probability]));
    copy.dispose();
    const c = await engine.classify(query, { method: 'head' });
    assert.deepEqual(c.votes, expected, 'classify --method head reads the fine-tuned top');
    const both = await engine.classify(query, { method: 'both' });
    assert.ok(Math.abs(Object.values(both.votes).reduce((a, b) => a + b, 0) - 1) < 1e-6);

    const stats = await engine.stats();
    assert.ok(stats.classifier && 'mode' in stats.classifier && stats.classifier.mode === 'finetune');
    assert.equal(stats.classifier.heldOutAccuracy, report.heldOutAccuracy);

    // An indexed image by id has only its stored vector: refused while the top is in use, not answered by an older head.
    assert.throws(() => engine.classifyId(engine.resolve(labelled[0]), { method: 'head' }), (e: PixdexError) => e.code === 'INVALID_PARAMETER' && /classify the file/.test(e.message));
    assert.equal(engine.classifyId(engine.resolve(labelled[0]), { method: 'knn' }).method, 'knn');

    // Training the head afterwards makes the head the classifier in use again.
    await engine.trainClassifier({ epochs: 20 });
    const s2 = await engine.stats();
    assert.ok(s2.classifier && !('views' in s2.classifier), 'the newer head is in use');
    const head = await engine.classify(query, { method: 'head' });
    assert.notDeepEqual(head.votes, expected);
  });

  it('an abort keeps the best weights so far, and the top is usable', async () => {
    const controller = new AbortController();
    let epochs = 0;
    const report = await engine.trainClassifier({ mode: 'finetune', epochs: 50, patience: 50, views: 1, blocks: trainsBlocks() ? 1 : 0, signal: controller.signal }, () => {
      if (++epochs === 2) controller.abort();
    });
    assert.ok('aborted' in report && report.aborted, 'reported as stopped early');
    assert.ok(report.epochs <= 3, `stopped after ${report.epochs} epochs`);
    assert.ok(report.bestEpoch >= 1 && report.bestEpoch <= 2);
    const c = await engine.classify(fs.readFileSync(val[1]), { method: 'head' });
    assert.ok(c.label === 'ants' || c.label === 'bees');
  });

  it('refits on every labelled image for the epochs early stopping chose; refit: false keeps the first run; an abort during the refit keeps the first run\'s best weights', async () => {
    const options = { mode: 'finetune' as const, epochs: 3, patience: 3, views: 1, blocks: 0 };
    const heldLosses: number[] = [];
    const report = await engine.trainClassifier(options, (_epoch, _loss, valLoss) => heldLosses.push(valLoss));
    assert.ok('refit' in report && report.refit, 'refit by default');
    assert.equal(report.refit.images, labelled.length, 'the second run trains on every labelled image, held-out ones included');
    assert.equal(report.trainImages, labelled.length);
    assert.equal(report.refit.epochs, report.bestEpoch, 'for as many epochs as early stopping chose');
    assert.equal(heldLosses.filter(Number.isNaN).length, report.bestEpoch, 'one progress line per refit epoch, without a held-out figure');
    assert.equal(heldLosses.length, report.epochs + report.bestEpoch);
    const stats = await engine.stats();
    assert.ok(stats.classifier && 'refit' in stats.classifier);
    assert.deepEqual(stats.classifier.refit, report.refit, 'stats says the top in use was refit');
    const tensors = tf.memory().numTensors; // the loaded top in use, and the backbone

    const plain = await engine.trainClassifier({ ...options, refit: false });
    assert.ok('mode' in plain && plain.refit === undefined, 'refit: false keeps the first run');
    assert.ok(plain.trainImages < labelled.length, `the first run trains on ${plain.trainImages} of ${labelled.length}: the rest are held out`);
    const cli = parseParams(VERBS['train-classifier'], { mode: 'finetune', refit: 'false' });
    assert.equal(cli.refit, false, 'refit=false parses (query string / CLI --no-refit)');
    assert.equal(tf.memory().numTensors, tensors, 'the first run\'s top, its copies and the joined sets leave no tensor behind');

    const controller = new AbortController();
    const aborted = await engine.trainClassifier({ ...options, signal: controller.signal }, (_epoch, _loss, valLoss) => {
      if (Number.isNaN(valLoss)) controller.abort(); // the refit's first epoch
    });
    assert.ok('mode' in aborted && aborted.bestEpoch >= 2, `the first run's best epoch leaves the refit more than one epoch to be stopped in`);
    assert.ok(aborted.aborted && aborted.refit === undefined, 'stopped during the refit: the first run\'s best weights are kept');
    assert.equal(tf.memory().numTensors, tensors, 'the stopped refit is disposed');
    const c = await engine.classify(fs.readFileSync(val[2]), { method: 'head' });
    assert.ok(c.label === 'ants' || c.label === 'bees');
  });

  it('scratch: the layer table is the graph\'s MobileNetV2 (stem, 17 blocks, Conv_1)', async () => {
    const backbone = await engine.describer.model();
    const shape = (name: string) => backbone.graphWeight(`MobilenetV2/${name}`).shape;
    assert.deepEqual(shape('Conv/Conv2D_Fold'), [3, 3, 3, MOBILENET_V2_STEM]);
    let c = MOBILENET_V2_STEM;
    MOBILENET_V2_BLOCKS.forEach(([t, out], i) => {
      const name = i === 0 ? 'expanded_conv' : `expanded_conv_${i}`;
      if (t !== 1) assert.deepEqual(shape(`${name}/expand/Conv2D_Fold`), [1, 1, c, c * t], name);
      assert.deepEqual(shape(`${name}/depthwise/depthwise_Fold`), [3, 3, c * t, 1], name);
      assert.deepEqual(shape(`${name}/project/Conv2D_Fold`), [1, 1, c * t, out], name);
      c = out;
    });
    assert.deepEqual(shape('Conv_1/Conv2D_Fold'), [1, 1, c, MOBILENET_V2_LAST]);
    assert.throws(() => backbone.graphWeight(`MobilenetV2/expanded_conv_${MOBILENET_V2_BLOCKS.length}/project/Conv2D_Fold`), 'no block beyond the table');
  });

  it('on wasm: --mode scratch is refused with BACKEND_UNAVAILABLE naming npm run setup:tensorflow, before any image is read', async (t) => {
    if (trainsBlocks()) return t.skip('the tensorflow backend trains the whole network');
    let read = 0;
    await assert.rejects(engine.trainClassifier({ mode: 'scratch', onFeatures: () => read++ }), (e: PixdexError) => e.code === 'BACKEND_UNAVAILABLE' && /npm run setup:tensorflow/.test(e.message) && /whole MobileNetV2/.test(e.message));
    assert.equal(read, 0, 'refused before any image was decoded');
  });

  it('on tensorflow: --mode scratch trains the whole network from pixels; weights round-trip bit-exactly, classify uses it, no tensor leaks, an abort keeps the best', async (t) => {
    if (!trainsBlocks()) return t.skip(`needs the tensorflow backend (running on ${tf.getBackend()})`);
    await assert.rejects(engine.trainClassifier({ mode: 'scratch', blocks: 1 }), (e: PixdexError) => e.code === 'INVALID_PARAMETER' && /--blocks applies to --mode finetune/.test(e.message));
    const epochsSeen: number[] = [];
    const report = await engine.trainClassifier({ mode: 'scratch', epochs: 2, patience: 2, inputSize: 64 }, (epoch) => epochsSeen.push(epoch));
    assert.deepEqual(epochsSeen, [1, 2], 'progress per epoch');
    assert.ok('mode' in report && report.mode === 'scratch' && !report.aborted);
    assert.match(report.trained[0], /whole network at 64 px/);
    const bytes = engine.store.models.getBinary(FINETUNE_KEY)!;
    assert.ok(ScratchNet.isScratch(bytes) && !FinetunedTop.isFinetuned(bytes));
    const copy = ScratchNet.fromBytes(bytes);
    assert.deepEqual(Buffer.from(copy.toBytes()), Buffer.from(bytes), 'save/load is bit-exact');
    const live = libraryTop(engine.tuned())!;
    assert.ok(live instanceof ScratchNet);
    const weights = copy.weights();
    assert.deepEqual(weights, live.weights(), 'weights equal bit for bit (batch-norm statistics included)');
    // stem + 17 blocks + Conv_1, each conv with 4 batch-norm weights, + the dense layer
    const convs = 1 + MOBILENET_V2_BLOCKS.reduce((a, [tt]) => a + (tt === 1 ? 2 : 3), 0) + 1;
    assert.equal(weights.length, convs * 5 + 2, 'every layer of the architecture is in the network');

    const query = fs.readFileSync(val[0]);
    const expected = Object.fromEntries(copy.predict((await decodeImage(query, { size: 64, maxInputPixels: engine.config.maxInputPixels })).pixels).map((p) => [p.label, p.probability]));
    copy.dispose();
    const c = await engine.classify(query, { method: 'head' });
    assert.deepEqual(c.votes, expected, 'classify --method head runs the scratch network from pixels');
    const stats = await engine.stats();
    assert.ok(stats.classifier && 'mode' in stats.classifier && stats.classifier.mode === 'scratch');

    // An abort keeps the best weights so far.
    const controller = new AbortController();
    let epochs = 0;
    const aborted = await engine.trainClassifier({ mode: 'scratch', epochs: 50, patience: 50, inputSize: 64, signal: controller.signal }, () => {
      if (++epochs === 2) controller.abort();
    });
    assert.ok('aborted' in aborted && aborted.aborted && aborted.epochs <= 3 && aborted.bestEpoch >= 1 && aborted.bestEpoch <= 2);
    const label = (await engine.classify(fs.readFileSync(val[1]), { method: 'head' })).label;
    assert.ok(label === 'ants' || label === 'bees');

    // Leaks: training and disposing a network directly leaves the tensor count where it was.
    const px = await Promise.all(labelled.slice(0, 4).map(async (p) => (await decodeImage(fs.readFileSync(p), { size: 64, maxInputPixels: engine.config.maxInputPixels })).pixels));
    const before = tf.memory().numTensors;
    const net = await ScratchNet.train(64, ['ants', 'bees'], { labels: Int32Array.from([0, 0, 1, 1]), view: (i) => px[i] }, { labels: Int32Array.from([0, 1]), pixels: [px[0], px[3]] }, { trainImages: 4 }, { epochs: 2, batchSize: 2 });
    net.dispose();
    assert.equal(tf.memory().numTensors, before, 'training and disposing a scratch network leaves no tensor behind');
  });

  it('refuses fine-tuning on a backbone it cannot split, naming --mode head', async () => {
    const other = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'v1')), backbone: 'mobilenet_v1_0.75' });
    try {
      await other.index(labelled.slice(0, 4), { labelFromFolder: true });
      await assert.rejects(other.trainClassifier({ mode: 'finetune' }), (e: PixdexError) => e.code === 'INVALID_PARAMETER' && /--mode head/.test(e.message));
    } finally {
      await other.close();
    }
  });
});

describe('Fine-tuning the top of mobilenet_v1_embedding on hymenoptera (every backend)', () => {
  const tmp = tempDir();
  let engine: Engine;

  before(async () => {
    engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), backbone: 'mobilenet_v1_embedding' });
    await engine.index(labelled, { labelFromFolder: true });
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('the split rebuilds the graph: Conv2d_13_pointwise over the frozen depthwise output, pooled, is the backbone\'s own vector', async () => {
    const backbone = await engine.describer.model();
    const split = topSplit('mobilenet_v1_embedding');
    const features = await queryFeatures(backbone, split, fs.readFileSync(val[0]), engine.config.maxInputPixels);
    assert.equal(features.length, 7 * 7 * 1024);
    const img = await decodeImage(fs.readFileSync(val[0]), { size: 224, maxInputPixels: engine.config.maxInputPixels });
    const [own] = await backbone.pooledVectors([img.pixels]);
    const rebuilt = tf.tidy(() => {
      const kernel = backbone.graphWeight(split.kernel).reshape([1024, split.units]);
      const conv = tf.relu6(tf.matMul(tf.tensor2d(features, [49, 1024]), kernel).add(backbone.graphWeight(split.bias).reshape([split.units])));
      return conv.mean(0).dataSync() as Float32Array;
    });
    assert.equal(rebuilt.length, own.length);
    const worst = rebuilt.reduce((m, x, i) => Math.max(m, Math.abs(x - own[i])), 0);
    assert.ok(worst < 1e-3, `largest difference to the graph's pooled vector ${worst}`);
  });

  it('a short fine-tune of Conv2d_13_pointwise raises held-out accuracy above the untrained top, without leaking tensors', async () => {
    // 8 epochs, not mobilenet_v2's 3: 16 training rows are one step per epoch, 2 of them warm-up, and 3 steps left this wider layer at 0.688.
    await shortFinetune(engine, MOBILENET_V1_EMBEDDING_TOP, 8);
  });

  it('train-classifier --mode finetune retrains Conv2d_13_pointwise, stores it bit-exactly and classify uses it; --blocks 1 and scratch are refused', async () => {
    await assert.rejects(engine.trainClassifier({ mode: 'finetune', blocks: 1 }), (e: PixdexError) => e.code === 'INVALID_PARAMETER' && /blocks/.test(e.message) && /Conv2d_13_pointwise/.test(e.message));
    await assert.rejects(engine.trainClassifier({ mode: 'scratch' }), (e: PixdexError) => e.code === 'INVALID_PARAMETER' && /mobilenet_v2/.test(e.message) && /--mode head/.test(e.message));
    const report = await engine.trainClassifier({ mode: 'finetune', epochs: 3, views: 2 });
    assert.ok('mode' in report && report.mode === 'finetune');
    assert.deepEqual(report.trained, ['MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Conv2D_Fold', 'dense softmax (new)']);
    const bytes = engine.store.models.getBinary(FINETUNE_KEY)!;
    const copy = FinetunedTop.fromBytes(bytes);
    assert.deepEqual(Buffer.from(copy.toBytes()), Buffer.from(bytes), 'save/load is bit-exact');
    const query = fs.readFileSync(val[3]);
    const expected = Object.fromEntries(copy.predict(await queryFeatures(await engine.describer.model(), copy.split, query, engine.config.maxInputPixels)).map((p) => [p.label, p.probability]));
    copy.dispose();
    const c = await engine.classify(query, { method: 'head' });
    assert.deepEqual(c.votes, expected, 'classify --method head reads the fine-tuned top');
  });
});

describe('Zoomed-out training views', () => {
  it('shrink a real photo into the view and fill the rest by mirroring it; the same draws give the same view', async () => {
    const photo = imagesIn(path.join(HYM_TRAIN, 'bees'))[0];
    const img = await decodeImage(fs.readFileSync(photo), { size: 256, maxInputPixels: 50_000_000 });
    // Every draw 0.5: the copy's side is 70 % of 224 (157 px) at offset (34, 34), no flip, colour factors 1.
    const view = await zoomOut(img.pixels, 256, 224, () => 0.5);
    assert.equal(view.length, 224 * 224 * 3);
    const s = 157;
    const o = 34;
    const copy = await sharp(img.pixels, { raw: { width: 256, height: 256, channels: 3 } }).resize(s, s).raw().toBuffer();
    const at = (x: number, y: number) => Array.from(view.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3));
    let differing = 0;
    for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) if (at(o + x, o + y).some((c, k) => Math.abs(c - copy[(y * s + x) * 3 + k]) > 1)) differing++;
    assert.equal(differing, 0, 'the placed copy is the photo resized to 157 px');
    for (const y of [0, 40, 100, 223]) for (let k = 0; k < o; k++) assert.deepEqual(at(o - 1 - k, y), at(o + k, y), `row ${y}: mirrored across the copy's left edge`);
    for (let k = 0; k < 224 - o - s; k++) assert.deepEqual(at(5, o + s + k), at(5, o + s - 1 - k), 'mirrored below the copy');

    assert.deepEqual(await zoomOut(img.pixels, 256, 224, seededRandom(3)), await zoomOut(img.pixels, 256, 224, seededRandom(3)));
    assert.notDeepEqual(await zoomOut(img.pixels, 256, 224, seededRandom(3)), await zoomOut(img.pixels, 256, 224, seededRandom(4)));
  });
});
