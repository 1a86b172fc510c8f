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
    const flush = (): void => {
      this.records.dupes.putMany(batch);
      batch = [];
    };
    for (const id of todo) {
      if (options.signal?.aborted) break;
      batch.push({ id, edges: this.compare(id) });
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

  /** The evidence between image `id` and its nearest neighbours (those above `CANDIDATE_COSINE`). */
  compare(id: number): DupeEdge[] {
    const space = this.records.space();
    const query = this.records.unitVector(space, id);
    const own = this.records.unitVector({ kind: 'backbone' }, id);
    if (!query || !own) return [];
    const hits = this.sync.index.search(query, DUPLICATE_NEIGHBOURS + 1, undefined, NEIGHBOUR_EF);
    let prepared: ReturnType<typeof prepareQuery> | undefined | null;
    const edges: DupeEdge[] = [];
    for (const h of hits) {
      if (h.id === id) continue;
      const other = this.records.unitVector({ kind: 'backbone' }, h.id);
      if (!other) continue;
      const cosine = dot(own, other);
      if (cosine < CANDIDATE_COSINE) continue;
      if (prepared === undefined) {
        const f = this.words.featuresOf(id);
        prepared = f && f.count >= 2 ? prepareQuery(f) : null;
      }
      const ref = prepared ? this.words.featuresOf(h.id) : undefined;
      const inliers = prepared && ref && ref.count >= 2 ? houghInliers(prepared.features, ref, matchFeatures(prepared, ref)).inliers : -1;
      edges.push({ id: h.id, cosine: Math.round(cosine * 1e6) / 1e6, inliers });
    }
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
