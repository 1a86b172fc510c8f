/**
 * Per-pair cost of the product's local-feature matching and verification (src/local/), against
 * the research code (OpenCV.js BFMatcher knnMatch, bench/local/features.ts; the string-keyed
 * Hough vote, bench/local/geometry.ts), on real ORB features of smvs book-cover photos and their
 * references. Checks that both sides agree (matches, Hough inlier counts) and prints the median ms
 * per pair with the load average (readable lines on stderr, one JSON line on stdout). Also times an experiment, not product code: the same 2-NN
 * search as a 200-byte hand-assembled WebAssembly function using `i64.popcnt` (what the scalar
 * TypeScript popcount cannot reach).
 *
 *   node --import tsx bench/local-match.ts [--queries 20] [--wrong 4] [--repeat 5]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { QUERY_SIDE, REFERENCE_SIDE, encodeFeatures, extractFeatures, greyscale } from '../src/local/features.ts';
import { loadOpenCv, opencv } from '../src/local/opencv.ts';
import { matchFeatures, prepareQuery } from '../src/local/match.ts';
import type { LocalFeatures, Match } from '../src/local/types.ts';
import { homography, houghInliers } from '../src/local/verify.ts';
import { SMVS, listJpg } from './local/common.ts';
import { descMat, loadCv, match as cvMatch, type Features } from './local/features.ts';
import { hough } from './local/geometry.ts';

const { values } = parseArgs({ options: { queries: { type: 'string', default: '20' }, wrong: { type: 'string', default: '4' }, repeat: { type: 'string', default: '5' } } });
const QUERIES = Number(values.queries), WRONG = Number(values.wrong), REPEAT = Number(values.repeat);
const DIR = path.join(SMVS, 'book_covers');
if (!fs.existsSync(DIR)) throw new Error(`${DIR} is missing: the smvs data set lives in ../shared/datasets (PIXDEX_DATASETS)`);

/**
 * The 2-NN search (best, second-best distance, best index per query descriptor) as a hand-assembled
 * WebAssembly module: knn(q, nq, r, nr, out) over descriptors in its memory, 4 × i64.popcnt each.
 */
async function wasmKnn(): Promise<(q: LocalFeatures, r: LocalFeatures) => Match[]> {
  const leb = (n: number) => { const o: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
  const sleb = (n: number) => { const o: number[] = []; for (;;) { const b = n & 0x7f; n >>= 7; if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...o, b]; o.push(b | 0x80); } };
  const get = (i: number) => [0x20, i], set = (i: number) => [0x21, i], i32 = (n: number) => [0x41, ...sleb(n)];
  const load64 = (off: number) => [0x29, 3, ...leb(off)], store32 = (off: number) => [0x36, 2, ...leb(off)];
  const [Q, NQ, R, NR, OUT, I, P, REND, BEST, SEC, AT, D, QO, Q0, Q1, Q2, Q3] = Array.from({ length: 17 }, (_, i) => i);
  const body = [
    ...get(R), ...get(NR), ...i32(5), 0x74, 0x6a, ...set(REND), ...i32(0), ...set(I),
    0x02, 0x40, 0x03, 0x40, // block loop (queries)
    ...get(I), ...get(NQ), 0x4f, 0x0d, 1,
    ...get(Q), ...get(I), ...i32(5), 0x74, 0x6a, ...set(QO),
    ...get(QO), ...load64(0), ...set(Q0), ...get(QO), ...load64(8), ...set(Q1), ...get(QO), ...load64(16), ...set(Q2), ...get(QO), ...load64(24), ...set(Q3),
    ...i32(1 << 30), ...set(BEST), ...i32(1 << 30), ...set(SEC), ...i32(-1), ...set(AT), ...get(R), ...set(P),
    0x02, 0x40, 0x03, 0x40, // block loop (references)
    ...get(P), ...get(REND), 0x4f, 0x0d, 1,
    ...get(Q0), ...get(P), ...load64(0), 0x85, 0x7b, ...get(Q1), ...get(P), ...load64(8), 0x85, 0x7b, 0x7c,
    ...get(Q2), ...get(P), ...load64(16), 0x85, 0x7b, 0x7c, ...get(Q3), ...get(P), ...load64(24), 0x85, 0x7b, 0x7c, 0xa7, 0x22, D,
    ...get(SEC), 0x49, 0x04, 0x40, ...get(D), ...get(BEST), 0x49, 0x04, 0x40,
    ...get(BEST), ...set(SEC), ...get(D), ...set(BEST), ...get(P), ...set(AT), 0x05, ...get(D), ...set(SEC), 0x0b, 0x0b,
    ...get(P), ...i32(32), 0x6a, ...set(P), 0x0c, 0, 0x0b, 0x0b,
    ...get(OUT), ...get(I), ...i32(12), 0x6c, 0x6a, 0x22, D, ...get(BEST), ...store32(0), ...get(D), ...get(SEC), ...store32(4), ...get(D), ...get(AT), ...store32(8),
    ...get(I), ...i32(1), 0x6a, ...set(I), 0x0c, 0, 0x0b, 0x0b, 0x0b,
  ];
  const func = [2, 8, 0x7f, 4, 0x7e, ...body]; // locals: 8 × i32, 4 × i64
  const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
  const bytes = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]), ...section(3, [1, 0]), ...section(5, [1, 0, 4]),
    ...section(7, [2, 3, 0x6b, 0x6e, 0x6e, 0, 0, 3, 0x6d, 0x65, 0x6d, 2, 0]), ...section(10, [1, ...leb(func.length), ...func])]);
  const { instance } = await WebAssembly.instantiate(bytes);
  const knn = instance.exports.knn as (q: number, nq: number, r: number, nr: number, out: number) => void;
  const memory = new Uint8Array((instance.exports.mem as WebAssembly.Memory).buffer); // 4 pages: q at 0, r at 64 KB, out at 128 KB
  return (q, r) => {
    if (q.count < 2 || r.count < 2) return [];
    memory.set(q.descriptors, 0);
    memory.set(r.descriptors, 65536);
    knn(0, q.count, 65536, r.count, 131072);
    const o = new Int32Array(memory.buffer, 131072, q.count * 3);
    const bestQ = new Int32Array(r.count).fill(-1), bestR = new Float64Array(r.count);
    for (let i = 0; i < q.count; i++) {
      const rt = o[i * 3 + 1] > 0 ? o[i * 3] / o[i * 3 + 1] : 1, at = (o[i * 3 + 2] - 65536) >> 5;
      if (rt <= 0.8 && (bestQ[at] < 0 || rt < bestR[at])) (bestQ[at] = i), (bestR[at] = rt);
    }
    const out: Match[] = [];
    for (let j = 0; j < r.count; j++) if (bestQ[j] >= 0) out.push({ q: bestQ[j], r: j, ratio: bestR[j] });
    return out.sort((a, b) => a.q - b.q);
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const asResearch = (f: LocalFeatures): Features => ({ kp: f.keypoints, desc: f.descriptors, dbytes: 32, count: f.count, width: f.width, height: f.height, ms: 0 });
const key = (m: Match) => `${m.q}:${m.r}`;

await loadOpenCv();
await loadCv(); // the research module: the same (already loaded) OpenCV object
const cv = opencv();
const wasmMatch = await wasmKnn();
const files = listJpg(path.join(DIR, 'query')).slice(0, QUERIES);
const refFiles = listJpg(path.join(DIR, 'reference'));
const extractMs = { query: [] as number[], reference: [] as number[] };
async function features(file: string, side: number): Promise<LocalFeatures> {
  const bytes = fs.readFileSync(file);
  const t0 = performance.now();
  const grey = await greyscale(bytes, side, 100_000_000);
  const t1 = performance.now();
  const f = extractFeatures(grey);
  extractMs[side === QUERY_SIDE ? 'query' : 'reference'].push(performance.now() - t0);
  greyMs.push(t1 - t0);
  return f;
}
const greyMs: number[] = [];
const queries: LocalFeatures[] = [];
for (const f of files) queries.push(await features(path.join(DIR, 'query', f), QUERY_SIDE));
const refs = new Map<string, LocalFeatures>();
for (const f of refFiles.slice(0, QUERIES + WRONG)) refs.set(f, await features(path.join(DIR, 'reference', f), REFERENCE_SIDE));
console.log(`book_covers: ${queries.length} queries (mean ${Math.round(queries.reduce((s, q) => s + q.count, 0) / queries.length)} keypoints), ${refs.size} references (mean ${Math.round([...refs.values()].reduce((s, r) => s + r.count, 0) / refs.size)} keypoints, ${Math.round([...refs.values()].reduce((s, r) => s + encodeFeatures(r).length, 0) / refs.size)} bytes stored)`);

const bf = new cv.BFMatcher(cv.NORM_HAMMING, false);
const mats = new Map<LocalFeatures, ReturnType<typeof descMat>>();
const matOf = (f: LocalFeatures) => mats.get(f) ?? (mats.set(f, descMat(asResearch(f))), mats.get(f));
const t = { ts: [] as number[], cv: [] as number[], hough: [] as number[], houghResearch: [] as number[], homography: [] as number[], prepare: [] as number[], wasm: [] as number[], houghTrue: [] as number[] };
let pairs = 0, wasmDiffer = 0, sameMatches = 0, tsTotal = 0, cvTotal = 0, houghDiffer = 0;
const inliers = { true: [] as number[], wrong: [] as number[] };
try {
  queries.forEach((query, qi) => {
    let t0 = performance.now();
    const prepared = prepareQuery(query);
    t.prepare.push(performance.now() - t0);
    const targets = [files[qi], ...Array.from({ length: WRONG }, (_, k) => refFiles[(qi + 1 + k) % (QUERIES + WRONG)])];
    targets.forEach((name, k) => {
      const ref = refs.get(name)!;
      let ours: Match[] = [];
      const times: number[] = [], cvTimes: number[] = [], wasmTimes: number[] = [];
      let theirs: { qi: number; ri: number }[] = [];
      for (let rep = 0; rep < REPEAT; rep++) {
        t0 = performance.now();
        ours = matchFeatures(prepared, ref);
        times.push(performance.now() - t0);
        t0 = performance.now();
        theirs = cvMatch(bf, matOf(query), matOf(ref), 0.8);
        cvTimes.push(performance.now() - t0);
        t0 = performance.now();
        const w = wasmMatch(query, ref);
        wasmTimes.push(performance.now() - t0);
        if (rep === 0 && JSON.stringify(w) !== JSON.stringify(ours)) wasmDiffer++;
      }
      t.wasm.push(median(wasmTimes));
      t.ts.push(median(times));
      t.cv.push(median(cvTimes));
      const a = new Set(ours.map(key));
      sameMatches += theirs.filter((m) => a.has(`${m.qi}:${m.ri}`)).length;
      tsTotal += ours.length;
      cvTotal += theirs.length;
      pairs++;
      const hTimes: number[] = [], rTimes: number[] = [];
      let v = houghInliers(query, ref, ours);
      let research = hough(asResearch(query), asResearch(ref), ours.map((m) => ({ qi: m.q, ri: m.r, ratio: m.ratio })), true);
      for (let rep = 0; rep < REPEAT * 4; rep++) {
        t0 = performance.now();
        v = houghInliers(query, ref, ours);
        hTimes.push(performance.now() - t0);
        t0 = performance.now();
        research = hough(asResearch(query), asResearch(ref), ours.map((m) => ({ qi: m.q, ri: m.r, ratio: m.ratio })), true);
        rTimes.push(performance.now() - t0);
      }
      t.hough.push(median(hTimes));
      if (k === 0) t.houghTrue.push(median(hTimes));
      t.houghResearch.push(median(rTimes));
      if (v.inliers !== research.count || v.members.length !== research.members.size || v.members.some((i) => !research.members.has(i))) houghDiffer++;
      (k === 0 ? inliers.true : inliers.wrong).push(v.inliers);
      if (k === 0) {
        t0 = performance.now();
        homography(query, ref, ours, v.members);
        t.homography.push(performance.now() - t0);
      }
    });
  });
} finally {
  for (const m of mats.values()) m.delete();
  bf.delete();
}
const ms = (xs: number[]) => median(xs).toFixed(3);
// The lines for people on stderr; the figures as one JSON line on stdout.
console.error(`${pairs} pairs, load average ${loadavg()}`);
console.error(`features ms per image (median, sharp greyscale + CLAHE + ORB): query ${ms(extractMs.query)}, reference ${ms(extractMs.reference)} (of which decode + greyscale ${ms(greyMs)})`);
console.error(`match ms per pair (median):  pixdex ${ms(t.ts)}  OpenCV knnMatch ${ms(t.cv)}  (prepareQuery ${ms(t.prepare)} once per query)`);
console.error(`  experiment: WebAssembly i64.popcnt 2-NN ${ms(t.wasm)} ms per pair (matches differ from pixdex's in ${wasmDiffer} of ${pairs} pairs)`);
console.error(`matches: pixdex ${tsTotal}, OpenCV ${cvTotal}, in both ${sameMatches} (${((100 * sameMatches) / Math.max(cvTotal, 1)).toFixed(1)} % of OpenCV's)`);
console.error(`hough4 ms per pair (median):  pixdex ${ms(t.hough)} (true pairs ${ms(t.houghTrue)})  research ${ms(t.houghResearch)}  (inliers or members differ in ${houghDiffer} of ${pairs} pairs)`);
console.error(`homography (members) ms per true pair (median): ${ms(t.homography)}`);
console.error(`hough inliers: true pairs median ${median(inliers.true)} (min ${Math.min(...inliers.true)}), wrong pairs median ${median(inliers.wrong)} (max ${Math.max(...inliers.wrong)})`);
console.log(JSON.stringify({
  bench: 'local-match',
  pairs,
  loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  featuresMsPerImage: { query: +ms(extractMs.query), reference: +ms(extractMs.reference), decodeAndGrey: +ms(greyMs) },
  matchMsPerPair: { pixdex: +ms(t.ts), opencvKnnMatch: +ms(t.cv), prepareQuery: +ms(t.prepare), wasmPopcnt: +ms(t.wasm) },
  houghMsPerPair: { pixdex: +ms(t.hough), pixdexTruePairs: +ms(t.houghTrue), research: +ms(t.houghResearch) },
  homographyMsPerTruePair: +ms(t.homography),
  differ: { wasmMatches: wasmDiffer, hough: houghDiffer },
  matches: { pixdex: tsTotal, opencv: cvTotal, both: sameMatches },
  inliers: { trueMedian: median(inliers.true), trueMin: Math.min(...inliers.true), wrongMedian: median(inliers.wrong), wrongMax: Math.max(...inliers.wrong) },
}));
