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
import { decideOpenSet, inSetProbabilities } from '../src/open-set.ts';
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
    // Measured (mobilenet_v2, regional2): with the positive-unlabelled model and its library-wide
    // decision (src/open-set.ts) 0.017 of the unlabelled classes' photos suggested (no
    // sunflower), 0.887 of the labelled classes' photos right; with the hidden-class model before
    // it 0.021 and 0.883, and before that (a similarity-gap rule) 0.042-0.054 and 0.79-0.83; by
    // the vote share alone 0.388 would be suggested.
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
    assert.equal(before.format, 'pixdex-calibration-3');
    assert.equal(before.images, 245 + 3 * 60);
    // The labelled side of the open-set model: every labelled photo's features, itself left out.
    assert.ok(before.inSetExamples.length >= 0.95 * before.images && before.inSetExamples.length <= before.images, `${before.inSetExamples.length} examples`);
    for (const e of before.inSetExamples) assert.ok(['ants', 'bees', ...LABELLED_FLOWERS].includes(e.label) && e.x.length === 6 && e.x.every(Number.isFinite), JSON.stringify(e));
    assert.deepEqual(Object.keys(before.classes).sort(), ['ants', 'bees'], 'the flower classes (60 photos) use the pooled threshold');
    engine.label(bluebell, 'bluebell');
    const c = engine.classifyId(engine.resolve(other));
    const after = stored();
    assert.notEqual(after.fingerprint, before.fingerprint);
    assert.equal(after.images, before.images + 1);
    assert.ok(c.confidence >= 0 && c.confidence <= 1);
    if (c.unknown) assert.equal(c.reason, 'unknown: unlike every labelled class');
  });

  it('with a handful of labels per class, propagation stops far fewer strangers than before but does not reach 5 %', (t) => {
    // Keep 10 labels of each labelled class (ants and bees among them); the rest become unlabelled,
    // and so does the bluebell labelled by the test before.
    engine.label(imagesIn(path.join(FLOWERS, 'bluebell'))[0], null);
    const kept: string[] = [];
    for (const c of ['ants', 'bees']) {
      const files = imagesIn(path.join(HYM_TRAIN, c)).sort();
      kept.push(...files.slice(0, 10));
      for (const f of files.slice(10)) engine.label(f, null);
    }
    for (const c of LABELLED_FLOWERS) {
      const files = imagesIn(path.join(FLOWERS, c)).sort();
      kept.push(...files.slice(0, 10));
      for (const f of files.slice(10)) engine.label(f, null);
    }
    const r = engine.propagate({ minConfidence: 0.8, k: 10 });
    const byPath = new Map(r.suggestions.map((s) => [s.path, s]));
    const strays = unlabelledClassPhotos.filter((f) => byPath.has(f)).length / unlabelledClassPhotos.length;
    const unlabelledOfLabelled = [...imagesIn(HYM_TRAIN), ...imagesIn(HYM_VAL), ...LABELLED_FLOWERS.flatMap((c) => imagesIn(path.join(FLOWERS, c)))].filter((f) => !kept.includes(f));
    const right = unlabelledOfLabelled.filter((f) => byPath.get(f)?.label === truth(f)).length / unlabelledOfLabelled.length;
    const wrong = unlabelledOfLabelled.filter((f) => byPath.has(f) && byPath.get(f)!.label !== truth(f)).length / unlabelledOfLabelled.length;
    t.diagnostic(JSON.stringify({ strays, right, wrong, unknown: r.unknown }));
    // Measured (regional2, tensorflow and wasm): 0.254 of the unlabelled classes' photos suggested
    // (most of them sunflowers as daisy: with 10 daisies labelled, the two look alike in this
    // embedding and in their neighbourhoods), 0.871 of the rest right. The hidden-class model it
    // replaced (pixdex-calibration-2) let 0.921 through here; one labelling chance for all classes
    // instead of one per class, 0.367. A limit, stated in the README.
    assert.ok(strays <= 0.35, `suggestions for unlabelled classes: ${strays.toFixed(3)}`);
    assert.ok(right >= 0.8, `right suggestions for labelled classes: ${right.toFixed(3)}`);
  });
});

describe('The open-set decision (src/open-set.ts) on features of known make-up', () => {
  // Seeded: photos of a labelled class near one point, strangers near another (overlapping tails).
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const normal = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const near = (n: number, at: number[]) => Array.from({ length: n }, () => at.map((v) => v + 0.4 * normal()));
  const items = (xs: number[][], label: string | null, from = 0) => xs.map((x, i) => ({ id: from + i, label, x, neighbors: [] }));
  const examples = (xs: number[][], label: string) => xs.map((x) => ({ label, x }));

  it('estimates how many unlabelled photos are strangers and calls them unknown', () => {
    const d = decideOpenSet([...items(near(100, [1]), 'tulip'), ...items(near(300, [-1]), 'tulip', 100)], examples(near(100, [1]), 'tulip'));
    assert.ok(Math.abs(d.unknownShare - 0.75) <= 0.05, `estimated share of strangers ${d.unknownShare.toFixed(3)}, truly 0.75`);
    const strangersKept = d.unknown.slice(100).filter((u) => !u).length / 300;
    const inSetLost = d.unknown.slice(0, 100).filter((u) => u).length / 100;
    // Measured: 0.759, none kept, 0.08 lost (the linear model's tail; Bayes would lose 0.01).
    assert.ok(strangersKept <= 0.05 && inSetLost <= 0.1, `strangers kept ${strangersKept}, in-set lost ${inSetLost}`);
  });

  it('a library of labelled classes only has no strangers to find', () => {
    const d = decideOpenSet(items(near(200, [1]), 'tulip'), examples(near(100, [1]), 'tulip'));
    assert.ok(d.unknownShare <= 0.1, `estimated share of strangers ${d.unknownShare.toFixed(3)}`);
    assert.ok(d.unknown.filter(Boolean).length <= 10, `${d.unknown.filter(Boolean).length} of 200 called unknown`);
  });

  it('a class with few of its photos labelled is not mistaken for strangers (labelling chance per class)', () => {
    // ants: 10 of 100 labelled; daisy: 60 of 100; strangers elsewhere.
    const ants = near(100, [1, 0]);
    const daisies = near(100, [0, 1]);
    const inSet = [...examples(ants.slice(0, 10), 'ants'), ...examples(daisies.slice(0, 60), 'daisy')];
    const decide = (perClass: boolean) => {
      const d = decideOpenSet([...items(ants.slice(10), perClass ? 'ants' : null), ...items(daisies.slice(60), perClass ? 'daisy' : null, 90), ...items(near(200, [-1, -1]), perClass ? 'daisy' : null, 130)], inSet);
      return { antsLost: d.unknown.slice(0, 90).filter(Boolean).length / 90, strangersKept: d.unknown.slice(130).filter((u) => !u).length / 200 };
    };
    // Measured: 0.27 of the ants lost with their own c, 0.80 with one c for all (a photo with no
    // vote, label null, takes the one over all labelled photos); no stranger kept either way.
    const own = decide(true);
    const one = decide(false);
    assert.ok(own.antsLost <= 0.35 && own.strangersKept <= 0.05, JSON.stringify(own));
    assert.ok(one.antsLost >= own.antsLost + 0.3, `one c for all loses ${one.antsLost} of the ants, per class ${own.antsLost}`);
  });

  it('nothing to compare: no labelled examples, or a photo without labelled neighbours', () => {
    assert.deepEqual(inSetProbabilities([{ id: 1, label: 'tulip', x: [0.3], neighbors: [] }, { id: 2, label: null, x: null, neighbors: [] }], []), [1, 0]);
    assert.deepEqual(decideOpenSet([], [{ label: 'tulip', x: [1] }]), { unknown: [], inSet: [], unknownShare: 0 });
  });

  it('a borderline photo among labelled neighbours stays in set, among strangers it does not', () => {
    const labelled = examples(near(100, [1]), 'tulip');
    const strangers = items(near(50, [-1]), 'tulip', 100);
    const among = (label: boolean) => ({ id: 1, label: 'tulip', x: [0], neighbors: Array.from({ length: 10 }, (_, i) => (label ? { id: 1000 + i, label: 'tulip' } : { id: 100 + i })) });
    assert.equal(decideOpenSet([among(true), ...strangers], labelled).unknown[0], false);
    assert.equal(decideOpenSet([among(false), ...strangers], labelled).unknown[0], true);
  });
});
