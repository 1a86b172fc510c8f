/**
 * `pixdex check [--repair]` on stores broken on purpose: each invariant is broken by writing to
 * LMDB behind the engine's back, then found by kind, then repaired. Synthetic vectors: no model.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { checkStore, repairStore, type CheckReport } from '../src/store/check.ts';
import { Engine } from '../src/engine.ts';
import type { ImageRecord } from '../src/store/lmdb.ts';
import { rng } from './helpers/hostile-corpus.ts';
import { DEFAULT_DESCRIPTOR, isRegional, libraryRegional, type RegionalDescriptor } from '../src/library-descriptor.ts';
import { backboneSpec } from '../src/models/backbone.ts';
import { CLI, MODELS, engineOptions, tempDir } from './fixtures.ts';

const DIMS = 1280; // mobilenet_v2, the default backbone of a new store

function vector(seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: DIMS }, () => r() - 0.5);
}

/** The default (regional) library's smaller sides below 224 px (regional2: 128). */
const SMALLER_SIDES = libraryRegional(backboneSpec('mobilenet_v2'), DEFAULT_DESCRIPTOR as RegionalDescriptor).smaller.length;

/** A regional library's smaller-side vectors of a synthetic image. */
function scalesOf(seed: number): Float32Array {
  const v = vector(seed);
  return Float32Array.from({ length: SMALLER_SIDES * DIMS }, (_, i) => v[i % DIMS]);
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Adds an image the way `Engine.writeBatch` does (one transaction, journalled); returns its id. */
function addImage(engine: Engine, file: string, opts: { label?: string; content?: string; seed?: number } = {}): number {
  const { store } = engine;
  const id = store.write(() => {
    const meta = store.getMeta()!;
    const id = meta.nextId++;
    const rec: ImageRecord = { path: file, sha256: sha(opts.content ?? file), bytes: 1000, width: 10, height: 10, mtimeMs: 1, addedAt: 1 };
    if (opts.label) rec.label = opts.label;
    store.images.putSync(id, rec);
    store.paths.putSync(file, id);
    store.hashes.putSync(rec.sha256, id);
    store.putVector(id, vector(opts.seed ?? id));
    if (isRegional(engine.descriptor)) store.putScales(id, scalesOf(opts.seed ?? id)); // the default library's smaller sides
    store.countLabel(rec.label, +1);
    store.appendJournal(meta, [{ op: 'add', id }]);
    store.putMeta(meta);
    return id;
  });
  engine.refresh();
  return id;
}

function open(dataDir: string): Promise<Engine> {
  return Engine.open(engineOptions(dataDir));
}

/** Closes without the snapshot `close()` saves, like `pixdex check` does. */
async function closeReadOnly(engine: Engine): Promise<void> {
  await engine.store.close();
}

function assertSearchable(engine: Engine, report: CheckReport): void {
  assert.equal(engine.sync.index.size, report.images);
  for (const { key: id } of engine.store.images.getRange()) {
    const [top] = engine.searchVector(engine.store.getVector(id)!, { k: 1 });
    assert.equal(top.id, id);
    assert.ok(top.score > 0.9999, `score ${top.score}`);
  }
}

describe('checkStore / repairStore', () => {
  const tmp = tempDir('pixdex-check-');
  after(() => tmp.cleanup());

  it('finds nothing wrong in a store written by the engine, before and after a reopen', async () => {
    const data = path.join(tmp.dir, 'clean');
    let engine = await open(data);
    for (let i = 0; i < 20; i++) addImage(engine, `/photos/${i}.jpg`, { label: i % 2 ? 'ants' : 'bees' });
    engine.remove(3);
    const r = checkStore(engine);
    assert.deepEqual(r.problems, []);
    assert.equal(r.ok, true);
    assert.equal(r.images, 19);
    await engine.close(); // saves a snapshot
    engine = await open(data);
    addImage(engine, '/photos/late.jpg'); // a journalled change after the snapshot
    await closeReadOnly(engine);
    engine = await open(data);
    const again = checkStore(engine);
    assert.deepEqual(again.problems, []);
    assert.equal(again.index.source, 'snapshot');
    assert.equal(again.index.journal, 1);
    assert.equal(again.index.size, 20);
    await engine.close();
  });

  it('finds every kind of broken invariant, and a repair fixes them all', async () => {
    const data = path.join(tmp.dir, 'broken');
    let engine = await open(data);
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) ids.push(addImage(engine, `/photos/${i}.jpg`, { label: 'ants' }));
    await engine.close(); // snapshot covers the 12
    engine = await open(data);
    let { store } = engine;
    const [a, b, c, d, e, f, g, h] = ids;
    const recOf = (id: number) => store.images.get(id)!;
    const gPath = recOf(g).path;
    const dHash = recOf(d).sha256;
    store.write(() => {
      const meta = store.getMeta()!;
      store.vectors.removeSync(a); // IMAGE_WITHOUT_VECTOR
      store.scales.removeSync(h); // IMAGE_WITHOUT_VECTOR: no smaller sides in a regional library
      store.putVector(9999, vector(9999)); // VECTOR_WITHOUT_IMAGE
      store.putScales(9998, scalesOf(9998)); // VECTOR_WITHOUT_IMAGE: smaller sides of no image
      store.images.putSync(500, { ...recOf(b), sha256: sha('other') }); // DUPLICATE_PATH (another record of b's file)
      store.putVector(500, vector(500));
      store.putScales(500, scalesOf(500));
      store.images.putSync(501, { ...recOf(c), path: '/photos/copy-of-c.jpg' }); // DUPLICATE_HASH
      store.putVector(501, vector(c));
      store.putScales(501, scalesOf(c));
      store.paths.putSync('/photos/gone.jpg', 12345); // PATH_ENTRY: dangling
      store.hashes.removeSync(recOf(d).sha256); // HASH_ENTRY: missing
      store.labels.putSync('ants', 99); // LABEL_COUNT
      store.labels.putSync('ghost', 3); // LABEL_COUNT
      store.putVector(e, vector(777)); // INDEX_STALE: new vector, no journal entry
      const fRec = recOf(f); // INDEX_EXTRA: removed everywhere but without a journal entry
      store.images.removeSync(f);
      store.vectors.removeSync(f);
      store.scales.removeSync(f);
      store.paths.removeSync(fRec.path);
      store.hashes.removeSync(fRec.sha256);
      store.countLabel('ants', -1);
      store.paths.removeSync(recOf(g).path); // PATH_ENTRY: missing
      meta.nextId = 3; // NEXT_ID
      store.putMeta(meta);
    });
    // INDEX_MISSING: an image written without its journal entry is never replayed into the index.
    store.write(() => {
      store.images.putSync(700, { path: '/photos/unjournalled.jpg', sha256: sha('u'), bytes: 1, width: 1, height: 1, mtimeMs: 1, addedAt: 1 });
      store.paths.putSync('/photos/unjournalled.jpg', 700);
      store.hashes.putSync(sha('u'), 700);
      store.putVector(700, vector(700));
      store.putScales(700, scalesOf(700));
    });
    await closeReadOnly(engine);

    engine = await open(data);
    store = engine.store;
    const r = checkStore(engine);
    assert.equal(r.ok, false);
    const kinds = Object.keys(r.counts).sort();
    assert.deepEqual(kinds, ['DUPLICATE_HASH', 'DUPLICATE_PATH', 'HASH_ENTRY', 'IMAGE_WITHOUT_VECTOR', 'INDEX_EXTRA', 'INDEX_MISSING', 'INDEX_STALE', 'LABEL_COUNT', 'NEXT_ID', 'PATH_ENTRY', 'VECTOR_WITHOUT_IMAGE'], JSON.stringify(r.problems, null, 1));
    const ofKind = (k: string) => r.problems.filter((p) => p.kind === k);
    assert.equal(engine.descriptor, DEFAULT_DESCRIPTOR);
    assert.ok(isRegional(engine.descriptor));
    assert.deepEqual(ofKind('IMAGE_WITHOUT_VECTOR').map((p) => p.id), [a, h]);
    assert.deepEqual(ofKind('VECTOR_WITHOUT_IMAGE').map((p) => p.id), [9999, 9998]);
    assert.deepEqual(ofKind('DUPLICATE_PATH').map((p) => p.id), [500]);
    assert.deepEqual(ofKind('DUPLICATE_HASH').map((p) => p.id), [501]);
    assert.deepEqual(ofKind('INDEX_STALE').map((p) => p.id), [e]);
    assert.deepEqual(ofKind('INDEX_EXTRA').map((p) => p.id), [f]);
    assert.deepEqual(ofKind('INDEX_MISSING').map((p) => p.id).sort(), [500, 501, 700]);
    assert.equal(ofKind('LABEL_COUNT').length, 2);

    const fixed = repairStore(engine);
    assert.deepEqual(fixed.after.problems, []);
    assert.equal(fixed.after.ok, true);
    assert.equal(fixed.fixed['index rebuilt'], 1);
    assert.equal(fixed.fixed['images removed'], 4); // a (no vector), h (no smaller sides), 500 and 501 (duplicates)
    assert.equal(store.scales.get(9998), undefined);
    assert.equal(store.paths.get(gPath), g);
    assert.equal(store.hashes.get(dHash), d);
    assert.equal(store.paths.get('/photos/gone.jpg'), undefined);
    // The duplicate's path stays as an alias of the image kept; labels are recounted.
    assert.equal(store.paths.get('/photos/copy-of-c.jpg'), c);
    assert.equal(store.labels.get('ants'), 9); // 12 images, less a (no vector), h (no smaller sides) and f (removed)
    assert.equal(store.labels.get('ghost'), undefined);
    assert.ok(store.getMeta()!.nextId > 9999);
    assertSearchable(engine, fixed.after);
    await engine.close();

    // Reopened from the fresh snapshot: still clean.
    engine = await open(data);
    const reopened = checkStore(engine);
    assert.deepEqual(reopened.problems, []);
    assert.equal(reopened.index.source, 'snapshot');
    await engine.close();
  });

  it('reports an incomplete snapshot (the engine then rebuilds) and replaces it on repair', async () => {
    const data = path.join(tmp.dir, 'snapshot');
    let engine = await open(data);
    for (let i = 0; i < 5; i++) addImage(engine, `/p/${i}.jpg`);
    await engine.close();
    engine = await open(data);
    engine.store.write(() => engine.store.ann.removeSync(0));
    await closeReadOnly(engine);
    engine = await open(data);
    const r = checkStore(engine);
    assert.deepEqual(Object.keys(r.counts), ['SNAPSHOT']);
    assert.equal(r.index.source, 'rebuilt');
    assert.equal(r.index.size, 5);
    assert.equal(repairStore(engine).after.ok, true);
    await engine.close();
    engine = await open(data);
    assert.equal(checkStore(engine).index.source, 'snapshot');
    await engine.close();
  });
});

describe('pixdex check (CLI)', () => {
  const tmp = tempDir('pixdex-check-cli-');
  after(() => tmp.cleanup());
  const data = path.join(tmp.dir, 'data');
  const pixdex = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, 'check', '--data', data, ...args], { encoding: 'utf8', env: { ...process.env, PIXDEX_MODELS: MODELS } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('exits 3 without a store, 0 on a clean one, 5 with problems until --repair', async () => {
    const none = pixdex();
    assert.equal(none.code, 3);
    assert.match(none.stderr, /^pixdex: NOT_FOUND: No store in /);

    let engine = await open(data);
    for (let i = 0; i < 4; i++) addImage(engine, `/p/${i}.jpg`, { label: 'x' });
    await engine.close();
    const clean = pixdex('--json');
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal(JSON.parse(clean.stdout).ok, true);
    assert.match(pixdex().stdout, /ok +no problem found/);

    engine = await open(data);
    engine.store.write(() => engine.store.labels.putSync('x', 7));
    await closeReadOnly(engine);
    const broken = pixdex('--json');
    assert.equal(broken.code, 5);
    assert.deepEqual(JSON.parse(broken.stdout).counts, { LABEL_COUNT: 1 });
    assert.match(broken.stderr, /^pixdex: STORE_INCONSISTENT: 1 problem\(s\) in the store; run `pixdex check --repair`\n$/);
    assert.equal(pixdex().code, 5, 'a check without --repair changed nothing');

    const repaired = pixdex('--repair', '--json');
    assert.equal(repaired.code, 0, repaired.stderr);
    const body = JSON.parse(repaired.stdout);
    assert.deepEqual(Object.keys(body), ['before', 'fixed', 'after']);
    assert.equal(body.fixed['label counts fixed'], 1);
    assert.equal(pixdex().code, 0);
  });
});

describe('checkStore in an autoencoder space', () => {
  const tmp = tempDir('pixdex-check-space-');
  after(() => tmp.cleanup());
  const CODE_DIMS = 8;
  const code = (seed: number) => vector(seed).subarray(0, CODE_DIMS).slice();

  /** Switches the store to a (fake) autoencoder space whose codes are in `codes2`. */
  function toAutoencoderSpace(engine: Engine): void {
    const { store } = engine;
    store.write(() => {
      store.models.putSync('autoencoder-test', Buffer.from('weights'));
      for (const id of store.images.getKeys()) store.putCode('codes2', id, code(id));
      const meta = store.getMeta()!;
      meta.space = { kind: 'autoencoder', model: 'autoencoder-test', dims: CODE_DIMS, codes: 'codes2', trainedAt: 'now', finalLoss: 0, epochs: 1, samples: 1, trainSeconds: 0, backend: 'cpu' };
      store.putMeta(meta);
    });
    engine.refresh();
  }

  it('checks the index against the codes, finds codes left behind and images without one, and repairs what it can', async () => {
    const data = path.join(tmp.dir, 'space');
    let engine = await open(data);
    const ids = Array.from({ length: 6 }, (_, i) => addImage(engine, `/a/${i}.jpg`));
    toAutoencoderSpace(engine);
    let r = checkStore(engine);
    assert.deepEqual(r.problems, []);
    assert.equal(engine.sync.index.dims, CODE_DIMS);

    // A removed image leaves no code behind, whichever table is active.
    engine.remove(ids[0]);
    assert.deepEqual(checkStore(engine).problems, []);

    // An image without its code is not searchable; a repair cannot embed it (no model here).
    engine.store.write(() => engine.store.codes2.removeSync(ids[1]));
    await closeReadOnly(engine);
    engine = await open(data);
    r = checkStore(engine);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.id]), [['IMAGE_WITHOUT_CODE', ids[1]]]);
    assert.match(r.problems[0].message, /pixdex train/);
    assert.deepEqual(repairStore(engine).after.counts, { IMAGE_WITHOUT_CODE: 1 });

    // Without its weights the space is unusable: a repair goes back to the backbone space.
    engine.store.write(() => engine.store.models.removeSync('autoencoder-test'));
    r = checkStore(engine);
    assert.deepEqual(Object.keys(r.counts), ['SPACE']);
    const fixed = repairStore(engine);
    assert.deepEqual(fixed.after.problems, []);
    assert.equal(engine.store.getSpace().kind, 'backbone');
    assert.equal(engine.sync.index.dims, DIMS);
    assertSearchable(engine, fixed.after);
    await engine.close();
  });
});
