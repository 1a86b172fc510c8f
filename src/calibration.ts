/**
 * Confidence that means something: turns a kNN vote into a calibrated probability that its
 * label is right, and says "unknown" when a photo is unlike every labelled class (open set).
 * Fitted on the labelled images themselves, each classified leave-one-out (its own photo left
 * out): a logistic regression on the vote's features (vote share, similarity of the winner's
 * nearest photo, also relative to how close that class's photos are to each other, mean
 * similarity, margin over the runner-up) maps them to P(right). Two open-set answers:
 *  - unlike the class: the winner's nearest photo is less similar than OPEN_SET_PERCENTILE of
 *    that class's own photos are to their nearest classmate;
 *  - the open-set features (propagation, `openSetFeatures`): the vote's similarities and the
 *    photo's nearest photos in the whole library (how much closer they are than its nearest
 *    labelled ones, how many of them are labelled, how many carry the winning label, how many
 *    unlabelled ones come before the first labelled one). The fit keeps them for every labelled
 *    photo left out (`inSetExamples`): the "in set" side of ./open-set.ts's positive-unlabelled
 *    model, whose other side is the library's unlabelled photos themselves (measured:
 *    bench/open-set.ts).
 * Pure and synchronous: no I/O, no tfjs.
 */
import { exactKnn, l2normalize } from './vector.ts';

/** A neighbour as the vote sees it (as in ./classify.ts): label (absent: unlabelled) and cosine. */
export interface CalibrationNeighbor {
  label?: string | null;
  score: number;
}

/** Per class: the similarity under which a photo is "unlike" it, and the typical similarity. */
export interface ClassTypicality {
  /** OPEN_SET_PERCENTILE of the in-class leave-one-out nearest similarities. */
  threshold: number;
  /** Their median (feature: how far a query is from a typical member). */
  median: number;
}

/** A fitted calibration, stored as JSON beside the head (LMDB `models`). */
export interface Calibration {
  format: 'pixdex-calibration-3';
  /** Neighbours of the vote it was fitted for. */
  k: number;
  /** Logistic regression on FEATURES: intercept first. */
  weights: number[];
  classes: Record<string, ClassTypicality>;
  /** For classes with too few photos of their own: the same over all classes. */
  pooled: ClassTypicality;
  /**
   * Every labelled photo it was fitted on, with its `openSetFeatures` (that photo left out of its
   * own vote): the labelled side of ./open-set.ts's model (null: no library given).
   */
  inSetExamples: InSetExample[] | null;
  /** Labelled photos it was fitted on (a sample of at most MAX_CALIBRATION_IMAGES). */
  images: number;
  /** What it changes when the labels change (refitted when this differs). */
  fingerprint: string;
}

/** A labelled photo as the open-set model sees it: its label and its open-set features. */
export interface InSetExample {
  label: string;
  x: number[];
}

/** The calibrated answer for one vote. */
export interface Calibrated {
  /** P(the vote's label is right), in [0, 1]. */
  confidence: number;
  /** The photo is less similar to the winning class than its own photos typically are. */
  unknown: boolean;
}

/**
 * Below this share of a class's own leave-one-out similarities, a query is unlike the class
 * (conformal: needs 99 photos of the class, or over all classes, to say so at all). Low,
 * because this embedding puts bees on flowers close to flowers: at 0.05 a twelfth of the
 * hymenoptera val photos were "unknown" against their own train photos; at 0.01 none were.
 */
export const OPEN_SET_PERCENTILE = 0.01;
/** Nearest photos of the whole library read by the open-set features. */
export const LIBRARY_NEIGHBORS = 10;
/** Nearest photos averaged on each side of `libraryGap`. */
export const GAP_NEIGHBORS = 3;
/** A class needs this many labelled photos for its own threshold (else the pooled one). */
const MIN_CLASS_PHOTOS = Math.ceil(1 / OPEN_SET_PERCENTILE) - 1;
/** Labelled photos the fit reads at most (evenly per class): leave-one-out is quadratic. */
export const MAX_CALIBRATION_IMAGES = 800;

/** Vote features: share, top, top − class median, mean similarity of the winner's neighbours, margin. */
function features(neighbors: readonly CalibrationNeighbor[], k: number, typ: ClassTypicality): { label: string; x: number[] } | null {
  const weight = new Map<string, number>();
  const top = new Map<string, number>();
  const count = new Map<string, number>();
  let total = 0;
  for (const n of neighbors.slice(0, k)) {
    if (n.label === undefined || n.label === null || n.label === '') continue;
    const w = Math.max(n.score, 0);
    weight.set(n.label, (weight.get(n.label) ?? 0) + w);
    top.set(n.label, Math.max(top.get(n.label) ?? -1, n.score));
    count.set(n.label, (count.get(n.label) ?? 0) + 1);
    total += w;
  }
  const ranked = [...weight.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (ranked.length === 0 || total <= 0) return null;
  const [label, w] = ranked[0];
  const t = top.get(label)!;
  return { label, x: [w / total, t, t - typ.median, w / count.get(label)!, (w - (ranked[1]?.[1] ?? 0)) / k] };
}

function typicalityOf(cal: Pick<Calibration, 'classes' | 'pooled'>, label: string): ClassTypicality {
  return cal.classes[label] ?? cal.pooled;
}

/**
 * Calibrates a kNN vote over `neighbors` (most similar first, as the searcher returns them).
 * No labelled neighbour with a positive score: confidence 0, not unknown (nothing to judge).
 */
export function calibrateVote(cal: Calibration, neighbors: readonly CalibrationNeighbor[]): Calibrated {
  const f = features(neighbors, cal.k, cal.pooled);
  if (!f) return { confidence: 0, unknown: false };
  const typ = typicalityOf(cal, f.label);
  const { x } = features(neighbors, cal.k, typ)!;
  return { confidence: logistic(cal.weights, x), unknown: x[1] < typ.threshold };
}

/**
 * How much closer a photo is to the library than to its labelled photos: mean cosine of its
 * GAP_NEIGHBORS nearest photos (labelled or not, itself excluded) minus the same over labelled
 * photos only; both lists most similar first. 0 when its neighbours are labelled.
 */
export function libraryGap(nearest: readonly number[], nearestLabelled: readonly number[]): number {
  const mean = (xs: readonly number[]) => {
    const top = xs.slice(0, GAP_NEIGHBORS);
    return top.length === 0 ? 0 : top.reduce((a, b) => a + b, 0) / top.length;
  };
  return Math.max(0, mean(nearest) - mean(nearestLabelled));
}

/**
 * Open-set features of a vote (null when no labelled neighbour has a positive score): top and
 * mean similarity of the winner's voters (as in `features`; not the share or the margin, which
 * the earlier model, fitted on hidden classes, could not use, and which add nothing to the
 * positive-unlabelled one: flowers17 4.1 / 75.8 % with the share against 4.3 / 75.9 %), then from
 * the photo's LIBRARY_NEIGHBORS nearest photos in the whole library (itself excluded, labelled or
 * not, most similar first): `libraryGap`, the share that is labelled, the share labelled with the
 * winner, and how many unlabelled ones come before the first labelled one. `k`: the vote's size.
 */
export function openSetFeatures(k: number, neighbors: readonly CalibrationNeighbor[], library: readonly CalibrationNeighbor[]): number[] | null {
  const f = features(neighbors, k, { threshold: -1, median: 0 });
  if (!f) return null;
  const lib = library.slice(0, LIBRARY_NEIGHBORS);
  const labelled = (n: CalibrationNeighbor) => n.label !== undefined && n.label !== null && n.label !== '';
  const first = lib.findIndex(labelled);
  const gap = libraryGap(lib.map((n) => n.score), neighbors.filter(labelled).map((n) => n.score));
  return [
    f.x[1], f.x[3],
    gap,
    lib.filter(labelled).length / LIBRARY_NEIGHBORS,
    lib.filter((n) => n.label === f.label).length / LIBRARY_NEIGHBORS,
    first < 0 ? LIBRARY_NEIGHBORS : first,
  ];
}

/** Options of `fitCalibration`. */
export interface FitOptions {
  k: number;
  fingerprint: string;
  /**
   * Each labelled photo's LIBRARY_NEIGHBORS nearest photos in the whole library, itself
   * excluded (same order as the vectors), when the library is known: keeps `inSetExamples`.
   */
  library?: ReadonlyArray<readonly CalibrationNeighbor[]>;
}

/**
 * Fits the calibration on labelled vectors (any scale; normalised here). Needs photos of at
 * least 2 classes; returns null otherwise (the vote's share is then all there is).
 */
export function fitCalibration(vectors: readonly Float32Array[], labels: readonly string[], o: FitOptions): Calibration | null {
  const pick = evenSample(labels, MAX_CALIBRATION_IMAGES);
  const units = pick.map((i) => l2normalize(vectors[i]));
  const names = pick.map((i) => labels[i]);
  if (new Set(names).size < 2) return null;
  const dim = units[0].length;
  const matrix = new Float32Array(units.length * dim);
  units.forEach((u, i) => matrix.set(u, i * dim));
  const n = units.length;

  // Every other photo, nearest first, once per photo: both kinds of example read from it.
  const ranked = units.map((u, i) => exactKnn(u, matrix, dim, n).filter((h) => h.index !== i));
  const nearestSame = new Map<string, number[]>();
  ranked.forEach((hits, i) => {
    const same = hits.find((h) => names[h.index] === names[i]);
    if (same) nearestSame.set(names[i], [...(nearestSame.get(names[i]) ?? []), same.score]);
  });
  const pooled = typicality([...nearestSame.values()].flat()) ?? { threshold: -1, median: 0 };
  const classes: Record<string, ClassTypicality> = {};
  for (const [label, sims] of nearestSame) if (sims.length >= MIN_CLASS_PHOTOS) classes[label] = typicality(sims)!;
  const cal = { classes, pooled };

  const xs: number[][] = [];
  const ys: number[] = [];
  const ws: number[] = [];
  const add = (hits: Array<{ index: number; score: number }>, truth: string) => {
    const neighbors = hits.slice(0, o.k).map((h) => ({ label: names[h.index], score: h.score }));
    const first = features(neighbors, o.k, pooled);
    if (!first) return;
    xs.push(features(neighbors, o.k, typicalityOf(cal, first.label))!.x);
    ys.push(first.label === truth ? 1 : 0);
    ws.push(1);
  };
  ranked.forEach((hits, i) => add(hits, names[i]));
  const inSetExamples = o.library ? leftOutFeatures(ranked, names, pick.map((i) => o.library![i] ?? []), o.k) : null;
  return { format: 'pixdex-calibration-3', k: o.k, weights: fitLogistic(xs, ys, ws), classes, pooled, inSetExamples, images: n, fingerprint: o.fingerprint };
}

/** `openSetFeatures` of each labelled photo classified against the others (itself left out). */
function leftOutFeatures(ranked: ReadonlyArray<ReadonlyArray<{ index: number; score: number }>>, names: readonly string[], library: ReadonlyArray<readonly CalibrationNeighbor[]>, k: number): InSetExample[] {
  const out: InSetExample[] = [];
  names.forEach((label, i) => {
    const neighbors = ranked[i].slice(0, k).map((h) => ({ label: names[h.index], score: h.score }));
    const x = openSetFeatures(k, neighbors, library[i]);
    if (x) out.push({ label, x: x.map((v) => Math.round(v * 1e6) / 1e6) });
  });
  return out;
}

function typicality(sims: number[]): ClassTypicality | null {
  if (sims.length === 0) return null;
  const s = [...sims].sort((a, b) => a - b);
  const m = conformalRank(s.length, OPEN_SET_PERCENTILE);
  return { threshold: m < 0 ? -1 : s[m], median: s[Math.floor(0.5 * (s.length - 1))] };
}

/**
 * Index into n sorted values below which (strictly) a new value is rarer than share `alpha`
 * (conformal: (1 + values beyond) / (n + 1) <= alpha); -1 when n is too small to tell, so a
 * class with few photos never calls a photo unknown on its own evidence.
 */
function conformalRank(n: number, alpha: number): number {
  return Math.floor(alpha * (n + 1)) - 1;
}

/** Up to `max` indices, the same share of every class, in a fixed order (deterministic). */
function evenSample(labels: readonly string[], max: number): number[] {
  if (labels.length <= max) return labels.map((_, i) => i);
  const step = labels.length / max;
  return Array.from({ length: max }, (_, j) => Math.floor(j * step));
}

export function logistic(w: readonly number[], x: readonly number[]): number {
  let z = w[0];
  for (let j = 0; j < x.length; j++) z += w[j + 1] * x[j];
  return 1 / (1 + Math.exp(-z));
}

/** Weighted logistic regression by gradient descent on standardised features (small L2). */
export function fitLogistic(xs: ReadonlyArray<readonly number[]>, ys: readonly number[], ws: readonly number[]): number[] {
  const d = xs[0]?.length ?? 0;
  if (xs.length === 0 || ys.every((y) => y === ys[0])) {
    const p = ys.length === 0 ? 0.5 : Math.min(0.99, Math.max(0.01, ys[0]));
    return [Math.log(p / (1 - p)), ...new Array<number>(d).fill(0)];
  }
  const wsum = ws.reduce((a, b) => a + b, 0);
  const mu = new Array<number>(d).fill(0);
  const sd = new Array<number>(d).fill(0);
  xs.forEach((x, i) => x.forEach((v, j) => (mu[j] += (ws[i] * v) / wsum)));
  xs.forEach((x, i) => x.forEach((v, j) => (sd[j] += (ws[i] * (v - mu[j]) ** 2) / wsum)));
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]) || 1;
  const zs = xs.map((x) => x.map((v, j) => (v - mu[j]) / sd[j]));
  const w = new Array<number>(d + 1).fill(0);
  for (let it = 0; it < 1500; it++) {
    const g = new Array<number>(d + 1).fill(0);
    zs.forEach((z, i) => {
      const e = ws[i] * (logistic(w, z) - ys[i]);
      g[0] += e;
      for (let j = 0; j < d; j++) g[j + 1] += e * z[j];
    });
    for (let j = 0; j <= d; j++) w[j] -= 0.5 * (g[j] / wsum + (j > 0 ? 1e-3 * w[j] : 0));
  }
  // Back to raw features, so the stored weights apply to `features` directly.
  return [w[0] - w.slice(1).reduce((a, v, j) => a + (v * mu[j]) / sd[j], 0), ...w.slice(1).map((v, j) => v / sd[j])];
}
