/**
 * The visual-word inverted index at scale (issue 14): `--images` (default 100,000) synthetic images
 * of 500 ORB-like descriptors each, quantized by a vocabulary tree (src/local/vocabulary.ts) and
 * indexed by src/local/inverted.ts. Reports vocabulary learn time, quantize time per image, the
 * stored word lists' bytes per image (`encodeWords`), bulk build time (`fromRecords` from the
 * encoded lists, what the engine does at open), memory (heap + ArrayBuffers delta, and the index's
 * own typed-array bytes), query time p50/p90 for a 500-descriptor query (quantize + query), add,
 * remove, compaction and norm-refresh times, and the load average (`uptime`) before and after.
 *
 * Synthetic descriptors: 50,000 random 256-bit "patterns" drawn Zipf-like (exponent `--zipf`), each
 * descriptor its pattern with ~8 % of the bits flipped. The default 0.6 is calibrated on the real
 * smvs + distractors library (bench/local/tree.ts, 2,051 images, k=10 L=4): a 500-descriptor
 * query there touches 36.7 × N postings, here 36.1 × N at 2,000 images (0.9 gives 61 × N, 0.5
 * gives 31 × N); distinct words per image 479 vs 447 real. Image i is generated from seed i, so a
 * query photo of image i (half of its descriptors re-noised, the rest new) can be regenerated and
 * checked (recall@10, a sanity check of the synthetic data, not a quality figure: see
 * bench/local/tree.ts for real photos).
 *
 *   npm run bench:inverted -- [--images 100000] [--branching 10] [--depth 5] [--queries 200]
 *                             [--scoring cosine|l1] [--n 50] [--zipf 0.6]
 */
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { InvertedIndex, encodeWords, type Scoring } from '../src/local/inverted.ts';
import { Vocabulary } from '../src/local/vocabulary.ts';
import { seededRandom } from '../src/random.ts';

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '100000' },
    descriptors: { type: 'string', default: '500' },
    branching: { type: 'string', default: '10' },
    depth: { type: 'string', default: '5' },
    queries: { type: 'string', default: '200' },
    scoring: { type: 'string', default: 'cosine' },
    n: { type: 'string', default: '50' },
    zipf: { type: 'string', default: '0.6' },
  },
});
const IMAGES = Number(args.images), PER = Number(args.descriptors), N = Number(args.n);
const PATTERNS = 50_000, NOISE_MASKS = 1 << 16;

const uptime = () => {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
};
const log = (s: string) => process.stderr.write(`[bench:inverted ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const gc = () => (globalThis as { gc?: () => void }).gc?.();
/** Memory after two full GCs a tick apart (ArrayBuffer backing stores are swept concurrently). */
const mem = async () => {
  gc();
  await new Promise((r) => setTimeout(r, 50));
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers, rss: m.rss };
};
const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;

// Patterns, Zipf cumulative weights, noise masks (~8 % of 256 bits flipped).
const setup = seededRandom(2024);
const patterns = new Uint32Array(PATTERNS * 8).map(() => (setup() * 2 ** 32) >>> 0);
const cdf = new Float64Array(PATTERNS);
for (let i = 0, s = 0; i < PATTERNS; i++) cdf[i] = s += 1 / (i + 1) ** Number(args.zipf);
for (let i = 0; i < PATTERNS; i++) cdf[i] /= cdf[PATTERNS - 1];
const masks = new Uint32Array(NOISE_MASKS * 8);
for (let m = 0; m < NOISE_MASKS; m++) for (let b = 0; b < 256; b++) if (setup() < 0.08) masks[m * 8 + (b >> 5)] |= 1 << (b & 31);
function pattern(u: number): number {
  let lo = 0, hi = PATTERNS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
const buffer = new Uint32Array(PER * 8);
const bytes = new Uint8Array(buffer.buffer);
/** Image `i`'s descriptors (a shared buffer, overwritten by the next call). */
function image(i: number): Uint8Array {
  const r = seededRandom(i + 1);
  for (let d = 0; d < PER; d++) {
    const p = pattern(r()) * 8, m = Math.floor(r() * NOISE_MASKS) * 8;
    for (let w = 0; w < 8; w++) buffer[d * 8 + w] = patterns[p + w] ^ masks[m + w];
  }
  return bytes;
}
/** A photo of image `i`: half its descriptors with more noise, half new ones. */
function photo(i: number, seed: number): Uint8Array {
  const own = image(i).slice();
  const r = seededRandom(seed);
  const out = new Uint32Array(PER * 8);
  const o32 = new Uint32Array(own.buffer);
  for (let d = 0; d < PER; d++) {
    const m = Math.floor(r() * NOISE_MASKS) * 8;
    if (r() < 0.5) for (let w = 0; w < 8; w++) out[d * 8 + w] = o32[d * 8 + w] ^ (masks[m + w] & masks[((m >> 3) ^ 0x5555) * 8 + w]);
    else {
      const p = pattern(r()) * 8;
      for (let w = 0; w < 8; w++) out[d * 8 + w] = patterns[p + w] ^ masks[m + w];
    }
  }
  return new Uint8Array(out.buffer);
}

const loadStart = uptime();
log(`${IMAGES} images × ${PER} descriptors; ${loadStart}`);
const rows: Array<[string, string]> = [];

// 1. Vocabulary from 200,000 descriptors of 400 images.
const sampleImages = Math.ceil(200_000 / PER);
const sample = new Uint8Array(sampleImages * PER * 32);
for (let i = 0; i < sampleImages; i++) sample.set(image(i * 97 + 13), i * PER * 32);
let t = performance.now();
const vocab = Vocabulary.learn(sample, { branching: Number(args.branching), depth: Number(args.depth) });
const learnMs = performance.now() - t;
rows.push(['vocabulary', `k=${vocab.branching} L=${vocab.depth}: ${vocab.words} words, ${vocab.toBytes().length} bytes`]);
rows.push(['learn (200k descriptors)', `${(learnMs / 1000).toFixed(2)} s`]);
log(`learned ${vocab.words} words in ${Math.round(learnMs)} ms`);

// 2. Quantize every image, keep its encoded words (what LMDB would hold).
const encoded: Uint8Array[] = new Array(IMAGES);
let quantizeMs = 0, wordBytes = 0;
for (let i = 0; i < IMAGES; i++) {
  const d = image(i);
  const t0 = performance.now();
  const words = vocab.quantize(d);
  quantizeMs += performance.now() - t0;
  encoded[i] = encodeWords(words);
  wordBytes += encoded[i].length;
  if ((i + 1) % 20000 === 0) log(`quantized ${i + 1}`);
}
rows.push(['quantize, per image', `${(quantizeMs / IMAGES).toFixed(3)} ms`]);
rows.push(['stored words per image (encodeWords)', `${Math.round(wordBytes / IMAGES)} bytes (${mb(wordBytes)} for ${IMAGES})`]);

// 3. Bulk build from the encoded lists, memory.
const m0 = await mem();
t = performance.now();
const index = InvertedIndex.fromRecords(
  (function* () {
    for (let i = 0; i < IMAGES; i++) yield { id: i, encoded: encoded[i] };
  })(),
  { words: vocab.words, scoring: args.scoring as Scoring },
);
const buildMs = performance.now() - t;
const m1 = await mem();
const indexBytes = index.bytes;
rows.push(['bulk build (fromRecords, encoded)', `${(buildMs / 1000).toFixed(2)} s`]);
rows.push(['memory delta: heap / arrayBuffers', `${mb(m1.heap - m0.heap)} / ${mb(m1.arrayBuffers - m0.arrayBuffers)} (rss ${mb(m1.rss)}; encoded lists ${mb(wordBytes)} not counted)`]);
rows.push(['index typed arrays, per image', `${mb(indexBytes)}, ${Math.round(indexBytes / IMAGES)} bytes`]);
log(`built in ${Math.round(buildMs)} ms`);

// 4. Queries: a 500-descriptor photo of a random indexed image.
const qr = seededRandom(99);
const qQuant: number[] = [], qIndex: number[] = [];
let found = 0;
const Q = Number(args.queries);
for (let q = 0; q < Q; q++) {
  const target = Math.floor(qr() * IMAGES);
  const d = photo(target, 1000 + q);
  const t0 = performance.now();
  const words = vocab.quantize(d);
  const t1 = performance.now();
  const hits = index.query(words, N);
  qIndex.push(performance.now() - t1);
  qQuant.push(t1 - t0);
  if (hits.slice(0, 10).some((h) => h.id === target)) found++;
}
const total = qQuant.map((x, i) => x + qIndex[i]);
rows.push([`query (n=${N}): quantize + index p50 / p90`, `${pct(total, 50).toFixed(2)} / ${pct(total, 90).toFixed(2)} ms`]);
rows.push(['  of which index p50 / p90', `${pct(qIndex, 50).toFixed(2)} / ${pct(qIndex, 90).toFixed(2)} ms`]);
rows.push(['  synthetic sanity: target in top 10', `${found} / ${Q}`]);

// 5. Adds, removes, refresh, compaction.
const ADD = 1000;
const addWords: Uint32Array[] = [];
for (let i = 0; i < ADD; i++) addWords.push(vocab.quantize(image(IMAGES + i)));
t = performance.now();
for (let i = 0; i < ADD; i++) index.add(IMAGES + i, addWords[i]);
const addMs = (performance.now() - t) / ADD;
t = performance.now();
index.query(vocab.quantize(photo(5, 7)), N); // refreshes the norms if the drift rule says so
const afterAddQueryMs = performance.now() - t;
t = performance.now();
for (let i = 0; i < ADD; i++) index.remove(IMAGES + i, addWords[i]);
const removeMs = (performance.now() - t) / ADD;
t = performance.now();
for (let i = 0; i < ADD; i++) index.remove(i);
const removeNoWordsMs = (performance.now() - t) / ADD;
t = performance.now();
index.compact();
const compactMs = performance.now() - t;
rows.push(['add, per image (words given)', `${(addMs * 1000).toFixed(1)} µs`]);
rows.push(['first query after 1,000 adds', `${afterAddQueryMs.toFixed(1)} ms`]);
rows.push(['remove, per image (with its words / without)', `${(removeMs * 1000).toFixed(1)} / ${(removeNoWordsMs * 1000).toFixed(1)} µs`]);
rows.push(['compact (all postings, norms)', `${compactMs.toFixed(0)} ms`]);
const loadEnd = uptime();
rows.push(['uptime before', loadStart]);
rows.push(['uptime after', loadEnd]);

const width = Math.max(...rows.map(([k]) => k.length));
console.log(`\ninverted index, ${IMAGES} images × ${PER} descriptors (zipf ${args.zipf}), scoring ${index.scoring}, node ${process.version}, ${os.cpus().length} cpus${(globalThis as { gc?: unknown }).gc ? '' : ' (no --expose-gc: memory deltas are rough)'}`);
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
console.log(JSON.stringify({
  images: IMAGES, words: vocab.words, learnMs: Math.round(learnMs), quantizeMsPerImage: +(quantizeMs / IMAGES).toFixed(3), wordBytesPerImage: Math.round(wordBytes / IMAGES),
  buildMs: Math.round(buildMs), heapDelta: m1.heap - m0.heap, arrayBuffersDelta: m1.arrayBuffers - m0.arrayBuffers, indexBytes,
  queryMsP50: +pct(total, 50).toFixed(2), queryMsP90: +pct(total, 90).toFixed(2), indexQueryMsP50: +pct(qIndex, 50).toFixed(2), recall10: found / Q,
  addUs: +(addMs * 1000).toFixed(1), removeUs: +(removeMs * 1000).toFixed(1), compactMs: Math.round(compactMs), loadavg: os.loadavg().map((x) => +x.toFixed(2)),
}));
