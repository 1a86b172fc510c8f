/**
 * `pixdex eval`: how well a descriptor serves both kinds of query on a labelled dataset, without
 * touching the library.
 * - Category retrieval: leave-one-out P@1, P@10, mAP on the folder classes (src/eval/evaluate.ts),
 *   each image searched the way `pixdex search` searches a photo (regional: by its windows), and
 *   kNN accuracy the way `pixdex classify` votes (by the global vector).
 * - Instance retrieval: queries generated from the dataset's own photos (re-photographed in
 *   simulation: src/eval/instance-set.ts, fixed seed); the original must come back. P@1 and R@5,
 *   overall and per transformation.
 * Search is exact here (no HNSW error in the figures): for `regional`, every image's windows are
 * scored against every image's descriptors at each side.
 */
import type { Engine, SpaceKind } from '../engine.ts';
import type { Embedding } from '../embed.ts';
import { dotRow, evaluateScores, topRows, type DatasetItem, type EvalReport } from './evaluate.ts';
import { buildInstanceSet, scoreInstanceSet, type InstanceReport } from './instance-set.ts';
import { isRegional, libraryRegional, regionalScoreRows, type LibraryDescriptor } from '../library-descriptor.ts';
import { l2normalize } from '../vector.ts';

export interface LibraryEvalOptions {
  /** Embedding space (default: the library's active one). */
  space?: SpaceKind;
  /** Descriptor to evaluate (default: the library's). */
  descriptor?: LibraryDescriptor;
  /** Generated instance queries (default 243; 0 = category retrieval only). */
  instanceQueries?: number;
  /** Seed of the instance set (default 8). */
  seed?: number;
  /**
   * More photos to paste queries into (clutter, perspective), after the dataset's own (default:
   * none: clutter is a photo of another class of the dataset).
   */
  backgrounds?: readonly DatasetItem[];
  onProgress?: (what: string) => void;
}

export interface LibraryEvalReport extends EvalReport {
  backbone: string;
  descriptor: LibraryDescriptor;
  space: SpaceKind;
  dims: number;
  /** Instance retrieval on the generated set, when asked for. */
  instance?: InstanceReport & { seed: number };
}

export const DEFAULT_INSTANCE_QUERIES = 243;
export const DEFAULT_INSTANCE_SEED = 8;

export async function evaluateLibrary(engine: Engine, items: readonly DatasetItem[], options: LibraryEvalOptions = {}): Promise<LibraryEvalReport> {
  const space = engine.searcher.spaceFor(options.space);
  const descriptor = options.descriptor ?? engine.descriptor;
  const regional = isRegional(descriptor) && space.kind === 'backbone' ? libraryRegional(engine.spec, descriptor) : undefined;
  const d = space.kind === 'backbone' ? engine.spec.dims : space.dims;
  const progress = options.onProgress ?? (() => {});

  const { embeddings, failed } = await engine.describer.describeFiles(items.map((i) => i.path), {
    space, descriptor, windows: regional !== undefined, smaller: regional !== undefined, onProgress: (done, total) => progress(`embedding ${done}/${total}`),
  });
  const okIdx = embeddings.flatMap((e, i) => (e ? [i] : []));
  const ok = okIdx.map((i) => items[i]);
  const es = okIdx.map((i) => embeddings[i]!);
  const vectorOf = (e: Embedding) => l2normalize(e.code ?? e.pooled);
  const matrix = new Float32Array(es.length * d);
  es.forEach((e, i) => matrix.set(vectorOf(e), i * d));
  const scales = regional ? concat(es.map((e) => e.scales!)) : undefined;
  // Score rows of queries against every (embedded) dataset image.
  const rowsOf = (queries: Embedding[]): Float32Array[] => regional
    ? regionalScoreRows(regional, queries.map((q) => q.windows!), matrix, scales!, d)
    : queries.map((q) => dotRow(vectorOf(q), matrix, d));

  progress('scoring');
  const categoryRows = rowsOf(es);
  // kNN votes use the global vector, as `pixdex classify` does (in every descriptor).
  const knnRow = regional ? (q: number) => dotRow(matrix.subarray(q * d, (q + 1) * d), matrix, d) : undefined;
  const report = evaluateScores(ok, (q) => categoryRows[q], failed, knnRow);

  let instance: LibraryEvalReport['instance'];
  const count = Math.min(options.instanceQueries ?? DEFAULT_INSTANCE_QUERIES, ok.length);
  if (count > 0) {
    const seed = options.seed ?? DEFAULT_INSTANCE_SEED;
    progress(`generating ${count} instance queries`);
    const queries = await buildInstanceSet({ sources: ok, backgrounds: [...items, ...(options.backgrounds ?? [])], count, seed });
    const qe: Embedding[] = [];
    for (const [i, q] of queries.entries()) {
      const img = await engine.describer.decode(q.bytes, `instance query ${i}`);
      qe.push((await engine.describer.embedPixels([img.pixels], { space, descriptor, windows: regional !== undefined, smaller: false }))[0]);
      if (i % 16 === 15) progress(`instance queries ${i + 1}/${queries.length}`);
    }
    const rows = rowsOf(qe);
    instance = { ...scoreInstanceSet(queries, rows.map((r) => topRows(r, 5).map((h) => h.index))), seed };
  }
  return { ...report, backbone: engine.spec.id, descriptor, space: space.kind, dims: d, instance };
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

