/**
 * Duplicate groups from pairwise evidence (issue 15), pure: each compared pair is classified
 * (`pairKind`), the images joined by pairs of the asked kind form groups (connected components),
 * and each group lists its best copy first — most pixels, then the oldest file, then the lowest id.
 */
import type { DupeEdge } from '../store/lmdb.ts';

/** exact: the same bytes; near: the same picture edited or re-saved; similar: the same scene moments apart. */
export type DuplicateKind = 'exact' | 'near' | 'similar';
export const DUPLICATE_KINDS = Object.freeze(['exact', 'near', 'similar'] as const);

/** Where a pair stops being `near` or `similar` (src/duplicates/thresholds.ts has the measured defaults). */
export interface DuplicateThresholds {
  /** near, verified: pooled-vector cosine at least this and... */
  nearCosine: number;
  /** ...at least this many inliers (both images have local features). */
  nearInliers: number;
  /** near, not verifiable (either image has no local features): cosine at least this. */
  nearCosineAlone: number;
  /** similar: cosine at least this (and not near). */
  similarCosine: number;
}

/** The kind a compared pair is, or undefined (not a duplicate). `inliers` −1: not verified. */
export function pairKind(e: { cosine: number; inliers: number }, t: DuplicateThresholds): 'near' | 'similar' | undefined {
  if (e.inliers < 0 ? e.cosine >= t.nearCosineAlone : e.cosine >= t.nearCosine && e.inliers >= t.nearInliers) return 'near';
  if (e.cosine >= t.similarCosine) return 'similar';
  return undefined;
}

/** What a group shows of an image. */
export interface MemberFacts {
  id: number;
  path: string;
  width: number;
  height: number;
  bytes: number;
  mtimeMs: number;
  label?: string;
}

export interface GroupMember extends MemberFacts {
  /** The evidence joining it to the group's first member (absent for the first; null when only joined through others). */
  evidence?: { kind: 'near' | 'similar'; cosine: number; inliers: number } | null;
}

export interface DuplicateGroup {
  kind: DuplicateKind;
  /** Best copy first. */
  members: GroupMember[];
}

/** Best copy first: most pixels, then the oldest file, then the lowest id. */
export function bestFirst(a: MemberFacts, b: MemberFacts): number {
  return b.width * b.height - a.width * a.height || a.mtimeMs - b.mtimeMs || a.id - b.id;
}

/**
 * Groups of images joined by edges of `kind` (`similar` also follows `near` edges: a burst holds
 * its copies). `edges` gives each image's compared neighbours; `facts` an image's record
 * (undefined: gone, left out). Groups are ordered by size, then by their first member's id.
 */
export function groupEdges(
  edges: Iterable<{ id: number; edges: readonly DupeEdge[] }>,
  kind: 'near' | 'similar',
  t: DuplicateThresholds,
  facts: (id: number) => MemberFacts | undefined,
): DuplicateGroup[] {
  const parent = new Map<number, number>();
  const find = (x: number): number => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    for (let y = x; y !== r; ) {
      const next = parent.get(y)!;
      parent.set(y, r);
      y = next;
    }
    return r;
  };
  const joined = new Map<number, Map<number, DupeEdge & { kind: 'near' | 'similar' }>>();
  for (const { id, edges: list } of edges) {
    for (const e of list) {
      const k = pairKind(e, t);
      if (!k || (kind === 'near' && k !== 'near')) continue;
      for (const x of [id, e.id]) if (!parent.has(x)) parent.set(x, x);
      const a = find(id), b = find(e.id);
      if (a !== b) parent.set(Math.max(a, b), Math.min(a, b));
      for (const [x, y] of [[id, e.id], [e.id, id]]) {
        let m = joined.get(x);
        if (!m) joined.set(x, (m = new Map()));
        m.set(y, { id: y, cosine: e.cosine, inliers: e.inliers, kind: k });
      }
    }
  }
  const byRoot = new Map<number, MemberFacts[]>();
  for (const id of parent.keys()) {
    const f = facts(id);
    if (!f) continue;
    const root = find(id);
    const list = byRoot.get(root);
    if (list) list.push(f);
    else byRoot.set(root, [f]);
  }
  const groups: DuplicateGroup[] = [];
  for (const list of byRoot.values()) {
    if (list.length < 2) continue;
    list.sort(bestFirst);
    const first = list[0].id;
    const members: GroupMember[] = list.map((m, i) => {
      if (i === 0) return { ...m };
      const e = joined.get(m.id)?.get(first);
      return { ...m, evidence: e ? { kind: e.kind, cosine: e.cosine, inliers: e.inliers } : null };
    });
    groups.push({ kind, members });
  }
  return groups.sort((a, b) => b.members.length - a.members.length || a.members[0].id - b.members[0].id);
}
