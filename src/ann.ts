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
import type { AnnOptions } from './config.ts';
import { InvalidParameterError, SnapshotUnusableError, invalidParameter } from './errors.ts';
import { MAX_U32, MIN_CAPACITY, bytesPerElement, inspectSnapshot } from './ann-snapshot.ts';
import { loadHnswlib, type AnnBuild } from './ann-build.ts';

export { MAX_U32, MIN_CAPACITY, inspectSnapshot, type SnapshotInfo } from './ann-snapshot.ts';

const loaded = loadHnswlib();
const { HierarchicalNSW } = loaded.hnswlib;

/** Which hnswlib-node build this process runs: native or portable (src/ann-build.ts), checked on load. */
export const annBuild: AnnBuild = loaded.build;

/** One search hit. */
export interface Hit {
  id: number;
  /** Cosine similarity in [-1, 1], higher is closer. */
  score: number;
}


/** Largest vector length accepted (the widest backbone is 1280-d). */
const MAX_DIMS = 65_536;

/** hnswlib caps M at 10000; M = 1 makes its level multiplier 1/ln(1) = ∞. */
const MAX_M = 10_000;


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
