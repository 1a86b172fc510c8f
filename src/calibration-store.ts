/**
 * The library's kNN calibration (./calibration.ts): fitted lazily on the labelled images the
 * first time a vote needs it, stored as JSON in LMDB `models` beside the head, and refitted when
 * the labels change (label counts, image count, space or k differ from what it was fitted on).
 */
import type { Searcher, SearchResult, SpaceKind } from './search.ts';
import type { Records } from './store/records.ts';
import { LIBRARY_NEIGHBORS, MAX_CALIBRATION_IMAGES, fitCalibration, type Calibration } from './calibration.ts';

const KEY = 'calibration';
const MAX_CACHED = 4;

export class CalibrationStore {
  /** Recent fits by fingerprint (a page may ask with a few values of k). */
  private readonly cached = new Map<string, Calibration | null>();

  constructor(
    private readonly records: Records,
    private readonly searcher: Searcher,
  ) {}

  /** The calibration for votes of `k` neighbours in `space`, or null with fewer than 2 labels. */
  get(k: number, space?: SpaceKind): Calibration | null {
    const info = this.searcher.spaceFor(space);
    const fingerprint = JSON.stringify([info.kind, k, this.records.count(), this.records.labels()]);
    const hit = this.cached.get(fingerprint);
    if (hit !== undefined) return hit;
    const stored = this.records.model(KEY);
    let cal = stored ? parse(stored) : null;
    if (cal?.fingerprint !== fingerprint) {
      cal = this.fit(k, info.kind, fingerprint);
      if (cal) this.records.putModel(KEY, Buffer.from(JSON.stringify(cal)));
    }
    if (this.cached.size >= MAX_CACHED) this.cached.delete(this.cached.keys().next().value!);
    this.cached.set(fingerprint, cal);
    return cal;
  }

  /** An indexed image's LIBRARY_NEIGHBORS nearest images, labelled or not (itself excluded): the open-set features read them. */
  libraryNeighbors(id: number, vector: Float32Array, space?: SpaceKind): SearchResult[] {
    return this.searcher.searchVector(vector, { k: LIBRARY_NEIGHBORS, excludeId: id, space });
  }

  private fit(k: number, space: SpaceKind, fingerprint: string): Calibration | null {
    const info = this.searcher.spaceFor(space);
    const labelled: Array<{ id: number; label: string }> = [];
    for (const { id, rec } of this.records.images()) if (rec.label !== undefined) labelled.push({ id, label: rec.label });
    // Evenly through the library (ids in order), so a big library fits in seconds.
    const n = Math.min(labelled.length, MAX_CALIBRATION_IMAGES);
    const picks = Array.from({ length: n }, (_, j) => labelled[Math.floor((j * labelled.length) / n)]);
    const vectors: Float32Array[] = [];
    const labels: string[] = [];
    const library: SearchResult[][] = [];
    for (const { id, label } of picks) {
      const v = this.records.spaceVector(info, id);
      if (!v) continue;
      vectors.push(v);
      labels.push(label);
      library.push(this.libraryNeighbors(id, v, space));
    }
    return vectors.length < 2 ? null : fitCalibration(vectors, labels, { k, fingerprint, library });
  }
}

function parse(bytes: Uint8Array): Calibration | null {
  try {
    const cal = JSON.parse(Buffer.from(bytes).toString()) as Calibration;
    return cal.format === 'pixdex-calibration-3' ? cal : null;
  } catch {
    return null;
  }
}
