/**
 * Quality figures on a labelled, folder-per-class dataset (`pixdex eval`): category retrieval
 * (leave-one-out P@1, P@10, mAP) and kNN classification (val vs train when the dataset has
 * splits, leave-one-out otherwise), with per-class precision/recall and a confusion matrix.
 * The maths here is pure; embedding the images is the engine's job.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidParameterError } from '../errors.ts';
import { accuracy, averagePrecision, confusionMatrix, knnVote, perClassPrecisionRecall, precisionAtK, type ClassScores, type ConfusionMatrix } from '../classify.ts';
import { l2normalize } from '../vector.ts';

/** One labelled image of a dataset. */
export interface DatasetItem {
  path: string;
  label: string;
  /** `train`/`val`/`test` when the dataset has split folders. */
  split?: string;
}

const SPLIT_NAMES = ['train', 'val', 'valid', 'validation', 'test'];

/**
 * Reads `<dir>/<class>/<image>` or `<dir>/<split>/<class>/<image>` (splits: train, val, test).
 * Only files with one of `extensions` count.
 */
export function loadDataset(dir: string, extensions: readonly string[]): DatasetItem[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new InvalidParameterError(`Dataset folder ${dir} does not exist; expected <dir>/<class>/<images> or <dir>/train|val/<class>/<images>.`);
  }
  const subdirs = (d: string) => fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const imagesOf = (d: string) => fs.readdirSync(d, { withFileTypes: true })
    .filter((e) => e.isFile() && extensions.includes(path.extname(e.name).toLowerCase()))
    .map((e) => path.join(d, e.name))
    .sort();
  const top = subdirs(dir);
  const splits = top.filter((s) => SPLIT_NAMES.includes(s.toLowerCase()));
  const items: DatasetItem[] = [];
  if (splits.length >= 2) {
    for (const split of splits) {
      for (const label of subdirs(path.join(dir, split))) {
        for (const p of imagesOf(path.join(dir, split, label))) items.push({ path: p, label, split: split.toLowerCase() });
      }
    }
  } else {
    for (const label of top) for (const p of imagesOf(path.join(dir, label))) items.push({ path: p, label });
  }
  if (new Set(items.map((i) => i.label)).size < 2) {
    throw new InvalidParameterError(`Dataset folder ${dir} has fewer than 2 classes with images; expected one sub-folder per class.`);
  }
  return items;
}

/** The figures `pixdex eval` reports. */
export interface EvalReport {
  images: number;
  classes: number;
  /** Leave-one-out category retrieval over all images (the query itself excluded). */
  retrieval: { p1: number; p10: number; mAP: number };
  /** kNN accuracy (distance-weighted vote) for k = 1, 5, 10. */
  knn: { protocol: 'train->val' | 'leave-one-out'; queries: number; k1: number; k5: number; k10: number };
  /** Per-class figures and confusion matrix of the k = 10 vote (rows truth, columns predicted). */
  perClass: Record<string, ClassScores>;
  confusion: ConfusionMatrix;
  /** Images that could not be embedded (left out of every figure). */
  failed: Array<{ path: string; error: string }>;
}

/** KNN sizes reported. */
const KNN_KS = [1, 5, 10] as const;

/**
 * Computes the report from one vector per item (undefined = failed to embed). Cosine similarity
 * on L2-normalised vectors, exact search (no ANN error in the figures).
 */
export function evaluate(items: readonly DatasetItem[], vectors: ReadonlyArray<Float32Array | undefined>, failed: EvalReport['failed'] = []): EvalReport {
  const ok = items.map((item, i) => ({ item, v: vectors[i] })).filter((x): x is { item: DatasetItem; v: Float32Array } => x.v !== undefined);
  const n = ok.length;
  if (n < 2) throw new InvalidParameterError(`Only ${n} image(s) could be embedded; evaluation needs at least 2.`);
  const dim = ok[0].v.length;
  const matrix = new Float32Array(n * dim);
  ok.forEach((x, i) => matrix.set(l2normalize(x.v), i * dim));
  return evaluateScores(ok.map((x) => x.item), (q) => dotRow(matrix.subarray(q * dim, (q + 1) * dim), matrix, dim), failed);
}

/** Similarities of `query` (unit length) to every row of `matrix` (n × dim, unit rows). */
export function dotRow(query: Float32Array, matrix: Float32Array, dim: number): Float32Array {
  const n = matrix.length / dim;
  const out = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    const off = r * dim;
    for (let k = 0; k < dim; k++) s += query[k] * matrix[off + k];
    out[r] = s;
  }
  return out;
}

/** The `k` best rows of a score row, best first, skipping `exclude`d rows. */
export function topRows(scores: Float32Array, k: number, exclude?: (row: number) => boolean): Array<{ index: number; score: number }> {
  const rows: Array<{ index: number; score: number }> = [];
  for (let i = 0; i < scores.length; i++) if (!exclude?.(i)) rows.push({ index: i, score: scores[i] });
  rows.sort((a, b) => b.score - a.score || a.index - b.index);
  return rows.slice(0, k);
}

/**
 * The report from a similarity function: `scoresOf(q)` gives item q's similarity to every item
 * (a row of n; higher = more similar). Used for any descriptor, including regional matching,
 * whose similarity is not a dot product of two vectors. `knnScoresOf` (default: `scoresOf`) is
 * the similarity the kNN vote uses, when classification searches differently from retrieval.
 */
export function evaluateScores(items: readonly DatasetItem[], scoresOf: (q: number) => Float32Array, failed: EvalReport['failed'] = [], knnScoresOf?: (q: number) => Float32Array): EvalReport {
  const n = items.length;
  if (n < 2) throw new InvalidParameterError(`Only ${n} image(s) could be embedded; evaluation needs at least 2.`);
  const labels = items.map((x) => x.label);
  const classSize = new Map<string, number>();
  for (const l of labels) classSize.set(l, (classSize.get(l) ?? 0) + 1);
  const rows = Array.from({ length: n }, (_, q) => scoresOf(q));

  // Leave-one-out retrieval: rank every other image.
  let p1 = 0;
  let p10 = 0;
  let ap = 0;
  for (let q = 0; q < n; q++) {
    const ranked = topRows(rows[q], n - 1, (row) => row === q);
    const relevant = ranked.map((r) => labels[r.index] === labels[q]);
    const total = classSize.get(labels[q])! - 1;
    p1 += relevant[0] ? 1 : 0;
    p10 += precisionAtK(relevant, Math.min(10, relevant.length));
    ap += total > 0 ? averagePrecision(relevant, total) : 0;
  }

  // kNN: val -> train when both splits exist, else leave-one-out over everything.
  const splitOf = (i: number) => items[i].split;
  const hasSplits = items.some((x) => x.split === 'train') && items.some((x) => x.split && x.split !== 'train');
  const queries = [...Array(n).keys()].filter((i) => !hasSplits || splitOf(i) !== 'train');
  const base = hasSplits ? (row: number) => splitOf(row) !== 'train' : undefined;
  const truth: string[] = [];
  const predictions: Record<number, Array<string | null>> = { 1: [], 5: [], 10: [] };
  for (const q of queries) {
    const exclude = (row: number) => row === q || (base ? base(row) : false);
    const nn = topRows(knnScoresOf ? knnScoresOf(q) : rows[q], 10, exclude);
    truth.push(labels[q]);
    for (const k of KNN_KS) {
      predictions[k].push(knnVote(nn.slice(0, k).map((h) => ({ label: labels[h.index], score: h.score }))).label);
    }
  }
  const round = (x: number) => Math.round(x * 10000) / 10000;
  const classes = [...classSize.keys()].sort();
  return {
    images: n,
    classes: classes.length,
    retrieval: { p1: round(p1 / n), p10: round(p10 / n), mAP: round(ap / n) },
    knn: {
      protocol: hasSplits ? 'train->val' : 'leave-one-out',
      queries: queries.length,
      k1: round(accuracy(truth, predictions[1])),
      k5: round(accuracy(truth, predictions[5])),
      k10: round(accuracy(truth, predictions[10])),
    },
    perClass: perClassPrecisionRecall(truth, predictions[10], classes),
    confusion: confusionMatrix(truth, predictions[10], classes),
    failed,
  };
}
