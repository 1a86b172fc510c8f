/**
 * The native layers under fuzz-ish inputs: hnswlib-node through AnnIndex (capacity 0 and the
 * resize boundary, deleted slots, snapshots truncated, foreign, bit-flipped or random, bad ids,
 * vectors, k and ef, and a fast-check model-based run against a Map) and LMDB through Store
 * (empty stores, empty and broken snapshots). A crash here kills the test process: every case
 * must end in a typed error or a working index. One Engine test (needs the model) reopens a store
 * whose snapshot is corrupt and expects a rebuild with a warning.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { AnnIndex, MIN_CAPACITY, inspectSnapshot } from '../src/ann.ts';
import { DEFAULT_ANN } from '../src/config.ts';
import { Engine } from '../src/engine.ts';
import { PixdexError } from '../src/errors.ts';
import { Store, type SnapshotMeta } from '../src/store/lmdb.ts';
import { l2normalize } from '../src/vector.ts';
import { seededRandom } from '../src/random.ts';
import { HYM_VAL, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const DIMS = 8;
const P = DEFAULT_ANN;
/** Fixed seed (PIXDEX_FC_SEED to try others): a failure reproduces; fast-check prints the counterexample and its path. */
const FC = { seed: Number(process.env.PIXDEX_FC_SEED ?? 21), numRuns: 60 } as const;

function randomVectors(n: number, dims: number, seed: number): Float32Array[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dims }, () => r() - 0.3));
}

/** `fn` throws a PixdexError with `code`. */
function throwsCode(fn: () => unknown, code: string, why = ''): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PixdexError, `${why} expected a PixdexError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `${why} ${err.message}`);
    return true;
  });
}

/** The index answers, grows and saves: what a loaded snapshot must be able to do. */
function exercise(ann: AnnIndex, firstNewId: number): void {
  const before = ann.size;
  const [v] = randomVectors(1, ann.dims, firstNewId);
  ann.add(firstNewId, v);
  assert.equal(ann.size, before + 1);
  assert.ok(ann.search(v, 5).some((h) => h.id === firstNewId));
  assert.ok(ann.search(v, before + 10).length <= before + 1);
  assert.equal(ann.remove(firstNewId), true);
  assert.equal(ann.size, before);
  const copy = AnnIndex.fromBytes(ann.toBytes(), ann.dims, ann.params, ann.size);
  assert.equal(copy.size, before);
}

/** A saved index of `n` random vectors (ids 1..n), `removed` of them then removed. */
function snapshotOf(n: number, removed = 0, dims = DIMS, params = P): { bytes: Buffer; live: number } {
  const ann = AnnIndex.create(dims, params);
  randomVectors(n, dims, n).forEach((v, i) => ann.add(i + 1, v));
  for (let id = 1; id <= removed; id++) ann.remove(id);
  return { bytes: ann.toBytes(), live: ann.size };
}

describe('AnnIndex (hnswlib-node) never reaches native code with what would crash it', () => {
  it('capacity 0 or 1 at create still allocates MIN_CAPACITY slots, and the index takes vectors', () => {
    for (const capacity of [0, 1]) {
      const ann = AnnIndex.create(DIMS, P, capacity);
      assert.equal(ann.capacity, MIN_CAPACITY);
      exercise(ann, 1);
    }
  });

  it('an empty snapshot (what `pixdex stats` saved on a fresh library, issue 21) loads with MIN_CAPACITY and takes vectors', () => {
    const empty = AnnIndex.create(DIMS, P, 0);
    const bytes = empty.toBytes();
    assert.equal(bytes.length, 96, 'header only');
    const info = inspectSnapshot(writeTemp(bytes), DIMS, P.m);
    assert.deepEqual({ count: info.count, live: info.live }, { count: 0, live: 0 });
    const loaded = AnnIndex.fromBytes(bytes, DIMS, P, 0);
    assert.ok(loaded.capacity >= MIN_CAPACITY, `capacity ${loaded.capacity}`);
    assert.equal(loaded.size, 0);
    assert.deepEqual(loaded.search(new Float32Array(DIMS).fill(1), 10), []);
    const again = AnnIndex.restore((file) => (loaded.save((f) => fs.copyFileSync(f, file)), true), DIMS, P, 0)!;
    assert.ok(again.capacity >= MIN_CAPACITY);
    const vs = randomVectors(3, DIMS, 5);
    vs.forEach((v, i) => again.add(i + 1, v));
    assert.equal(again.size, 3);
    assert.equal(again.search(vs[2], 1)[0].id, 3);
    exercise(again, 100);
  });

  it('grows at the boundary: exactly MIN_CAPACITY vectors, then one more (also after a reload)', () => {
    const vs = randomVectors(MIN_CAPACITY + 2, DIMS, 7);
    const ann = AnnIndex.create(DIMS, P);
    vs.slice(0, MIN_CAPACITY).forEach((v, i) => ann.add(i + 1, v));
    assert.equal(ann.capacity, MIN_CAPACITY);
    assert.equal(ann.size, MIN_CAPACITY);
    const full = ann.toBytes();
    ann.add(MIN_CAPACITY + 1, vs[MIN_CAPACITY]);
    assert.ok(ann.capacity > MIN_CAPACITY);
    assert.equal(ann.size, MIN_CAPACITY + 1);
    assert.equal(ann.search(vs[MIN_CAPACITY], 1)[0].id, MIN_CAPACITY + 1);

    const loaded = AnnIndex.fromBytes(full, DIMS, P, MIN_CAPACITY);
    assert.ok(loaded.capacity > MIN_CAPACITY, `a full snapshot loads with room to add: capacity ${loaded.capacity}`);
    loaded.add(MIN_CAPACITY + 2, vs[MIN_CAPACITY + 1]);
    assert.equal(loaded.size, MIN_CAPACITY + 1);
    assert.equal(loaded.search(vs[MIN_CAPACITY + 1], 1)[0].id, MIN_CAPACITY + 2);
  });

  it('removes every vector, then adds: searches see only the new ones, deleted slots are reused', () => {
    const vs = randomVectors(60, DIMS, 9);
    const ann = AnnIndex.create(DIMS, P);
    vs.slice(0, 30).forEach((v, i) => ann.add(i + 1, v));
    for (let id = 1; id <= 30; id++) assert.equal(ann.remove(id), true);
    assert.equal(ann.size, 0);
    assert.deepEqual(ann.search(vs[0], 5), []);
    assert.deepEqual(ann.ids(), []);
    const reloaded = AnnIndex.fromBytes(ann.toBytes(), DIMS, P, 0);
    for (const index of [ann, reloaded]) {
      vs.slice(30).forEach((v, i) => index.add(100 + i, v));
      assert.equal(index.size, 30);
      assert.ok(index.search(vs[45], 30).every((h) => h.id >= 100));
      assert.equal(index.search(vs[45], 1)[0].id, 115);
      assert.equal(index.capacity, MIN_CAPACITY);
    }
  });

  it('replaces deleted slots in a full index instead of growing, and re-adds removed ids', () => {
    const vs = randomVectors(MIN_CAPACITY + 20, DIMS, 11);
    const ann = AnnIndex.create(DIMS, P);
    vs.slice(0, MIN_CAPACITY).forEach((v, i) => ann.add(i + 1, v));
    for (let id = 1; id <= 20; id++) ann.remove(id);
    const loaded = AnnIndex.fromBytes(ann.toBytes(), DIMS, P, ann.size);
    for (const index of [ann, loaded]) {
      const capacity = index.capacity;
      vs.slice(MIN_CAPACITY).forEach((v, i) => index.add(5000 + i, v)); // 20 new ids into the 20 freed slots
      assert.equal(index.capacity, capacity);
      index.add(7, vs[6]); // a removed id comes back
      assert.equal(index.search(vs[6], 1)[0].id, 7);
      assert.equal(index.size, MIN_CAPACITY + 1);
    }
  });

  it('refuses a snapshot truncated at any cut point (fast-check picks the cut) with SNAPSHOT_UNUSABLE', () => {
    const { bytes, live } = snapshotOf(300, 10);
    const fixed = [0, 1, 8, 95, 96, 97, 96 + 300 * 4, bytes.length - 4, bytes.length - 1];
    for (const cut of fixed) throwsCode(() => AnnIndex.fromBytes(bytes.subarray(0, cut), DIMS, P, live), 'SNAPSHOT_UNUSABLE', `cut at ${cut}:`);
    fc.assert(fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), (cut) => {
      throwsCode(() => AnnIndex.fromBytes(bytes.subarray(0, cut), DIMS, P, live), 'SNAPSHOT_UNUSABLE', `cut at ${cut}:`);
    }), { ...FC, numRuns: 200 });
    // and a snapshot with bytes appended
    throwsCode(() => AnnIndex.fromBytes(Buffer.concat([bytes, Buffer.alloc(4)]), DIMS, P, live), 'SNAPSHOT_UNUSABLE');
    exercise(AnnIndex.fromBytes(bytes, DIMS, P, live), 1000); // the whole one still loads
  });

  it('refuses a foreign snapshot: other dims, another M, another live count', () => {
    const { bytes, live } = snapshotOf(50);
    throwsCode(() => AnnIndex.fromBytes(bytes, 16, P, live), 'SNAPSHOT_UNUSABLE');
    throwsCode(() => AnnIndex.fromBytes(bytes, 4, P, live), 'SNAPSHOT_UNUSABLE');
    throwsCode(() => AnnIndex.fromBytes(bytes, DIMS, { ...P, m: 8 }, live), 'SNAPSHOT_UNUSABLE');
    throwsCode(() => AnnIndex.fromBytes(bytes, DIMS, P, live + 1), 'SNAPSHOT_UNUSABLE');
    const other = snapshotOf(50, 0, 16, { ...P, m: 12 });
    throwsCode(() => AnnIndex.fromBytes(other.bytes, DIMS, P, other.live), 'SNAPSHOT_UNUSABLE');
    throwsCode(() => AnnIndex.restore((file) => (fs.writeFileSync(file, other.bytes), true), DIMS, P, other.live), 'SNAPSHOT_UNUSABLE');
  });

  it('refuses random bytes, and a valid header followed by random bytes', () => {
    const { bytes } = snapshotOf(20);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (junk) => {
      throwsCode(() => AnnIndex.fromBytes(junk, DIMS, P, 0), 'SNAPSHOT_UNUSABLE');
    }), FC);
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: bytes.length * 2 }), (junk) => {
      throwsCode(() => AnnIndex.fromBytes(Buffer.concat([bytes.subarray(0, 96), junk]), DIMS, P, 20), 'SNAPSHOT_UNUSABLE');
    }), FC);
  });

  it('a snapshot with bytes overwritten anywhere (fast-check picks where and what) is refused or loads into a working index', () => {
    const { bytes, live } = snapshotOf(200, 5);
    let refused = 0;
    let loaded = 0;
    fc.assert(fc.property(
      fc.integer({ min: 0, max: bytes.length - 1 }),
      fc.uint8Array({ minLength: 1, maxLength: 8 }),
      (at, patch) => {
        const broken = Buffer.from(bytes);
        broken.set(patch.subarray(0, broken.length - at), at);
        let ann: AnnIndex;
        try {
          ann = AnnIndex.fromBytes(broken, DIMS, P, live);
        } catch (err) {
          assert.ok(err instanceof PixdexError && err.code === 'SNAPSHOT_UNUSABLE', String(err));
          refused++;
          return;
        }
        loaded++;
        for (const q of randomVectors(3, DIMS, at)) {
          const hits = ann.search(q, 10);
          assert.ok(hits.length <= 10 && hits.every((h) => ann.has(h.id)));
        }
        exercise(ann, 10_000);
      },
    ), { ...FC, numRuns: 300 });
    assert.ok(refused > 0 && loaded > 0, `refused ${refused}, loaded ${loaded}`);
    // The header fields one at a time: every u64 field set to a value hnswlib would trust.
    for (const offset of [0, 8, 16, 24, 32, 40, 56, 64, 72, 88]) {
      for (const value of [0n, 1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n]) {
        if (bytes.readBigUInt64LE(offset) === value) continue; // offsetLevel0 is 0
        const broken = Buffer.from(bytes);
        broken.writeBigUInt64LE(value, offset);
        try {
          exercise(AnnIndex.fromBytes(broken, DIMS, P, live), 10_000); // max_elements (offset 8) is ours to set
          assert.equal(offset, 8, `field at ${offset} = ${value} was accepted`);
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          assert.ok(err instanceof PixdexError && err.code === 'SNAPSHOT_UNUSABLE', `field at ${offset} = ${value}: ${String(err)}`);
        }
      }
    }
    for (const [offset, value] of [[48, -2], [48, 1000], [52, 200], [52, -1]] as const) {
      const broken = Buffer.from(bytes);
      broken.writeInt32LE(value, offset);
      throwsCode(() => AnnIndex.fromBytes(broken, DIMS, P, live), 'SNAPSHOT_UNUSABLE', `field at ${offset} = ${value}:`);
    }
  });

  it('refuses ids, vectors, k and ef the binding would misread, with INVALID_PARAMETER', () => {
    const ann = AnnIndex.create(DIMS, P);
    const vs = randomVectors(5, DIMS, 13);
    vs.forEach((v, i) => ann.add(i + 1, v));
    for (const id of [-1, 1.5, NaN, Infinity, 2 ** 32, 2 ** 32 + 1, '3' as unknown as number]) {
      throwsCode(() => ann.add(id, vs[0]), 'INVALID_PARAMETER', `add(${String(id)}):`);
      throwsCode(() => ann.remove(id), 'INVALID_PARAMETER', `remove(${String(id)}):`);
      assert.equal(ann.has(id), false, `has(${String(id)}) must not wrap onto another id`);
      assert.equal(ann.vector(id), undefined);
    }
    assert.equal(ann.size, 5, 'remove(2^32 + 1) did not remove id 1');
    assert.equal(ann.remove(999), false, 'an unknown id is not an error: the journal replays removals');
    assert.equal(ann.remove(1), true);
    assert.equal(ann.remove(1), false);
    for (const bad of [new Float32Array(DIMS - 1), new Float32Array(DIMS + 1), new Float32Array(0), Float32Array.from({ length: DIMS }, (_, i) => (i === 3 ? NaN : 1)), Float32Array.from({ length: DIMS }, (_, i) => (i === 0 ? Infinity : 1)), null as unknown as Float32Array, 'x'.repeat(DIMS) as unknown as Float32Array]) {
      throwsCode(() => ann.add(50, bad), 'INVALID_PARAMETER');
      throwsCode(() => ann.search(bad, 3), 'INVALID_PARAMETER');
    }
    for (const k of [-1, 1.5, NaN, Infinity]) throwsCode(() => ann.search(vs[1], k), 'INVALID_PARAMETER', `k=${k}:`);
    for (const ef of [0, -5, 2.5, NaN, 2 ** 32]) throwsCode(() => ann.search(vs[1], 3, undefined, ef), 'INVALID_PARAMETER', `ef=${ef}:`);
    assert.equal(ann.search(vs[1], 1000).length, 4, 'k beyond the size is clamped to it');
    assert.deepEqual(ann.search(vs[1], 0), []);
    throwsCode(() => AnnIndex.create(0, P), 'INVALID_PARAMETER');
    throwsCode(() => AnnIndex.create(DIMS, { ...P, m: 1 }), 'INVALID_PARAMETER');
    throwsCode(() => AnnIndex.create(DIMS, P, -1), 'INVALID_PARAMETER');
    throwsCode(() => AnnIndex.create(DIMS, P, 2 ** 32 - 1), 'INVALID_PARAMETER'); // ~700 GB of slots: refused, not an OOM kill
    assert.equal(ann.size, 4);
    exercise(ann, 60);
  });

  it('a filter that throws: search rethrows its error and the index keeps working', () => {
    const ann = AnnIndex.create(DIMS, P);
    const vs = randomVectors(50, DIMS, 17);
    vs.forEach((v, i) => ann.add(i + 1, v));
    const boom = new Error('filter failed');
    assert.throws(() => ann.search(vs[0], 5, () => { throw boom; }), (err) => err === boom);
    assert.deepEqual(ann.search(vs[0], 5, (id) => id % 2 === 0).map((h) => h.id % 2), [0, 0, 0, 0, 0]);
    assert.equal(ann.search(vs[0], 1)[0].id, 1);
  });

  it('model-based: random add / remove / re-add / save+load / search over ids 1..50 agree with a Map', () => {
    type Model = { vectors: Map<number, Float32Array> };
    type Real = { ann: AnnIndex };
    const vectorArb = fc.array(fc.integer({ min: -50, max: 50 }), { minLength: DIMS, maxLength: DIMS }).map((a) => Float32Array.from(a));
    const idArb = fc.integer({ min: 1, max: 50 });

    const checkAgainst = (m: Model, r: Real): void => {
      assert.equal(r.ann.size, m.vectors.size);
      assert.deepEqual(r.ann.ids().sort((a, b) => a - b), [...m.vectors.keys()].sort((a, b) => a - b));
      assert.ok(r.ann.capacity >= MIN_CAPACITY);
    };
    class Add implements fc.Command<Model, Real> {
      constructor(readonly id: number, readonly v: Float32Array) {}
      check = () => true;
      run(m: Model, r: Real): void {
        r.ann.add(this.id, this.v);
        m.vectors.set(this.id, this.v);
        const held = r.ann.vector(this.id)!;
        const want = l2normalize(this.v);
        assert.ok(held.every((x, i) => Math.abs(x - want[i]) < 1e-5), `vector of ${this.id}`);
        checkAgainst(m, r);
      }
      toString = () => `add(${this.id}, [${this.v.join(',')}])`;
    }
    class Remove implements fc.Command<Model, Real> {
      constructor(readonly id: number) {}
      check = () => true;
      run(m: Model, r: Real): void {
        assert.equal(r.ann.remove(this.id), m.vectors.delete(this.id));
        checkAgainst(m, r);
      }
      toString = () => `remove(${this.id})`;
    }
    class SaveLoad implements fc.Command<Model, Real> {
      constructor(readonly viaFile: boolean) {}
      check = () => true;
      run(m: Model, r: Real): void {
        const { ann } = r;
        r.ann = this.viaFile
          ? AnnIndex.restore((file) => ann.save((f) => (fs.copyFileSync(f, file), true)), DIMS, P, ann.size)!
          : AnnIndex.fromBytes(ann.toBytes(), DIMS, P, ann.size);
        checkAgainst(m, r);
      }
      toString = () => (this.viaFile ? 'save+restore' : 'toBytes+fromBytes');
    }
    class Search implements fc.Command<Model, Real> {
      constructor(readonly q: Float32Array, readonly k: number, readonly even: boolean) {}
      check = () => true;
      run(m: Model, r: Real): void {
        const hits = r.ann.search(this.q, this.k, this.even ? (id) => id % 2 === 0 : undefined);
        const ids = hits.map((h) => h.id);
        assert.equal(new Set(ids).size, ids.length, 'distinct ids');
        assert.ok(ids.every((id) => m.vectors.has(id)), `only live ids: ${ids}`);
        if (this.even) assert.ok(ids.every((id) => id % 2 === 0));
        else assert.equal(ids.length, Math.min(this.k, m.vectors.size), 'k results when k vectors exist');
        for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1].score >= hits[i].score - 1e-6, 'highest first');
      }
      toString = () => `search(k=${this.k}${this.even ? ', even ids' : ''})`;
    }
    const commands = [
      fc.tuple(idArb, vectorArb).map(([id, v]) => new Add(id, v)),
      fc.tuple(idArb, vectorArb).map(([id, v]) => new Add(id, v)),
      idArb.map((id) => new Remove(id)),
      fc.boolean().map((viaFile) => new SaveLoad(viaFile)),
      fc.tuple(vectorArb, fc.integer({ min: 0, max: 60 }), fc.boolean()).map(([q, k, even]) => new Search(q, k, even)),
    ];
    fc.assert(fc.property(fc.commands(commands, { maxCommands: 80 }), (cmds) => {
      fc.modelRun(() => ({ model: { vectors: new Map() }, real: { ann: AnnIndex.create(DIMS, P, 0) } }), cmds);
    }), { ...FC, numRuns: 80 });
  });
});

describe('Store (LMDB): empty stores and broken snapshots', () => {
  const tmp = tempDir('pixdex-native-');
  after(() => tmp.cleanup());
  const meta = { seq: 0, space: 'backbone', live: 0, dims: DIMS, m: P.m, efConstruction: P.efConstruction };

  it('opens an empty store, closes it and reopens it', async () => {
    const dir = path.join(tmp.dir, 'empty');
    for (let round = 0; round < 3; round++) {
      const store = Store.open(dir);
      assert.equal(store.getMeta(), undefined);
      assert.equal(store.getSnapshotMeta(), undefined);
      assert.equal(store.images.getCount(), 0);
      assert.deepEqual(store.journalAfter(0), []);
      assert.equal(store.getVector(1), undefined);
      await store.close();
    }
  });

  it('saves and loads a snapshot of 0 bytes; AnnIndex refuses it as empty', async () => {
    const dir = path.join(tmp.dir, 'zero');
    let store = Store.open(dir);
    const saved = store.saveSnapshot(Buffer.alloc(0), meta);
    assert.deepEqual({ chunks: saved.chunks, bytes: saved.bytes }, { chunks: 1, bytes: 0 });
    await store.close();
    store = Store.open(dir);
    try {
      const snap = store.getSnapshotMeta()!;
      assert.equal(snap.bytes, 0);
      assert.equal(store.loadSnapshot(snap)?.length, 0);
      const file = tempPath();
      assert.equal(store.loadSnapshotToFile(snap, file), true);
      assert.equal(fs.statSync(file).size, 0);
      fs.rmSync(file);
      throwsCode(() => AnnIndex.restore((f) => store.loadSnapshotToFile(snap, f), DIMS, P, 0), 'SNAPSHOT_UNUSABLE');
      store.dropSnapshot();
      assert.equal(store.getSnapshotMeta(), undefined);
    } finally {
      await store.close();
    }
  });

  it('an empty index snapshot round-trips through LMDB and the restored index takes vectors', async () => {
    const store = Store.open(path.join(tmp.dir, 'empty-index'));
    try {
      const snap = AnnIndex.create(DIMS, P, 0).save((file) => store.saveSnapshotFile(file, meta));
      assert.equal(snap.bytes, 96);
      const ann = AnnIndex.restore((file) => store.loadSnapshotToFile(snap, file), DIMS, P, 0)!;
      assert.ok(ann.capacity >= MIN_CAPACITY);
      exercise(ann, 1);
    } finally {
      await store.close();
    }
  });

  it('a snapshot with a missing or oversized chunk is not loaded (false / undefined); one with changed bytes is SNAPSHOT_UNUSABLE', async () => {
    const store = Store.open(path.join(tmp.dir, 'broken'));
    try {
      const { bytes, live } = snapshotOf(100);
      const snap = store.saveSnapshot(bytes, { ...meta, live });
      assert.equal(snap.chunks, 1);
      assert.ok(AnnIndex.restore((file) => store.loadSnapshotToFile(snap, file), DIMS, P, live));

      const twoChunks: SnapshotMeta = { ...snap, chunks: 2, bytes: snap.bytes * 2 }; // chunk 1 was never written
      assert.equal(withFile((file) => store.loadSnapshotToFile(twoChunks, file)), false);
      assert.equal(store.loadSnapshot(twoChunks), undefined);
      assert.equal(AnnIndex.restore((file) => store.loadSnapshotToFile(twoChunks, file), DIMS, P, live), undefined);

      const shorter: SnapshotMeta = { ...snap, bytes: snap.bytes - 1 }; // the chunk holds more than the meta says
      assert.equal(withFile((file) => store.loadSnapshotToFile(shorter, file)), false);
      assert.equal(store.loadSnapshot(shorter), undefined);

      store.write(() => store.ann.removeSync(0)); // the only chunk is gone
      assert.equal(withFile((file) => store.loadSnapshotToFile(snap, file)), false);
      assert.equal(store.loadSnapshot(snap), undefined);

      const broken = Buffer.from(bytes);
      broken.fill(0xff, 200, 260); // level-0 neighbour ids far beyond the count
      const brokenSnap = store.saveSnapshot(broken, { ...meta, live });
      throwsCode(() => AnnIndex.restore((file) => store.loadSnapshotToFile(brokenSnap, file), DIMS, P, live), 'SNAPSHOT_UNUSABLE');
    } finally {
      await store.close();
    }
  });
});

describe('Engine with a corrupt HNSW snapshot (needs the model)', () => {
  const files = imagesIn(HYM_VAL).slice(0, 8); // before tempDir: a missing dataset leaves no folder behind
  const tmp = tempDir('pixdex-native-engine-');
  const dataDir = path.join(tmp.dir, 'data');
  const warnings: string[] = [];
  const consoleError = console.error;

  before(async () => {
    const engine = await Engine.open(engineOptions(dataDir));
    try {
      const s = await engine.index(files);
      assert.equal(s.added, files.length);
    } finally {
      await engine.close();
    }
    console.error = (...args: unknown[]) => void warnings.push(args.map(String).join(' '));
  });
  after(() => {
    console.error = consoleError;
    tmp.cleanup();
  });

  /** Rewrites the stored snapshot with `corrupt(bytes)` (meta kept consistent, so only the bytes are wrong). */
  async function corruptSnapshot(corrupt: (bytes: Buffer) => Buffer): Promise<void> {
    const store = Store.open(dataDir);
    try {
      const snap = store.getSnapshotMeta();
      assert.ok(snap, 'the engine saved a snapshot on close');
      const bytes = store.loadSnapshot(snap)!;
      const { chunks: _c, bytes: _b, savedAt: _s, ...rest } = snap;
      store.saveSnapshot(corrupt(bytes), rest);
    } finally {
      await store.close();
    }
  }

  const corruptions: Array<[string, (b: Buffer) => Buffer]> = [
    ['truncated', (b) => b.subarray(0, b.length - 37)],
    ['random bytes', (b) => Buffer.from(Uint8Array.from({ length: b.length }, (_, i) => (i * 2654435761) >>> 24))],
    ['neighbour ids overwritten', (b) => (Buffer.from(b).fill(0xee, 100, 300))],
    ['empty', () => Buffer.alloc(0)],
  ];
  for (const [name, corrupt] of corruptions) {
    it(`rebuilds from the stored vectors with a warning, no crash: ${name} snapshot`, async () => {
      await corruptSnapshot(corrupt);
      warnings.length = 0;
      const engine = await Engine.open(engineOptions(dataDir));
      try {
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.match(warnings[0], /^pixdex: warning: the HNSW snapshot could not be used \(.+\); rebuilt from the stored vectors$/);
        assert.equal(engine.sync.index.size, files.length);
        const [top] = await engine.search(fs.readFileSync(files[3]), { k: 3 });
        assert.equal(top.path, files[3]);
      } finally {
        await engine.close(); // saves a good snapshot again
      }
      warnings.length = 0;
      const again = await Engine.open(engineOptions(dataDir));
      try {
        assert.deepEqual(warnings, [], 'the snapshot saved on close loads');
        assert.equal(again.sync.index.size, files.length);
      } finally {
        await again.close();
      }
    });
  }

  it('rebuilds with a warning when the snapshot was built with another M (ann.m changed)', async () => {
    warnings.length = 0;
    const engine = await Engine.open({ ...engineOptions(dataDir), ann: { m: 8 } });
    try {
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0], /M=16, this index uses M=8/);
      assert.equal(engine.sync.index.size, files.length);
      const [top] = await engine.search(fs.readFileSync(files[5]), { k: 3 });
      assert.equal(top.path, files[5]);
    } finally {
      await engine.close();
    }
  });
});

let tempCount = 0;
function tempPath(): string {
  return path.join(os.tmpdir(), `pixdex-native-${process.pid}-${tempCount++}.bin`);
}

function writeTemp(bytes: Uint8Array): string {
  const file = tempPath();
  fs.writeFileSync(file, bytes);
  process.on('exit', () => fs.rmSync(file, { force: true }));
  return file;
}

function withFile<T>(use: (file: string) => T): T {
  const file = tempPath();
  try {
    return use(file);
  } finally {
    fs.rmSync(file, { force: true });
  }
}
