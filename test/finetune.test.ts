/**
 * `train-classifier --mode finetune|scratch` on real photos: a few hymenoptera ants and bees,
 * labelled by folder. A short fine-tune beats the untrained top on the held-out split, the weights
 * round-trip bit-exactly through LMDB, classify --method head|both uses them, training leaks no
 * tensors, and an abort keeps the best weights so far. `--mode` goes through the verb schema.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { tf } from '../src/backend.ts';
import { FINETUNE_KEY, featureSet, libraryTop, queryFeatures } from '../src/finetune.ts';
import { FinetunedTop, MOBILENET_V2_TOP } from '../src/models/finetune.ts';
import { stratifiedSplit } from '../src/models/head.ts';
import { parseParams, VERBS } from '../src/contracts/verbs.ts';
import type { PixdexError } from '../src/errors.ts';
import { HYM_TRAIN, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const truth = (file: string) => path.basename(path.dirname(file));
/** Every `step`-th file of a class folder: a small, deterministic sample of real photos. */
const sample = (dir: string, step: number) => imagesIn(dir).filter((_, i) => i % step === 0);

describe('Fine-tuning the top of mobilenet_v2 on hymenoptera', () => {
  const tmp = tempDir();
  let engine: Engine;
  const labelled = [...sample(path.join(HYM_TRAIN, 'ants'), 6), ...sample(path.join(HYM_TRAIN, 'bees'), 6)];
  const val = [...sample(path.join(HYM_VAL, 'ants'), 8), ...sample(path.join(HYM_VAL, 'bees'), 8)];

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

  it('a short fine-tune raises held-out accuracy above the untrained top, without leaking tensors', async () => {
    const backbone = await engine.describer.model();
    const labels = labelled.map(truth);
    const { train, held } = stratifiedSplit(labels, 0.3, 42);
    const classes = ['ants', 'bees'];
    const files = labelled.map((p, i) => ({ path: p, label: labels[i] }));
    const trainSet = await featureSet(backbone, MOBILENET_V2_TOP, train.map((i) => files[i]), classes, 2, engine.config.maxInputPixels, 42, () => {});
    const heldSet = await featureSet(backbone, MOBILENET_V2_TOP, [...held.map((i) => files[i]), ...val.map((p) => ({ path: p, label: truth(p) }))], classes, 1, engine.config.maxInputPixels, 42, () => {});
    const init = { kernel: backbone.graphWeight(MOBILENET_V2_TOP.kernel), bias: backbone.graphWeight(MOBILENET_V2_TOP.bias) };
    const before = tf.memory().numTensors;
    const untrained = await FinetunedTop.train(MOBILENET_V2_TOP, init, classes, trainSet, heldSet, { trainImages: train.length, views: 2 }, { epochs: 0 });
    const start = untrained.evaluate(heldSet).accuracy;
    untrained.dispose();
    const trained = await FinetunedTop.train(MOBILENET_V2_TOP, init, classes, trainSet, heldSet, { trainImages: train.length, views: 2 }, { epochs: 3, patience: 3 });
    const end = trained.evaluate(heldSet).accuracy;
    trained.dispose();
    assert.equal(tf.memory().numTensors, before, 'training and disposing leaves no tensor behind');
    assert.ok(end > start, `held-out accuracy after 3 epochs ${end.toFixed(3)} should beat the untrained top's ${start.toFixed(3)}`);
    assert.ok(end >= 0.8, `held-out accuracy ${end.toFixed(3)}`);
  });

  it('stores the fine-tuned weights bit-exactly, and classify --method head|both uses them', async () => {
    const report = await engine.trainClassifier({ mode: 'finetune', epochs: 3, views: 2 });
    assert.ok('mode' in report && report.mode === 'finetune');
    assert.deepEqual(report.trained, ['MobilenetV2/Conv_1/Conv2D_Fold', 'dense softmax (new)']);
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
    const report = await engine.trainClassifier({ mode: 'scratch', epochs: 50, patience: 50, views: 1, signal: controller.signal }, () => {
      if (++epochs === 2) controller.abort();
    });
    assert.ok('aborted' in report && report.aborted, 'reported as stopped early');
    assert.ok(report.epochs <= 3, `stopped after ${report.epochs} epochs`);
    assert.ok(report.bestEpoch >= 1 && report.bestEpoch <= 2);
    const c = await engine.classify(fs.readFileSync(val[1]), { method: 'head' });
    assert.ok(c.label === 'ants' || c.label === 'bees');
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
