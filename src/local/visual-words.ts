/**
 * Visual words: the library's vocabulary (learned from its own local features, kept in LMDB,
 * re-learned when the library has grown a lot) and the in-memory inverted index over every
 * image's words, kept in step with the records through the change journal (like the HNSW index,
 * src/index-sync.ts). It gives a query photo candidates its global vector may have missed.
 */
import { seededRandom } from '../random.ts';
import type { Records } from '../store/records.ts';
import { decodeFeatures } from './features.ts';
import { InvertedIndex } from './inverted.ts';
import type { LocalFeatures } from './types.ts';
import { DESCRIPTOR_BYTES } from './types.ts';
import { Vocabulary } from './vocabulary.ts';
import { learnInWorker } from './learn-thread.ts';

/** A library learns its first vocabulary once this many images have local features (below it, every image is a candidate). */
export const VOCABULARY_MIN_IMAGES = 32;
/** The vocabulary is learned again when the library has this many times the images it was learned from. */
export const VOCABULARY_GROWTH = 4;
/** Descriptors sampled to learn a vocabulary. */
export const VOCABULARY_SAMPLE = 200_000;
/** Seed of the vocabulary's k-medians++ seeding (learning is deterministic). */
const LEARN_SEED = 14;

/** Local features as stored, decoded; undefined for none or unreadable bytes (`pixdex check` reports those). */
export function storedFeatures(bytes: Uint8Array | undefined): LocalFeatures | undefined {
  if (!bytes) return undefined;
  try {
    return decodeFeatures(bytes);
  } catch {
    return undefined;
  }
}

/** Word lists written per transaction when (re-)quantizing the library. */
const WORDS_BATCH = 500;

export interface VocabularyProgress {
  stage: 'learn' | 'quantize';
  done: number;
  total: number;
}

export class VisualWords {
  private vocab?: { version: number; vocabulary: Vocabulary };
  private index?: { version: number; seq: number; inverted: InvertedIndex };

  constructor(private readonly records: Records) {}

  /** The current vocabulary (reloaded when another process learned a new one), or undefined. */
  vocabulary(): { version: number; vocabulary: Vocabulary } | undefined {
    const info = this.records.local.setting().vocabulary;
    if (!info) return (this.vocab = undefined);
    if (this.vocab?.version !== info.version) {
      const v = this.records.local.vocabulary();
      this.vocab = v && { version: v.info.version, vocabulary: Vocabulary.fromBytes(v.bytes) };
    }
    return this.vocab;
  }

  /** The words of `features` under the current vocabulary (what an index batch stores with them). */
  wordsOf(features: LocalFeatures): { version: number; words: Uint32Array } | undefined {
    const v = this.vocabulary();
    return v && { version: v.version, words: v.vocabulary.quantize(features.descriptors) };
  }

  /**
   * The `n` images sharing the most (tf-idf weighted) visual words with `features`, or undefined
   * when the library has no vocabulary yet (every image is then a candidate).
   */
  candidates(features: LocalFeatures, n: number, filter?: (id: number) => boolean): Array<{ id: number; score: number }> | undefined {
    const inverted = this.inverted();
    const v = this.vocab;
    if (!inverted || !v) return undefined;
    return inverted.query(v.vocabulary.quantize(features.descriptors), n, filter);
  }

  /** Whether the library needs a (new) vocabulary: none yet with enough images, or grown `VOCABULARY_GROWTH`×. */
  needsLearning(): boolean {
    const images = this.records.local.featureCount();
    const info = this.records.local.setting().vocabulary;
    return info ? images >= VOCABULARY_GROWTH * info.images : images >= VOCABULARY_MIN_IMAGES;
  }

  /**
   * Learns the vocabulary when `needsLearning()`, then gives every image with features its words
   * under the current vocabulary (images indexed meanwhile, or all after a re-learning). Returns
   * whether a vocabulary was learned.
   */
  maintain(onProgress?: (p: VocabularyProgress) => void): boolean {
    const learned = this.needsLearning() && this.learn(onProgress);
    this.quantizeMissing(onProgress);
    return learned;
  }

  /**
   * `maintain` with the learning in a worker thread (src/local/learn-thread.ts; the same tree):
   * an index run checks near-duplicates in this thread meanwhile.
   */
  async maintainAsync(onProgress?: (p: VocabularyProgress) => void): Promise<boolean> {
    const sample = this.needsLearning() ? this.sample() : undefined;
    if (sample) {
      onProgress?.({ stage: 'learn', done: 0, total: sample.total });
      this.keep(await learnInWorker(sample.descriptors, { seed: LEARN_SEED }), sample.images);
      onProgress?.({ stage: 'learn', done: sample.total, total: sample.total });
    }
    this.quantizeMissing(onProgress);
    return sample !== undefined;
  }

  private learn(onProgress?: (p: VocabularyProgress) => void): boolean {
    const sample = this.sample();
    if (!sample) return false;
    onProgress?.({ stage: 'learn', done: 0, total: sample.total });
    this.keep(Vocabulary.learn(sample.descriptors, { seed: LEARN_SEED }), sample.images);
    onProgress?.({ stage: 'learn', done: sample.total, total: sample.total });
    return true;
  }

  /** The descriptors a vocabulary is learned from: a random sample of images, all their descriptors, up to VOCABULARY_SAMPLE. */
  private sample(): { descriptors: Uint8Array; total: number; images: number } | undefined {
    const ids = [...this.records.local.featureIds()];
    if (ids.length === 0) return undefined;
    const random = seededRandom(ids.length);
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      if (total >= VOCABULARY_SAMPLE) break;
      const f = this.featuresOf(id);
      if (!f || f.count === 0) continue;
      parts.push(f.descriptors);
      total += f.count;
    }
    if (total === 0) return undefined;
    const descriptors = new Uint8Array(total * DESCRIPTOR_BYTES);
    let o = 0;
    for (const p of parts) descriptors.set(p, (o += p.length) - p.length);
    return { descriptors, total, images: ids.length };
  }

  /** Stores a newly learned vocabulary and makes it the current one. */
  private keep(vocabulary: Vocabulary, images: number): void {
    const info = this.records.local.putVocabulary(vocabulary.toBytes(), { words: vocabulary.words, images });
    this.vocab = { version: info.version, vocabulary };
    this.index = undefined;
  }

  /** Quantizes images that have features but no words under the current vocabulary, in batches. */
  private quantizeMissing(onProgress?: (p: VocabularyProgress) => void): void {
    const v = this.vocabulary();
    if (!v) return;
    const missing = [...this.records.local.featureIds()].filter((id) => !this.records.local.words(id, v.version));
    for (let i = 0; i < missing.length; i += WORDS_BATCH) {
      const batch = missing.slice(i, i + WORDS_BATCH).flatMap((id) => {
        const f = this.featuresOf(id);
        return f ? [{ id, words: v.vocabulary.quantize(f.descriptors) }] : [];
      });
      if (!this.records.local.putWords(v.version, batch)) return; // another process learned a new vocabulary
      onProgress?.({ stage: 'quantize', done: Math.min(i + WORDS_BATCH, missing.length), total: missing.length });
    }
  }

  /** An image's decoded local features, or undefined (none, or unreadable: `pixdex check` reports those). */
  featuresOf(id: number): LocalFeatures | undefined {
    return storedFeatures(this.records.local.features(id));
  }

  /** The inverted index of the current vocabulary, built on first use and kept in step with the journal. */
  private inverted(): InvertedIndex | undefined {
    const v = this.vocabulary();
    if (!v) return (this.index = undefined);
    const meta = this.records.meta();
    const snap = this.records.snapshotMeta();
    const stale = !this.index || this.index.version !== v.version || (snap !== undefined && snap.seq > this.index.seq);
    if (stale) {
      const entries: Array<{ id: number; words: Uint32Array }> = [];
      for (const id of this.records.local.featureIds()) {
        const w = this.records.local.words(id, v.version) ?? this.quantizeOne(id, v.vocabulary);
        if (w) entries.push({ id, words: w });
      }
      this.index = { version: v.version, seq: meta.seq, inverted: InvertedIndex.fromRecords(v.vocabulary.words, entries) };
    } else if (this.index!.seq !== meta.seq) {
      // Catch up with images added or removed since (this process or another).
      const index = this.index!;
      for (const { key, value } of this.records.journalAfter(index.seq)) {
        index.inverted.remove(value.id);
        if (value.op === 'add' && this.records.exists(value.id)) {
          const w = this.records.local.words(value.id, v.version) ?? this.quantizeOne(value.id, v.vocabulary);
          if (w) index.inverted.add(value.id, w);
        }
        index.seq = key;
      }
      index.seq = Math.max(index.seq, meta.seq);
    }
    return this.index!.inverted;
  }

  private quantizeOne(id: number, vocabulary: Vocabulary): Uint32Array | undefined {
    const f = this.featuresOf(id);
    return f && vocabulary.quantize(f.descriptors);
  }
}
