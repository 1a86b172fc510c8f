/**
 * Similarity-based labelling: classify by the labels of nearest neighbours (kNN), by a trained
 * softmax head, or both; propagate labels to unlabelled images as *suggestions*, kept apart from
 * the labels a person set (`images.label`) until someone accepts them. Depends on the records and
 * the searcher, not on the engine.
 */
import type { Searcher, SearchResult, SpaceKind } from './search.ts';
import type { Records } from './store/records.ts';
import { CLASSIFY_METHODS, DEFAULT_CLASSIFY_METHOD, DEFAULT_CLASSIFY_MIN_CONFIDENCE, DEFAULT_K, DEFAULT_PROPAGATE_MIN_CONFIDENCE, MAX_K, MIN_K } from './contracts/limits.ts';
import { InvalidParameterError, NotFoundError, PixdexError, intParam, numberParam } from './errors.ts';
import { knnVote } from './classify.ts';
import { ClassifierHead, type HeadOptions, type HeadReport } from './models/head.ts';
import { calibrateVote, openSetFeatures } from './calibration.ts';
import { decideOpenSet } from './open-set.ts';
import { CalibrationStore } from './calibration-store.ts';

/** Why an answer is null although labelled neighbours voted (open set). */
export const UNKNOWN_REASON = 'unknown: unlike every labelled class';

/** How to classify: neighbours' vote, the trained head, or the average of both distributions. */
export type ClassifyMethod = (typeof CLASSIFY_METHODS)[number];
export { CLASSIFY_METHODS };

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
  /** The classifier's probabilities when it is not the head (the fine-tuned top, src/finetune.ts). */
  headProbabilities?: Record<string, number>;
}

/** A classification: label (null = unknown), confidence in [0,1], the distribution, neighbours. */
export interface Classification {
  label: string | null;
  /**
   * Calibrated probability that the label (or, when null, the best candidate) is right: for kNN
   * fitted leave-one-out on the library's labelled images (src/calibration.ts), for the head
   * temperature-scaled on its held-out split; both: their mean. With one label: the vote's share.
   */
  confidence: number;
  /** The winner's share of the distribution in `votes` (what `confidence` was before calibration). */
  share: number;
  /** The photo is unlike every labelled class (open set): label null, whatever minConfidence. */
  unknown: boolean;
  /** Why the label is null, when it is. */
  reason?: string;
  /** The distribution: kNN vote shares, the head's raw softmax, or their average (both). */
  votes: Record<string, number>;
  neighbors: SearchResult[];
  method: ClassifyMethod;
}

export type { SuggestionRecord } from './store/lmdb.ts';

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
  /** Unlabelled images left without a suggestion (low confidence, unknown or no labelled neighbour). */
  undecided: number;
  /** Of those, images unlike every labelled class or, with their nearest images, more likely of a class nobody labelled (src/open-set.ts). */
  unknown: number;
  applied: boolean;
  suggestions: Suggestion[];
}

const HEAD_KEY = 'head';

export class Labels {
  private head: { model: ClassifierHead | null; trainedAt: number | undefined } = { model: null, trainedAt: undefined };
  private readonly calibration: CalibrationStore;

  constructor(
    private readonly records: Records,
    private readonly searcher: Searcher,
    /** Starts the model backend (the head is a tfjs model). */
    private readonly backend: () => Promise<unknown>,
  ) {
    this.calibration = new CalibrationStore(records, searcher);
  }

  /** Classifies an embedding with the chosen method. */
  classifyVector(vector: Float32Array, o: ClassifyOptions = {}): Classification {
    const k = intParam('k', o.k ?? DEFAULT_K, MIN_K, MAX_K);
    const minConfidence = numberParam('minConfidence', o.minConfidence ?? DEFAULT_CLASSIFY_MIN_CONFIDENCE, 0, 1);
    const method = o.method ?? DEFAULT_CLASSIFY_METHOD;
    if (!CLASSIFY_METHODS.includes(method)) throw new InvalidParameterError(`Expected method knn, head or both but received ${JSON.stringify(method)}`);
    const neighbors = this.searcher.searchVector(o.space === 'backbone' ? (o.pooled ?? vector) : vector, { k, labelled: true, excludeId: o.excludeId, space: o.space });
    const knn = knnVote(neighbors);
    const cal = this.calibration.get(k, o.space);
    const knnCal = cal ? calibrateVote(cal, neighbors) : { confidence: knn.confidence, unknown: false };
    let dist: Record<string, number> = knn.votes;
    let calibrated: Record<string, number> = {};
    if (method !== 'knn') {
      const head = o.headProbabilities ? null : this.loadHead();
      if (!o.headProbabilities && !head) throw new PixdexError('NO_CLASSIFIER', 'No classifier has been trained for this library yet: run `pixdex train-classifier` first, or use --method knn.');
      let probs: Record<string, number>;
      if (o.headProbabilities) {
        // The fine-tuned network's softmax (src/finetune.ts): no temperature fitted for it, taken as it is.
        probs = o.headProbabilities;
        calibrated = probs;
      } else {
        const predicted = head!.predict(o.pooled ?? vector);
        probs = Object.fromEntries(predicted.map((p) => [p.label, p.probability]));
        calibrated = Object.fromEntries(head!.calibrate(predicted).map((p) => [p.label, p.probability]));
      }
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
    const [best, share] = ranked[0] ?? [null, 0];
    // kNN counts 0 toward "both" when its own vote went to another label.
    const knnPart = best !== null && best === knn.label ? knnCal.confidence : 0;
    const confidence = best === null ? 0 : method === 'knn' ? knnPart : method === 'head' ? calibrated[best] : 0.5 * (knnPart + calibrated[best]);
    const unknown = best !== null && knnCal.unknown;
    const label = best !== null && !unknown && confidence >= minConfidence && share > 0 ? best : null;
    const reason = unknown ? UNKNOWN_REASON : label === null ? (best === null ? 'no labelled neighbour' : `confidence below ${minConfidence}`) : undefined;
    return { label, confidence, share, unknown, ...(reason ? { reason } : {}), votes: Object.fromEntries(ranked), neighbors, method };
  }

  /**
   * Suggests a label for every image without a person's label, from its labelled neighbours.
   * With `apply`, replaces the stored suggestions; labels set by a person are never touched, and
   * a label a person rejected for an image is not suggested for it again.
   */
  propagate(o: PropagateOptions = {}): PropagateReport {
    const k = intParam('k', o.k ?? DEFAULT_K, MIN_K, MAX_K);
    const minConfidence = numberParam('minConfidence', o.minConfidence ?? DEFAULT_PROPAGATE_MIN_CONFIDENCE, 0, 1);
    const space = this.searcher.spaceFor();
    const suggestions: Suggestion[] = [];
    let unlabelled = 0;
    // The labelled photos' open-set examples (none without a calibration: fewer than 2 labels).
    const cal = this.calibration.get(k);
    const inSet = cal?.inSetExamples;
    // First every unlabelled photo's vote and open-set features, then the open-set decision over them all.
    const voted: Array<{ id: number; path: string; c: Classification; label: string | null; x: number[] | null; neighbors: SearchResult[] }> = [];
    for (const { id, rec } of this.records.images()) {
      if (rec.label !== undefined) continue;
      unlabelled++;
      const v = this.records.spaceVector(space, id);
      if (!v) continue;
      const c = this.classifyVector(v, { k, method: 'knn', excludeId: id });
      const neighbors = inSet ? this.calibration.libraryNeighbors(id, v) : [];
      voted.push({ id, path: rec.path, c, label: c.label, x: inSet ? openSetFeatures(k, c.neighbors, neighbors) : null, neighbors });
    }
    // Without examples nothing is called out of set this way.
    const open = inSet ? decideOpenSet(voted, inSet) : { unknown: voted.map(() => false) };
    let unknown = 0;
    voted.forEach(({ id, path, c }, i) => {
      // Open set: unlike every labelled class, or (with its neighbours) more likely of a class nobody labelled.
      if (c.unknown || (c.label !== null && open.unknown[i])) {
        unknown++;
        return;
      }
      const rejected = this.records.suggested.get(id)?.rejected ?? [];
      if (c.label !== null && c.confidence >= minConfidence && !rejected.includes(c.label)) {
        suggestions.push({ id, path, label: c.label, confidence: Math.round(c.confidence * 10000) / 10000 });
      }
    });
    if (o.apply) this.records.suggested.replace(suggestions);
    return { unlabelled, suggested: suggestions.length, undecided: unlabelled - suggestions.length, unknown, applied: Boolean(o.apply), suggestions };
  }

  /** Pending suggestions, most confident first. */
  suggestions(): Suggestion[] {
    const out: Suggestion[] = [];
    for (const { id, value } of this.records.suggested.all()) {
      if (value.label === undefined) continue;
      const rec = this.records.get(id);
      if (rec && rec.label === undefined) out.push({ id, path: rec.path, label: value.label, confidence: value.confidence ?? 0 });
    }
    return out.sort((a, b) => b.confidence - a.confidence || a.id - b.id);
  }

  /** Makes a suggestion the image's label (as if a person had set it). */
  accept(id: number): { id: number; label: string } {
    const s = this.records.suggested.get(id);
    if (!s?.label || !this.records.exists(id)) throw new NotFoundError(`No pending suggestion for image ${id}.`);
    this.records.setLabel(id, s.label); // also drops the suggestion
    return { id, label: s.label };
  }

  /** Drops a suggestion and remembers the label was rejected for this image. */
  reject(id: number): { id: number; rejected: string } {
    return { id, rejected: this.records.suggested.reject(id) };
  }

  /** The trained head of this library, or null (cached, reloaded when retrained by another process). */
  loadHead(): ClassifierHead | null {
    const bytes = this.records.model(HEAD_KEY);
    if (!bytes) return null;
    const cached = this.head;
    const model = cached.model && cached.trainedAt !== undefined && headTrainedAt(bytes) === cached.trainedAt ? cached.model : ClassifierHead.fromBytes(bytes);
    if (model !== cached.model) {
      cached.model?.dispose();
      this.head = { model, trainedAt: model.report.trainedAt };
    }
    return model;
  }

  /** Trains the head on the global vectors of every image a person labelled, and stores it. */
  async trainHead(options: Partial<HeadOptions> = {}, onEpoch?: (epoch: number, loss: number, valLoss: number) => void): Promise<HeadReport> {
    await this.backend();
    const vectors: Float32Array[] = [];
    const labels: string[] = [];
    for (const { id, rec } of this.records.images()) {
      if (rec.label === undefined) continue;
      const v = this.records.vector(id);
      if (v) {
        vectors.push(v);
        labels.push(rec.label);
      }
    }
    const head = await ClassifierHead.train(vectors, labels, options, onEpoch);
    this.records.putModel(HEAD_KEY, head.toBytes());
    this.head.model?.dispose();
    this.head = { model: head, trainedAt: head.report.trainedAt };
    return head.report;
  }

  /** Facts about the trained head for `stats`, or null. */
  headInfo(): (HeadReport & { bytes: number }) | null {
    const bytes = this.records.model(HEAD_KEY);
    if (!bytes) return null;
    return { ...this.loadHead()!.report, bytes: bytes.length };
  }

  dispose(): void {
    this.head.model?.dispose();
    this.head = { model: null, trainedAt: undefined };
  }
}

function headTrainedAt(bytes: Uint8Array): number | undefined {
  try {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0)).toString()).report.trainedAt;
  } catch {
    return undefined;
  }
}
