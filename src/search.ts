/**
 * Search: one pipeline. Describe the query → shortlist → re-rank → hits. It resolves the space
 * and `k` once per query. A query photo in a `regional` library is matched by its windows
 * (shortlist from HNSW per window, re-ranked by the regional score); an indexed image, a kNN
 * vote or a plain library by its global vector; `expand` (αQE) is an option on top.
 */
import type { Hit } from './ann.ts';
import { expandVector } from './descriptors.ts';
import type { Describer } from './describe.ts';
import { DEFAULT_EXPAND, DEFAULT_K, MAX_EXPAND, MAX_K, MIN_K } from './contracts/limits.ts';
import { InvalidParameterError, NotFoundError, intParam } from './errors.ts';
import type { IndexSync } from './index-sync.ts';
import { isRegional, libraryRegional, regionalScore } from './library-descriptor.ts';
import type { BackboneSpec } from './models/backbone.ts';
import type { Records } from './store/records.ts';
import type { SpaceInfo } from './store/lmdb.ts';
import { dot, l2normalize } from './vector.ts';
import { dateWindow, type DateWindow } from './dates.ts';
import { CaptureDates } from './capture-dates.ts';
import { verifyCandidates, type VerifiedCandidate } from './local/rerank.ts';
import type { LocalFeatures } from './local/types.ts';
import { VOCABULARY_MIN_IMAGES, storedFeatures, type VisualWords } from './local/visual-words.ts';

/** Which embedding space: the backbone's global vector, or the library's autoencoder. */
export type SpaceKind = SpaceInfo['kind'];

/** Largest `k` a search accepts, the default, and the largest `expand`: in the contracts (src/contracts/limits.ts). */
export { DEFAULT_K, MAX_EXPAND, MAX_K } from './contracts/limits.ts';

/** One search result (DESIGN.md CLI/HTTP contract). */
export interface SearchResult {
  id: number;
  path: string;
  /** Cosine similarity, highest first. */
  score: number;
  label: string | null;
  /** With local features: matches that agree geometrically (src/local/verify.ts consistentInliers). */
  inliers?: number;
  /** With local features: the same object was found (≥ VERIFIED_INLIERS inliers); verified hits come first. */
  verified?: boolean;
  /** A verified hit's corners in the query photo, as fractions of its width and height (the best few hits). */
  outline?: Array<[number, number]>;
  /** When the photo was taken (ISO 8601, from its EXIF; src/image/metadata.ts), when known. */
  takenAt?: string;
}

export interface SearchOptions {
  /** Number of results (default: 10, 1..MAX_K). */
  k?: number;
  /** Only images with this label. */
  label?: string;
  /**
   * Only images taken at or after this time (inclusive), an ISO 8601 date or date-time; a time
   * without an offset is read as UTC, as photos' offset-less capture times are. Images without a
   * capture date are left out whenever `after` or `before` is given.
   */
  after?: string;
  /** Only images taken before this time (exclusive: `before: '2021-06-06'` ends with 5 June); as `after`. */
  before?: string;
  /** Leave this id out (used for similar-by-id). */
  excludeId?: number;
  /** Only images that have a label (a kNN vote over labelled neighbours). */
  labelled?: boolean;
  /**
   * Search this space instead of the active one: `backbone` while an autoencoder space is active
   * is answered by exact search over the stored global vectors (default: the active space).
   */
  space?: SpaceKind;
  /**
   * Average query expansion (αQE): the query is averaged with the vectors of its `expand` best
   * hits (weighted by their similarity) and searched again; in a `regional` search the final
   * score is the better of the regional and the expanded match. 0 = off (default; 0..MAX_EXPAND).
   * Raises category retrieval (flowers17 mAP +0.03 to +0.04), lowers instance P@1: off by default.
   */
  expand?: number;
  /**
   * In a library with local features, verify the candidates geometrically and re-rank them
   * (default: true); false gives the visual ranking alone (for comparison: `pixdex eval`).
   */
  verify?: boolean;
}

/** αQE weight exponent: neighbour i weighs its similarity^α (α = 1 measured best with n = 2; bench/descriptors.ts). */
const QE_ALPHA = 1;
/** Candidates each query window brings to the exact regional re-ranking (at least k). */
const REGIONAL_SHORTLIST = 10;
/** HNSW beam of the window searches: they gather candidates, the re-ranking orders them. */
const REGIONAL_EF = 64;
/**
 * A window within this cosine of one already searched is not searched again (its neighbours are
 * the same): 8 searches instead of 30 on average, with the same P@1 and R@5 on the flowers17
 * instance set (bench/instance.ts); every window still takes part in the re-ranking.
 */
const REGIONAL_SAME_WINDOW = 0.97;

/**
 * Candidates the visual (regional or global) ranking brings to verification (bench/local/README.md:
 * top-50; 100 since the local-consistency check: two smvs landmarks' references rank 54th and 67th).
 */
export const VERIFY_SHORTLIST = 100;
/** Candidates the visual-word inverted index adds (images the global vector missed). */
export const WORDS_SHORTLIST = 20;

/** A query's resolved parameters: checked once. */
interface Query {
  k: number;
  expand: number;
  /** The space searched, and whether it is searched exactly (no HNSW index over it). */
  space: SpaceInfo;
  exact: boolean;
  filter?: (id: number) => boolean;
}

export class Searcher {
  /** Capture instants by id, for the date filters (and `stats`' date range). */
  readonly dates: CaptureDates;

  constructor(
    private readonly records: Records,
    private readonly sync: IndexSync,
    private readonly describer: Describer,
    private readonly spec: BackboneSpec,
    private readonly words: VisualWords,
  ) {
    this.dates = new CaptureDates(records);
  }

  /** The space named by a CLI/HTTP `space` option, checked against what exists (default: active). */
  spaceFor(kind?: SpaceKind, active = this.records.space()): SpaceInfo {
    if (kind === undefined || kind === active.kind) return active;
    if (kind === 'backbone') return { kind: 'backbone' };
    throw new InvalidParameterError('The library has no autoencoder space yet: run `pixdex train` first, or use --space backbone.');
  }

  private resolve(o: SearchOptions): Query {
    const k = intParam('k', o.k ?? DEFAULT_K, MIN_K, MAX_K);
    const expand = intParam('expand', o.expand ?? DEFAULT_EXPAND, 0, MAX_EXPAND);
    const active = this.sync.refresh();
    const space = this.spaceFor(o.space, active);
    const dates = dateWindow(o);
    if (dates) this.dates.refresh();
    return { k, expand, space, exact: space.kind !== active.kind, filter: this.filter(o, dates) };
  }

  /**
   * Nearest images to an encoded query image. In a library with local features the visual
   * shortlist and the visual-word candidates are verified geometrically and re-ranked
   * (src/local/rerank.ts).
   */
  async search(bytes: Uint8Array, options: SearchOptions = {}): Promise<SearchResult[]> {
    const q = this.resolve(options);
    const local = options.verify !== false && this.records.local.setting().enabled;
    const { embedding: e, features } = await this.describer.describeQueryWithFeatures(bytes, this.records.space(), 'query image', local);
    const extra = features ? this.wordCandidates(features, q) : [];
    const n = features ? Math.max(q.k, VERIFY_SHORTLIST) : q.k;
    const hits = e.windows && q.space.kind === 'backbone' ? this.windows(e.windows, q, n, extra) : this.vector(q.space.kind === 'backbone' ? e.pooled : e.code ?? e.pooled, q, n, extra);
    if (!features) return this.toResults(hits.slice(0, q.k));
    const records = this.records.local.featuresOf(hits.map((h) => h.id)); // every candidate's, in one read of the store
    const stored = new Map(hits.map((h, i) => [h.id, records[i]]));
    const here = () => verifyCandidates(features, hits, (id) => storedFeatures(stored.get(id)), { minChecked: q.k });
    const pool = this.describer.queryPool; // the server's: verified in a worker, off the thread answering requests
    const verified = pool ? await pool.verify({ query: features, candidates: hits, minChecked: q.k, records, here }) : here();
    return this.toResults(verified.slice(0, q.k));
  }

  /**
   * Images the visual-word index finds for a query photo's features; before the library has a
   * vocabulary (a small library) every image with features, up to `VOCABULARY_MIN_IMAGES`.
   */
  private wordCandidates(features: LocalFeatures, q: Query): number[] {
    const found = this.words.candidates(features, WORDS_SHORTLIST, q.filter);
    if (found) return found.map((h) => h.id);
    const all: number[] = [];
    for (const id of this.records.local.featureIds()) {
      if (all.length >= VOCABULARY_MIN_IMAGES) break;
      if (!q.filter || q.filter(id)) all.push(id);
    }
    return all;
  }

  /** Nearest images to an indexed image (itself excluded). */
  similar(id: number, options: SearchOptions = {}): SearchResult[] {
    const q = this.resolve({ ...options, excludeId: id });
    const v = this.records.spaceVector(q.space, id);
    if (!v || !this.records.exists(id)) throw new NotFoundError(`No image with id ${id}.`);
    return this.toResults(this.vector(v, q, q.k));
  }

  /** Nearest images to a (not necessarily normalised) vector of the searched space. */
  searchVector(vector: Float32Array, options: SearchOptions = {}): SearchResult[] {
    const q = this.resolve(options);
    return this.toResults(this.vector(vector, q, q.k));
  }

  /** The `n` best by cosine to `vector` (with αQE when asked), `extra` ids scored and merged in. */
  private vector(vector: Float32Array, q: Query, n: number, extra: readonly number[] = []): Hit[] {
    let query = l2normalize(vector);
    let hits = this.shortlist(query, q, Math.max(n, q.expand));
    if (q.expand > 0 && hits.length > 0) {
      const best = hits.slice(0, q.expand);
      const vectors = this.records.unitVectors(q.space, best.map((h) => h.id));
      const top = best.flatMap((h, i) => (vectors[i] ? [{ v: vectors[i], score: h.score }] : []));
      query = expandVector(query, top.map((t) => t.v), top.map((t) => t.score), QE_ALPHA);
      hits = this.shortlist(query, q, n);
    }
    hits = hits.slice(0, n);
    const seen = new Set(hits.map((h) => h.id));
    const more = [...new Set(extra)].filter((id) => !seen.has(id));
    this.records.unitVectors(q.space, more).forEach((u, i) => u && hits.push({ id: more[i], score: dot(query, u) }));
    return hits;
  }

  /** The `n` nearest by the HNSW index of the active space, or exactly in another space. */
  private shortlist(query: Float32Array, q: Query, n: number, ef?: number): Hit[] {
    return q.exact ? this.exact(query, q.space, n, q.filter) : this.sync.index.search(query, n, q.filter, ef);
  }

  /**
   * Regional matching (a `regional` library, backbone space): each query window (but those
   * nearly the same as one already searched) finds its `REGIONAL_SHORTLIST` nearest global
   * vectors, and the union is re-ranked exactly by the best window × database-side match
   * (src/library-descriptor.ts). The full window is the global query, so an ordinary query
   * keeps its plain answer among the candidates.
   */
  private windows(windows: Float32Array, q: Query, n: number, extra: readonly number[] = []): Hit[] {
    const d = this.spec.dims;
    const descriptor = this.describer.descriptor; // the windows were embedded by it (Engine.open checks it matches the library)
    const plan = libraryRegional(this.spec, isRegional(descriptor) ? descriptor : 'regional'); // windows come from a regional library only
    const shortlist = Math.max(n, REGIONAL_SHORTLIST);
    const candidates = new Set<number>(extra);
    const searched: Float32Array[] = [];
    for (let r = plan.windows - 1; r >= 0; r--) { // the full window (the global query) first, then smaller ones
      const w = windows.subarray(r * d, (r + 1) * d);
      if (searched.some((x) => dot(x, w) >= REGIONAL_SAME_WINDOW)) continue; // it would bring the same candidates
      searched.push(w);
      for (const h of this.shortlist(w, q, shortlist, REGIONAL_EF)) candidates.add(h.id);
    }
    const globals = new Map<number, Float32Array>();
    const scored = new Map<number, number>();
    const score = (ids: Iterable<number>): void => { // each new candidate's vector and scales, in one read of the store
      const fresh = [...new Set(ids)].filter((id) => !scored.has(id));
      const vectors = this.records.unitVectors({ kind: 'backbone' }, fresh);
      const scales = this.records.scalesOf(fresh);
      fresh.forEach((id, i) => {
        const u = vectors[i];
        if (!u) return;
        globals.set(id, u);
        scored.set(id, regionalScore(plan, windows, u, scales[i], d));
      });
    };
    score(candidates);
    const ranked = (): Hit[] => [...scored].map(([id, s]) => ({ id, score: s })).sort((a, b) => b.score - a.score || a.id - b.id);
    if (q.expand > 0 && scored.size > 0) {
      // αQE on the global vectors: the full window (the query's global vector) averaged with the best regional hits.
      const top = ranked().slice(0, q.expand);
      const e = expandVector(windows.subarray((plan.windows - 1) * d, plan.windows * d), top.map((h) => globals.get(h.id)!), top.map((h) => h.score), QE_ALPHA);
      score(this.shortlist(e, q, shortlist, REGIONAL_EF).map((h) => h.id));
      for (const [id, u] of globals) scored.set(id, Math.max(scored.get(id)!, dot(e, u)));
    }
    const all = ranked();
    const top = all.slice(0, n);
    const kept = new Set(top.map((h) => h.id));
    const wanted = new Set(extra);
    return [...top, ...all.filter((h) => !kept.has(h.id) && wanted.has(h.id))];
  }

  /** The id filter of a search's options (label, labelled, excluded id, capture dates), or undefined for none. */
  private filter(o: SearchOptions, dates?: DateWindow): ((id: number) => boolean) | undefined {
    const { label, excludeId, labelled } = o;
    if (label === undefined && excludeId === undefined && !labelled && !dates) return undefined;
    return (id) => {
      if (id === excludeId) return false;
      if (dates) {
        const t = this.dates.of(id); // NaN (no date) fails both comparisons
        if (!(t >= dates.after && t < dates.before)) return false;
      }
      if (label === undefined && !labelled) return true;
      const l = this.records.get(id)?.label;
      return label === undefined ? l !== undefined : l === label;
    };
  }

  /** Exact cosine search over every stored vector of `space` (for a space without an index). */
  private exact(query: Float32Array, space: SpaceInfo, k: number, filter?: (id: number) => boolean): Hit[] {
    const hits: Hit[] = [];
    for (const id of this.records.ids()) {
      if (filter && !filter(id)) continue;
      const v = this.records.unitVector(space, id);
      if (v) hits.push({ id, score: dot(v, query) });
    }
    return hits.sort((a, b) => b.score - a.score || a.id - b.id).slice(0, k);
  }

  private toResults(hits: Array<Hit | VerifiedCandidate>): SearchResult[] {
    const out: SearchResult[] = [];
    const records = this.records.getMany(hits.map((h) => h.id));
    for (const [i, h] of hits.entries()) {
      const rec = records[i];
      if (!rec) continue;
      const r: SearchResult = { id: h.id, path: rec.path, score: Math.min(1, h.score), label: rec.label ?? null };
      if (rec.takenAt !== undefined) r.takenAt = rec.takenAt;
      if ('inliers' in h) {
        r.inliers = h.inliers;
        r.verified = h.verified;
        if (h.outline) r.outline = h.outline;
      }
      out.push(r);
    }
    return out;
  }
}
