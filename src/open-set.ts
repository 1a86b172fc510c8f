/**
 * Which unlabelled photos of a library belong to no labelled class, from each one's open-set
 * features (`openSetFeatures` in ./calibration.ts) and its nearest photos in the library. Both
 * steps use the unlabelled photos themselves:
 *  1. P(in set), learnt from positive and unlabelled examples (Elkan & Noto 2008, "Learning
 *     classifiers from only positive and unlabeled data"): a logistic regression tells the
 *     labelled photos (each left out of its own vote: `Calibration.inSetExamples`) from the
 *     unlabelled ones. If a class's labelled photos are a random pick of its photos, the
 *     output on a photo of that class is c · P(in set), where c, the chance that a photo of the
 *     class is labelled, is the output's mean over the class's labelled photos; so P(in set) =
 *     output / c of the class the photo is voted. c is per class because people label a few of
 *     each class, not a fixed share of it (ants and bees with 10 of ~120 labelled beside daisies
 *     with 10 of 80: one c for all let 36.7 % of the strangers through, one per class 25.4 %).
 *     Unlike a model of strangers simulated by hiding labelled classes (the rule before), it
 *     learns what the library's real strangers look like, and it stays bounded with a handful of
 *     labels per class (flowers17, 10 labelled photos per class: 3.4 % of the unlabelled classes'
 *     photos suggested where the hidden-class model let 17.3 % through);
 *  2. the neighbourhood: photos of an unlabelled class sit among each other, so a photo's answer
 *     is the mean of its own P(in set) and its SMOOTHING_NEIGHBORS nearest photos' (a labelled
 *     photo counts 1); below 1/2 it is unknown.
 * Measured on flowers17 with 3, 6 or 9 classes labelled: bench/open-set.ts.
 * Pure and synchronous: no I/O.
 */
import { fitLogistic, logistic, type InSetExample } from './calibration.ts';

/** Nearest library photos averaged with a photo's own P(in set). */
export const SMOOTHING_NEIGHBORS = 10;
/** Unlabelled photos the model is fitted on at most (evenly; every photo is then judged). */
export const MAX_FIT_UNLABELLED = 5000;

/** One unlabelled photo: its vote's label and open-set features (null: no labelled neighbour), and its nearest photos (itself excluded). */
export interface OpenSetItem {
  id: number;
  label: string | null;
  x: readonly number[] | null;
  neighbors: ReadonlyArray<{ id: number; label?: string | null }>;
}

/** The decision for each item (same order), and the estimated share of photos of unlabelled classes. */
export interface OpenSetDecision {
  unknown: boolean[];
  /** P(in set) of each item, averaged with its neighbours'. */
  inSet: number[];
  /** 1 − the mean P(in set) over the items (0 with no items). */
  unknownShare: number;
}

/**
 * P(in set) of each item (same order) from the positive-unlabelled model; `inSet` are the
 * labelled photos. An item without features (no labelled neighbour) gets 0; with no labelled
 * examples there is nothing to compare, and every item with features gets 1.
 */
export function inSetProbabilities(items: readonly OpenSetItem[], inSet: readonly InSetExample[]): number[] {
  const unlabelled = items.flatMap((it) => (it.x ? [it.x] : []));
  if (inSet.length === 0 || unlabelled.length === 0) return items.map((it) => (it.x ? 1 : 0));
  const step = Math.max(1, unlabelled.length / MAX_FIT_UNLABELLED);
  const sample = Array.from({ length: Math.min(unlabelled.length, MAX_FIT_UNLABELLED) }, (_, j) => unlabelled[Math.floor(j * step)]);
  const xs = [...inSet.map((e) => e.x), ...sample];
  const ys = [...inSet.map(() => 1), ...sample.map(() => 0)];
  // The sample stands for every unlabelled photo: weighted so the mix of the two sides is the library's.
  const w = fitLogistic(xs, ys, ys.map((y) => (y === 1 ? 1 : unlabelled.length / sample.length)));
  const sums = new Map<string, { sum: number; n: number }>();
  let all = 0;
  for (const e of inSet) {
    const g = logistic(w, e.x);
    const s = sums.get(e.label) ?? { sum: 0, n: 0 };
    sums.set(e.label, { sum: s.sum + g, n: s.n + 1 });
    all += g;
  }
  const cOf = (label: string | null) => {
    const s = label === null ? undefined : sums.get(label);
    return s ? s.sum / s.n : all / inSet.length;
  };
  return items.map((it) => (it.x ? Math.min(1, logistic(w, it.x) / cOf(it.label)) : 0));
}

/**
 * Decides over all unlabelled photos at once (the model and the neighbourhood need them all).
 * A neighbour that is neither labelled nor among `items` does not count.
 */
export function decideOpenSet(items: readonly OpenSetItem[], inSet: readonly InSetExample[]): OpenSetDecision {
  const own = inSetProbabilities(items, inSet);
  const byId = new Map(items.map((it, i) => [it.id, own[i]]));
  const averaged = items.map((it, i) => {
    let sum = own[i];
    let n = 1;
    for (const nb of it.neighbors.slice(0, SMOOTHING_NEIGHBORS)) {
      const labelled = nb.label !== undefined && nb.label !== null && nb.label !== '';
      const p = labelled ? 1 : byId.get(nb.id);
      if (p === undefined) continue;
      sum += p;
      n++;
    }
    return sum / n;
  });
  const unknownShare = items.length === 0 ? 0 : 1 - own.reduce((a, b) => a + b, 0) / items.length;
  return { unknown: averaged.map((p) => p < 0.5), inSet: averaged, unknownShare };
}
