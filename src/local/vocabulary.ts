/**
 * A vocabulary tree of binary visual words (issue 14): hierarchical k-majority clustering of
 * 256-bit ORB descriptors (Nistér & Stewénius 2006, "Scalable recognition with a vocabulary tree";
 * the binary variant of DBoW2, Gálvez-López & Tardós 2012). Each node is split into up to
 * `branching` clusters by k-medians++ seeding (seeded RNG) and a few Lloyd iterations whose
 * centroids are the per-bit majority of their members; `depth` levels give up to
 * branching^depth words (the leaves). A descriptor's word is found by descending the tree, so
 * quantizing costs depth × branching Hamming distances per descriptor.
 *
 * Bytes (`toBytes`/`fromBytes`, little-endian, versioned, CRC-32 checked): header, one child count
 * per node (breadth-first order, so the tree is implied), each node's centroid (32 bytes, the
 * descriptor's own byte order), then the idf table and the image count it was computed over.
 */
import { invalidParameter, PixdexError } from '../errors.ts';
import { seededRandom } from '../random.ts';
import { DESCRIPTOR_BYTES } from './types.ts';
import { hammingKnn } from './hamming-wasm.ts';

/** uint32 words per descriptor. */
const W = DESCRIPTOR_BYTES / 4;
const MAGIC = 0x54565850; // 'PXVT' little-endian
const VERSION = 1;
const HEADER_BYTES = 28;

/**
 * Defaults by measurement (bench/local/tree.ts, smvs ORB 500 + CLAHE, cosine): k=10 L=5 (up to
 * 100k words) beats L=4 in each ~100-image category library (mean of 3 seeds, R@5 book covers
 * 0.947 vs 0.914, museum 0.901 vs 0.831, landmarks 0.426 vs 0.393), ties in the 2,051-image
 * library (R@50 ~0.64), and halves query time at 100k images (bench/inverted.ts: 5.6 vs 12 ms)
 * for 845 instead of 523 stored bytes of words per image.
 */
export const DEFAULT_BRANCHING = 10;
export const DEFAULT_DEPTH = 5;
export const DEFAULT_SEED = 1;
/** Descriptors sampled for learning: more costs time roughly linearly. */
export const DEFAULT_MAX_DESCRIPTORS = 200_000;
/** Lloyd iterations per node (stops earlier when no descriptor changes cluster). */
export const DEFAULT_ITERATIONS = 8;

export interface LearnOptions {
  /** Children per node, 2..255 (default 10). */
  branching?: number;
  /** Levels below the root, 1..8 (default 5: up to 10^5 words). */
  depth?: number;
  /** Seed of the sampling and the k-medians++ seeding (default 1). */
  seed?: number;
  /** At most this many descriptors are used (a uniform random sample, default 200,000). */
  maxDescriptors?: number;
  /** Lloyd iterations per node (default 8). */
  iterations?: number;
  /** Called now and then with descriptors assigned to finished nodes so far / all of them (× depth). */
  onProgress?: (done: number, total: number) => void;
}

/** Corrupt or foreign vocabulary bytes: the store's invariant is broken (re-learn it). */
function corrupt(message: string): PixdexError {
  return new PixdexError('STORE_INCONSISTENT', `Vocabulary bytes are unusable: ${message}. Re-learn the vocabulary from the stored local features.`);
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Hamming distance between row `i` of `a` and row `j` of `b` (rows of W uint32). */
function hamming(a: Uint32Array, i: number, b: Uint32Array, j: number): number {
  i *= W;
  j *= W;
  return (
    popcount(a[i] ^ b[j]) + popcount(a[i + 1] ^ b[j + 1]) + popcount(a[i + 2] ^ b[j + 2]) + popcount(a[i + 3] ^ b[j + 3]) +
    popcount(a[i + 4] ^ b[j + 4]) + popcount(a[i + 5] ^ b[j + 5]) + popcount(a[i + 6] ^ b[j + 6]) + popcount(a[i + 7] ^ b[j + 7])
  );
}

/** The descriptors as rows of uint32 (a view when aligned, else one copy). */
function rows(descriptors: Uint8Array): Uint32Array {
  if (descriptors.length % DESCRIPTOR_BYTES !== 0) {
    throw invalidParameter('descriptors', `a multiple of ${DESCRIPTOR_BYTES} bytes`, `${descriptors.length} bytes`);
  }
  if (descriptors.byteOffset % 4 === 0) return new Uint32Array(descriptors.buffer, descriptors.byteOffset, descriptors.length / 4);
  return new Uint32Array(descriptors.slice().buffer);
}

function intOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw invalidParameter(name, `integer between ${min} and ${max}`, v);
  return v;
}

/** Growable node arrays used while learning. */
class NodeBuilder {
  centroids = new Uint32Array(1024 * W);
  childCount = new Uint8Array(1024);
  size = 1; // the root, centroid unused
  alloc(k: number): number {
    const first = this.size;
    this.size += k;
    if (this.size > this.childCount.length) {
      const cap = Math.max(this.size, this.childCount.length * 2);
      const c = new Uint32Array(cap * W);
      c.set(this.centroids);
      this.centroids = c;
      const n = new Uint8Array(cap);
      n.set(this.childCount);
      this.childCount = n;
    }
    return first;
  }
}

export class Vocabulary {
  /** Children per node and levels it was learned with. */
  readonly branching: number;
  readonly depth: number;
  /** Number of words (leaves). */
  readonly words: number;
  /** Per word: ln(N / n_w) over the N images `setIdf` was given (0 for a word in none); 1 until set. */
  readonly idf: Float32Array;
  /** N of the idf table (0 until `setIdf`). */
  images = 0;
  readonly #centroids: Uint32Array;
  readonly #childCount: Uint8Array;
  readonly #firstChild: Uint32Array;
  /** Per node: its word (leaves) or -1. */
  readonly #word: Int32Array;

  private constructor(branching: number, depth: number, centroids: Uint32Array, childCount: Uint8Array) {
    this.branching = branching;
    this.depth = depth;
    const nodes = childCount.length;
    this.#centroids = centroids;
    this.#childCount = childCount;
    this.#firstChild = new Uint32Array(nodes);
    this.#word = new Int32Array(nodes).fill(-1);
    let next = 1;
    let words = 0;
    for (let i = 0; i < nodes; i++) {
      if (childCount[i] === 0) this.#word[i] = words++;
      else {
        this.#firstChild[i] = next;
        next += childCount[i];
      }
    }
    this.words = words;
    this.idf = new Float32Array(words).fill(1);
  }

  /** Nodes of the tree, root included. */
  get nodes(): number {
    return this.#childCount.length;
  }

  /**
   * Learns a tree from `descriptors` (n × 32 bytes, e.g. every image's descriptors concatenated).
   * Deterministic for the same descriptors and options.
   */
  static learn(descriptors: Uint8Array, options: LearnOptions = {}): Vocabulary {
    const k = intOption('branching', options.branching, DEFAULT_BRANCHING, 2, 255);
    const depth = intOption('depth', options.depth, DEFAULT_DEPTH, 1, 8);
    const maxN = intOption('maxDescriptors', options.maxDescriptors, DEFAULT_MAX_DESCRIPTORS, 1, 2 ** 31);
    const iterations = intOption('iterations', options.iterations, DEFAULT_ITERATIONS, 1, 100);
    const seed = options.seed ?? DEFAULT_SEED;
    if (!Number.isFinite(seed)) throw invalidParameter('seed', 'a finite number', seed);
    const all = rows(descriptors);
    const total = all.length / W;
    if (total === 0) throw invalidParameter('descriptors', 'at least one descriptor', '0 bytes');
    const random = seededRandom(seed);
    // Selection sampling (Knuth's algorithm S): a uniform sample in input order, no index array.
    const n = Math.min(total, maxN);
    let data = all;
    if (n < total) {
      data = new Uint32Array(n * W);
      for (let i = 0, j = 0; j < n; i++) {
        if ((total - i) * random() < n - j) data.set(all.subarray(i * W, i * W + W), W * j++);
      }
    }
    const nodes = new NodeBuilder();
    // Each node owns a contiguous range of `perm`; clustering reorders the range by child.
    const perm = new Uint32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    const scratch = new Uint32Array(n);
    const assign = new Uint8Array(n);
    const dist = new Float64Array(n);
    const centres = new Uint32Array(k * W);
    const bits = new Uint32Array(k * DESCRIPTOR_BYTES * 8);
    const counts = new Uint32Array(k);
    const queue: number[] = [0, 0, n, 0]; // node, start, end, level
    let done = 0;
    let reported = 0;
    for (let q = 0; q < queue.length; q += 4) {
      const node = queue[q], start = queue[q + 1], end = queue[q + 2], level = queue[q + 3];
      const m = end - start;
      if (level >= depth || m <= 1) {
        done += m * (depth - level);
        continue;
      }
      let kk: number;
      if (m <= k) {
        // Fewer descriptors than children: each distinct one is a leaf.
        kk = 0;
        for (let i = start; i < end; i++) {
          let c = 0;
          while (c < kk && hamming(data, perm[i], centres, c) !== 0) c++;
          if (c === kk) centres.set(data.subarray(perm[i] * W, perm[i] * W + W), W * kk++);
          assign[i] = c;
        }
      } else {
        kk = seedCentres(data, perm, start, end, k, centres, dist, random);
        // The range's descriptors in one block: each iteration's assignment is one nearest-centre
        // search (hamming-wasm.ts; the nearest, the first on a tie, as a scalar loop would give).
        const block = new Uint8Array(m * DESCRIPTOR_BYTES);
        const block32 = new Uint32Array(block.buffer);
        for (let i = start; i < end; i++) block32.set(data.subarray(perm[i] * W, perm[i] * W + W), (i - start) * W);
        const centreBytes = new Uint8Array(centres.buffer, centres.byteOffset, kk * DESCRIPTOR_BYTES);
        for (let it = 0; ; it++) {
          let changed = 0;
          const nearest = hammingKnn(block, m, centreBytes, kk);
          for (let i = start; i < end; i++) {
            const best = nearest[(i - start) * 3 + 2];
            if (it === 0 || assign[i] !== best) changed++;
            assign[i] = best;
          }
          if (changed === 0 || it === iterations) break;
          majority(data, perm, start, end, assign, kk, centres, bits, counts);
        }
      }
      // Order the range by cluster and create the non-empty children.
      counts.fill(0);
      for (let i = start; i < end; i++) counts[assign[i]]++;
      let children = 0;
      for (let c = 0; c < kk; c++) if (counts[c] > 0) children++;
      if (children <= 1) {
        done += m * (depth - level); // all the same descriptor: a leaf
        continue;
      }
      const first = nodes.alloc(children);
      nodes.childCount[node] = children;
      const offset = new Uint32Array(kk);
      const slot = new Int32Array(kk).fill(-1);
      for (let c = 0, o = start, s = 0; c < kk; c++) {
        offset[c] = o;
        o += counts[c];
        if (counts[c] > 0) {
          slot[c] = s;
          nodes.centroids.set(centres.subarray(c * W, c * W + W), (first + s) * W);
          queue.push(first + s, offset[c], offset[c] + counts[c], level + 1);
          s++;
        }
      }
      for (let i = start; i < end; i++) scratch[offset[assign[i]]++] = perm[i];
      perm.set(scratch.subarray(start, end), start);
      done += m;
      if (options.onProgress && done - reported >= n) {
        reported = done;
        options.onProgress(done, n * depth);
      }
    }
    options.onProgress?.(n * depth, n * depth);
    return new Vocabulary(k, depth, nodes.centroids.slice(0, nodes.size * W), nodes.childCount.slice(0, nodes.size));
  }

  /** The word of each descriptor (n × 32 bytes in, n words out). */
  quantize(descriptors: Uint8Array): Uint32Array {
    const d = rows(descriptors);
    const n = d.length / W;
    const out = new Uint32Array(n);
    const cen = this.#centroids, cc = this.#childCount, fc = this.#firstChild, word = this.#word;
    for (let i = 0; i < n; i++) {
      let node = 0;
      while (cc[node] !== 0) {
        const first = fc[node], last = first + cc[node];
        let best = first, bd = 257;
        for (let c = first; c < last; c++) {
          const dd = hamming(d, i, cen, c);
          if (dd < bd) (bd = dd), (best = c);
        }
        node = best;
      }
      out[i] = word[node];
    }
    return out;
  }

  /**
   * Sets the idf table from each word's document frequency (images holding it at least once) over
   * `images` images: idf = ln(images / n_w), 0 for a word in no image.
   */
  setIdf(documentFrequency: ArrayLike<number>, images: number): void {
    if (documentFrequency.length !== this.words) throw invalidParameter('documentFrequency', `${this.words} counts`, `${documentFrequency.length} counts`);
    if (!Number.isInteger(images) || images < 0) throw invalidParameter('images', 'a non-negative integer', images);
    for (let w = 0; w < this.words; w++) {
      const df = documentFrequency[w];
      this.idf[w] = df > 0 && images > 0 ? Math.max(0, Math.log(images / df)) : 0;
    }
    this.images = images;
  }

  toBytes(): Uint8Array {
    const nodes = this.nodes;
    const countsBytes = (nodes + 3) & ~3;
    const size = HEADER_BYTES + countsBytes + nodes * DESCRIPTOR_BYTES + this.words * 4 + 4;
    const out = new Uint8Array(size);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, MAGIC, true);
    dv.setUint16(4, VERSION, true);
    dv.setUint16(6, DESCRIPTOR_BYTES, true);
    dv.setUint16(8, this.branching, true);
    dv.setUint16(10, this.depth, true);
    dv.setUint32(12, nodes, true);
    dv.setUint32(16, this.words, true);
    dv.setUint32(20, this.images, true);
    dv.setUint32(24, 0, true); // reserved
    let o = HEADER_BYTES;
    out.set(this.#childCount, o);
    o += countsBytes;
    out.set(new Uint8Array(this.#centroids.buffer, this.#centroids.byteOffset, nodes * DESCRIPTOR_BYTES), o);
    o += nodes * DESCRIPTOR_BYTES;
    for (let w = 0; w < this.words; w++, o += 4) dv.setFloat32(o, this.idf[w], true);
    dv.setUint32(o, crc32(out.subarray(0, o)), true);
    return out;
  }

  /** Reads `toBytes` output; throws a `PixdexError` STORE_INCONSISTENT on anything else. */
  static fromBytes(bytes: Uint8Array): Vocabulary {
    if (!(bytes instanceof Uint8Array)) throw corrupt('not a byte array');
    if (bytes.length < HEADER_BYTES + 4) throw corrupt(`${bytes.length} bytes is shorter than the header`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dv.getUint32(0, true) !== MAGIC) throw corrupt('no vocabulary header');
    const version = dv.getUint16(4, true);
    if (version !== VERSION) throw corrupt(`version ${version}, this build reads version ${VERSION}`);
    if (dv.getUint16(6, true) !== DESCRIPTOR_BYTES) throw corrupt(`descriptors of ${dv.getUint16(6, true)} bytes, expected ${DESCRIPTOR_BYTES}`);
    const branching = dv.getUint16(8, true), depth = dv.getUint16(10, true);
    const nodes = dv.getUint32(12, true), words = dv.getUint32(16, true), images = dv.getUint32(20, true);
    if (branching < 2 || branching > 255 || depth < 1 || depth > 8 || nodes < 1) throw corrupt(`branching ${branching}, depth ${depth}, ${nodes} nodes`);
    const countsBytes = (nodes + 3) & ~3;
    const size = HEADER_BYTES + countsBytes + nodes * DESCRIPTOR_BYTES + words * 4 + 4;
    if (bytes.length !== size) throw corrupt(`${bytes.length} bytes, expected ${size} for ${nodes} nodes and ${words} words`);
    if (dv.getUint32(size - 4, true) !== crc32(bytes.subarray(0, size - 4))) throw corrupt('checksum mismatch');
    const childCount = bytes.slice(HEADER_BYTES, HEADER_BYTES + nodes);
    // The breadth-first child counts must describe one tree of at most `depth` levels.
    let next = 1, leaves = 0, levelEnd = 1, level = 0;
    for (let i = 0; i < nodes; i++) {
      if (i === levelEnd) (levelEnd = next), level++;
      if (childCount[i] > branching) throw corrupt(`node ${i} has ${childCount[i]} children, branching is ${branching}`);
      if (childCount[i] === 0) leaves++;
      else if (level >= depth) throw corrupt(`node ${i} is deeper than ${depth} levels`);
      next += childCount[i];
    }
    if (next !== nodes) throw corrupt(`child counts name ${next} nodes, not ${nodes}`);
    if (leaves !== words) throw corrupt(`${leaves} leaves, not ${words} words`);
    const o = HEADER_BYTES + countsBytes;
    const centroids = new Uint32Array(nodes * W);
    new Uint8Array(centroids.buffer).set(bytes.subarray(o, o + nodes * DESCRIPTOR_BYTES));
    const v = new Vocabulary(branching, depth, centroids, childCount);
    for (let w = 0, p = o + nodes * DESCRIPTOR_BYTES; w < words; w++, p += 4) {
      const x = dv.getFloat32(p, true);
      if (!(x >= 0) || !Number.isFinite(x)) throw corrupt(`idf of word ${w} is ${x}`);
      v.idf[w] = x;
    }
    v.images = images;
    return v;
  }
}

/** k-medians++ seeding: the first centre uniformly, each next one with probability ∝ D². Returns the centres found (≤ k). */
function seedCentres(data: Uint32Array, perm: Uint32Array, start: number, end: number, k: number, centres: Uint32Array, dist: Float64Array, random: () => number): number {
  const m = end - start;
  const first = perm[start + Math.floor(random() * m)];
  centres.set(data.subarray(first * W, first * W + W), 0);
  let sum = 0;
  for (let i = start; i < end; i++) {
    const d = hamming(data, perm[i], centres, 0);
    dist[i] = d * d;
    sum += dist[i];
  }
  let kk = 1;
  while (kk < k && sum > 0) {
    let r = random() * sum;
    let pick = end - 1;
    for (let i = start; i < end; i++) {
      r -= dist[i];
      if (r < 0 && dist[i] > 0) {
        pick = i;
        break;
      }
    }
    while (dist[pick] === 0) pick--; // rounding at the end of the range
    const p = perm[pick];
    centres.set(data.subarray(p * W, p * W + W), kk * W);
    sum = 0;
    for (let i = start; i < end; i++) {
      const d = hamming(data, perm[i], centres, kk);
      if (d * d < dist[i]) dist[i] = d * d;
      sum += dist[i];
    }
    kk++;
  }
  return kk;
}

/**
 * Centroid = per-bit majority of the members (ties give 0); a centre with no member keeps its value.
 * Bits are counted four at a time (SIMD within a register): for each of a word's 8 bit positions
 * within its bytes, `(v >>> b) & 0x01010101` adds one byte lane per byte of the word into a 32-bit
 * accumulator, flushed into the exact counts before a lane can overflow (every 255 members).
 */
function majority(data: Uint32Array, perm: Uint32Array, start: number, end: number, assign: Uint8Array, kk: number, centres: Uint32Array, bits: Uint32Array, counts: Uint32Array): void {
  bits.fill(0, 0, kk * W * 32);
  counts.fill(0);
  if (lanes.length < kk * W * 8) lanes = new Uint32Array(kk * W * 8);
  lanes.fill(0, 0, kk * W * 8);
  const pending = new Uint32Array(kk);
  const flush = (c: number): void => {
    for (let w = 0; w < W; w++) {
      const a0 = (c * W + w) * 8, b0 = (c * W + w) * 32;
      for (let b = 0; b < 8; b++) {
        const acc = lanes[a0 + b];
        if (acc === 0) continue;
        bits[b0 + b] += acc & 0xff;
        bits[b0 + 8 + b] += (acc >>> 8) & 0xff;
        bits[b0 + 16 + b] += (acc >>> 16) & 0xff;
        bits[b0 + 24 + b] += acc >>> 24;
        lanes[a0 + b] = 0;
      }
    }
    pending[c] = 0;
  };
  for (let i = start; i < end; i++) {
    const c = assign[i];
    counts[c]++;
    const row = perm[i] * W;
    const a = c * W * 8;
    for (let w = 0; w < W; w++) {
      const v = data[row + w];
      if (v === 0) continue;
      const o = a + w * 8;
      lanes[o] += v & 0x01010101;
      lanes[o + 1] += (v >>> 1) & 0x01010101;
      lanes[o + 2] += (v >>> 2) & 0x01010101;
      lanes[o + 3] += (v >>> 3) & 0x01010101;
      lanes[o + 4] += (v >>> 4) & 0x01010101;
      lanes[o + 5] += (v >>> 5) & 0x01010101;
      lanes[o + 6] += (v >>> 6) & 0x01010101;
      lanes[o + 7] += (v >>> 7) & 0x01010101;
    }
    if (++pending[c] === 255) flush(c);
  }
  for (let c = 0; c < kk; c++) if (pending[c] > 0) flush(c);
  for (let c = 0; c < kk; c++) {
    if (counts[c] === 0) continue;
    const half = counts[c];
    for (let w = 0; w < W; w++) {
      let v = 0;
      const b0 = (c * W + w) * 32;
      for (let b = 0; b < 32; b++) if (bits[b0 + b] * 2 > half) v |= 1 << b;
      centres[c * W + w] = v >>> 0;
    }
  }
}
/** `majority`'s byte-lane accumulators: per centre, word and bit-within-byte (grown on demand). */
let lanes = new Uint32Array(0);

let CRC_TABLE: Uint32Array | undefined;
function crc32(bytes: Uint8Array): number {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
