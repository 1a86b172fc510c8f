/**
 * Labels from neighbours (distance-weighted kNN vote) and the quality figures reported by
 * `pixdex eval`: accuracy, precision/recall@k, (m)AP, confusion matrix, ANN recall.
 * Pure and synchronous: no I/O, no tfjs.
 */
import { invalidParameter, numberParam, intParam } from './errors.ts';

/** A neighbour as the vote sees it: its label (absent when unlabelled) and cosine similarity. */
export interface VoteNeighbor {
  label?: string | null;
  score: number;
}

/** Options of `knnVote`. */
export interface VoteOptions {
  /** Below this confidence the vote abstains (label null); 0 never abstains (default: 0). */
  minConfidence?: number;
  /** Exponent p of the weight max(score, 0)^p; higher favours the nearest neighbours (default: 1). */
  power?: number;
}

/** Outcome of a kNN vote; `votes` maps each label seen to its summed weight. */
export interface VoteResult {
  label: string | null;
  confidence: number;
  votes: Record<string, number>;
}

/** Relative gap under which two summed weights count as tied (sums in another order differ by ~1e-16). */
const TIE_EPSILON = 1e-9;

/**
 * Weight of one neighbour: max(score, 0)^power. Chosen over exp(score/τ) because it needs no
 * temperature tuned to one embedding's score range, gives no say to dissimilar (score ≤ 0)
 * neighbours, and with power 1 is the classic similarity-weighted kNN.
 */
export function voteWeight(score: number, power = 1): number {
  return score > 0 ? Math.pow(score, power) : 0;
}

/**
 * Distance-weighted kNN vote, so the label of a query follows its most similar labelled images.
 * Unlabelled neighbours (label undefined, null or '') are skipped, not counted as a class.
 * confidence = winner's weight / total weight, in [0, 1] (1 for a unanimous vote). The label is
 * null when no labelled neighbour has a positive score or confidence < minConfidence.
 * Ties (within 1e-9 relative) go to the label with the higher top score, then alphabetically.
 */
export function knnVote(neighbors: readonly VoteNeighbor[], opts: VoteOptions = {}): VoteResult {
  const minConfidence = numberParam('minConfidence', opts.minConfidence ?? 0, 0, 1);
  const power = opts.power ?? 1;
  if (typeof power !== 'number' || !Number.isFinite(power) || power <= 0) {
    throw invalidParameter('power', 'finite number > 0', power);
  }

  const weight = new Map<string, number>();
  const top = new Map<string, number>();
  let total = 0;
  for (const n of neighbors) {
    if (!Number.isFinite(n.score)) throw invalidParameter('neighbor score', 'finite number', n.score);
    if (n.label === undefined || n.label === null || n.label === '') continue;
    const w = voteWeight(n.score, power);
    weight.set(n.label, (weight.get(n.label) ?? 0) + w);
    top.set(n.label, Math.max(top.get(n.label) ?? -Infinity, n.score));
    total += w;
  }
  // Heaviest first, so `votes` reads as a ranking in JSON output.
  const ranked = [...weight.keys()].sort((a, b) => weight.get(b)! - weight.get(a)! || (a < b ? -1 : 1));
  const votes = Object.fromEntries(ranked.map((l) => [l, weight.get(l)!]));
  if (total <= 0) return { label: null, confidence: 0, votes };

  let best = ranked[0];
  for (const label of ranked.slice(1)) {
    const gap = weight.get(label)! - weight.get(best)!;
    if (gap < -TIE_EPSILON * total) break; // ranked by weight: no later label can win
    const [tl, tb] = [top.get(label)!, top.get(best)!];
    if (gap > TIE_EPSILON * total || tl > tb || (tl === tb && label < best)) best = label;
  }
  const confidence = Math.min(1, weight.get(best)! / total);
  return { label: confidence < minConfidence ? null : best, confidence, votes };
}

// ---------------------------------------------------------------------------------------------
// Metrics. Conventions: an empty input yields 0 (figures stay numeric in JSON); a null prediction
// is an abstention and counts as wrong; ranked lists are booleans, true = relevant.

function sameLengths(truth: readonly unknown[], pred: readonly unknown[]): void {
  if (truth.length !== pred.length) {
    throw invalidParameter('pred', `${truth.length} predictions (one per truth label)`, `${pred.length}`);
  }
}

function hitsInTop(relevant: readonly boolean[], k: number): number {
  let hits = 0;
  const end = Math.min(k, relevant.length);
  for (let i = 0; i < end; i++) if (relevant[i]) hits++;
  return hits;
}

/** Share of exact matches; abstentions (null) count as wrong, so abstaining never inflates it. */
export function accuracy(truth: readonly string[], pred: readonly (string | null)[]): number {
  sameLengths(truth, pred);
  if (truth.length === 0) return 0;
  let ok = 0;
  for (let i = 0; i < truth.length; i++) if (pred[i] !== null && pred[i] === truth[i]) ok++;
  return ok / truth.length;
}

/**
 * Average precision of one ranked list: mean of precision@i over the ranks i of relevant hits,
 * divided by `totalRelevant` so relevant items never retrieved count as misses
 * (default: the hits in the list). 0 when there is nothing relevant.
 */
export function averagePrecision(relevant: readonly boolean[], totalRelevant?: number): number {
  const hits = hitsInTop(relevant, relevant.length);
  const total = totalRelevant ?? hits;
  if (!Number.isInteger(total) || total < hits) {
    throw invalidParameter('totalRelevant', `integer ≥ ${hits} (the relevant items in the list)`, totalRelevant);
  }
  if (total === 0) return 0;
  let seen = 0;
  let sum = 0;
  for (let i = 0; i < relevant.length; i++) {
    if (relevant[i]) sum += ++seen / (i + 1);
  }
  return sum / total;
}

/** One query of an evaluation: its ranked relevance list and how many relevant items exist. */
export interface RankedQuery {
  relevant: readonly boolean[];
  totalRelevant?: number;
}

/** mAP: the mean of `averagePrecision` over queries, the headline retrieval figure of `pixdex eval`. */
export function meanAveragePrecision(queries: readonly RankedQuery[]): number {
  if (queries.length === 0) return 0;
  let sum = 0;
  for (const q of queries) sum += averagePrecision(q.relevant, q.totalRelevant);
  return sum / queries.length;
}

/** Share of the top k that is relevant; a list shorter than k counts its missing ranks as misses. */
export function precisionAtK(relevant: readonly boolean[], k: number): number {
  intParam('k', k, 1, Number.MAX_SAFE_INTEGER);
  return hitsInTop(relevant, k) / k;
}

/** Share of all `totalRelevant` items found in the top k; 0 when there is nothing relevant. */
export function recallAtK(relevant: readonly boolean[], k: number, totalRelevant: number): number {
  intParam('k', k, 1, Number.MAX_SAFE_INTEGER);
  const hits = hitsInTop(relevant, k);
  if (!Number.isInteger(totalRelevant) || totalRelevant < hitsInTop(relevant, relevant.length)) {
    throw invalidParameter('totalRelevant', 'integer ≥ the relevant items in the list', totalRelevant);
  }
  return totalRelevant === 0 ? 0 : hits / totalRelevant;
}

/**
 * Counts of (truth, prediction) pairs: `matrix[i][j]` = items of `labels[i]` predicted as
 * `labels[j]`; abstentions (null) go to `unknown[i]`, kept apart so no label name is reserved.
 */
export interface ConfusionMatrix {
  labels: string[];
  matrix: number[][];
  unknown: number[];
}

/**
 * Where a classifier goes wrong, class by class. `labels` fixes the order; labels that occur
 * but are not listed are appended sorted, never dropped (default: all labels, sorted).
 */
export function confusionMatrix(
  truth: readonly string[],
  pred: readonly (string | null)[],
  labels: readonly string[] = [],
): ConfusionMatrix {
  sameLengths(truth, pred);
  const order = [...new Set(labels)];
  const known = new Set(order);
  const extra = new Set<string>();
  for (const l of [...truth, ...pred]) if (l !== null && !known.has(l)) extra.add(l);
  order.push(...[...extra].sort());
  const at = new Map(order.map((l, i) => [l, i]));
  const matrix = order.map(() => new Array<number>(order.length).fill(0));
  const unknown = new Array<number>(order.length).fill(0);
  for (let i = 0; i < truth.length; i++) {
    const r = at.get(truth[i])!;
    const p = pred[i];
    if (p === null) unknown[r]++;
    else matrix[r][at.get(p)!]++;
  }
  return { labels: order, matrix, unknown };
}

/** Precision, recall, F1 and support (items whose truth is the label) of one class. */
export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/**
 * Per-class scores, to see which labels the vote gets wrong. Abstentions lower recall but not
 * precision; a ratio with a zero denominator is 0.
 */
export function perClassPrecisionRecall(
  truth: readonly string[],
  pred: readonly (string | null)[],
  labels?: readonly string[],
): Record<string, ClassScores> {
  const cm = confusionMatrix(truth, pred, labels);
  return Object.fromEntries(cm.labels.map((label, i): [string, ClassScores] => {
    const tp = cm.matrix[i][i];
    const support = cm.matrix[i].reduce((a, b) => a + b, 0) + cm.unknown[i];
    const predicted = cm.matrix.reduce((a, row) => a + row[i], 0);
    const precision = predicted === 0 ? 0 : tp / predicted;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return [label, { precision, recall, f1, support }];
  }));
}

/** Options of `formatConfusionTable`. */
export interface ConfusionTableOptions {
  /** Longer labels are cut with '…' so the table fits a terminal (default: 12). */
  maxLabelWidth?: number;
}

function fit(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, Math.max(1, width - 1))}…`;
}

/**
 * The confusion matrix as fixed-width text for a TTY: rows = truth, columns = predicted, zeros
 * shown as '.' so the diagonal and the errors stand out; a '(none)' column appears when some
 * predictions abstained, and a 'total' column gives each class's support.
 */
export function formatConfusionTable(cm: ConfusionMatrix, opts: ConfusionTableOptions = {}): string {
  const maxw = intParam('maxLabelWidth', opts.maxLabelWidth ?? 12, 2, 1000);
  const showNone = cm.unknown.some((n) => n > 0);
  const heads = [...cm.labels.map((l) => fit(l, maxw)), ...(showNone ? ['(none)'] : []), 'total'];
  const rows = cm.labels.map((_, i) => {
    const cells = [...cm.matrix[i], ...(showNone ? [cm.unknown[i]] : [])];
    const total = cells.reduce((a, b) => a + b, 0);
    return [...cells.map((n) => (n === 0 ? '.' : String(n))), String(total)];
  });
  const corner = 'truth \\ pred';
  const rowHeads = cm.labels.map((l) => fit(l, maxw));
  const w0 = Math.max(corner.length, ...rowHeads.map((h) => h.length));
  const widths = heads.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j].length)));
  const line = (first: string, cells: string[]): string =>
    [first.padEnd(w0), ...cells.map((c, j) => c.padStart(widths[j]))].join('  ').trimEnd();
  return [line(corner, heads), ...rows.map((r, i) => line(rowHeads[i], r))].join('\n') + '\n';
}

/**
 * ANN recall@k: mean over queries of |approx top-k ∩ exact top-k| / |exact top-k|, to pick
 * HNSW parameters against `exactKnn`. A query with no exact neighbours counts as 1 (nothing to
 * miss); no queries gives 0. Ties at the k-th exact score can cost recall for a correct ANN.
 */
export function recallAgainstExact(
  approx: readonly (readonly number[])[],
  exact: readonly (readonly number[])[],
  k: number,
): number {
  intParam('k', k, 1, Number.MAX_SAFE_INTEGER);
  if (approx.length !== exact.length) {
    throw invalidParameter('approx', `${exact.length} result lists (one per query)`, `${approx.length}`);
  }
  if (exact.length === 0) return 0;
  let sum = 0;
  for (let q = 0; q < exact.length; q++) {
    const truth = new Set(exact[q].slice(0, k));
    if (truth.size === 0) {
      sum += 1;
      continue;
    }
    let found = 0;
    for (const id of new Set(approx[q].slice(0, k))) if (truth.has(id)) found++;
    sum += found / truth.size;
  }
  return sum / exact.length;
}
