/**
 * The HNSW index (hnswlib-node), keyed by image id. Metric: `cosine` = 1 − x·y / (‖x‖‖y‖);
 * pixdex reports score = 1 − distance = cosine similarity.
 *
 * Native code is where crashes come from, so nothing reaches hnswlib unchecked: ids, vectors, k,
 * ef and capacities are validated here (`InvalidParameterError`), and a snapshot is checked byte
 * for byte against hnswlib's layout before `readIndexSync` sees it (`SnapshotUnusableError`):
 * hnswlib trusts its file and a bad count, level or neighbour id makes it read or write outside
 * its buffers.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import type { AnnOptions } from './config.ts';
import { InvalidParameterError, SnapshotUnusableError, invalidParameter } from './errors.ts';

const { HierarchicalNSW } = hnswlib;

/** One search hit. */
export interface Hit {
  id: number;
  /** Cosine similarity in [-1, 1], higher is closer. */
  score: number;
}

/** Smallest capacity allocated; the index doubles when full. */
export const MIN_CAPACITY = 1024;

/** Largest id, capacity and k: the binding passes them to hnswlib as uint32 (`Uint32Value`, which wraps). */
export const MAX_U32 = 2 ** 32 - 1;

/** Largest vector length accepted (the widest backbone is 1280-d). */
const MAX_DIMS = 65_536;

/** hnswlib caps M at 10000; M = 1 makes its level multiplier 1/ln(1) = ∞. */
const MAX_M = 10_000;

/** Bytes of hnswlib's index header (hnswalg.h saveIndex/loadIndex). */
const HEADER_BYTES = 96;

/**
 * Highest graph level a snapshot may claim. A level is ⌊−ln(u)·mult⌋ with u a double in (0, 1)
 * and mult = 1/ln(M) ≤ 1/ln 2: below 54 for any M ≥ 2.
 */
const MAX_LEVEL = 64;

/** The upper-level link lists (after the vectors) are read into memory to be checked: ~8 bytes per vector. */
const MAX_TAIL_BYTES = 2 ** 30;

/** Vectors are checked this many bytes at a time. */
const SCAN_BYTES = 16 * 1024 * 1024;

export class AnnIndex {
  private readonly index: InstanceType<typeof HierarchicalNSW>;
  private live: number;

  private constructor(readonly dims: number, readonly params: AnnOptions, index: InstanceType<typeof HierarchicalNSW>, live: number) {
    this.index = index;
    this.live = live;
  }

  /** An empty index for `dims`-d vectors. */
  static create(dims: number, params: AnnOptions, capacity = MIN_CAPACITY): AnnIndex {
    checkShape(dims, params);
    if (!Number.isInteger(capacity) || capacity < 0 || capacity > MAX_U32) throw invalidParameter('capacity', `integer between 0 and ${MAX_U32}`, capacity);
    const slots = Math.max(capacity, MIN_CAPACITY);
    checkMemory(slots, dims, params.m);
    const index = new HierarchicalNSW('cosine', dims);
    index.initIndex({ maxElements: slots, m: params.m, efConstruction: params.efConstruction, randomSeed: 100, allowReplaceDeleted: true });
    return new AnnIndex(dims, params, index, 0);
  }

  /**
   * Restores an index from `toBytes()` output; `live` is the searchable count saved with it.
   * Throws `SnapshotUnusableError` for bytes that are not an hnswlib index of `dims`-d vectors
   * with M = `params.m` holding `live` searchable vectors (empty, truncated, foreign, corrupt).
   */
  static fromBytes(bytes: Uint8Array, dims: number, params: AnnOptions, live: number): AnnIndex {
    checkShape(dims, params);
    const file = tempFile();
    try {
      fs.writeFileSync(file, bytes);
      return AnnIndex.load(file, dims, params, live);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** Serialises the graph (hnswlib writes files only, so this goes through a temp file). */
  toBytes(): Buffer {
    const file = tempFile();
    try {
      this.index.writeIndexSync(file);
      return readWhole(file);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /**
   * Restores an index from the hnswlib bytes `fill` writes to the temp file it is given (false:
   * none), e.g. `Store.loadSnapshotToFile` straight from LMDB's memory map, without the Buffer
   * `fromBytes` takes (1M x 256-d: one 1.2 GB copy and ~1 s less on open, bench/open.ts).
   * Throws `SnapshotUnusableError` as `fromBytes` does.
   */
  static restore(fill: (file: string) => boolean, dims: number, params: AnnOptions, live: number): AnnIndex | undefined {
    checkShape(dims, params);
    const file = tempFile();
    try {
      if (!fill(file)) return undefined;
      return AnnIndex.load(file, dims, params, live);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /**
   * Checks the snapshot in `file` (ours: a temp file), sets the capacity in its header, and only
   * then hands it to hnswlib. Every load goes to a new `HierarchicalNSW`: the binding's
   * `readIndexSync` deletes the index it held before loading, and leaves the pointer dangling
   * when the load throws.
   */
  private static load(file: string, dims: number, params: AnnOptions, live: number): AnnIndex {
    const info = inspectSnapshot(file, dims, params.m);
    if (live !== info.live) {
      throw new SnapshotUnusableError(`HNSW snapshot: it holds ${info.live} searchable vectors but its metadata says ${String(live)}`);
    }
    checkMemory(info.capacity, dims, params.m);
    // hnswlib allocates the capacity in the header (the saved one, however large), or exactly the
    // count when the header's is smaller, and 0 for an empty snapshot (issue 21): choose it here.
    const fd = fs.openSync(file, 'r+');
    try {
      const capacity = Buffer.alloc(8);
      capacity.writeBigUInt64LE(BigInt(info.capacity));
      fs.writeSync(fd, capacity, 0, 8, 8);
    } finally {
      fs.closeSync(fd);
    }
    const index = new HierarchicalNSW('cosine', dims);
    try {
      index.readIndexSync(file, true);
    } catch (err) {
      // e.g. "Index seems to be corrupted or unsupported": the checks above should have said so.
      throw new SnapshotUnusableError(`HNSW snapshot: hnswlib refused it (${(err as Error).message})`, { cause: err });
    }
    const ann = new AnnIndex(dims, params, index, info.live);
    if (ann.capacity < MIN_CAPACITY || ann.capacity <= info.count) ann.resize(Math.max(MIN_CAPACITY, info.count + 1)); // an empty snapshot loads with capacity 0
    return ann;
  }

  /**
   * Writes the graph to a temp file and hands it to `use` (e.g. `Store.saveSnapshotFile`): no
   * Buffer holds the whole index, so no 4 GiB limit (`toBytes`; 1M x 1280-d is 5.3 GB).
   */
  save<T>(use: (file: string) => T): T {
    const file = tempFile();
    try {
      this.index.writeIndexSync(file);
      return use(file);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** Number of searchable vectors. */
  get size(): number {
    return this.live;
  }

  /** Allocated slots (live + deleted-but-not-reused + free). */
  get capacity(): number {
    return this.index.getMaxElements();
  }

  /** Whether `id` is searchable (hnswlib refuses `getPoint` for missing and deleted labels). */
  has(id: number): boolean {
    if (!isId(id)) return false; // the binding would wrap it onto another id
    try {
      this.index.getPoint(id);
      return true;
    } catch {
      return false;
    }
  }

  /** The searchable ids, in no particular order (`pixdex check` compares them with the store). */
  ids(): number[] {
    return this.index.getIdsList().filter((id) => this.has(id));
  }

  /** The unit-length vector the index holds for `id`, or undefined when `id` is not searchable. */
  vector(id: number): Float32Array | undefined {
    if (!isId(id)) return undefined;
    try {
      return Float32Array.from(this.index.getPoint(id));
    } catch {
      return undefined;
    }
  }

  /**
   * Adds or replaces the vector of `id` (an integer in [0, 2^32−1]; `dims` finite numbers); a new
   * id reuses a deleted slot when one is free.
   */
  add(id: number, vector: Float32Array): void {
    if (!isId(id)) throw invalidParameter('id', `integer between 0 and ${MAX_U32}`, id);
    const point = this.point(vector, 'vector');
    if (this.has(id)) {
      this.index.addPoint(point, id); // hnswlib updates an existing label in place
      return;
    }
    if (this.undelete(id)) {
      this.index.addPoint(point, id);
      this.live++;
      return;
    }
    try {
      this.index.addPoint(point, id, true);
    } catch (err) {
      if (!String((err as Error).message).includes('exceeds the specified limit')) throw err;
      // A snapshot loads with capacity = its count (0 for an empty one): resizing 0 to 0 would free
      // hnswlib's buffers and crash the process, so grow to at least MIN_CAPACITY.
      const capacity = this.capacity;
      if (capacity >= MAX_U32) throw new InvalidParameterError(`The index is full: it holds ${capacity} slots, the most hnswlib-node can address`);
      this.resize(Math.min(MAX_U32, Math.max(capacity * 2, MIN_CAPACITY)));
      this.index.addPoint(point, id, true);
    }
    this.live++;
  }

  /**
   * The only call of hnswlib's `resizeIndex`: it reallocates its buffers to exactly `capacity`
   * slots (0 frees them and leaves them dangling), and the binding wraps the number to uint32.
   */
  private resize(capacity: number): void {
    const count = this.index.getCurrentCount();
    if (!Number.isInteger(capacity) || capacity <= count || capacity < MIN_CAPACITY || capacity > MAX_U32) {
      throw invalidParameter('capacity', `integer above the ${count} slots in use, at least ${MIN_CAPACITY} and at most ${MAX_U32}`, capacity);
    }
    checkMemory(capacity, this.dims, this.params.m);
    this.index.resizeIndex(capacity);
  }

  private undelete(id: number): boolean {
    try {
      this.index.unmarkDelete(id);
      return true;
    } catch {
      return false; // not present, or present and not deleted
    }
  }

  /**
   * Hides `id` from searches and frees its slot for reuse. An id the index does not hold (never
   * added, or removed already) returns false: the journal replays removals of such ids. Anything
   * but an integer in [0, 2^32−1] is an `InvalidParameterError` (the binding would wrap it onto
   * another id and remove that one).
   */
  remove(id: number): boolean {
    if (!isId(id)) throw invalidParameter('id', `integer between 0 and ${MAX_U32}`, id);
    if (!this.has(id)) return false;
    this.index.markDelete(id);
    this.live--;
    return true;
  }

  /**
   * The `k` nearest ids by cosine similarity, highest first. `filter` restricts the candidates
   * inside the graph search, so k results come back when k matching items exist. `k` is an
   * integer ≥ 0, clamped to `size` (asking for 10 in a library of 3 gives 3); `ef` an integer
   * ≥ 1 (raised to k); `vector` `dims` finite numbers. An exception thrown by `filter` is rethrown
   * after the search (the binding cannot carry it out of hnswlib).
   */
  search(vector: Float32Array, k: number, filter?: (id: number) => boolean, ef = this.params.efSearch): Hit[] {
    const point = this.point(vector, 'query vector');
    if (!Number.isInteger(k) || k < 0) throw invalidParameter('k', 'integer of at least 0', k);
    if (!Number.isInteger(ef) || ef < 1 || ef > MAX_U32) throw invalidParameter('ef', `integer between 1 and ${MAX_U32}`, ef);
    if (filter !== undefined && typeof filter !== 'function') throw invalidParameter('filter', 'function', filter);
    const n = Math.min(k, this.live);
    if (n <= 0) return [];
    let thrown: { err: unknown } | undefined;
    const guarded = filter && ((id: number): boolean => {
      if (thrown) return false;
      try {
        return Boolean(filter(id));
      } catch (err) {
        thrown = { err };
        return false;
      }
    });
    this.index.setEf(Math.max(ef, n));
    const { distances, neighbors } = this.index.searchKnn(point, n, guarded);
    if (thrown) throw thrown.err;
    return neighbors.map((id, i) => ({ id, score: 1 - distances[i] }));
  }

  /** `vector` as the plain Array the binding takes, after checking its length and values. */
  private point(vector: Float32Array, name: string): number[] {
    const v: unknown = vector;
    if (!(v instanceof Float32Array || v instanceof Float64Array || Array.isArray(v))) {
      throw invalidParameter(name, `Float32Array of ${this.dims} numbers`, vector);
    }
    if (vector.length !== this.dims) {
      throw new InvalidParameterError(`Expected ${this.dims} numbers for ${name} but received ${vector.length}`);
    }
    const point = Array.from(vector as ArrayLike<number>);
    let squares = 0;
    for (let i = 0; i < point.length; i++) {
      if (typeof point[i] !== 'number' || !Number.isFinite(point[i])) {
        throw new InvalidParameterError(`Expected finite numbers for ${name} but received ${String(point[i])} at index ${i}`);
      }
      squares += point[i] * point[i];
    }
    // Normalised here in double precision: hnswlib's float sum of squares underflows for tiny
    // vectors (1e-25 in every component) and would store them far from unit length.
    if (squares > 0) {
      const scale = 1 / Math.sqrt(squares);
      for (let i = 0; i < point.length; i++) point[i] *= scale;
    }
    return point;
  }
}

/** Whether `id` is a label the binding passes through unchanged. */
function isId(id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= MAX_U32;
}

/** Checks dims and M before they size anything in hnswlib. */
function checkShape(dims: number, params: AnnOptions): void {
  if (!Number.isInteger(dims) || dims < 1 || dims > MAX_DIMS) throw invalidParameter('dims', `integer between 1 and ${MAX_DIMS}`, dims);
  if (!Number.isInteger(params.m) || params.m < 2 || params.m > MAX_M) throw invalidParameter('ann.m', `integer between 2 and ${MAX_M}`, params.m);
  if (!Number.isInteger(params.efConstruction) || params.efConstruction < 1 || params.efConstruction > MAX_U32) {
    throw invalidParameter('ann.efConstruction', `integer between 1 and ${MAX_U32}`, params.efConstruction);
  }
}

/** Bytes hnswlib keeps per vector: level-0 links, the vector and its label. */
function bytesPerElement(dims: number, m: number): number {
  return 2 * m * 4 + 4 + dims * 4 + 8;
}

/**
 * Refuses a capacity whose allocation exceeds this machine's memory: hnswlib constructs one mutex
 * per slot up front, so an absurd capacity is not a failed malloc but the process killed.
 */
function checkMemory(capacity: number, dims: number, m: number): void {
  const bytes = capacity * (bytesPerElement(dims, m) + 40 + 8 + 4 + 2); // + mutex, link list pointer, level, visited mark
  if (bytes > os.totalmem()) {
    throw new InvalidParameterError(`Expected a capacity that fits in memory but received ${capacity} slots of ${dims}-d vectors (${Math.ceil(bytes / 2 ** 20)} MiB; this machine has ${Math.floor(os.totalmem() / 2 ** 20)} MiB)`);
  }
}

/** What `inspectSnapshot` found. */
export interface SnapshotInfo {
  /** Vectors stored, deleted ones included (hnswlib's cur_element_count). */
  count: number;
  /** Vectors not marked deleted. */
  live: number;
  /** Capacity the index gets when loaded (written into the header by `AnnIndex.load`). */
  capacity: number;
  /** Capacity saved in the header. */
  savedCapacity: number;
  maxLevel: number;
}

/**
 * Checks that `file` is an hnswlib HierarchicalNSW index of `dims`-d vectors with M = `m` that
 * hnswlib can load and search without reading outside its buffers, or throws
 * `SnapshotUnusableError` saying what is wrong. The layout (hnswalg.h saveIndex):
 *
 *   header, 96 bytes, little-endian: offsetLevel0 u64, max_elements u64, cur_element_count u64,
 *     size_data_per_element u64, label_offset u64, offsetData u64, maxlevel i32,
 *     enterpoint_node u32, maxM u64, maxM0 u64, M u64, mult f64, ef_construction u64
 *   count × size_data_per_element: per vector, its level-0 link list (u32 header: neighbour
 *     count in the low 16 bits, delete mark in byte 2; then maxM0 u32 neighbour slots), the
 *     vector (dims f32) and its label (u64)
 *   count × (u32 byte length L, then L bytes: one list per upper level, each a u32 count and maxM
 *     u32 neighbour slots)
 *
 * Every field is checked, every neighbour id is below the count and lives on the level it is
 * linked from, the entry point is on the top level, vectors are of unit length (hnswlib's cosine
 * space normalises them; NaN and infinities fail), labels are distinct
 * uint32 ids, and the file ends exactly where the last list does. Reads the whole file once.
 */
export function inspectSnapshot(file: string, dims: number, m: number): SnapshotInfo {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const bad = (why: string) => new SnapshotUnusableError(`HNSW snapshot of ${size} bytes: ${why}`);
    if (size === 0) throw bad('it is empty');
    if (size < HEADER_BYTES) throw bad(`it is shorter than hnswlib's ${HEADER_BYTES}-byte header (truncated, or not an hnswlib index)`);
    const h = Buffer.alloc(HEADER_BYTES);
    readFully(fd, h, 0, bad);
    const u64 = (offset: number, name: string): number => {
      const v = h.readBigUInt64LE(offset);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} is ${v} (not an hnswlib index, or corrupt)`);
      return Number(v);
    };
    const offsetLevel0 = u64(0, 'offsetLevel0');
    const savedCapacity = u64(8, 'max_elements');
    const count = u64(16, 'cur_element_count');
    const perElement = u64(24, 'size_data_per_element');
    const labelOffset = u64(32, 'label_offset');
    const offsetData = u64(40, 'offsetData');
    const maxLevel = h.readInt32LE(48);
    const enterpoint = h.readUInt32LE(52);
    const maxM = u64(56, 'maxM');
    const maxM0 = u64(64, 'maxM0');
    const M = u64(72, 'M');
    const mult = h.readDoubleLE(80);
    const efConstruction = u64(88, 'ef_construction');

    if (offsetLevel0 !== 0) throw bad(`offsetLevel0 is ${offsetLevel0}, hnswlib writes 0 (not an hnswlib index, or corrupt)`);
    if (M !== m) throw bad(`it was built with M=${M}, this index uses M=${m} (ann.m)`);
    if (maxM !== M || maxM0 !== 2 * M) throw bad(`maxM ${maxM} and maxM0 ${maxM0} do not match M=${M} (expected ${M} and ${2 * M})`);
    const links0 = maxM0 * 4 + 4;
    if (offsetData !== links0) throw bad(`offsetData is ${offsetData}, expected ${links0} for M=${M}`);
    const storedDims = (perElement - links0 - 8) / 4;
    if (perElement !== bytesPerElement(dims, m) || labelOffset !== offsetData + dims * 4) {
      throw bad(Number.isInteger(storedDims) && storedDims > 0 && labelOffset === offsetData + storedDims * 4
        ? `it holds ${storedDims}-d vectors, not ${dims}-d`
        : `size_data_per_element ${perElement} and label_offset ${labelOffset} do not fit ${dims}-d vectors with M=${M} (expected ${bytesPerElement(dims, m)} and ${offsetData + dims * 4})`);
    }
    const expectedMult = 1 / Math.log(M);
    if (!(Math.abs(mult - expectedMult) <= 1e-9 * expectedMult)) throw bad(`its level multiplier is ${mult}, expected 1/ln(${M}) = ${expectedMult}`);
    if (efConstruction < M || efConstruction > MAX_U32) throw bad(`ef_construction is ${efConstruction}, expected between M=${M} and ${MAX_U32}`);
    if (count >= MAX_U32) throw bad(`it claims ${count} vectors, more than hnswlib-node can address`);
    if (savedCapacity < count || savedCapacity > MAX_U32) throw bad(`its capacity ${savedCapacity} is below its ${count} vectors or above ${MAX_U32}`);
    const level0End = HEADER_BYTES + count * perElement;
    if (size < level0End + count * 4) {
      throw bad(`truncated: ${count} vectors need at least ${level0End + count * 4} bytes (${HEADER_BYTES} header + ${count} × ${perElement} + ${count} × 4)`);
    }
    const capacity = Math.min(MAX_U32, Math.max(MIN_CAPACITY, count + 1, Math.min(savedCapacity, 2 * count)));
    if (count === 0) {
      if (maxLevel !== -1 || enterpoint !== MAX_U32) throw bad(`it is empty but has top level ${maxLevel} and entry point ${enterpoint} (expected -1 and ${MAX_U32})`);
      if (size !== HEADER_BYTES) throw bad(`it is empty but has ${size - HEADER_BYTES} bytes after the header`);
      return { count, live: 0, capacity, savedCapacity, maxLevel };
    }
    if (maxLevel < 0 || maxLevel > MAX_LEVEL) throw bad(`its top level is ${maxLevel}, expected 0 to ${MAX_LEVEL}`);
    if (enterpoint >= count) throw bad(`its entry point ${enterpoint} is not one of its ${count} vectors`);

    // Level 0: link lists, vectors, labels.
    const labels = new Uint32Array(count);
    let deleted = 0;
    const perChunk = Math.max(1, Math.floor(SCAN_BYTES / perElement));
    const chunk = new Uint8Array(Math.min(perChunk, count) * perElement);
    const words = new Uint32Array(chunk.buffer); // perElement is a multiple of 4, so every field is aligned
    const floats = new Float32Array(chunk.buffer);
    const wordsPer = perElement / 4;
    const dataAt = offsetData / 4;
    const labelAt = labelOffset / 4;
    for (let first = 0; first < count; first += perChunk) {
      const n = Math.min(perChunk, count - first);
      readFully(fd, chunk.subarray(0, n * perElement), HEADER_BYTES + first * perElement, bad);
      for (let j = 0; j < n; j++) {
        const i = first + j;
        const base = j * wordsPer;
        const head = words[base];
        const links = head & 0xffff;
        const flags = head >>> 16;
        if (flags > 1) throw bad(`vector ${i}: level-0 list header 0x${head.toString(16)} (corrupt)`);
        if (links > maxM0) throw bad(`vector ${i}: ${links} level-0 neighbours, at most ${maxM0}`);
        for (let t = 1; t <= links; t++) {
          if (words[base + t] >= count) throw bad(`vector ${i}: level-0 neighbour ${words[base + t]} is not one of its ${count} vectors`);
        }
        let squares = 0; // hnswlib's cosine space stores unit vectors (0 for a zero vector); NaN fails too
        for (let d = base + dataAt, end = d + dims; d < end; d++) squares += floats[d] * floats[d];
        if (!(squares === 0 || Math.abs(squares - 1) <= 1e-3)) throw bad(`vector ${i} is not of unit length (squared norm ${squares})`);
        if (words[base + labelAt + 1] !== 0) throw bad(`vector ${i}: its label is above ${MAX_U32}`);
        labels[i] = words[base + labelAt];
        deleted += flags;
      }
    }

    // The upper levels: one byte length per vector, then its lists.
    const tailBytes = size - level0End;
    if (tailBytes > MAX_TAIL_BYTES) throw bad(`${tailBytes} bytes of upper-level links for ${count} vectors (corrupt)`);
    if (tailBytes % 4 !== 0) throw bad(`${tailBytes} bytes of upper-level links, not a whole number of u32 (truncated or corrupt)`);
    const tail = new Uint32Array(tailBytes / 4);
    readFully(fd, new Uint8Array(tail.buffer), level0End, bad);
    const upperBytes = maxM * 4 + 4;
    const upperWords = upperBytes / 4;
    const levels = new Uint8Array(count);
    const starts = new Uint32Array(count);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p >= tail.length) throw bad(`truncated: the upper-level links end at vector ${i} of ${count}`);
      const bytes = tail[p++];
      if (bytes % upperBytes !== 0) throw bad(`vector ${i}: ${bytes} bytes of upper-level links, not a multiple of ${upperBytes}`);
      const level = bytes / upperBytes;
      if (level > maxLevel) throw bad(`vector ${i} is on level ${level}, above the top level ${maxLevel}`);
      levels[i] = level;
      starts[i] = p;
      p += bytes / 4;
      if (p > tail.length) throw bad(`truncated: vector ${i}'s upper-level links run past the end of the file`);
    }
    if (p !== tail.length) throw bad(`${(tail.length - p) * 4} bytes after the last link list (corrupt, or not an hnswlib index)`);
    if (levels[enterpoint] !== maxLevel) throw bad(`its entry point ${enterpoint} is on level ${levels[enterpoint]}, not on the top level ${maxLevel}`);
    for (let i = 0; i < count; i++) {
      for (let level = 1; level <= levels[i]; level++) {
        const base = starts[i] + (level - 1) * upperWords;
        const head = tail[base];
        if (head > maxM) throw bad(`vector ${i}, level ${level}: list header ${head} (at most ${maxM} neighbours)`);
        for (let t = 1; t <= head; t++) {
          const other = tail[base + t];
          if (other >= count || levels[other] < level) throw bad(`vector ${i}, level ${level}: neighbour ${other} is not a vector on that level`);
        }
      }
    }

    const sorted = labels.slice().sort();
    for (let i = 1; i < count; i++) if (sorted[i] === sorted[i - 1]) throw bad(`label ${sorted[i]} appears twice`);
    return { count, live: count - deleted, capacity, savedCapacity, maxLevel };
  } finally {
    fs.closeSync(fd);
  }
}

/** Fills `buf` from `fd` at `position`; a short read means the file shrank while being read. */
function readFully(fd: number, buf: Uint8Array, position: number, bad: (why: string) => Error): void {
  for (let got = 0; got < buf.length; ) {
    const n = fs.readSync(fd, buf, got, Math.min(buf.length - got, 1 << 30), position + got);
    if (n === 0) throw bad(`truncated: the file ended at ${position + got} bytes`);
    got += n;
  }
}

/**
 * A file's bytes: `fs.readFileSync` refuses files over 2 GiB, which a 1280-d index reaches at
 * ~400k vectors (5.3 KB each with M=16); Buffers stop at 4 GiB (`buffer.constants.MAX_LENGTH`).
 */
function readWhole(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const out = Buffer.allocUnsafe(size);
    for (let offset = 0; offset < size; ) {
      const n = fs.readSync(fd, out, offset, Math.min(size - offset, 1 << 30), offset);
      if (n === 0) throw new Error(`${file}: file ended at ${offset} of ${size} bytes`);
      offset += n;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

let tempCounter = 0;
function tempFile(): string {
  const dir = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return path.join(dir, `pixdex-hnsw-${process.pid}-${Date.now()}-${tempCounter++}.bin`);
}
