/**
 * The visual-word vocabulary tree (src/local/vocabulary.ts) and inverted index
 * (src/local/inverted.ts), issue 14: learning and quantizing are deterministic for a seed, the
 * vocabulary's bytes round-trip and corrupt ones are refused with a typed error, the index finds
 * an image from a subset of its own words, removal removes (tombstones, compaction, n_w), a bulk
 * build equals adds, word lists encode compactly; and on real phone photos (smvs book covers, ORB
 * 500 + CLAHE via bench/local/features.ts) a query finds its cover in the BoW top 5. No model.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PixdexError } from '../src/errors.ts';
import { InvertedIndex, decodeWords, encodeWords } from '../src/local/inverted.ts';
import { Vocabulary } from '../src/local/vocabulary.ts';
import { learnInWorker, WORKER_MIN_DESCRIPTORS } from '../src/local/learn-thread.ts';
import { seededRandom } from '../src/random.ts';
import { SMVS_BOOKS as BOOKS } from './fixtures.ts';

/** `n` descriptors around `protos` random prototypes, each bit flipped with probability `noise`. */
function clustered(n: number, protos: number, noise: number, seed: number): { descriptors: Uint8Array; proto: Uint32Array; centres: Uint8Array } {
  const r = seededRandom(seed);
  const centres = Uint8Array.from({ length: protos * 32 }, () => Math.floor(r() * 256));
  const descriptors = new Uint8Array(n * 32);
  const proto = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const p = (proto[i] = Math.floor(r() * protos));
    for (let b = 0; b < 32; b++) {
      let v = centres[p * 32 + b];
      for (let t = 0; t < 8; t++) if (r() < noise) v ^= 1 << t;
      descriptors[i * 32 + b] = v;
    }
  }
  return { descriptors, proto, centres };
}

function throwsCode(fn: () => unknown, code: string, why: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PixdexError, `${why}: expected a PixdexError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `${why}: ${err.message}`);
    return true;
  }, why);
}

describe('Vocabulary', () => {
  const data = clustered(6000, 60, 0.05, 1);
  const vocab = Vocabulary.learn(data.descriptors, { branching: 8, depth: 3, seed: 7 });

  it('learns the same tree for the same seed, another for another seed', () => {
    assert.deepEqual(Vocabulary.learn(data.descriptors, { branching: 8, depth: 3, seed: 7 }).toBytes(), vocab.toBytes());
    assert.notDeepEqual(Vocabulary.learn(data.descriptors, { branching: 8, depth: 3, seed: 8 }).toBytes(), vocab.toBytes());
    assert.ok(vocab.words > 60 && vocab.words <= 8 ** 3, `${vocab.words} words`);
    assert.equal(vocab.branching, 8);
    assert.equal(vocab.depth, 3);
  });

  it('learns the same tree in a worker thread (an index run) as in this one; bad options fail the same way', async () => {
    const big = clustered(WORKER_MIN_DESCRIPTORS, 200, 0.05, 3);
    const options = { branching: 8, depth: 3, seed: 7 };
    const inWorker = await learnInWorker(big.descriptors, options);
    assert.deepEqual(inWorker.toBytes(), Vocabulary.learn(big.descriptors, options).toBytes());
    assert.ok(inWorker.words > 200, `${inWorker.words} words`);
    await assert.rejects(learnInWorker(big.descriptors, { branching: 1 }), (err: unknown) => err instanceof PixdexError && err.code === 'INVALID_PARAMETER');
  });

  it('quantizes deterministically, a descriptor near its prototype to the prototype\'s word', () => {
    const words = vocab.quantize(data.descriptors);
    assert.equal(words.length, 6000);
    assert.deepEqual(vocab.quantize(data.descriptors), words);
    assert.ok(words.every((w) => w < vocab.words));
    // Unaligned input (a view at an odd offset) gives the same words.
    const shifted = new Uint8Array(data.descriptors.length + 1);
    shifted.set(data.descriptors, 1);
    assert.deepEqual(vocab.quantize(shifted.subarray(1)), words);
    // Noise of 5 % per bit keeps most descriptors on their prototype's word (a prototype's cloud
    // of ~100 descriptors may be split over a few leaves; chance would be ~1/60).
    const protoWords = vocab.quantize(data.centres);
    const same = words.filter((w, i) => w === protoWords[data.proto[i]]).length;
    assert.ok(same / words.length > 0.75, `${same} of ${words.length} on their prototype's word`);
    assert.equal(vocab.quantize(new Uint8Array(0)).length, 0);
    throwsCode(() => vocab.quantize(new Uint8Array(33)), 'INVALID_PARAMETER', '33 bytes');
  });

  it('samples at most maxDescriptors and handles tiny and degenerate inputs', () => {
    const sampled = Vocabulary.learn(data.descriptors, { branching: 8, depth: 3, seed: 7, maxDescriptors: 1000 });
    assert.ok(sampled.words > 1);
    assert.equal(Vocabulary.learn(data.descriptors.subarray(0, 32)).words, 1);
    assert.equal(Vocabulary.learn(new Uint8Array(32 * 50)).words, 1, 'all descriptors equal: one word');
    throwsCode(() => Vocabulary.learn(new Uint8Array(0)), 'INVALID_PARAMETER', 'no descriptors');
    throwsCode(() => Vocabulary.learn(data.descriptors, { branching: 1 }), 'INVALID_PARAMETER', 'branching 1');
    throwsCode(() => Vocabulary.learn(data.descriptors, { depth: 0 }), 'INVALID_PARAMETER', 'depth 0');
  });

  it('round-trips its bytes, idf table included', () => {
    const df = Uint32Array.from({ length: vocab.words }, (_, w) => w % 5);
    vocab.setIdf(df, 10);
    assert.equal(vocab.idf[1], Math.fround(Math.log(10)));
    assert.equal(vocab.idf[0], 0, 'a word in no image');
    const copy = Vocabulary.fromBytes(vocab.toBytes());
    assert.deepEqual(copy.toBytes(), vocab.toBytes());
    assert.deepEqual(copy.quantize(data.descriptors), vocab.quantize(data.descriptors));
    assert.deepEqual(copy.idf, vocab.idf);
    assert.equal(copy.images, 10);
    assert.equal(copy.words, vocab.words);
  });

  it('refuses corrupt bytes with STORE_INCONSISTENT', () => {
    const bytes = vocab.toBytes();
    throwsCode(() => Vocabulary.fromBytes(new Uint8Array(0)), 'STORE_INCONSISTENT', 'empty');
    throwsCode(() => Vocabulary.fromBytes(bytes.subarray(0, bytes.length - 1)), 'STORE_INCONSISTENT', 'truncated');
    throwsCode(() => Vocabulary.fromBytes(Uint8Array.from([...bytes, 0])), 'STORE_INCONSISTENT', 'trailing byte');
    const r = seededRandom(3);
    for (let t = 0; t < 200; t++) {
      const bad = bytes.slice();
      const at = Math.floor(r() * bad.length);
      bad[at] ^= 1 << Math.floor(r() * 8);
      throwsCode(() => Vocabulary.fromBytes(bad), 'STORE_INCONSISTENT', `bit flipped at byte ${at}`);
    }
    throwsCode(() => Vocabulary.fromBytes(Uint8Array.from({ length: 4096 }, () => Math.floor(r() * 256))), 'STORE_INCONSISTENT', 'random bytes');
  });
});

/** `images` random bags of `size` words over `words` words, a few words repeated. */
function bags(images: number, size: number, words: number, seed: number): Uint32Array[] {
  const r = seededRandom(seed);
  return Array.from({ length: images }, () => Uint32Array.from({ length: size }, (_, i) => (i % 10 === 9 ? Math.floor(r() * 20) : Math.floor(r() * words))));
}

/** A random subset of `share` of a word list. */
function subset(list: Uint32Array, share: number, seed: number): Uint32Array {
  const r = seededRandom(seed);
  return list.filter(() => r() < share);
}

describe('InvertedIndex', () => {
  const WORDS = 5000;
  const lists = bags(300, 400, WORDS, 11);

  for (const scoring of ['cosine', 'l1'] as const) {
    it(`finds an image from a third of its own words (${scoring})`, () => {
      const index = InvertedIndex.fromRecords(lists.map((words, id) => ({ id: id + 1000, words })), { words: WORDS, scoring });
      assert.equal(index.size, 300);
      for (const i of [0, 17, 150, 299]) {
        const hits = index.query(subset(lists[i], 0.33, i), 5);
        assert.equal(hits[0].id, i + 1000, `image ${i}: ${JSON.stringify(hits)}`);
        assert.ok(hits[0].score > hits[1].score);
      }
      const self = index.query(lists[42], 1);
      assert.equal(self[0].id, 1042);
      assert.ok(Math.abs(self[0].score - 1) < 1e-4, `own words score ${self[0].score}`);
      // Scores descend; the filter is obeyed; n bounds the answer.
      const hits = index.query(lists[5], 50);
      assert.equal(hits.length, 50);
      for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1].score >= hits[i].score);
      assert.ok(index.query(lists[5], 10, (id) => id % 2 === 0).every((h) => h.id % 2 === 0));
      assert.notEqual(index.query(lists[5], 1, (id) => id !== 1005)[0].id, 1005);
      assert.deepEqual(index.query(lists[5], 0), []);
      // A filter that throws leaves the index as it was.
      assert.throws(() => index.query(lists[5], 50, () => { throw new Error('boom'); }), /boom/);
      assert.deepEqual(index.query(lists[5], 50), hits);
      assert.deepEqual(index.query(new Uint32Array(0), 5), []);
    });
  }

  it('builds the same index in bulk, from encoded words, and by adds', () => {
    const bulk = InvertedIndex.fromRecords(lists.map((words, id) => ({ id, words })), { words: WORDS });
    const encoded = InvertedIndex.fromRecords(lists.map((words, id) => ({ id, encoded: encodeWords(words) })));
    const added = new InvertedIndex({ words: WORDS });
    lists.forEach((words, id) => added.add(id, words));
    const q = subset(lists[77], 0.5, 1);
    const expect = bulk.query(q, 20);
    assert.deepEqual(encoded.query(q, 20), expect);
    // Incremental norms use the idf of their add until the next refresh: same ranking at the top.
    assert.equal(added.query(q, 20)[0].id, 77);
    added.compact();
    const after = added.query(q, 20);
    assert.deepEqual(after.map((h) => h.id), expect.map((h) => h.id));
    after.forEach((h, i) => assert.ok(Math.abs(h.score - expect[i].score) < 1e-6));
  });

  it('removes: the image is gone at once, n_w follows, compaction equals a fresh build', () => {
    const index = InvertedIndex.fromRecords(lists.map((words, id) => ({ id, words })), { words: WORDS });
    const w = lists[17][0];
    const df = index.documentFrequency(w);
    assert.equal(index.remove(17, lists[17]), true);
    assert.equal(index.remove(17), false, 'twice');
    assert.equal(index.has(17), false);
    assert.equal(index.size, 299);
    assert.equal(index.documentFrequency(w), df - 1);
    assert.ok(!index.query(lists[17], 300).some((h) => h.id === 17));
    // Removed without their words (n_w exact again after compaction, run on its own at some point).
    for (let id = 100; id < 160; id++) index.remove(id);
    index.compact();
    const kept = lists.map((words, id) => ({ id, words })).filter((r) => r.id !== 17 && (r.id < 100 || r.id >= 160));
    const fresh = InvertedIndex.fromRecords(kept, { words: WORDS });
    for (let word = 0; word < 50; word++) assert.equal(index.documentFrequency(word), fresh.documentFrequency(word));
    const q = subset(lists[200], 0.4, 2);
    assert.deepEqual(index.query(q, 30).map((h) => h.id), fresh.query(q, 30).map((h) => h.id));
    // Re-adding an id replaces it.
    index.add(17, lists[18]);
    index.add(17, lists[17]);
    assert.equal(index.size, kept.length + 1);
    assert.equal(index.query(subset(lists[17], 0.3, 3), 1)[0].id, 17);
    // Removing everything leaves an empty, working index (one image alone has idf 0 everywhere:
    // ln(1/1), nothing to tell apart; two are enough).
    for (const r of kept) index.remove(r.id);
    index.remove(17);
    assert.equal(index.size, 0);
    assert.deepEqual(index.query(lists[3], 5), []);
    index.add(3, lists[3]);
    assert.deepEqual(index.query(lists[3], 5), []);
    index.add(4, lists[4]);
    assert.deepEqual(index.query(lists[3], 5).map((h) => h.id), [3]);
  });

  it('refuses bad ids, words and records', () => {
    const index = new InvertedIndex({ words: 100 });
    assert.throws(() => index.add(-1, new Uint32Array([1])), /id/);
    assert.throws(() => index.add(1.5, new Uint32Array([1])), /id/);
    assert.throws(() => index.add(1, new Uint32Array([100])), /word ids below 100/);
    assert.throws(() => InvertedIndex.fromRecords([{ id: 1, words: new Uint32Array([1]) }, { id: 1, words: new Uint32Array([2]) }]), /unique ids/);
    assert.throws(() => new InvertedIndex({ scoring: 'bm25' as 'l1' }), /scoring/);
  });

  it('encodes word lists compactly and refuses corrupt encodings', () => {
    for (const list of [lists[0], new Uint32Array(0), new Uint32Array([0xffffffff, 0, 0, 5, 0xffffffff]), new Uint32Array(300).fill(7)]) {
      assert.deepEqual(decodeWords(encodeWords(list)), list.slice().sort());
    }
    const e = encodeWords(lists[0]);
    assert.ok(e.length < 2 * new Set(lists[0]).size, `${e.length} bytes for ${new Set(lists[0]).size} distinct words`);
    throwsCode(() => decodeWords(new Uint8Array(0)), 'STORE_INCONSISTENT', 'empty');
    throwsCode(() => decodeWords(e.subarray(0, e.length - 1)), 'STORE_INCONSISTENT', 'truncated');
    throwsCode(() => decodeWords(Uint8Array.from([...e, 0])), 'STORE_INCONSISTENT', 'trailing');
    throwsCode(() => decodeWords(Uint8Array.from([2, ...e.subarray(1)])), 'STORE_INCONSISTENT', 'version');
  });
});

describe('visual words on real photos (smvs book covers)', () => {
  let vocab: Vocabulary;
  let index: InvertedIndex;
  let names: string[];
  // bench/local's research extractor: ORB 500 + CLAHE, references at 480 px, queries at 640 px.
  let features: typeof import('../bench/local/features.ts');
  const config = { detector: 'orb', q: 640, r: 480, n: 500, pre: 'clahe' } as const;

  before(async () => {
    features = await import('../bench/local/features.ts');
    await features.loadCv();
    names = fs.readdirSync(path.join(BOOKS, 'reference')).filter((f) => f.endsWith('.jpg')).sort();
    const refs = [];
    for (const name of names) refs.push(await features.extract(path.join(BOOKS, 'reference', name), config.r, config));
    const all = new Uint8Array(refs.reduce((s, f) => s + f.desc.length, 0));
    let o = 0;
    for (const f of refs) all.set(f.desc, (o += f.desc.length) - f.desc.length);
    vocab = Vocabulary.learn(all);
    index = InvertedIndex.fromRecords(refs.map((f, id) => ({ id, words: vocab.quantize(f.desc) })), { words: vocab.words });
  });

  it('finds the cover of a phone photo in the BoW top 5 of a vocabulary learned from the 101 references', async () => {
    assert.equal(names.length, 101);
    assert.ok(vocab.words > 5000, `${vocab.words} words`);
    for (const name of ['001.jpg', '010.jpg', '020.jpg', '030.jpg', '050.jpg', '090.jpg']) {
      const q = await features.extract(path.join(BOOKS, 'query', name), config.q, config);
      const hits = index.query(vocab.quantize(q.desc), 5);
      assert.ok(hits.some((h) => names[h.id] === name), `${name}: top 5 ${hits.map((h) => names[h.id]).join(', ')}`);
    }
  });
});
