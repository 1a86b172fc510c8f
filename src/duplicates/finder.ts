/**
 * Finding near-duplicates without comparing all pairs (issue 15): each image not checked yet is
 * compared with its `DUPLICATE_NEIGHBOURS` nearest images in the HNSW index (the k-NN graph, one
 * search per image); a neighbour close enough (`CANDIDATE_COSINE`, pooled backbone vectors) is
 * kept as an edge with its cosine and, when both images have local features, the inliers of a
 * geometric verification (src/local). Edges live in LMDB (src/store/duplicates.ts), so a run only
 * checks new or changed images; groups are formed from the stored edges when asked for.
 */
import type { IndexSync } from '../index-sync.ts';
import { matchFeatures, prepareQuery } from '../local/match.ts';
import { houghInliers } from '../local/verify.ts';
import type { VisualWords } from '../local/visual-words.ts';
import type { Records } from '../store/records.ts';
import type { DupeEdge } from '../store/lmdb.ts';
import type { LocalFeatures } from '../local/types.ts';
import { dot } from '../vector.ts';
import { type DuplicateGroup, type DuplicateKind, type DuplicateThresholds, type MemberFacts, groupEdges } from './groups.ts';

/** Nearest images each image is compared with. */
export const DUPLICATE_NEIGHBOURS = 10;
/** Neighbours below this cosine are not kept (no duplicate kind starts lower). */
export const CANDIDATE_COSINE = 0.7;
/** Images whose comparisons are written in one transaction (a commit per image was half the write time at 100k). */
const CHECK_BATCH = 64;
/** Longest stretch a check runs without yielding to the event loop. */
export const YIELD_MS = 50;
/** HNSW beam of the neighbour searches. */
export const NEIGHBOUR_EF = 64;

export interface CheckProgress {
  done: number;
  total: number;
  rate: number;
  etaSeconds: number;
}

export interface CheckOptions {
  signal?: AbortSignal;
  onProgress?: (p: CheckProgress) => void;
}

export interface CheckSummary {
  checked: number;
  seconds: number;
  interrupted: boolean;
}

export class DuplicateFinder {
  constructor(
    private readonly records: Records,
    private readonly sync: IndexSync,
    private readonly words: VisualWords,
  ) {}

  /** Images still to compare with their neighbours (new, changed, or given local features since). */
  pending(): number[] {
    return this.records.dupes.unchecked();
  }

  /**
   * Compares every image not checked yet with its neighbours and stores the evidence. Yields to
   * the event loop every `YIELD_MS` (a server keeps answering during a long first check); one
   * check at a time per library handle — a second caller waits, then checks what is left.
   */
  async check(options: CheckOptions = {}): Promise<CheckSummary> {
    while (this.running) await this.running.catch(() => undefined);
    const run = this.run(options);
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = undefined;
    }
  }

  private running?: Promise<CheckSummary>;

  private async run(options: CheckOptions): Promise<CheckSummary> {
    const started = performance.now();
    let lastYield = started;
    this.sync.refresh();
    const todo = this.pending();
    let done = 0;
    let lastReport = 0;
    let batch: Array<{ id: number; edges: DupeEdge[] }> = [];
    const memo = new PairMemo(todo);
    const flush = (): void => {
      this.records.dupes.putMany(batch);
      batch = [];
    };
    for (const id of todo) {
      if (options.signal?.aborted) break;
      batch.push({ id, edges: this.compare(id, memo) });
      done++;
      if (batch.length >= CHECK_BATCH) flush();
      let now = performance.now();
      if (now - lastYield > YIELD_MS) {
        flush();
        await new Promise((resolve) => setImmediate(resolve));
        this.sync.refresh(); // writes by others meanwhile (an upload, a removal)
        now = lastYield = performance.now();
      }
      if (options.onProgress && (now - lastReport > 250 || done === todo.length)) {
        lastReport = now;
        const rate = done / Math.max(1e-3, (now - started) / 1000);
        options.onProgress({ done, total: todo.length, rate, etaSeconds: (todo.length - done) / rate });
      }
    }
    flush();
    return { checked: done, seconds: Math.round((performance.now() - started) / 100) / 10, interrupted: done < todo.length };
  }

  /** Compares one new or changed image (an upload) with its neighbours now. */
  checkOne(id: number): void {
    this.records.dupes.put(id, this.compare(id));
  }

  /**
   * The evidence between image `id` and its nearest neighbours (those above `CANDIDATE_COSINE`).
   * A pair's inliers are always counted from the lower id to the higher, so both images of a
   * pair get the same count whichever is checked first; `memo` keeps the count of a pair whose
   * other image a run has still to check (each pair is matched once per run, not twice).
   */
  compare(id: number, memo?: PairMemo): DupeEdge[] {
    const space = this.records.space();
    const query = this.records.unitVector(space, id);
    const own = this.records.unitVector({ kind: 'backbone' }, id);
    if (!query || !own) return [];
    const hits = this.sync.index.search(query, DUPLICATE_NEIGHBOURS + 1, undefined, NEIGHBOUR_EF);
    let mine: LocalFeatures | undefined | null;
    const edges: DupeEdge[] = [];
    for (const h of hits) {
      if (h.id === id) continue;
      const other = this.records.unitVector({ kind: 'backbone' }, h.id);
      if (!other) continue;
      const cosine = dot(own, other);
      if (cosine < CANDIDATE_COSINE) continue;
      let inliers = memo?.take(id, h.id);
      if (inliers === undefined) {
        if (mine === undefined) mine = usable(this.words.featuresOf(id));
        const theirs = mine ? usable(this.words.featuresOf(h.id)) : null;
        inliers = mine && theirs ? (id < h.id ? pairInliers(mine, theirs) : pairInliers(theirs, mine)) : -1;
        memo?.keep(id, h.id, inliers);
      }
      edges.push({ id: h.id, cosine: Math.round(cosine * 1e6) / 1e6, inliers });
    }
    memo?.done(id);
    return edges;
  }

  /** Groups of `kind` from the stored evidence (call `check` first for new images). */
  groups(kind: DuplicateKind, t: DuplicateThresholds): DuplicateGroup[] {
    const facts = (id: number): MemberFacts | undefined => {
      const r = this.records.get(id);
      return r && { id, path: r.path, width: r.width, height: r.height, bytes: r.bytes, mtimeMs: r.mtimeMs, ...(r.label !== undefined ? { label: r.label } : {}) };
    };
    if (kind === 'exact') {
      const out: DuplicateGroup[] = [];
      for (const [id, paths] of this.records.dupes.aliasGroups()) {
        const f = facts(id);
        if (f) out.push({ kind, members: paths.map((path) => ({ ...f, path })) });
      }
      return out.sort((a, b) => b.members.length - a.members.length || a.members[0].id - b.members[0].id);
    }
    return groupEdges(this.records.dupes.all(), kind, t, facts);
  }
}

/** Features with at least the 2 keypoints a ratio test needs, else null. */
function usable(f: LocalFeatures | undefined): LocalFeatures | null {
  return f && f.count >= 2 ? f : null;
}

/** Hough-verified inliers of `lower`'s features (the lower id) matched against `higher`'s. */
function pairInliers(lower: LocalFeatures, higher: LocalFeatures): number {
  return houghInliers(lower, higher, matchFeatures(prepareQuery(lower), higher)).inliers;
}

/**
 * The inliers of pairs whose second image a check run has not reached yet, held until it does
 * (then dropped): memory bounded by the edges towards unchecked images.
 */
export class PairMemo {
  private readonly pending: Set<number>;
  private readonly waiting = new Map<number, Map<number, number>>();

  constructor(todo: readonly number[]) {
    this.pending = new Set(todo);
  }

  /** The count kept for (`id`, `other`) while checking `id`, if `other` computed it. */
  take(id: number, other: number): number | undefined {
    return this.waiting.get(id)?.get(other);
  }

  /** Keeps the count for `other`'s turn, if it is still to be checked in this run. */
  keep(id: number, other: number, inliers: number): void {
    if (!this.pending.has(other)) return;
    let m = this.waiting.get(other);
    if (!m) this.waiting.set(other, (m = new Map()));
    m.set(id, inliers);
  }

  /** `id` is checked: what was kept for it is no longer needed. */
  done(id: number): void {
    this.pending.delete(id);
    this.waiting.delete(id);
  }
}
