/**
 * Geometric verification as a re-ranker (issue 14): the query photo's local features are matched
 * to each candidate's, the matches are checked for one consistent similarity transform (a 4-D
 * Hough vote, `verify.ts`), and the candidates are re-ordered: verified ones (≥ `VERIFIED_INLIERS`)
 * first, by inliers; the others keep their visual order. The visual score stays the hit's `score`;
 * `inliers`, `verified` and, for the best verified hits, an `outline` of where the object lies in
 * the query photo are added. Recipe and measurements: bench/local/README.md.
 *
 * Unverified candidates are not re-ordered by their few inliers: a soft bonus
 * (`score + 0.2·ln(1 + inliers)`) lifted smvs landmarks P@1 from 0.545 to 0.663 but dropped
 * hymenoptera kNN@1 from 0.935 to 0.876 — photos of different ants share 4–9 chance inliers, as
 * many as a landmark photographed from elsewhere shares with its reference; no floor or per-query
 * noise level separated the two (bench/local/rank-rule.ts).
 */
import { matchFeatures, prepareQuery } from './match.ts';
import type { LocalFeatures } from './types.ts';
import { VERIFIED_INLIERS, homography, houghInliers, outline } from './verify.ts';

/** A candidate with its visual (global or regional) score. */
export interface Candidate {
  id: number;
  score: number;
}

/** A candidate after verification. */
export interface VerifiedCandidate extends Candidate {
  inliers: number;
  verified: boolean;
  /** The candidate's corners in the query photo, as fractions of its width and height (best verified hits only). */
  outline?: Array<[number, number]>;
}

/** Verified hits that get an outline (a homography each: 2–19 ms, so only the first few). */
export const OUTLINED_HITS = 3;

/**
 * Verifies `candidates` against `query` and returns them in rank order: verified first, by
 * inliers; then by visual score. `featuresOf` gives a
 * candidate's local features (undefined: it has none, and keeps its visual score).
 */
export function verifyCandidates(query: LocalFeatures, candidates: readonly Candidate[], featuresOf: (id: number) => LocalFeatures | undefined): VerifiedCandidate[] {
  const prepared = prepareQuery(query);
  const checked = candidates.map((c) => {
    const ref = featuresOf(c.id);
    if (!ref || query.count < 2 || ref.count < 2) return { hit: { ...c, inliers: 0, verified: false } as VerifiedCandidate, ref, matches: undefined, members: undefined };
    const matches = matchFeatures(prepared, ref);
    const v = houghInliers(query, ref, matches);
    return { hit: { ...c, inliers: v.inliers, verified: v.inliers >= VERIFIED_INLIERS } as VerifiedCandidate, ref, matches, members: v.members };
  });
  checked.sort((a, b) => {
    const x = a.hit, y = b.hit;
    if (x.verified !== y.verified) return x.verified ? -1 : 1;
    if (x.verified) return y.inliers - x.inliers || y.score - x.score || x.id - y.id;
    return y.score - x.score || x.id - y.id;
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
