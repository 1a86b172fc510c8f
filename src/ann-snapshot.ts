/**
 * The check an HNSW snapshot passes before hnswlib reads it (src/ann.ts): hnswlib trusts its
 * file, and a bad count, level or neighbour id makes it read or write outside its buffers.
 */
import fs from 'node:fs';
import { SnapshotUnusableError } from './errors.ts';

/** Smallest capacity allocated; the index doubles when full. */
export const MIN_CAPACITY = 1024;

/** Largest id, capacity and k: the binding passes them to hnswlib as uint32 (`Uint32Value`, which wraps). */
export const MAX_U32 = 2 ** 32 - 1;

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

/** Bytes hnswlib stores per vector at level 0: its link list (2M neighbours + a count), the vector, the label. */
export function bytesPerElement(dims: number, m: number): number {
  return 2 * m * 4 + 4 + dims * 4 + 8;
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
