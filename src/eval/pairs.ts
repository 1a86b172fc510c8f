/**
 * `pixdex eval --queries DIR --references DIR`: the same object in a real photo. Every reference
 * image is indexed into a library, then every query photo is searched twice through
 * `engine.search` (k = 5): with geometric verification (the product's default) and without it
 * (the visual ranking alone). A query is right when its reference comes back; the figures are
 * P@1, R@5 and the latency of each `engine.search` call (decode included), per mode.
 *
 * Queries and references pair by file name (the layout of `smvs/<category>/{query,reference}`,
 * whose ground truth is "query/NNN.jpg shows the object of reference/NNN.jpg"): see `pairByName`.
 * A query without a reference is reported and skipped, never silently.
 *
 * The pairing and the metrics are pure functions; `evaluatePairs` is the run against an engine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Engine, IndexProgress, SearchResult } from '../engine.ts';
import { InvalidParameterError, NotFoundError } from '../errors.ts';

/** Results asked of each search: R@5 needs five. */
export const PAIRS_K = 5;

// ------------------------------------------------------------------------------------ pairing

/** A query photo and the reference image it shows. */
export interface Pair {
  query: string;
  reference: string;
  /** Which rule paired them (see `pairByName`). */
  rule: 'name' | 'stem' | 'number';
}

export interface Pairing {
  pairs: Pair[];
  /** Queries no reference (or more than one) answers to: skipped, and reported. */
  unpaired: Array<{ query: string; reason: string }>;
  /** References no query names: still indexed (they are distractors), counted here. */
  unusedReferences: string[];
}

const stemOf = (file: string): string => path.basename(file, path.extname(file));
const numberOf = (stem: string): string | undefined => (/^\d+$/.test(stem) ? String(Number(stem)) : undefined);

/**
 * Pairs query photos with references by file name, the first rule that gives exactly one
 * reference deciding:
 *   1. `name`: the same file name (`query/012.jpg` → `reference/012.jpg`; smvs's ground truth);
 *   2. `stem`: the same name without the extension, case aside (`IMG_7.JPG` → `img_7.png`);
 *   3. `number`: an all-digit name with the same number (`12.jpg` → `012.jpg`; smvs mixes `0000`
 *      and `001` widths).
 * A rule that finds several references makes the query ambiguous (reported, not guessed).
 * Paths keep their folders; only their last part is compared. Pure.
 */
export function pairByName(queries: readonly string[], references: readonly string[]): Pairing {
  const index = (key: (file: string) => string | undefined): Map<string, string[]> => {
    const m = new Map<string, string[]>();
    for (const r of references) {
      const k = key(r);
      if (k === undefined) continue;
      const list = m.get(k);
      if (list) list.push(r);
      else m.set(k, [r]);
    }
    return m;
  };
  const rules: Array<{ rule: Pair['rule']; key: (file: string) => string | undefined; map: Map<string, string[]> }> = [];
  for (const [rule, key] of [
    ['name', (f: string) => path.basename(f)],
    ['stem', (f: string) => stemOf(f).toLowerCase()],
    ['number', (f: string) => numberOf(stemOf(f))],
  ] as const) rules.push({ rule, key, map: index(key) });

  const pairs: Pair[] = [];
  const unpaired: Pairing['unpaired'] = [];
  const used = new Set<string>();
  for (const query of queries) {
    let found: Pair | undefined;
    let reason = `no reference named ${stemOf(path.basename(query))}.*`;
    for (const { rule, key, map } of rules) {
      const k = key(query);
      const list = k === undefined ? undefined : map.get(k);
      if (!list) continue;
      if (list.length > 1) {
        reason = `ambiguous: ${list.length} references match by ${rule} (${list.map((r) => path.basename(r)).join(', ')})`;
        break;
      }
      found = { query, reference: list[0], rule };
      break;
    }
    if (found) {
      pairs.push(found);
      used.add(found.reference);
    } else {
      unpaired.push({ query, reason });
    }
  }
  return { pairs, unpaired, unusedReferences: references.filter((r) => !used.has(r)) };
}

// ------------------------------------------------------------------------------------ metrics

/** One search of one query in one mode. */
export interface ModeOutcome {
  /** 1-based rank of the reference among the results, or null when it is not among them. */
  rank: number | null;
  /** Milliseconds of the `engine.search` call. */
  ms: number;
  /** The top result was marked verified (the same object found geometrically). */
  topVerified: boolean;
}

/** The figures of one mode over every evaluated query. */
export interface ModeReport {
  queries: number;
  /** Reference first. */
  p1: number;
  /** Reference among the first 5. */
  r5: number;
  hitsAt1: number;
  hitsAt5: number;
  /** Milliseconds per `engine.search` call (decode included): nearest-rank percentiles. */
  latencyMs: { p50: number; p90: number; mean: number; max: number };
  /** Queries whose top result was verified, how many of those were the reference, and how many were not. */
  verifiedTop: number;
  verifiedTopCorrect: number;
  falseVerified: number;
}

/** 1-based rank of the first result `isTarget` accepts, or null. Pure. */
export function rankOf(results: readonly SearchResult[], isTarget: (r: SearchResult) => boolean): number | null {
  const i = results.findIndex(isTarget);
  return i < 0 ? null : i + 1;
}

/** The nearest-rank `p`-quantile (0 < p ≤ 1) of `values`; NaN for none. Pure. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

const round = (x: number, digits: number): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/** P@1, R@5, latency and verified-top counts of one mode. Pure. */
export function summarizeMode(outcomes: readonly ModeOutcome[]): ModeReport {
  const n = outcomes.length;
  const hitsAt1 = outcomes.filter((o) => o.rank === 1).length;
  const hitsAt5 = outcomes.filter((o) => o.rank !== null && o.rank <= PAIRS_K).length;
  const ms = outcomes.map((o) => o.ms);
  const verifiedTop = outcomes.filter((o) => o.topVerified).length;
  const verifiedTopCorrect = outcomes.filter((o) => o.topVerified && o.rank === 1).length;
  return {
    queries: n,
    p1: n ? round(hitsAt1 / n, 4) : NaN,
    r5: n ? round(hitsAt5 / n, 4) : NaN,
    hitsAt1,
    hitsAt5,
    latencyMs: {
      p50: round(percentile(ms, 0.5), 1),
      p90: round(percentile(ms, 0.9), 1),
      mean: round(n ? ms.reduce((a, b) => a + b, 0) / n : NaN, 1),
      max: round(n ? Math.max(...ms) : NaN, 1),
    },
    verifiedTop,
    verifiedTopCorrect,
    falseVerified: verifiedTop - verifiedTopCorrect,
  };
}

// ------------------------------------------------------------------------------------ files

/**
 * The image files directly in `dir` (absolute, sorted). A missing folder is NOT_FOUND; a file,
 * or a folder without images, INVALID_PARAMETER naming it (`what`: "--queries").
 */
export function imageFilesIn(dir: string, extensions: readonly string[], what: string): string[] {
  const abs = path.resolve(dir);
  let entries: fs.Dirent[];
  try {
    if (!fs.statSync(abs).isDirectory()) throw new InvalidParameterError(`${what} ${abs} is a file; expected a folder of images.`);
    entries = fs.readdirSync(abs, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`${what} folder ${abs} does not exist.`);
    throw err;
  }
  const files = entries.filter((e) => e.isFile() && extensions.includes(path.extname(e.name).toLowerCase())).map((e) => path.join(abs, e.name)).sort();
  if (files.length === 0) {
    const sub = entries.filter((e) => e.isDirectory()).map((e) => e.name);
    throw new InvalidParameterError(`${what} ${abs} holds no images directly (${extensions.join(' ')})${sub.length ? `; it has the folders ${sub.slice(0, 5).join(', ')}: point ${what} at the folder of images itself (e.g. smvs/book_covers/query)` : ''}.`);
  }
  return files;
}

// ------------------------------------------------------------------------------------ the run

export interface PairsProgress {
  stage: 'index' | 'query';
  done: number;
  total: number;
  /** Images (index) or queries (query) per second so far. */
  rate: number;
  etaSeconds: number;
}

export interface PairsOptions {
  onProgress?: (p: PairsProgress) => void;
  onWarning?: (message: string) => void;
  /** Stops after the index batch or the query in flight; the report says `interrupted`. */
  signal?: AbortSignal;
}

/** One query's outcome in both modes. */
export interface QueryRecord {
  query: string;
  reference: string;
  verified: ModeOutcome & { top: string | null; inliers?: number };
  visual: ModeOutcome & { top: string | null };
}

export interface PairsReport {
  queriesDir: string;
  referencesDir: string;
  backend: string;
  backbone: string;
  descriptor: string;
  /** Local features on in the library: without them both modes are the visual ranking. */
  localFeatures: boolean;
  cores: number;
  index: { references: number; indexed: number; unchanged: number; failed: number; seconds: number; imagesPerSecond: number | null; libraryImages: number; errors: Array<{ path: string; error: string }> };
  /** Paired queries searched (both modes). */
  queries: number;
  unpaired: Pairing['unpaired'];
  unusedReferences: number;
  /** Paired queries whose search failed (unreadable photo...): left out of the figures. */
  failed: Array<{ query: string; error: string }>;
  verified: ModeReport;
  visual: ModeReport;
  /** One untimed search per mode before the timed ones (model load, OpenCV start). */
  warmupMs: number;
  querySeconds: number;
  /** os.loadavg() (1, 5, 15 min) when the run started, after indexing, and at the end. */
  loadavg: { start: number[]; afterIndex: number[]; end: number[] };
  interrupted: boolean;
  perQuery: QueryRecord[];
}

const loadavg = (): number[] => os.loadavg().map((x) => round(x, 2));

/**
 * Indexes the references into `engine`'s library and searches every paired query with and without
 * verification (see the module comment). The library is the caller's: a temporary one, or one it
 * means to keep; references already in it are unchanged and not indexed again.
 */
export async function evaluatePairs(engine: Engine, dirs: { queries: string; references: string }, options: PairsOptions = {}): Promise<PairsReport> {
  const { onProgress, signal } = options;
  const start = loadavg();
  const queryFiles = imageFilesIn(dirs.queries, engine.config.extensions, '--queries');
  const referenceFiles = imageFilesIn(dirs.references, engine.config.extensions, '--references');
  const pairing = pairByName(queryFiles, referenceFiles);
  if (pairing.pairs.length === 0) {
    throw new InvalidParameterError(`None of the ${queryFiles.length} queries in ${path.resolve(dirs.queries)} names a reference in ${path.resolve(dirs.references)} (a query pairs with the reference of the same file name).`);
  }

  const summary = await engine.index(referenceFiles, {
    signal,
    onWarning: options.onWarning,
    onProgress: (p: IndexProgress) => onProgress?.({ stage: 'index', done: p.done, total: p.total, rate: p.rate, etaSeconds: p.etaSeconds }),
  });
  const indexed = summary.added + summary.updated;
  const afterIndex = loadavg();
  const idOf = (file: string): number | undefined => {
    try {
      return engine.resolve(file);
    } catch {
      return undefined; // not indexed (failed): its query can only miss
    }
  };
  const localFeatures = engine.records.local.setting().enabled;

  const perQuery: QueryRecord[] = [];
  const failed: PairsReport['failed'] = [];
  let warmupMs = 0;
  const started = performance.now();
  for (const [i, pair] of pairing.pairs.entries()) {
    if (signal?.aborted || summary.interrupted) break;
    const refId = idOf(pair.reference);
    const isTarget = (r: SearchResult): boolean => (refId !== undefined ? r.id === refId : path.resolve(r.path) === pair.reference);
    try {
      const bytes = await fs.promises.readFile(pair.query);
      if (i === 0) { // untimed: the first search loads the model and OpenCV
        const w = performance.now();
        await engine.search(bytes, { k: PAIRS_K, verify: true });
        await engine.search(bytes, { k: PAIRS_K, verify: false });
        warmupMs = round(performance.now() - w, 1);
      }
      const run = async (verify: boolean) => {
        const t = performance.now();
        const results = await engine.search(bytes, { k: PAIRS_K, verify });
        const ms = performance.now() - t;
        return { results, ms: round(ms, 2) };
      };
      // Alternate which mode goes first, so neither always finds the other's work warm.
      let v, g;
      if (i % 2 === 0) {
        v = await run(true);
        g = await run(false);
      } else {
        g = await run(false);
        v = await run(true);
      }
      const top = (rs: SearchResult[]) => rs[0]?.path ?? null;
      perQuery.push({
        query: pair.query,
        reference: pair.reference,
        verified: { rank: rankOf(v.results, isTarget), ms: v.ms, topVerified: v.results[0]?.verified === true, top: top(v.results), ...(v.results[0]?.inliers === undefined ? {} : { inliers: v.results[0].inliers }) },
        visual: { rank: rankOf(g.results, isTarget), ms: g.ms, topVerified: g.results[0]?.verified === true, top: top(g.results) },
      });
    } catch (err) {
      failed.push({ query: pair.query, error: err instanceof Error ? err.message : String(err) });
    }
    const done = i + 1;
    const seconds = (performance.now() - started) / 1000;
    const rate = done / seconds;
    onProgress?.({ stage: 'query', done, total: pairing.pairs.length, rate, etaSeconds: (pairing.pairs.length - done) / rate });
  }
  const querySeconds = round((performance.now() - started) / 1000, 1);
  const info = await engine.backendInfo();
  return {
    queriesDir: path.resolve(dirs.queries),
    referencesDir: path.resolve(dirs.references),
    backend: info.name,
    backbone: engine.spec.id,
    descriptor: engine.descriptor,
    localFeatures,
    cores: os.availableParallelism(),
    index: {
      references: referenceFiles.length,
      indexed,
      unchanged: summary.skipped,
      failed: summary.failed,
      seconds: summary.seconds,
      imagesPerSecond: indexed > 0 && summary.seconds > 0 ? round(indexed / summary.seconds, 2) : null,
      libraryImages: engine.records.count(),
      errors: summary.errors,
    },
    queries: perQuery.length,
    unpaired: pairing.unpaired,
    unusedReferences: pairing.unusedReferences.length,
    failed,
    verified: summarizeMode(perQuery.map((q) => q.verified)),
    visual: summarizeMode(perQuery.map((q) => q.visual)),
    warmupMs,
    querySeconds,
    loadavg: { start, afterIndex, end: loadavg() },
    interrupted: perQuery.length + failed.length < pairing.pairs.length,
    perQuery,
  };
}

/** The human table of a report (the CLI's text output). */
export function formatPairsReport(r: PairsReport): string {
  const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');
  const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  const row = (name: string, m: ModeReport, verified: boolean) =>
    `  ${name.padEnd(12)} ${f3(m.p1).padStart(6)} ${f3(m.r5).padStart(6)} ${ms(m.latencyMs.p50).padStart(8)} ${ms(m.latencyMs.p90).padStart(8)}   ${verified ? `${m.verifiedTop} (${m.falseVerified} wrong)` : '-'}`;
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const ix = r.index;
  return [
    `${r.queries} queries (${r.queriesDir}) against ${ix.references} references (${r.referencesDir}); ${r.backbone}, descriptor ${r.descriptor}, local features ${r.localFeatures ? 'on' : 'off (both rows are the visual ranking)'}, ${r.backend}, ${r.cores} cores`,
    `index: ${ix.indexed} images in ${ix.seconds}s${ix.imagesPerSecond === null ? '' : ` (${ix.imagesPerSecond} images/s)`}, ${ix.unchanged} already indexed, ${ix.failed} failed; the library holds ${ix.libraryImages} images`,
    '',
    `  ${'mode'.padEnd(12)} ${'P@1'.padStart(6)} ${'R@5'.padStart(6)} ${'p50 ms'.padStart(8)} ${'p90 ms'.padStart(8)}   verified top hits`,
    row('visual only', r.visual, false),
    row('verified', r.verified, true),
    '',
    `queries took ${r.querySeconds}s (two searches each; ${r.warmupMs} ms untimed warm-up); load average ${la(r.loadavg.start)} at the start, ${la(r.loadavg.afterIndex)} after indexing, ${la(r.loadavg.end)} at the end`,
    ...(r.interrupted ? ['interrupted: the figures cover the queries searched so far'] : []),
    ...(r.unusedReferences ? [`${r.unusedReferences} references named by no query (indexed as distractors)`] : []),
    ...r.unpaired.map((u) => `skipped (no reference): ${u.query}: ${u.reason}`),
    ...r.failed.map((x) => `failed: ${x.query}: ${x.error}`),
    ...ix.errors.map((e) => `reference failed to index: ${e.path}: ${e.error}`),
  ].join('\n');
}
