/**
 * The 2-nearest-neighbour Hamming search of `match.ts` as a ~200-byte hand-assembled WebAssembly
 * function with `i64.popcnt` (4 per 256-bit distance): ~4× the scalar TypeScript popcount it
 * replaced (bench/local-match.ts: 0.5 vs 1.9 ms for 500 × 500 descriptors on a loaded core).
 * Matching was most of a verified search's cost (every candidate is matched); the vocabulary
 * tree's k-majority clustering (vocabulary.ts) uses it for its nearest-centre assignments too.
 *
 * `knn(q, nq, r, nr, out)`: for each of the `nq` 32-byte query descriptors at byte `q`, the best
 * and second-best distance among the `nr` reference descriptors at byte `r` and the best one's
 * byte address, written as three i32 at `out + 12·i`. Ties keep the earlier reference (strict `<`,
 * as the TypeScript loop it replaces). One module instance per thread; its memory grows on demand.
 */
import { DESCRIPTOR_BYTES } from './types.ts';

const leb = (n: number): number[] => {
  const o: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    o.push(b);
  } while (n);
  return o;
};
const sleb = (n: number): number[] => {
  const o: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...o, b];
    o.push(b | 0x80);
  }
};

/** The module's bytes: one function `knn` (5 × i32 → nothing) and one exported memory `mem`. */
function moduleBytes(): Uint8Array<ArrayBuffer> {
  const get = (i: number) => [0x20, i], set = (i: number) => [0x21, i], i32 = (n: number) => [0x41, ...sleb(n)];
  const load64 = (off: number) => [0x29, 3, ...leb(off)], store32 = (off: number) => [0x36, 2, ...leb(off)];
  // params 0–4, then locals: 8 × i32, 4 × i64
  const [Q, NQ, R, NR, OUT, I, P, REND, BEST, SEC, AT, D, QO, Q0, Q1, Q2, Q3] = Array.from({ length: 17 }, (_, i) => i);
  const body = [
    ...get(R), ...get(NR), ...i32(5), 0x74, 0x6a, ...set(REND), ...i32(0), ...set(I), // rend = r + nr·32; i = 0
    0x02, 0x40, 0x03, 0x40, // block loop (query descriptors)
    ...get(I), ...get(NQ), 0x4f, 0x0d, 1, // i ≥ nq (unsigned): break
    ...get(Q), ...get(I), ...i32(5), 0x74, 0x6a, ...set(QO),
    ...get(QO), ...load64(0), ...set(Q0), ...get(QO), ...load64(8), ...set(Q1), ...get(QO), ...load64(16), ...set(Q2), ...get(QO), ...load64(24), ...set(Q3),
    ...i32(1 << 30), ...set(BEST), ...i32(1 << 30), ...set(SEC), ...i32(-1), ...set(AT), ...get(R), ...set(P),
    0x02, 0x40, 0x03, 0x40, // block loop (reference descriptors)
    ...get(P), ...get(REND), 0x4f, 0x0d, 1,
    // d = Σ popcnt(q_k xor r_k)
    ...get(Q0), ...get(P), ...load64(0), 0x85, 0x7b, ...get(Q1), ...get(P), ...load64(8), 0x85, 0x7b, 0x7c,
    ...get(Q2), ...get(P), ...load64(16), 0x85, 0x7b, 0x7c, ...get(Q3), ...get(P), ...load64(24), 0x85, 0x7b, 0x7c, 0xa7, 0x22, D,
    // if d < second: if d < best { second = best; best = d; at = p } else second = d
    ...get(SEC), 0x49, 0x04, 0x40, ...get(D), ...get(BEST), 0x49, 0x04, 0x40,
    ...get(BEST), ...set(SEC), ...get(D), ...set(BEST), ...get(P), ...set(AT), 0x05, ...get(D), ...set(SEC), 0x0b, 0x0b,
    ...get(P), ...i32(32), 0x6a, ...set(P), 0x0c, 0, 0x0b, 0x0b,
    ...get(OUT), ...get(I), ...i32(12), 0x6c, 0x6a, 0x22, D, ...get(BEST), ...store32(0), ...get(D), ...get(SEC), ...store32(4), ...get(D), ...get(AT), ...store32(8),
    ...get(I), ...i32(1), 0x6a, ...set(I), 0x0c, 0, 0x0b, 0x0b, 0x0b,
  ];
  const func = [2, 8, 0x7f, 4, 0x7e, ...body];
  const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
  return new Uint8Array([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]), // type: (i32 × 5) → ()
    ...section(3, [1, 0]), // one function of type 0
    ...section(5, [1, 0, 1]), // memory: min 1 page
    ...section(7, [2, 3, 0x6b, 0x6e, 0x6e, 0, 0, 3, 0x6d, 0x65, 0x6d, 2, 0]), // export "knn", "mem"
    ...section(10, [1, ...leb(func.length), ...func]),
  ]);
}

let instance: { knn: (q: number, nq: number, r: number, nr: number, out: number) => void; memory: WebAssembly.Memory } | undefined;

/**
 * The 2-NN search of `nq` query descriptors among `nr ≥ 1` reference descriptors (32 bytes each,
 * `q.length ≥ nq·32`, `r.length ≥ nr·32`): `nq × 3` values, `[best, second, bestIndex]` per query
 * descriptor — a view into the module's memory, valid until the next call.
 */
export function hammingKnn(q: Uint8Array, nq: number, r: Uint8Array, nr: number): Int32Array {
  if (!instance) {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()));
    instance = { knn: inst.exports.knn as NonNullable<typeof instance>['knn'], memory: inst.exports.mem as WebAssembly.Memory };
  }
  const qBytes = nq * DESCRIPTOR_BYTES, rBytes = nr * DESCRIPTOR_BYTES;
  const rAt = qBytes, outAt = (rAt + rBytes + 7) & ~7;
  const needed = outAt + nq * 12;
  const have = instance.memory.buffer.byteLength;
  if (needed > have) instance.memory.grow(Math.ceil((needed - have) / 65536));
  const memory = new Uint8Array(instance.memory.buffer);
  memory.set(q.subarray(0, qBytes), 0);
  memory.set(r.subarray(0, rBytes), rAt);
  instance.knn(0, nq, rAt, nr, outAt);
  const out = new Int32Array(instance.memory.buffer, outAt, nq * 3);
  for (let i = 0; i < nq; i++) out[i * 3 + 2] = (out[i * 3 + 2] - rAt) / DESCRIPTOR_BYTES;
  return out;
}
