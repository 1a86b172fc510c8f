/**
 * Similarity-based labelling: classify by the labels of nearest neighbours (kNN), by a trained
 * softmax head, or both; propagate labels to unlabelled images as *suggestions*, kept apart from
 * the labels a person set (`images.label`) until someone accepts them.
 */
import type { Engine, SearchResult, SpaceKind } from './engine.ts';
import { InvalidParameterError, NotFoundError, PixdexError, intParam, numberParam } from './errors.ts';
import { knnVote } from './classify.ts';
import { ClassifierHead, type HeadOptions, type HeadReport } from './models/head.ts';

/** How to classify: neighbours' vote, the trained head, or the average of both distributions. */
export type ClassifyMethod = 'knn' | 'head' | 'both';
export const CLASSIFY_METHODS: readonly ClassifyMethod[] = ['knn', 'head', 'both'];

export interface ClassifyOptions {
  /** Neighbours that vote (default: 10). */
  k?: number;
  /** Below this confidence the answer is `null` (unknown) (default: 0). */
  minConfidence?: number;
  /** (default: knn) */
  method?: ClassifyMethod;
  /** Leave this image out (when classifying an indexed image). */
  excludeId?: number;
  /** The query's pooled backbone vector, which the head reads (default: the vector itself). */
  pooled?: Float32Array;
  /** Neighbours searched in this space (default: the active one). */
  space?: SpaceKind;
}

/** A classification: label (null = unknown), confidence in [0,1], the distribution, neighbours. */
export interface Classification {
  label: string | null;
  confidence: number;
  votes: Record<string, number>;
  neighbors: SearchResult[];
  method: ClassifyMethod;
}

/** A suggested label kept beside an image, distinct from a person's label. */
export interface SuggestionRecord {
  label?: string;
  confidence?: number;
  /** Labels a person rejected for this image: never suggested again. */
  rejected?: string[];
  at: number;
}

export interface Suggestion {
  id: number;
  path: string;
  label: string;
  confidence: number;
}

export interface PropagateOptions {
  /** Neighbours that vote (default: 10). */
  k?: number;
  /** Only suggest at or above this confidence (default: 0.8). */
  minConfidence?: number;
  /** Write the suggestions (otherwise only report them) (default: false). */
  apply?: boolean;
}

export interface PropagateReport {
  /** Unlabelled images considered. */
  unlabelled: number;
  /** Suggestions made (at or above minConfidence). */
  suggested: number;
  /** Unlabelled images left without a suggestion (low confidence or no labelled neighbour). */
  undecided: number;
  applied: boolean;
  suggestions: Suggestion[];
}

const HEAD_KEY = 'head';

/** Classifies an embedding with the chosen method. */
export function classifyVector(engine: Engine, vector: Float32Array, o: ClassifyOptions = {}): Classification {
  const k = intParam('k', o.k ?? 10, 1, 1000);
  const minConfidence = numberParam('minConfidence', o.minConfidence ?? 0, 0, 1);
  const method = o.method ?? 'knn';
  if (!CLASSIFY_METHODS.includes(method)) throw new InvalidParameterError(`Expected method knn, head or both but received ${JSON.stringify(method)}`);
  const neighbors = engine.searchVector(o.space === 'backbone' ? (o.pooled ?? vector) : vector, { k, labelled: true, excludeId: o.excludeId, space: o.space });
  const knn = knnVote(neighbors);
  let dist: Record<string, number> = knn.votes;
  if (method !== 'knn') {
    const head = loadHead(engine);
    if (!head) throw new PixdexError('NO_CLASSIFIER', 'No classifier has been trained for this library yet: run `pixdex train-classifier` first, or use --method knn.');
    const probs = Object.fromEntries(head.predict(o.pooled ?? vector).map((p) => [p.label, p.probability]));
    if (method === 'head') {
      dist = probs;
    } else {
      const total = Object.values(knn.votes).reduce((a, b) => a + b, 0) || 1;
      const labels = new Set([...Object.keys(probs), ...Object.keys(knn.votes)]);
      dist = Object.fromEntries([...labels].map((l) => [l, 0.5 * (probs[l] ?? 0) + 0.5 * ((knn.votes[l] ?? 0) / total)]));
    }
  } else {
    const total = Object.values(dist).reduce((a, b) => a + b, 0) || 1;
    dist = Object.fromEntries(Object.entries(dist).map(([l, w]) => [l, w / total]));
  }
  const ranked = Object.entries(dist).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const [best, confidence] = ranked[0] ?? [null, 0];
  return {
    label: best !== null && confidence >= minConfidence && confidence > 0 ? best : null,
    confidence,
    votes: Object.fromEntries(ranked),
    neighbors,
    method,
  };
}

/**
 * Suggests a label for every image without a person's label, from its labelled neighbours.
 * With `apply`, replaces the stored suggestions; labels set by a person are never touched, and
 * a label a person rejected for an image is not suggested for it again.
 */
export function propagate(engine: Engine, o: PropagateOptions = {}): PropagateReport {
  const k = intParam('k', o.k ?? 10, 1, 1000);
  const minConfidence = numberParam('minConfidence', o.minConfidence ?? 0.8, 0, 1);
  const { store } = engine;
  engine.refresh();
  const suggestions: Suggestion[] = [];
  let unlabelled = 0;
  for (const { key: id, value: rec } of store.images.getRange()) {
    if (rec.label !== undefined) continue;
    unlabelled++;
    const v = engine.spaceVectorOf(id);
    if (!v) continue;
    const c = classifyVector(engine, v, { k, method: 'knn', excludeId: id });
    const rejected = store.suggestions.get(id)?.rejected ?? [];
    if (c.label !== null && c.confidence >= minConfidence && !rejected.includes(c.label)) {
      suggestions.push({ id, path: rec.path, label: c.label, confidence: Math.round(c.confidence * 10000) / 10000 });
    }
  }
  if (o.apply) {
    const suggestedIds = new Set(suggestions.map((s) => s.id));
    store.write(() => {
      const now = Date.now();
      for (const { key, value } of store.suggestions.getRange()) {
        if (!suggestedIds.has(key)) {
          if (value.rejected?.length) store.suggestions.putSync(key, { rejected: value.rejected, at: value.at });
          else store.suggestions.removeSync(key);
        }
      }
      for (const s of suggestions) {
        const old = store.suggestions.get(s.id);
        store.suggestions.putSync(s.id, { label: s.label, confidence: s.confidence, rejected: old?.rejected, at: now });
      }
    });
  }
  return { unlabelled, suggested: suggestions.length, undecided: unlabelled - suggestions.length, applied: Boolean(o.apply), suggestions };
}

/** Pending suggestions, most confident first. */
export function listSuggestions(engine: Engine): Suggestion[] {
  const out: Suggestion[] = [];
  for (const { key: id, value } of engine.store.suggestions.getRange()) {
    if (value.label === undefined) continue;
    const rec = engine.store.images.get(id);
    if (rec && rec.label === undefined) out.push({ id, path: rec.path, label: value.label, confidence: value.confidence ?? 0 });
  }
  return out.sort((a, b) => b.confidence - a.confidence || a.id - b.id);
}

/** Makes a suggestion the image's label (as if a person had set it). */
export function acceptSuggestion(engine: Engine, id: number): { id: number; label: string } {
  const s = engine.store.suggestions.get(id);
  if (!s?.label || !engine.store.images.doesExist(id)) throw new NotFoundError(`No pending suggestion for image ${id}.`);
  engine.label(id, s.label); // also drops the suggestion
  return { id, label: s.label };
}

/** Drops a suggestion and remembers the label was rejected for this image. */
export function rejectSuggestion(engine: Engine, id: number): { id: number; rejected: string } {
  const { store } = engine;
  const s = store.suggestions.get(id);
  if (!s?.label) throw new NotFoundError(`No pending suggestion for image ${id}.`);
  store.write(() => store.suggestions.putSync(id, { rejected: [...new Set([...(s.rejected ?? []), s.label!])], at: Date.now() }));
  return { id, rejected: s.label };
}

const heads = new WeakMap<Engine, { head: ClassifierHead | null; trainedAt: number | undefined }>();

/** The trained head of this library, or null (cached per engine, reloaded when retrained). */
export function loadHead(engine: Engine): ClassifierHead | null {
  const bytes = engine.store.models.getBinary(HEAD_KEY);
  const cached = heads.get(engine);
  if (!bytes) return null;
  const head = cached?.head && cached.trainedAt !== undefined && headTrainedAt(bytes) === cached.trainedAt ? cached.head : ClassifierHead.fromBytes(bytes);
  if (head !== cached?.head) {
    cached?.head?.dispose();
    heads.set(engine, { head, trainedAt: head.report.trainedAt });
  }
  return head;
}

function headTrainedAt(bytes: Uint8Array): number | undefined {
  try {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0)).toString()).report.trainedAt;
  } catch {
    return undefined;
  }
}

/** Trains the head on the embeddings of every image a person labelled, and stores it. */
export async function trainClassifier(engine: Engine, options: Partial<HeadOptions> = {}, onEpoch?: (epoch: number, loss: number, valLoss: number) => void): Promise<HeadReport> {
  await engine.backendInfo();
  const vectors: Float32Array[] = [];
  const labels: string[] = [];
  for (const { key: id, value: rec } of engine.store.images.getRange()) {
    if (rec.label === undefined) continue;
    const v = engine.store.getVector(id);
    if (v) {
      vectors.push(v);
      labels.push(rec.label);
    }
  }
  const head = await ClassifierHead.train(vectors, labels, options, onEpoch);
  const bytes = head.toBytes();
  engine.store.write(() => engine.store.models.putSync(HEAD_KEY, bytes));
  heads.get(engine)?.head?.dispose();
  heads.set(engine, { head, trainedAt: head.report.trainedAt });
  return head.report;
}

/** Facts about the trained head for `stats`, or null. */
export function headInfo(engine: Engine): (HeadReport & { bytes: number }) | null {
  const bytes = engine.store.models.getBinary(HEAD_KEY);
  if (!bytes) return null;
  const head = loadHead(engine)!;
  return { ...head.report, bytes: bytes.length };
}
