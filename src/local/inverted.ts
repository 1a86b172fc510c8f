/**
 * The visual-word inverted index (issue 14): per word, the images holding it and how often (term
 * frequency), scored by tf-idf with cosine (default) or Nistér & Stewénius' L1 score; idf =
 * ln(N / n_w) over the live images, kept up to date on add and remove. Cosine is the default: it
 * recalled more on smvs (bench/local/tree.ts, 2,051 images, k=10 L=4, mean of 4 seeds: R@50 0.644
 * vs 0.621 with L1) and costs one multiply per posting.
 *
 * Memory: per posting a uint32 slot and a uint8 term count (saturating at 255), in per-word typed
 * arrays that grow; per image a slot (id, norm, live flag). Removal is a tombstone (no scan of the
 * library); `compact()` drops removed images' postings, on its own once 1/8 of the slots are dead.
 * An image's norm depends on the idf, which drifts as the library changes: all norms are
 * recomputed (one pass over the postings) before a query once adds and removes exceed 1/16 of the
 * library since the last pass; a new image's norm uses the idf of its add.
 *
 * Persisting is the engine's: it keeps each image's words (`encodeWords`, ~1 byte per distinct
 * word) and rebuilds the index with `InvertedIndex.fromRecords` at open.
 */
import { invalidParameter, PixdexError } from '../errors.ts';

export type Scoring = 'l1' | 'cosine';
export const DEFAULT_SCORING: Scoring = 'cosine';

export interface InvertedOptions {
  /** Vocabulary size (`Vocabulary.words`): word ids must be below it. Without it, any uint32 word id is taken and the per-word tables grow to the largest seen. */
  words?: number;
  /** Cosine of L2-normalised tf-idf vectors (default), or Nistér's L1 similarity of L1-normalised ones. */
  scoring?: Scoring;
}

export interface WordsRecord {
  id: number;
  /** A word per descriptor (`Vocabulary.quantize`), or... */
  words?: Uint32Array;
  /** ... the same as `encodeWords` bytes. */
  encoded?: Uint8Array;
}

/** An image and its similarity in [0, 1] (1 for the same bag of words). */
export interface Hit { id: number; score: number }

const EMPTY_SLOTS = new Uint32Array(0);
const EMPTY_TF = new Uint8Array(0);
const MAX_ID = 0xffffffff;

/** A bag of words: distinct words ascending, with their counts. */
interface Bag { words: Uint32Array; counts: Uint32Array; size: number }

/** The distinct words of a word list with their counts (sorted copy, then runs). */
function bagOf(list: Uint32Array): Bag {
  const s = list.slice().sort();
  const words = new Uint32Array(s.length), counts = new Uint32Array(s.length);
  let size = 0;
  for (let i = 0; i < s.length; i++) {
    if (size > 0 && words[size - 1] === s[i]) counts[size - 1]++;
    else (words[size] = s[i]), (counts[size++] = 1);
  }
  return { words, counts, size };
}

function badWords(message: string): PixdexError {
  return new PixdexError('STORE_INCONSISTENT', `Encoded visual words are unusable: ${message}.`);
}

/**
 * Compact form of a word list as a bag (the order of the descriptors is not kept): version byte,
 * varint distinct count, then per distinct word ascending varint(gap × 2 + (count > 1)) and, when
 * flagged, varint(count − 2). About 1 byte per distinct word at 10k words and 500 descriptors.
 */
export function encodeWords(list: Uint32Array): Uint8Array {
  const bag = bagOf(list);
  const out = new Uint8Array(6 + bag.size * 10);
  let o = 0;
  const put = (x: number) => {
    while (x >= 0x80) {
      out[o++] = (x % 0x80) | 0x80;
      x = Math.floor(x / 0x80);
    }
    out[o++] = x;
  };
  out[o++] = 1;
  put(bag.size);
  let prev = -1;
  for (let i = 0; i < bag.size; i++) {
    const c = bag.counts[i];
    put((bag.words[i] - prev - 1) * 2 + (c > 1 ? 1 : 0));
    if (c > 1) put(c - 2);
    prev = bag.words[i];
  }
  return out.slice(0, o);
}

/** `encodeWords` back to a bag; throws a `PixdexError` STORE_INCONSISTENT on malformed bytes. */
function decodeBag(bytes: Uint8Array): Bag {
  let o = 0;
  const get = () => {
    let x = 0, mul = 1;
    for (;;) {
      if (o >= bytes.length) throw badWords('truncated');
      const b = bytes[o++];
      x += (b & 0x7f) * mul;
      if (b < 0x80) return x;
      mul *= 0x80;
      if (mul > 2 ** 42) throw badWords('a number is too long');
    }
  };
  if (bytes.length === 0 || bytes[o++] !== 1) throw badWords('unknown version');
  const size = get();
  if (size > bytes.length) throw badWords(`${size} words in ${bytes.length} bytes`);
  const words = new Uint32Array(size), counts = new Uint32Array(size);
  let prev = -1;
  for (let i = 0; i < size; i++) {
    const v = get();
    const w = prev + 1 + Math.floor(v / 2);
    if (w > MAX_ID) throw badWords('a word id is out of range');
    words[i] = prev = w;
    counts[i] = v % 2 ? get() + 2 : 1;
  }
  if (o !== bytes.length) throw badWords(`${bytes.length - o} trailing bytes`);
  return { words, counts, size };
}

/** `encodeWords` back to a word list (ascending, repeated as often as counted). */
export function decodeWords(bytes: Uint8Array): Uint32Array {
  const bag = decodeBag(bytes);
  let n = 0;
  for (let i = 0; i < bag.size; i++) n += bag.counts[i];
  const out = new Uint32Array(n);
  for (let i = 0, o = 0; i < bag.size; i++) out.fill(bag.words[i], o, (o += bag.counts[i]));
  return out;
}

function grow<T extends Uint32Array | Float32Array | Uint8Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, Math.ceil(a.length * 1.5), 16));
  b.set(a);
  return b;
}

export class InvertedIndex {
  /** Vocabulary size if given, else undefined. */
  readonly vocabularySize: number | undefined;
  readonly scoring: Scoring;
  /** Words with a posting table (the largest word id seen + 1, or the vocabulary size). */
  #words: number;
  // Postings per word: slots and saturating term counts; `len` in use.
  #slots: Uint32Array[];
  #tf: Uint8Array[];
  #len: Uint32Array;
  /** Live images holding each word (the idf's n_w). */
  #df: Uint32Array;
  // Per slot.
  #ids = new Uint32Array(0);
  #invNorm = new Float32Array(0);
  #live = new Uint8Array(0);
  #slotCount = 0;
  #dead = 0;
  #byId = new Map<number, number>();
  /** Adds and removes since the norms were last computed for every slot. */
  #drift = 0;
  /** Some removal came without its words: n_w counts removed images until `compact()`. */
  #dfStale = false;
  // Query scratch, reused: scores (0 = untouched, reset after each query) and the slots touched.
  #acc = new Float64Array(0);
  #touched = new Uint32Array(0);

  constructor(options: InvertedOptions = {}) {
    const words = options.words;
    if (words !== undefined && (!Number.isInteger(words) || words < 1 || words > MAX_ID + 1)) throw invalidParameter('words', `integer between 1 and ${MAX_ID + 1}`, words);
    const scoring = options.scoring ?? DEFAULT_SCORING;
    if (scoring !== 'l1' && scoring !== 'cosine') throw invalidParameter('scoring', '"l1" or "cosine"', scoring);
    this.vocabularySize = words;
    this.scoring = scoring;
    this.#words = words ?? 0;
    this.#slots = new Array<Uint32Array>(this.#words).fill(EMPTY_SLOTS);
    this.#tf = new Array<Uint8Array>(this.#words).fill(EMPTY_TF);
    this.#len = new Uint32Array(this.#words);
    this.#df = new Uint32Array(this.#words);
  }

  /** Makes room for word ids below `words` (no vocabulary size given). */
  #ensureWords(words: number): void {
    if (words <= this.#words) return;
    const cap = Math.max(words, Math.min(MAX_ID + 1, Math.ceil(this.#words * 1.5)));
    for (let w = this.#words; w < cap; w++) this.#slots.push(EMPTY_SLOTS), this.#tf.push(EMPTY_TF);
    const len = new Uint32Array(cap), df = new Uint32Array(cap);
    len.set(this.#len);
    df.set(this.#df);
    this.#len = len;
    this.#df = df;
    this.#words = cap;
  }

  /** Live images. */
  get size(): number { return this.#byId.size; }
  has(id: number): boolean { return this.#byId.has(id); }
  /** Word ids the index has tables for (the vocabulary size when given). */
  get words(): number { return this.#words; }

  /** Live images holding `word` (removed ones too until `compact()` when removed without their words). */
  documentFrequency(word: number): number { return this.#df[word] ?? 0; }

  /** idf of `word` now: ln(N / n_w), 0 for a word in no image. */
  idf(word: number): number {
    const df = this.#df[word];
    return df > 0 ? Math.max(0, Math.log(this.#byId.size / df)) : 0;
  }

  /** Bytes held by postings and per-image arrays (capacity, typed arrays only). */
  get bytes(): number {
    let b = this.#len.byteLength + this.#df.byteLength + this.#ids.byteLength + this.#invNorm.byteLength + this.#live.byteLength;
    for (let w = 0; w < this.#words; w++) b += this.#slots[w].byteLength + this.#tf[w].byteLength;
    return b;
  }

  /** Indexes image `id` (uint32) by its word list (a word per descriptor); replaces an earlier add of the same id. */
  add(id: number, words: Uint32Array): void {
    this.#addBag(id, bagOf(words));
  }

  /** As `add`, from `encodeWords` bytes. */
  addEncoded(id: number, encoded: Uint8Array): void {
    this.#addBag(id, decodeBag(encoded));
  }

  #checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id > MAX_ID) throw invalidParameter('id', `integer between 0 and ${MAX_ID}`, id);
  }

  #checkBag(bag: Bag): void {
    if (bag.size === 0) return;
    const top = bag.words[bag.size - 1];
    if (this.vocabularySize !== undefined && top >= this.vocabularySize) throw invalidParameter('words', `word ids below ${this.vocabularySize}`, top);
    this.#ensureWords(top + 1);
  }

  #newSlot(id: number): number {
    const s = this.#slotCount++;
    if (s >= this.#ids.length) {
      this.#ids = grow(this.#ids, s + 1);
      this.#invNorm = grow(this.#invNorm, this.#ids.length);
      this.#live = grow(this.#live, this.#ids.length);
    }
    this.#ids[s] = id;
    this.#live[s] = 1;
    this.#byId.set(id, s);
    return s;
  }

  #addBag(id: number, bag: Bag): void {
    this.#checkId(id);
    this.#checkBag(bag);
    if (this.#byId.has(id)) this.remove(id);
    const s = this.#newSlot(id);
    for (let i = 0; i < bag.size; i++) {
      const w = bag.words[i];
      const n = this.#len[w];
      if (n === this.#slots[w].length) {
        this.#slots[w] = grow(this.#slots[w], n + 1);
        this.#tf[w] = grow(this.#tf[w], this.#slots[w].length);
      }
      this.#slots[w][n] = s;
      this.#tf[w][n] = Math.min(255, bag.counts[i]);
      this.#len[w] = n + 1;
      this.#df[w]++;
    }
    let norm = 0;
    const N = this.#byId.size;
    for (let i = 0; i < bag.size; i++) {
      const w = bag.words[i];
      const x = Math.min(255, bag.counts[i]) * Math.max(0, Math.log(N / this.#df[w]));
      norm += this.scoring === 'l1' ? x : x * x;
    }
    if (this.scoring === 'cosine') norm = Math.sqrt(norm);
    this.#invNorm[s] = norm > 0 ? 1 / norm : 0;
    this.#drift++;
  }

  /**
   * Removes image `id` (false when it is not indexed). Pass its word list (or `encodeWords` bytes)
   * to update the document frequencies at once; without it they are corrected at the next
   * compaction.
   */
  remove(id: number, words?: Uint32Array | Uint8Array): boolean {
    const s = this.#byId.get(id);
    if (s === undefined) return false;
    this.#byId.delete(id);
    this.#live[s] = 0;
    this.#dead++;
    this.#drift++;
    if (words) {
      const bag = words instanceof Uint32Array ? bagOf(words) : decodeBag(words);
      for (let i = 0; i < bag.size; i++) if (bag.words[i] < this.#words && this.#df[bag.words[i]] > 0) this.#df[bag.words[i]]--;
    } else this.#dfStale = true;
    // Amortised: a pass over the postings per 1/8 (1/32 with stale n_w) of the slots removed.
    if (this.#dead * (this.#dfStale ? 32 : 8) > this.#slotCount) this.compact();
    return true;
  }

  /** Drops the postings of removed images, renumbers the slots, recounts n_w and recomputes the norms. */
  compact(): void {
    const wasLive = this.#live.slice(0, this.#slotCount);
    const remap = new Uint32Array(this.#slotCount);
    let live = 0;
    for (let s = 0; s < this.#slotCount; s++) {
      if (!wasLive[s]) continue;
      remap[s] = live;
      this.#ids[live] = this.#ids[s];
      this.#invNorm[live] = this.#invNorm[s];
      this.#byId.set(this.#ids[live], live);
      live++;
    }
    this.#live.fill(1, 0, live);
    this.#live.fill(0, live, this.#slotCount);
    for (let w = 0; w < this.#words; w++) {
      const slots = this.#slots[w], tf = this.#tf[w], n = this.#len[w];
      let m = 0;
      for (let p = 0; p < n; p++) {
        if (!wasLive[slots[p]]) continue;
        slots[m] = remap[slots[p]];
        tf[m++] = tf[p];
      }
      this.#len[w] = m;
      this.#df[w] = m;
      if (m === 0) (this.#slots[w] = EMPTY_SLOTS), (this.#tf[w] = EMPTY_TF);
      else if (slots.length > 2 * m + 16) (this.#slots[w] = slots.slice(0, m)), (this.#tf[w] = tf.slice(0, m));
    }
    this.#slotCount = live;
    this.#dead = 0;
    this.#dfStale = false;
    this.#computeNorms();
  }

  /** Recomputes every slot's norm with the current idf: one pass over the postings. */
  #computeNorms(): void {
    const norm = new Float64Array(this.#slotCount);
    const l1 = this.scoring === 'l1';
    for (let w = 0; w < this.#words; w++) {
      const n = this.#len[w];
      if (n === 0) continue;
      const idf = this.idf(w);
      if (idf === 0) continue;
      const slots = this.#slots[w], tf = this.#tf[w];
      for (let p = 0; p < n; p++) {
        const x = tf[p] * idf;
        norm[slots[p]] += l1 ? x : x * x;
      }
    }
    for (let s = 0; s < this.#slotCount; s++) {
      const x = l1 ? norm[s] : Math.sqrt(norm[s]);
      this.#invNorm[s] = x > 0 ? 1 / x : 0;
    }
    this.#drift = 0;
  }

  /**
   * The `n` images whose bags of words are most similar to `words` (a word per query descriptor),
   * best first, ties by id; `filter` (if given) must accept an id for it to be returned.
   */
  query(words: Uint32Array, n: number, filter?: (id: number) => boolean): Hit[] {
    if (!Number.isInteger(n) || n < 0) throw invalidParameter('n', 'a non-negative integer', n);
    const bag = bagOf(words);
    if (n === 0 || this.#byId.size === 0 || bag.size === 0) return [];
    if (this.#drift * 16 > this.#byId.size) this.#computeNorms();
    const l1 = this.scoring === 'l1';
    const qw = new Float64Array(bag.size);
    let qn = 0;
    for (let i = 0; i < bag.size; i++) {
      const w = bag.words[i];
      const x = w < this.#words ? Math.min(255, bag.counts[i]) * this.idf(w) : 0;
      qw[i] = x;
      qn += l1 ? x : x * x;
    }
    if ((qn = l1 ? qn : Math.sqrt(qn)) === 0) return [];
    if (this.#acc.length < this.#slotCount) {
      this.#acc = new Float64Array(this.#ids.length);
      this.#touched = new Uint32Array(this.#ids.length);
    }
    const acc = this.#acc, touched = this.#touched, invNorm = this.#invNorm;
    let nt = 0;
    // Every contribution is > 0 (or the slot's norm is 0 and it stays untouched at 0).
    for (let i = 0; i < bag.size; i++) {
      if (qw[i] === 0) continue;
      const w = bag.words[i];
      const q = qw[i] / qn, idf = this.idf(w);
      const slots = this.#slots[w], tf = this.#tf[w], len = this.#len[w];
      if (l1) {
        for (let p = 0; p < len; p++) {
          const s = slots[p];
          const d = tf[p] * idf * invNorm[s];
          if (d === 0) continue;
          if (acc[s] === 0) touched[nt++] = s;
          acc[s] += d < q ? d : q;
        }
      } else {
        const f = q * idf;
        for (let p = 0; p < len; p++) {
          const s = slots[p];
          const v = tf[p] * f * invNorm[s];
          if (v === 0) continue;
          if (acc[s] === 0) touched[nt++] = s;
          acc[s] += v;
        }
      }
    }
    try {
      return this.#top(touched, nt, n, filter);
    } finally {
      for (let t = 0; t < nt; t++) acc[touched[t]] = 0; // even when `filter` throws
    }
  }

  /** Best `n` touched live slots (a min-heap of size n), then sorted. */
  #top(touched: Uint32Array, nt: number, n: number, filter?: (id: number) => boolean): Hit[] {
    const acc = this.#acc, live = this.#live, ids = this.#ids;
    const heap = new Uint32Array(Math.min(n, nt));
    let size = 0;
    // a before b in the heap when a is worse: lower score, or equal score and larger id.
    const worse = (a: number, b: number) => acc[a] < acc[b] || (acc[a] === acc[b] && ids[a] > ids[b]);
    for (let t = 0; t < nt; t++) {
      const s = touched[t];
      if (!live[s] || acc[s] <= 0) continue;
      if (size === heap.length && !worse(heap[0], s)) continue;
      if (filter && !filter(ids[s])) continue;
      if (size < heap.length) {
        let i = size++;
        heap[i] = s;
        while (i > 0) {
          const parent = (i - 1) >> 1;
          if (!worse(heap[i], heap[parent])) break;
          [heap[i], heap[parent]] = [heap[parent], heap[i]];
          i = parent;
        }
      } else {
        heap[0] = s;
        for (let i = 0; ;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < size && worse(heap[l], heap[m])) m = l;
          if (r < size && worse(heap[r], heap[m])) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m], heap[i]];
          i = m;
        }
      }
    }
    return Array.from(heap.subarray(0, size), (s) => ({ id: ids[s], score: Math.min(1, acc[s]) })).sort((a, b) => b.score - a.score || a.id - b.id);
  }

  /**
   * Builds an index in one pass over `records` (ids unique): exact-size postings, no growth. From
   * `encoded` records the words come sorted, so nothing is sorted.
   */
  static fromRecords(records: Iterable<WordsRecord>, options?: InvertedOptions): InvertedIndex;
  /** As above with the vocabulary size (`Vocabulary.words`) first: word ids must be below it. */
  static fromRecords(words: number, records: Iterable<WordsRecord>, options?: InvertedOptions): InvertedIndex;
  static fromRecords(a: number | Iterable<WordsRecord>, b?: Iterable<WordsRecord> | InvertedOptions, c?: InvertedOptions): InvertedIndex {
    const sized = typeof a === 'number';
    const records = (sized ? b : a) as Iterable<WordsRecord>;
    const options = (sized ? { ...c, words: a } : b ?? {}) as InvertedOptions;
    const index = new InvertedIndex(options);
    // Pass 1: every bag into flat temporary arrays; n_w counted.
    let tw = new Uint32Array(1 << 16), tt = new Uint8Array(1 << 16), tn = 0;
    let starts = new Uint32Array(1024);
    for (const r of records) {
      index.#checkId(r.id);
      if (index.#byId.has(r.id)) throw invalidParameter('records', 'unique ids', `id ${r.id} twice`);
      const bag = r.encoded ? decodeBag(r.encoded) : r.words ? bagOf(r.words) : undefined;
      if (!bag) throw invalidParameter('records', 'words or encoded on each record', `neither on id ${r.id}`);
      index.#checkBag(bag);
      const s = index.#newSlot(r.id);
      starts = grow(starts, s + 2);
      starts[s] = tn;
      if (tn + bag.size > tw.length) {
        tw = grow(tw, Math.max(tn + bag.size, tw.length * 2));
        tt = grow(tt, tw.length);
      }
      for (let i = 0; i < bag.size; i++, tn++) {
        tw[tn] = bag.words[i];
        tt[tn] = Math.min(255, bag.counts[i]);
        index.#df[bag.words[i]]++;
      }
    }
    starts[index.#slotCount] = tn;
    // Pass 2: exact-size postings, filled in slot order.
    const df = index.#df;
    for (let w = 0; w < index.#words; w++) {
      if (df[w] > 0) (index.#slots[w] = new Uint32Array(df[w])), (index.#tf[w] = new Uint8Array(df[w]));
    }
    const len = index.#len;
    for (let s = 0; s < index.#slotCount; s++) {
      for (let p = starts[s]; p < starts[s + 1]; p++) {
        const w = tw[p];
        index.#slots[w][len[w]] = s;
        index.#tf[w][len[w]++] = tt[p];
      }
    }
    index.#computeNorms();
    return index;
  }
}
