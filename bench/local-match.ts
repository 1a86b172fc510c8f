/**
 * Per-pair cost of the product's local-feature matching and verification (src/local/), against
 * the research code (OpenCV.js BFMatcher knnMatch, bench/local/features.ts; the string-keyed
 * Hough vote, bench/local/geometry.ts), on real ORB features of smvs book-cover photos and their
 * references. Checks that both sides agree (matches, Hough inlier counts) and prints the median ms
 * per pair with the load average (readable lines on stderr, one JSON line on stdout). The product's
 * 2-NN search is WebAssembly `i64.popcnt` (src/local/hamming-wasm.ts, an experiment of this
 * script at first): ~0.4–0.5 ms per pair; the scalar TypeScript popcount it replaced took 1.9 ms.
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const asResearch = (f: LocalFeatures): Features => ({ kp: f.keypoints, desc: f.descriptors, dbytes: 32, count: f.count, width: f.width, height: f.height, ms: 0 });
const key = (m: Match) => `${m.q}:${m.r}`;

await loadOpenCv();
await loadCv(); // the research module: the same (already loaded) OpenCV object
const cv = opencv();
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
const t = { ts: [] as number[], cv: [] as number[], hough: [] as number[], houghResearch: [] as number[], homography: [] as number[], prepare: [] as number[], houghTrue: [] as number[] };
let pairs = 0, sameMatches = 0, tsTotal = 0, cvTotal = 0, houghDiffer = 0;
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
      const times: number[] = [], cvTimes: number[] = [];
      let theirs: { qi: number; ri: number }[] = [];
      for (let rep = 0; rep < REPEAT; rep++) {
        t0 = performance.now();
        ours = matchFeatures(prepared, ref);
        times.push(performance.now() - t0);
        t0 = performance.now();
        theirs = cvMatch(bf, matOf(query), matOf(ref), 0.8);
        cvTimes.push(performance.now() - t0);
      }
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
console.error(`matches: pixdex ${tsTotal}, OpenCV ${cvTotal}, in both ${sameMatches} (${((100 * sameMatches) / Math.max(cvTotal, 1)).toFixed(1)} % of OpenCV's)`);
console.error(`hough4 ms per pair (median):  pixdex ${ms(t.hough)} (true pairs ${ms(t.houghTrue)})  research ${ms(t.houghResearch)}  (inliers or members differ in ${houghDiffer} of ${pairs} pairs)`);
console.error(`homography (members) ms per true pair (median): ${ms(t.homography)}`);
console.error(`hough inliers: true pairs median ${median(inliers.true)} (min ${Math.min(...inliers.true)}), wrong pairs median ${median(inliers.wrong)} (max ${Math.max(...inliers.wrong)})`);
console.log(JSON.stringify({
  bench: 'local-match',
  pairs,
  loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  featuresMsPerImage: { query: +ms(extractMs.query), reference: +ms(extractMs.reference), decodeAndGrey: +ms(greyMs) },
  matchMsPerPair: { pixdex: +ms(t.ts), opencvKnnMatch: +ms(t.cv), prepareQuery: +ms(t.prepare) },
  houghMsPerPair: { pixdex: +ms(t.hough), pixdexTruePairs: +ms(t.houghTrue), research: +ms(t.houghResearch) },
  homographyMsPerTruePair: +ms(t.homography),
  differ: { hough: houghDiffer },
  matches: { pixdex: tsTotal, opencv: cvTotal, both: sameMatches },
  inliers: { trueMedian: median(inliers.true), trueMin: Math.min(...inliers.true), wrongMedian: median(inliers.wrong), wrongMax: Math.max(...inliers.wrong) },
}));
