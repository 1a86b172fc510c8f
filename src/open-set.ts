/**
 * Which unlabelled photos of a library belong to no labelled class, from each one's
 * P(in set) (`inSetProbability` in ./calibration.ts, fitted at an even prior) and its nearest
 * photos in the library. Two transductive steps, both using the unlabelled photos themselves:
 *  1. the prior: how many of the unlabelled photos are of classes nobody labelled is estimated
 *     by EM (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new
 *     a priori probabilities"), and every P(in set) is adjusted from the even prior to it;
 *  2. the neighbourhood: photos of an unlabelled class sit among each other, so a photo's answer
 *     is the mean of its own adjusted P(in set) and its SMOOTHING_NEIGHBORS nearest photos'
 *     (a labelled photo counts 1); below 1/2 it is unknown.
 * Measured on flowers17 with 3, 6 or 9 classes labelled: bench/open-set.ts.
 * Pure and synchronous: no I/O.
 */

/** Nearest library photos averaged with a photo's own P(in set). */
export const SMOOTHING_NEIGHBORS = 10;
/** EM rounds for the prior (it settles in far fewer). */
const EM_ROUNDS = 100;

/** One unlabelled photo: its P(in set) at an even prior, and its nearest photos (itself excluded). */
export interface OpenSetItem {
  id: number;
  pIn: number;
  neighbors: ReadonlyArray<{ id: number; label?: string | null }>;
}

/** The decision for each item (same order), and the estimated share of photos of unlabelled classes. */
export interface OpenSetDecision {
  unknown: boolean[];
  /** Adjusted and averaged P(in set) of each item. */
  inSet: number[];
  unknownShare: number;
}

/** P at an even prior moved to the prior `unknownShare` of the negative class. */
function adjust(p: number, unknownShare: number): number {
  const a = p * (1 - unknownShare);
  const b = (1 - p) * unknownShare;
  return a + b === 0 ? 0.5 : a / (a + b);
}

/** Estimates the share of items of no labelled class by EM on their P(in set) (0 with no items). */
export function unknownShareOf(pIns: readonly number[]): number {
  if (pIns.length === 0) return 0;
  let share = 0.5;
  for (let round = 0; round < EM_ROUNDS; round++) {
    const next = 1 - pIns.reduce((a, p) => a + adjust(p, share), 0) / pIns.length;
    const clamped = Math.min(0.999, Math.max(0.001, next));
    if (Math.abs(clamped - share) < 1e-6) return clamped;
    share = clamped;
  }
  return share;
}

/**
 * Decides over all unlabelled photos at once (the prior and the neighbourhood need them all).
 * A neighbour that is neither labelled nor among `items` does not count.
 */
export function decideOpenSet(items: readonly OpenSetItem[]): OpenSetDecision {
  const unknownShare = unknownShareOf(items.map((it) => it.pIn));
  const adjusted = new Map(items.map((it) => [it.id, adjust(it.pIn, unknownShare)]));
  const inSet = items.map((it) => {
    let sum = adjusted.get(it.id)!;
    let n = 1;
    for (const nb of it.neighbors.slice(0, SMOOTHING_NEIGHBORS)) {
      const labelled = nb.label !== undefined && nb.label !== null && nb.label !== '';
      const p = labelled ? 1 : adjusted.get(nb.id);
      if (p === undefined) continue;
      sum += p;
      n++;
    }
    return sum / n;
  });
  return { unknown: inSet.map((p) => p < 0.5), inSet, unknownShare };
}
