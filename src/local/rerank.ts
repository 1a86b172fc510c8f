/**
 * Geometric verification as a re-ranker (issue 14): the query photo's local features are matched
 * to each candidate's (ratio `VERIFY_RATIO`), the matches are checked for local geometric
 * consistency (`consistentInliers`, `verify.ts`), and the candidates are re-ordered: verified ones (≥ `VERIFIED_INLIERS`)
 * first, by inliers; the others by visual score plus a small inlier bonus (below). The visual score stays the hit's `score`;
 * `inliers`, `verified` and, for the best verified hits, an `outline` of where the object lies in
 * the query photo are added. Recipe and measurements: bench/local/README.md.
 *
 * Unverified candidates are ordered by `score + SOFT_WEIGHT·ln(1 + max(0, inliers − SOFT_FLOOR))`:
 * a few consistent matches above the chance level lift a building photographed from elsewhere.
 * With the Hough vote this cost category search (photos of different ants shared 4–9 chance
 * inliers: hymenoptera kNN@1 0.935 → 0.876); the local-consistency count's chance level is lower
 * (hymenoptera: p50 5, max 9) and the bonus leaves hymenoptera kNN@1 at 0.941 (0.935 without it)
 * while smvs landmarks go 0.713 → 0.772 P@1 and 0.812 → 0.851 R@5 (README).
 *
 * Candidates are checked in falling visual score, and checking stops once one has
 * `CLEAR_WINNER_INLIERS` and at least `minChecked` (the results asked for) were checked, so every
 * hit a search returns was checked: the rest keep their visual order, unchecked (no `inliers`). On smvs
 * book covers this checks ~25 instead of every candidate with the same P@1 and R@5
 * (bench/local/README.md, "Stopping early").
 */
import { matchFeatures, prepareQuery } from './match.ts';
import type { LocalFeatures } from './types.ts';
import { VERIFIED_INLIERS, VERIFY_RATIO, consistentInliers, homography, outline } from './verify.ts';

/** A candidate with its visual (global or regional) score. */
export interface Candidate {
  id: number;
  score: number;
}

/** A candidate after verification. */
export interface VerifiedCandidate extends Candidate {
  /** Absent when the candidate was not checked (a clear winner was found before it). */
  inliers?: number;
  verified: boolean;
  /** The candidate's corners in the query photo, as fractions of its width and height (best verified hits only). */
  outline?: Array<[number, number]>;
}

/** Weight and floor of the unverified candidates' inlier bonus (see the module comment). */
export const SOFT_WEIGHT = 0.1;
export const SOFT_FLOOR = 4;
/** The key unverified candidates are ordered by (highest first): the visual score plus the inlier bonus. */
export const softKey = (c: { score: number; inliers?: number }): number => c.score + SOFT_WEIGHT * Math.log1p(Math.max(0, (c.inliers ?? 0) - SOFT_FLOOR));

/** Verified hits that get an outline (a homography each: 2–19 ms, so only the first few). */
export const OUTLINED_HITS = 3;

/**
 * A candidate with this many inliers ends verification: no later (visually less similar)
 * candidate is checked. Wrong pairs stay far below it (`consistentInliers`: smvs ≤ 13, hymenoptera
 * ≤ 9); true book-cover and painting pairs have a median of 138 / 119.
 */
export const CLEAR_WINNER_INLIERS = 40;

/**
 * Verifies `candidates` against `query` and returns them in rank order: verified first, by
 * inliers; then by visual score plus a small inlier bonus. `featuresOf` gives a candidate's local features (undefined: it
 * has none, and keeps its visual score). Candidates are checked in falling visual score until one
 * has `clearWinner` inliers (Infinity: all) and at least `minChecked` were checked.
 */
export function verifyCandidates(query: LocalFeatures, candidates: readonly Candidate[], featuresOf: (id: number) => LocalFeatures | undefined, options: { clearWinner?: number; minChecked?: number } = {}): VerifiedCandidate[] {
  const { clearWinner = CLEAR_WINNER_INLIERS, minChecked = 0 } = options;
  const prepared = prepareQuery(query);
  const byScore = [...candidates].sort((a, b) => b.score - a.score || a.id - b.id);
  let stopped = false, winner = false;
  const checked = byScore.map((c, i) => {
    if (stopped) return { hit: { ...c, verified: false } as VerifiedCandidate, ref: undefined, matches: undefined, members: undefined };
    const ref = featuresOf(c.id);
    if (!ref || query.count < 2 || ref.count < 2) {
      if (winner && i + 1 >= minChecked) stopped = true;
      return { hit: { ...c, inliers: 0, verified: false } as VerifiedCandidate, ref, matches: undefined, members: undefined };
    }
    const matches = matchFeatures(prepared, ref, VERIFY_RATIO);
    const v = consistentInliers(query, ref, matches);
    if (v.inliers >= clearWinner) winner = true;
    if (winner && i + 1 >= minChecked) stopped = true;
    return { hit: { ...c, inliers: v.inliers, verified: v.inliers >= VERIFIED_INLIERS } as VerifiedCandidate, ref, matches, members: v.members };
  });
  checked.sort((a, b) => {
    const x = a.hit, y = b.hit;
    if (x.verified !== y.verified) return x.verified ? -1 : 1;
    if (x.verified) return y.inliers! - x.inliers! || y.score - x.score || x.id - y.id;
    return softKey(y) - softKey(x) || y.score - x.score || x.id - y.id;
  });
  for (const c of checked.slice(0, OUTLINED_HITS)) {
    if (!c.hit.verified || !c.ref || !c.matches) continue;
    const members = c.members!.map((i) => c.matches![i]);
    const H = homography(query, c.ref, members);
    const o = H && outline(H.H, c.ref, query);
    if (o) c.hit.outline = o;
  }
  return checked.map((c) => c.hit);
}
