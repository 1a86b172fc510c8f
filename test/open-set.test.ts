/**
 * Confidence that means something (issue 17) on real photos: one library with ants and bees
 * (hymenoptera train, folder labels) and three flowers17 classes labelled (the first 60 photos
 * of each by name), and unlabelled beside them: hymenoptera val, the last 20 of each labelled
 * flower class, and all 80 of three flower classes nobody labelled (sunflower among them).
 * Propagation must leave the unlabelled classes alone and still suggest the labelled ones.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { FLOWERS, HYM_TRAIN, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const LABELLED_FLOWERS = ['tulip', 'daisy', 'iris'];
const UNLABELLED_FLOWERS = ['bluebell', 'sunflower', 'crocus'];
const truth = (file: string) => path.basename(path.dirname(file));

describe('Open set and calibrated confidence (hymenoptera + flowers17)', () => {
  const tmp = tempDir();
  let engine: Engine;
  const labelledClassPhotos: string[] = [...imagesIn(HYM_VAL)];
  const unlabelledClassPhotos: string[] = UNLABELLED_FLOWERS.flatMap((c) => imagesIn(path.join(FLOWERS, c)));

  before(async () => {
    engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
    await engine.index([HYM_TRAIN], { labelFromFolder: true });
    await engine.index([HYM_VAL, ...[...LABELLED_FLOWERS, ...UNLABELLED_FLOWERS].map((c) => path.join(FLOWERS, c))]);
    for (const c of LABELLED_FLOWERS) {
      const files = imagesIn(path.join(FLOWERS, c)).sort();
      for (const f of files.slice(0, 60)) engine.label(f, c);
      labelledClassPhotos.push(...files.slice(60));
    }
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('propagation leaves photos of unlabelled classes alone and still suggests the labelled ones', (t) => {
    const r = engine.propagate({ minConfidence: 0.8, k: 10 });
    const byPath = new Map(r.suggestions.map((s) => [s.path, s]));
    const strays = unlabelledClassPhotos.filter((f) => byPath.has(f)).length / unlabelledClassPhotos.length;
    const right = labelledClassPhotos.filter((f) => byPath.get(f)?.label === truth(f)).length / labelledClassPhotos.length;
    // Measured (mobilenet_v2, regional, wasm, load ~10): with the open-set model and its
    // library-wide decision (src/open-set.ts) 0.021 of the unlabelled classes' photos suggested
    // (no sunflower), 0.883 of the labelled classes' photos right; before it (a similarity-gap
    // rule) 0.042-0.054 and 0.79-0.83; by the vote share alone 0.388 would be suggested.
    assert.ok(strays <= 0.05, `suggestions for unlabelled classes: ${strays.toFixed(3)}`);
    assert.ok(right >= 0.8, `right suggestions for labelled classes: ${right.toFixed(3)}`);
    const sunflowers = unlabelledClassPhotos.filter((f) => truth(f) === 'sunflower' && byPath.has(f)).length;
    assert.ok(sunflowers <= 2, `${sunflowers} sunflowers were suggested ants, bees, tulip, daisy or iris`);
    assert.ok(r.unknown >= unlabelledClassPhotos.length * 0.8, `left alone as unknown: ${r.unknown}`);
    // The vote share alone (the old confidence) would have suggested far more of them.
    const byShare = unlabelledClassPhotos.filter((f) => engine.classifyId(engine.resolve(f)).share >= 0.8).length / unlabelledClassPhotos.length;
    t.diagnostic(JSON.stringify({ strays, right, unknown: r.unknown, byShare, sunflowers }));
    assert.ok(byShare >= 3 * strays + 0.1, `vote share >= 0.8 for ${byShare.toFixed(3)} of them`);
  });

  it('confidence is calibrated: on the labelled classes its mean is close to the accuracy', (t) => {
    const answers = labelledClassPhotos.map((f) => ({ f, c: engine.classifyId(engine.resolve(f), { k: 10 }) }));
    const accuracy = answers.filter((a) => a.c.label === truth(a.f)).length / answers.length;
    const meanConfidence = answers.reduce((s, a) => s + a.c.confidence, 0) / answers.length;
    const meanShare = answers.reduce((s, a) => s + a.c.share, 0) / answers.length;
    t.diagnostic(JSON.stringify({ accuracy, meanConfidence, meanShare }));
    // Measured: accuracy 0.934, mean confidence 0.933 (the share's mean: 0.920).
    assert.ok(Math.abs(meanConfidence - accuracy) <= 0.06, `mean confidence ${meanConfidence.toFixed(3)} vs accuracy ${accuracy.toFixed(3)} (share ${meanShare.toFixed(3)})`);
    for (const { c } of answers) {
      assert.ok(c.confidence >= 0 && c.confidence <= 1 && c.share >= 0 && c.share <= 1);
      if (c.unknown) assert.deepEqual([c.label, c.reason], [null, 'unknown: unlike every labelled class']);
    }
  });

  it('an uploaded photo of a labelled class gets its label, with the share kept apart', async () => {
    const ant = imagesIn(path.join(HYM_VAL, 'ants'))[0];
    const c = await engine.classify(fs.readFileSync(ant), { k: 10 });
    assert.equal(c.label, 'ants');
    assert.equal(c.unknown, false);
    assert.ok(Math.abs(Object.values(c.votes).reduce((a, b) => a + b, 0) - 1) < 1e-9, 'votes stay a distribution');
    assert.equal(c.share, Object.values(c.votes)[0]);
  });

  it('stores the calibration beside the head and refits it when the labels change', () => {
    const [bluebell, other] = imagesIn(path.join(FLOWERS, 'bluebell'));
    engine.classifyId(engine.resolve(other));
    const stored = () => JSON.parse(engine.store.models.getBinary('calibration')!.toString());
    const before = stored();
    assert.equal(before.format, 'pixdex-calibration-2');
    assert.equal(before.images, 245 + 3 * 60);
    assert.equal(before.openWeights.length, 7, 'the open-set model: intercept and 6 features');
    assert.deepEqual(Object.keys(before.classes).sort(), ['ants', 'bees'], 'the flower classes (60 photos) use the pooled threshold');
    engine.label(bluebell, 'bluebell');
    const c = engine.classifyId(engine.resolve(other));
    const after = stored();
    assert.notEqual(after.fingerprint, before.fingerprint);
    assert.equal(after.images, before.images + 1);
    assert.ok(c.confidence >= 0 && c.confidence <= 1);
    if (c.unknown) assert.equal(c.reason, 'unknown: unlike every labelled class');
  });
});
