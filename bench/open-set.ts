/**
 * Open-set labelling on real photos: does propagation leave photos of classes nobody labelled
 * alone, and do the labelled classes' photos still get (right) suggestions? Prints JSON lines.
 *
 *   node --import tsx bench/open-set.ts [--smoke] [--datasets DIR] [--vectors FILE] [--labelled-per-class N]
 *
 * oxford_flowers17, for 3, 6 and 9 of the 17 classes labelled (classes drawn by seed 1, 2, 3):
 * per labelled class the first 60 files in name order are labelled (bench/labels.ts's split;
 * --labelled-per-class N labels the first N of its 80 instead), every other photo is unlabelled
 * (the rest of its 80, and all 80 of each unlabelled class).
 * Propagation as `pixdex label propagate` does it (k 10, min confidence 0.8): the kNN vote over
 * the labelled photos, calibrated by src/calibration.ts fitted on the labelled photos only.
 *   unlabelledClassSuggested: share of the photos of UNLABELLED classes that get any suggestion
 *     (all of them wrong by construction; the bound: <= 5 %).
 *   labelledClassRight: share of the labelled classes' unlabelled photos that get a suggestion
 *     that is right (the bound: >= 80 %); labelledClassSuggested counts any suggestion.
 * "share" is the same with the old confidence (the vote's share) for comparison.
 * hymenoptera_data: train labelled (245). classify: each val and flowers17 photo against it
 * alone (share answered unknown); propagate: val and flowers17 indexed unlabelled beside it
 * (share of flowers photos suggested ants or bees, share of val photos with a right suggestion).
 * Each image is embedded once (--vectors FILE caches them); --smoke (or PIXDEX_BENCH_SMOKE=1)
 * reads 24 photos per class of 6 flower classes (16 of them labelled, or --labelled-per-class N,
 * 2..23) and 40 per hymenoptera folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine.ts';
import { loadDataset, type DatasetItem } from '../src/eval/evaluate.ts';
import { knnVote } from '../src/classify.ts';
import { LIBRARY_NEIGHBORS, calibrateVote, fitCalibration, openSetFeatures } from '../src/calibration.ts';
import { decideOpenSet } from '../src/open-set.ts';
import { exactKnn, l2normalize } from '../src/vector.ts';
import { intParam } from '../src/errors.ts';

const { values } = parseArgs({ options: { datasets: { type: 'string' }, vectors: { type: 'string' }, smoke: { type: 'boolean' }, 'labelled-per-class': { type: 'string' } } });
const root = path.resolve(values.datasets ?? process.env.PIXDEX_DATASETS ?? '../shared/datasets');
const smoke = Boolean(values.smoke) || process.env.PIXDEX_BENCH_SMOKE === '1';
const K = 10;
const MIN_CONFIDENCE = 0.8;

interface Photo { path: string; label: string; split?: string; v: Float32Array }

function byName(items: DatasetItem[], perClass: number): DatasetItem[] {
  const byClass = new Map<string, DatasetItem[]>();
  for (const it of items) byClass.set(it.label, [...(byClass.get(it.label) ?? []), it]);
  return [...byClass.values()].flatMap((list) => list.sort((a, b) => (a.path < b.path ? -1 : 1)).slice(0, perClass));
}

async function embedAll(): Promise<Photo[]> {
  if (values.vectors && fs.existsSync(values.vectors)) {
    return JSON.parse(fs.readFileSync(values.vectors, 'utf8')).map((p: Photo & { v: number[] }) => ({ ...p, v: Float32Array.from(p.v) }));
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-open-set-'));
  const engine = await Engine.open({ dataDir });
  try {
    let flowers = loadDataset(path.join(root, 'oxford_flowers17'), engine.config.extensions);
    let hym = loadDataset(path.join(root, 'hymenoptera_data'), engine.config.extensions);
    if (smoke) {
      const six = [...new Set(flowers.map((f) => f.label))].sort().slice(0, 6);
      flowers = byName(flowers.filter((f) => six.includes(f.label)), 24);
      hym = [...byName(hym.filter((h) => h.split === 'train'), 40), ...byName(hym.filter((h) => h.split !== 'train'), 10)];
    }
    const items = [...hym, ...flowers.map((f) => ({ ...f, split: 'flowers' }))];
    const { embeddings } = await engine.describer.describeFiles(items.map((i) => i.path), { space: engine.space() });
    const photos = items.flatMap((it, i) => {
      const v = embeddings[i]?.code ?? embeddings[i]?.pooled;
      return v ? [{ path: it.path, label: it.label, split: it.split, v: l2normalize(v) }] : [];
    });
    if (values.vectors) fs.writeFileSync(values.vectors, JSON.stringify(photos.map((p) => ({ ...p, v: Array.from(p.v) }))));
    return photos;
  } finally {
    await engine.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function matrixOf(photos: Photo[]): Float32Array {
  const dim = photos[0].v.length;
  const m = new Float32Array(photos.length * dim);
  photos.forEach((p, i) => m.set(p.v, i * dim));
  return m;
}

/**
 * Classifies `queries` against `labelled` as propagation does (calibrated answer, and the old
 * share); with `library` (every photo, labelled or not; the queries are its unlabelled photos)
 * also the open-set decision over the library (src/open-set.ts).
 */
function classifyAll(labelled: Photo[], queries: Photo[], library?: Photo[]) {
  const dim = labelled[0].v.length;
  const matrix = matrixOf(labelled);
  const libMatrix = library ? matrixOf(library) : undefined;
  const labelOf = new Map(labelled.map((p) => [p, p.label]));
  const nearest = (p: Photo, m: Float32Array, within: Photo[], k: number) => exactKnn(p.v, m, dim, k + 1).filter((h) => within[h.index] !== p).slice(0, k);
  const libraryOf = (p: Photo) => nearest(p, libMatrix!, library!, LIBRARY_NEIGHBORS).map((h) => ({ id: h.index, label: labelOf.get(library![h.index]), score: h.score }));
  const t = performance.now();
  const cal = fitCalibration(labelled.map((p) => p.v), labelled.map((p) => p.label), { k: K, fingerprint: '', library: library ? labelled.map(libraryOf) : undefined })!;
  const fitSeconds = (performance.now() - t) / 1000;
  const voted = queries.map((q) => {
    const neighbors = nearest(q, matrix, labelled, K).map((h) => ({ label: labelled[h.index].label, score: h.score }));
    const lib = library ? libraryOf(q) : [];
    return { neighbors, vote: knnVote(neighbors), c: calibrateVote(cal, neighbors), x: openSetFeatures(cal.k, neighbors, lib), lib };
  });
  const index = new Map((library ?? []).map((p, i) => [p, i]));
  const open = decideOpenSet(voted.map((a, i) => ({ id: index.get(queries[i]) ?? -1 - i, label: a.vote.label, x: a.x, neighbors: a.lib })), cal.inSetExamples ?? []);
  const answers = voted.map(({ vote, c }, i) => {
    const unknown = c.unknown || (library !== undefined && vote.label !== null && open.unknown[i]);
    return { truth: queries[i].label, label: vote.label, share: vote.confidence, confidence: c.confidence, unknown, unlike: c.unknown };
  });
  return { answers, fitSeconds, unknownShare: open.unknownShare };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
const share = <T>(xs: T[], ok: (x: T) => boolean) => (xs.length === 0 ? 0 : round(xs.filter(ok).length / xs.length));

const photos = await embedAll();
const flowers = photos.filter((p) => p.split === 'flowers');
const classes = [...new Set(flowers.map((p) => p.label))].sort();
const perClassLabelled = values['labelled-per-class'] !== undefined ? intParam('--labelled-per-class', values['labelled-per-class'], 2, smoke ? 23 : 79) : smoke ? 16 : 60; // --smoke keeps 24 photos per class
const rows: Array<Record<string, number>> = [];
for (const L of smoke ? [2, 3] : [3, 6, 9]) {
  for (const seed of smoke ? [1] : [1, 2, 3]) {
    let s = seed * 7919 + L;
    const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
    const picked = classes.map((c) => ({ c, r: rand() })).sort((a, b) => a.r - b.r).slice(0, L).map((x) => x.c);
    const rank = new Map<string, number>();
    const order = [...flowers].sort((a, b) => (a.path < b.path ? -1 : 1));
    const isLabelled = (p: Photo) => {
      if (!picked.includes(p.label)) return false;
      const n = rank.get(p.label) ?? 0;
      rank.set(p.label, n + 1);
      return n < perClassLabelled;
    };
    const flags = order.map(isLabelled);
    const labelled = order.filter((_, i) => flags[i]);
    const { answers, fitSeconds, unknownShare } = classifyAll(labelled, order.filter((_, i) => !flags[i]), order);
    const unl = answers.filter((a) => !picked.includes(a.truth));
    const lab = answers.filter((a) => picked.includes(a.truth));
    const suggested = (a: (typeof answers)[number]) => !a.unknown && a.label !== null && a.confidence >= MIN_CONFIDENCE;
    const oldSuggested = (a: (typeof answers)[number]) => a.label !== null && a.share >= MIN_CONFIDENCE;
    const row = {
      labelledClasses: L,
      seed,
      unlabelledClassPhotos: unl.length,
      labelledClassPhotos: lab.length,
      unlabelledClassSuggested: share(unl, suggested),
      unlabelledClassUnknown: share(unl, (a) => a.unknown),
      labelledClassSuggested: share(lab, suggested),
      labelledClassRight: share(lab, (a) => suggested(a) && a.label === a.truth),
      labelledClassUnknown: share(lab, (a) => a.unknown),
      estimatedUnlabelledClassShare: round(unknownShare),
      shareUnlabelledClassSuggested: share(unl, oldSuggested),
      shareLabelledClassRight: share(lab, (a) => oldSuggested(a) && a.label === a.truth),
      fitSeconds: round(fitSeconds),
    };
    rows.push(row);
    console.log(JSON.stringify({ dataset: 'oxford_flowers17', ...row }));
  }
}
const mean = (key: string) => round(rows.reduce((a, r) => a + r[key], 0) / rows.length);
console.log(JSON.stringify({ dataset: 'oxford_flowers17', summary: true, ...Object.fromEntries(['unlabelledClassSuggested', 'labelledClassRight', 'shareUnlabelledClassSuggested', 'shareLabelledClassRight'].map((k) => [k, mean(k)])) }));

const hymTrain = photos.filter((p) => p.split === 'train');
const hymQueries = [...photos.filter((p) => p.split === 'val'), ...flowers];
const isBug = (a: { truth: string }) => a.truth === 'ants' || a.truth === 'bees';
const alone = classifyAll(hymTrain, hymQueries).answers; // classify: an uploaded photo, nothing else known
const inLibrary = classifyAll(hymTrain, hymQueries, [...hymTrain, ...hymQueries]).answers; // propagate: all indexed
const suggestedH = (a: (typeof alone)[number]) => !a.unknown && a.confidence >= MIN_CONFIDENCE;
console.log(JSON.stringify({
  dataset: 'hymenoptera_data',
  labelled: hymTrain.length,
  classifyFlowersUnknown: share(alone.filter((a) => !isBug(a)), (a) => a.unknown),
  classifyValUnknown: share(alone.filter(isBug), (a) => a.unknown),
  propagateFlowersSuggested: share(inLibrary.filter((a) => !isBug(a)), suggestedH),
  propagateFlowersSuggestedByShare: share(inLibrary.filter((a) => !isBug(a)), (a) => a.share >= MIN_CONFIDENCE),
  propagateValRight: share(inLibrary.filter(isBug), (a) => suggestedH(a) && a.label === a.truth),
  propagateValRightByShare: share(inLibrary.filter(isBug), (a) => a.share >= MIN_CONFIDENCE && a.label === a.truth),
  load: os.loadavg().map((x) => Math.round(x * 10) / 10),
}));
