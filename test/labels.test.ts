/**
 * Similarity-based labelling on real photos: hymenoptera train indexed with folder labels, val
 * indexed without labels. kNN classification, label propagation as suggestions (never over a
 * person's label), accept/reject, and the trained softmax head.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { ClassifierHead } from '../src/models/head.ts';
import { PixdexError } from '../src/errors.ts';
import { HYM_TRAIN, HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const truth = (file: string) => path.basename(path.dirname(file));

describe('Labelling on hymenoptera (train labelled, val unlabelled)', () => {
  const tmp = tempDir();
  let engine: Engine;
  const val = imagesIn(HYM_VAL);
  let personLabelled: string;

  before(async () => {
    engine = await Engine.open(engineOptions(path.join(tmp.dir, 'data')));
    await engine.index([HYM_TRAIN], { labelFromFolder: true });
    await engine.index([HYM_VAL]);
  });
  after(async () => {
    await engine?.close();
    tmp.cleanup();
  });

  it('classifies val photos by their labelled neighbours with accuracy >= 0.93 (k = 10)', () => {
    let right = 0;
    for (const file of val) {
      const c = engine.classifyId(engine.resolve(file), { k: 10 });
      assert.ok(c.confidence >= 0 && c.confidence <= 1);
      assert.ok(c.neighbors.every((n) => n.label !== null), 'unlabelled neighbours do not vote');
      if (c.label === truth(file)) right++;
    }
    assert.ok(right / val.length >= 0.93, `kNN accuracy ${(right / val.length).toFixed(3)}`);
  });

  it('query expansion (expand 2) raises the share of same-label photos in the top 10 of an uploaded photo', async () => {
    // Measured (mobilenet_v2, regional, wasm): P@10 0.914 without, 0.928 with expand 2.
    const p10 = async (expand: number) => {
      let same = 0;
      for (const file of val) {
        const hits = await engine.search(fs.readFileSync(file), { k: 10, labelled: true, expand });
        assert.equal(hits.length, 10);
        same += hits.filter((h) => h.label === truth(file)).length;
      }
      return same / (10 * val.length);
    };
    const plain = await p10(0);
    const expanded = await p10(2);
    assert.ok(expanded > plain, `P@10 with expansion ${expanded.toFixed(3)} should beat ${plain.toFixed(3)}`);
    await assert.rejects(engine.search(fs.readFileSync(val[0]), { expand: 11 }), (e: PixdexError) => e.code === 'INVALID_PARAMETER');
  });

  it('classifies an uploaded photo and answers null below --min-confidence', async () => {
    const bytes = fs.readFileSync(val[0]);
    const c = await engine.classify(bytes, { k: 10 });
    assert.equal(c.label, truth(val[0]));
    assert.ok(Math.abs(Object.values(c.votes).reduce((a, b) => a + b, 0) - 1) < 1e-9, 'votes are a distribution');
    // The least confident val photo: just above its confidence it is unknown, just below it is not.
    const [least] = val.map((f) => ({ id: engine.resolve(f), c: engine.classifyId(engine.resolve(f)).confidence })).sort((a, b) => a.c - b.c);
    assert.ok(least.c < 1);
    assert.equal(engine.classifyId(least.id, { minConfidence: least.c + 1e-6 }).label, null);
    assert.notEqual(engine.classifyId(least.id, { minConfidence: least.c - 1e-6 }).label, null);
  });

  it('propagates labels to unlabelled images: >= 80% get a suggestion at 0.8, >= 93% of them right', () => {
    personLabelled = val[1];
    engine.label(personLabelled, 'bees-by-hand');
    const r = engine.propagate({ minConfidence: 0.8, k: 10 });
    assert.equal(r.unlabelled, 152);
    assert.equal(r.applied, false);
    assert.equal(engine.suggestions().length, 0, 'a report without --apply stores nothing');
    const right = r.suggestions.filter((s) => s.label === truth(s.path)).length;
    assert.ok(r.suggested / r.unlabelled >= 0.8, `coverage ${(r.suggested / r.unlabelled).toFixed(3)}`);
    assert.ok(right / r.suggested >= 0.93, `agreement ${(right / r.suggested).toFixed(3)}`);
    assert.ok(r.suggestions.every((s) => s.confidence >= 0.8 && s.path !== personLabelled));
  });

  it('stores suggestions apart from labels, and accept/reject act on them', () => {
    const r = engine.propagate({ minConfidence: 0.8, apply: true });
    const pending = engine.suggestions();
    assert.equal(pending.length, r.suggested);
    const [first, second] = pending;
    assert.equal(engine.get(first.id).label, undefined, 'a suggestion is not a label');

    assert.deepEqual(engine.acceptSuggestion(first.id), { id: first.id, label: first.label });
    assert.equal(engine.get(first.id).label, first.label);
    assert.ok(!engine.suggestions().some((s) => s.id === first.id));

    engine.rejectSuggestion(second.id);
    assert.ok(!engine.suggestions().some((s) => s.id === second.id));
    const again = engine.propagate({ minConfidence: 0.8, apply: true });
    assert.ok(!again.suggestions.some((s) => s.id === second.id && s.label === second.label), 'a rejected label is not suggested again');
    assert.throws(() => engine.acceptSuggestion(second.id), /No pending suggestion/);
  });

  it('never overwrites a label a person set', () => {
    for (const s of engine.suggestions()) engine.acceptSuggestion(s.id);
    assert.equal(engine.get(engine.resolve(personLabelled)).label, 'bees-by-hand');
  });

  it('refuses --method head before a classifier is trained', async () => {
    await assert.rejects(engine.classify(fs.readFileSync(val[0]), { method: 'head' }), (e: PixdexError) => e.code === 'NO_CLASSIFIER');
  });

  it('trains a softmax head on labelled embeddings that classifies val photos and round-trips', async () => {
    const report = await engine.trainClassifier();
    assert.ok(report.classes.includes('ants') && report.classes.includes('bees'));
    assert.ok(report.heldOutAccuracy >= 0.85, `held-out accuracy ${report.heldOutAccuracy}`);
    // Val images were labelled by accepting suggestions; score the head against the truth.
    let right = 0;
    for (const file of val) if (engine.classifyId(engine.resolve(file), { method: 'head' }).label === truth(file)) right++;
    assert.ok(right / val.length >= 0.9, `head accuracy ${(right / val.length).toFixed(3)}`);

    const bytes = engine.store.models.getBinary('head')!;
    const copy = ClassifierHead.fromBytes(bytes);
    const v = engine.store.getVector(engine.resolve(val[3]))!;
    const fromEngine = engine.classifyId(engine.resolve(val[3]), { method: 'head' }).votes;
    assert.deepEqual(Object.fromEntries(copy.predict(v).map((p) => [p.label, p.probability])), fromEngine);
    assert.deepEqual(Buffer.from(copy.toBytes()), Buffer.from(bytes), 'save/load is bit-exact');
    copy.dispose();
    const both = engine.classifyId(engine.resolve(val[3]), { method: 'both' });
    assert.equal(both.method, 'both');
    assert.ok(Math.abs(Object.values(both.votes).reduce((a, b) => a + b, 0) - 1) < 1e-6);
  });
});
