/**
 * The HNSW index (hnswlib-node), keyed by image id. Metric: `cosine` = 1 − x·y / (‖x‖‖y‖);
 * pixdex reports score = 1 − distance = cosine similarity.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import hnswlib from 'hnswlib-node';
import type { AnnOptions } from './config.ts';

const { HierarchicalNSW } = hnswlib;

/** One search hit. */
export interface Hit {
  id: number;
  /** Cosine similarity in [-1, 1], higher is closer. */
  score: number;
}

/** Smallest capacity allocated; the index doubles when full. */
const MIN_CAPACITY = 1024;

export class AnnIndex {
  private readonly index: InstanceType<typeof HierarchicalNSW>;
  private live: number;

  private constructor(readonly dims: number, readonly params: AnnOptions, index: InstanceType<typeof HierarchicalNSW>, live: number) {
    this.index = index;
    this.live = live;
  }

  /** An empty index for `dims`-d vectors. */
  static create(dims: number, params: AnnOptions, capacity = MIN_CAPACITY): AnnIndex {
    const index = new HierarchicalNSW('cosine', dims);
    index.initIndex({ maxElements: Math.max(capacity, MIN_CAPACITY), m: params.m, efConstruction: params.efConstruction, randomSeed: 100, allowReplaceDeleted: true });
    return new AnnIndex(dims, params, index, 0);
  }

  /** Restores an index from `toBytes()` output; `live` is the searchable count saved with it. */
  static fromBytes(bytes: Uint8Array, dims: number, params: AnnOptions, live: number): AnnIndex {
    const file = tempFile();
    try {
      fs.writeFileSync(file, bytes);
      const index = new HierarchicalNSW('cosine', dims);
      index.readIndexSync(file, true);
      return new AnnIndex(dims, params, index, live);
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
   */
  static restore(fill: (file: string) => boolean, dims: number, params: AnnOptions, live: number): AnnIndex | undefined {
    const file = tempFile();
    try {
      if (!fill(file)) return undefined;
      const index = new HierarchicalNSW('cosine', dims);
      index.readIndexSync(file, true);
      return new AnnIndex(dims, params, index, live);
    } finally {
      fs.rmSync(file, { force: true });
    }
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
    try {
      return Float32Array.from(this.index.getPoint(id));
    } catch {
      return undefined;
    }
  }

  /** Adds or replaces the vector of `id`; a new id reuses a deleted slot when one is free. */
  add(id: number, vector: Float32Array): void {
    const point = Array.from(vector);
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
      this.index.resizeIndex(Math.max(this.index.getMaxElements() * 2, MIN_CAPACITY));
      this.index.addPoint(point, id, true);
    }
    this.live++;
  }

  private undelete(id: number): boolean {
    try {
      this.index.unmarkDelete(id);
      return true;
    } catch {
      return false; // not present, or present and not deleted
    }
  }

  /** Hides `id` from searches and frees its slot for reuse; a missing id is ignored. */
  remove(id: number): boolean {
    if (!this.has(id)) return false;
    this.index.markDelete(id);
    this.live--;
    return true;
  }

  /**
   * The `k` nearest ids by cosine similarity, highest first. `filter` restricts the candidates
   * inside the graph search, so k results come back when k matching items exist.
   */
  search(vector: Float32Array, k: number, filter?: (id: number) => boolean, ef = this.params.efSearch): Hit[] {
    const n = Math.min(k, this.live);
    if (n <= 0) return [];
    this.index.setEf(Math.max(ef, n));
    const { distances, neighbors } = this.index.searchKnn(Array.from(vector), n, filter);
    return neighbors.map((id, i) => ({ id, score: 1 - distances[i] }));
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
