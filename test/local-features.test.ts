/**
 * The local-feature core (src/local/: opencv, features, match, verify) on real photos: a known
 * perspective warp of a real cover is recovered by matching + Hough + RANSAC homography; real
 * smvs phone photos verify against their reference and never against 20 unrelated ones; the
 * stored record round-trips and rejects damage with typed errors; tiny and blank images have no
 * keypoints; the fast matcher equals a naive one; OpenCV loads in a worker thread too.
 * Needs ../shared/datasets/smvs (PIXDEX_DATASETS); no model.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PixdexError } from '../src/errors.ts';
import {
  FEATURES_HEADER_BYTES, MAX_KEYPOINTS, QUERY_KEYPOINTS, QUERY_PYRAMID, QUERY_SIDE, REFERENCE_PYRAMID, REFERENCE_SIDE, decodeFeatures, encodeFeatures, extractFeatures, featuresBytes, greyscale, type GreyImage,
} from '../src/local/features.ts';
import { matchFeatures, prepareQuery } from '../src/local/match.ts';
import { CLEAR_WINNER_INLIERS, verifyCandidates } from '../src/local/rerank.ts';
import { loadOpenCv, opencv } from '../src/local/opencv.ts';
import { DESCRIPTOR_BYTES, type LocalFeatures, type Match } from '../src/local/types.ts';
import { VERIFIED_INLIERS, VERIFY_RATIO, consistentInliers, homography, houghInliers, invert3, outline } from '../src/local/verify.ts';
import { REPO, SMVS } from './fixtures.ts';

const MAX_PIXELS = 100_000_000;
/** Queries checked per category, and unrelated references each is checked against. */
const QUERIES = 3;
const WRONG = 20;

const file = (category: string, folder: 'query' | 'reference', name: string) => path.join(SMVS, category, folder, name);
const names = (category: string, folder: 'query' | 'reference') => fs.readdirSync(path.join(SMVS, category, folder)).filter((f) => /\.jpe?g$/i.test(f)).sort();
async function featuresOf(category: string, folder: 'query' | 'reference', name: string): Promise<LocalFeatures> {
  const query = folder === 'query'; // as the product: queries at QUERY_SIDE with QUERY_KEYPOINTS
  return extractFeatures(await greyscale(fs.readFileSync(file(category, folder, name)), query ? QUERY_SIDE : REFERENCE_SIDE, MAX_PIXELS), query ? QUERY_KEYPOINTS : MAX_KEYPOINTS, query ? QUERY_PYRAMID : REFERENCE_PYRAMID);
}
function verify(query: LocalFeatures, ref: LocalFeatures): { matches: Match[]; inliers: number; members: number[] } {
  const matches = matchFeatures(prepareQuery(query), ref);
  return { matches, ...houghInliers(query, ref, matches) };
}
/** Search's check (src/local/rerank.ts): matches at `VERIFY_RATIO`, local consistency. */
function searchCheck(query: LocalFeatures, ref: LocalFeatures): { matches: Match[]; inliers: number; members: number[] } {
  const matches = matchFeatures(prepareQuery(query), ref, VERIFY_RATIO);
  return { matches, ...consistentInliers(query, ref, matches) };
}

/** `fn` throws a PixdexError with `code`. */
function throwsCode(fn: () => unknown, code: string, why: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PixdexError, `${why}: expected a PixdexError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `${why}: ${err.message}`);
    return true;
  }, why);
}

before(async () => {
  assert.ok(fs.existsSync(path.join(SMVS, 'book_covers', 'reference')) && fs.existsSync(path.join(SMVS, 'museum_paintings', 'query')),
    `the smvs data set is missing from ${SMVS}: these tests need ../shared/datasets/smvs (or PIXDEX_DATASETS pointing at a folder holding smvs/)`);
  const listeners = [process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')];
  await loadOpenCv();
  assert.deepEqual([process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')], listeners, 'loading OpenCV leaves the process error handlers as they were');
  assert.equal((globalThis as { Module?: unknown }).Module, undefined, 'no global Module left behind');
});

describe('local features: a known homography', () => {
  it('recovers a perspective warp of a real cover (matching + Hough + RANSAC + outline)', async () => {
    const cv = opencv();
    const refName = names('book_covers', 'reference')[0];
    const refGrey = await greyscale(fs.readFileSync(file('book_covers', 'reference', refName)), REFERENCE_SIDE, MAX_PIXELS);
    const [W, H] = [640, 560];
    // where the reference's corners go in the "photo": a real perspective, not an affinity
    const corners = [[0, 0], [refGrey.width, 0], [refGrey.width, refGrey.height], [0, refGrey.height]];
    const placed = [[150, 60], [470, 100], [490, 500], [120, 470]];
    const src = cv.matFromArray(4, 1, cv.CV_32FC2, corners.flat());
    const dst = cv.matFromArray(4, 1, cv.CV_32FC2, placed.flat());
    const image = new cv.Mat(refGrey.height, refGrey.width, cv.CV_8UC1);
    const warped = new cv.Mat();
    let M: { delete(): void } | undefined;
    let photo: GreyImage;
    try {
      M = cv.getPerspectiveTransform(src, dst);
      image.data.set(refGrey.data);
      cv.warpPerspective(image, warped, M, new cv.Size(W, H), cv.INTER_LINEAR, cv.BORDER_CONSTANT, new cv.Scalar(0));
      photo = { data: Uint8Array.from(warped.data), width: W, height: H };
    } finally {
      for (const m of [src, dst, image, warped, M]) m?.delete();
    }
    const ref = extractFeatures(refGrey);
    const query = extractFeatures(photo);
    assert.ok(ref.count > 300 && query.count > 300, `keypoints: reference ${ref.count}, warped ${query.count}`);
    const { matches, inliers, members } = verify(query, ref);
    assert.ok(inliers >= 48, `Hough inliers ${inliers} of ${matches.length} matches`); // 4 × the Hough threshold (12) this test was written for
    assert.equal(members.length, inliers);
    const local = searchCheck(query, ref); // search's check verifies the warp too
    assert.ok(local.inliers >= VERIFIED_INLIERS * 4, `consistent inliers ${local.inliers} of ${local.matches.length} matches`);
    assert.equal(local.members.length, local.inliers);
    const found = homography(query, ref, matches, members);
    assert.ok(found, 'a homography from the Hough inliers');
    assert.ok(found.inliers >= inliers * 0.8, `RANSAC inliers ${found.inliers} of ${inliers}`);
    assert.equal(found.H.length, 9);
    assert.equal(found.H[8], 1);
    // H maps the photo to the reference: the placed corners go back to the reference's corners
    placed.forEach(([x, y], i) => {
      const h = found.H;
      const w = h[6] * x + h[7] * y + h[8];
      const [u, v] = [(h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w];
      assert.ok(Math.hypot(u - corners[i][0], v - corners[i][1]) < 3, `corner ${i}: (${u.toFixed(1)}, ${v.toFixed(1)}) vs (${corners[i]})`);
    });
    // the outline: the reference's corners in the photo, as fractions of its size
    const drawn = outline(found.H, ref, query);
    assert.ok(drawn, 'an outline');
    drawn.forEach(([fx, fy], i) => {
      assert.ok(Math.hypot(fx * W - placed[i][0], fy * H - placed[i][1]) < 3, `outline corner ${i}: (${(fx * W).toFixed(1)}, ${(fy * H).toFixed(1)}) vs (${placed[i]})`);
    });
    // the same homography with all matches (no members) agrees
    const all = homography(query, ref, matches);
    assert.ok(all && Math.abs(all.H[0] - found.H[0]) < 0.02 && Math.abs(all.H[2] - found.H[2]) < 2, 'all matches give the same H');
  });

  it('outline refuses degenerate homographies; invert3 inverts', () => {
    const f = { width: 100, height: 100, count: 0, keypoints: new Float32Array(0), descriptors: new Uint8Array(0) };
    assert.deepEqual(outline([1, 0, 0, 0, 1, 0, 0, 0, 1], f, f), [[0, 0], [1, 0], [1, 1], [0, 1]]);
    assert.equal(outline([1, 0, 0, 0, 1, 0, 0, 0, 0], f, f), undefined, 'singular');
    assert.equal(outline([1, 0, 0, 0, 1, 0, 0.02, 0, 1], f, f), undefined, 'a corner beyond the line at infinity');
    assert.equal(outline([-1, 0, 100, 0, 1, 0, 0, 0, 1], f, { ...f, width: 100 })?.length, 4, 'a mirror is still a convex quadrilateral');
    const m = [1.2, 0.1, 5, -0.2, 0.9, 7, 0.001, 0.0005, 1];
    const inv = invert3(m)!;
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) {
      const v = m[r * 3] * inv[c] + m[r * 3 + 1] * inv[3 + c] + m[r * 3 + 2] * inv[6 + c];
      assert.ok(Math.abs(v - (r === c ? 1 : 0)) < 1e-9);
    }
  });
});

describe('local features: local consistency', () => {
  it('counts the matches one similarity explains near each other, not scattered ones', () => {
    // 12 matches under one similarity (scale 2, 90°, shifted) and 12 matches pointing anywhere
    const n = 24;
    const q = new Float32Array(n * 4), r = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) {
      const x = 50 + (i % 6) * 40, y = 60 + Math.floor(i / 6) * 35;
      q.set([x, y, 10, 20], i * 4);
      if (i < 12) r.set([300 - 2 * (y - 60), 40 + 2 * (x - 50), 20, 110], i * 4); // (x, y) → rotated 90°, ×2
      else r.set([(i * 137) % 400, (i * 71) % 300, 10 * (1 + (i % 3)), (i * 53) % 360], i * 4);
    }
    const f = (keypoints: Float32Array): LocalFeatures => ({ width: 480, height: 360, count: n, keypoints, descriptors: new Uint8Array(n * DESCRIPTOR_BYTES) });
    const matches: Match[] = Array.from({ length: n }, (_, i) => ({ q: i, r: i, ratio: 0.5 }));
    const v = consistentInliers(f(q), f(r), matches);
    assert.equal(v.inliers, 12, JSON.stringify(v));
    assert.deepEqual(v.members, Array.from({ length: 12 }, (_, i) => i));
  });
});

describe('local features: real phone photos (smvs)', () => {
  for (const category of ['book_covers', 'museum_paintings']) {
    it(`${category}: ${QUERIES} photos verify against their reference and against none of ${WRONG} unrelated ones`, async (t) => {
      const queries = names(category, 'query').slice(0, QUERIES);
      const references = names(category, 'reference');
      for (const name of queries) assert.ok(references.includes(name), `${category}/reference/${name} (ground truth by file name)`);
      const wrong = references.filter((r) => !queries.includes(r)).slice(0, WRONG);
      const refs = new Map<string, LocalFeatures>();
      for (const r of [...queries, ...wrong]) refs.set(r, await featuresOf(category, 'reference', r));
      const report: string[] = [];
      for (const name of queries) {
        const query = await featuresOf(category, 'query', name);
        assert.ok(query.count > 100, `${category}/query/${name}: ${query.count} keypoints`);
        const right = searchCheck(query, refs.get(name)!);
        report.push(`${name}: ${right.inliers} inliers (${right.matches.length} matches)`);
        assert.ok(right.inliers >= VERIFIED_INLIERS, `${category}/query/${name} against its reference: ${right.inliers} inliers < ${VERIFIED_INLIERS}`);
        let most = 0;
        for (const other of wrong) {
          const v = searchCheck(query, refs.get(other)!);
          most = Math.max(most, v.inliers);
          assert.ok(v.inliers < VERIFIED_INLIERS, `${category}/query/${name} against the unrelated reference ${other}: ${v.inliers} inliers ≥ ${VERIFIED_INLIERS}`);
        }
        report[report.length - 1] += `, unrelated at most ${most}`;
      }
      t.diagnostic(`${category}: ${report.join('; ')}`);
    });
  }
});

describe('local features: the stored record', () => {
  let f: LocalFeatures;
  before(async () => {
    f = await featuresOf('book_covers', 'reference', names('book_covers', 'reference')[1]);
  });

  it('round-trips: positions to 1/16 px, sizes to 1/16 octave, angles to 1.5°, descriptors exact', () => {
    assert.ok(f.count > 0 && f.count <= MAX_KEYPOINTS);
    const bytes = encodeFeatures(f);
    assert.equal(bytes.length, featuresBytes(f.count));
    assert.equal(featuresBytes(500), FEATURES_HEADER_BYTES + 500 * (6 + DESCRIPTOR_BYTES));
    assert.equal(Buffer.from(bytes.subarray(0, 4)).toString('latin1'), 'PXLF');
    const back = decodeFeatures(bytes);
    assert.deepEqual([back.width, back.height, back.count], [f.width, f.height, f.count]);
    assert.deepEqual(back.descriptors, f.descriptors);
    for (let i = 0; i < f.count; i++) {
      const [x, y, size, angle] = f.keypoints.subarray(i * 4, i * 4 + 4);
      const [x2, y2, size2, angle2] = back.keypoints.subarray(i * 4, i * 4 + 4);
      assert.ok(Math.abs(x - x2) <= 1 / 32 + 1e-6 && Math.abs(y - y2) <= 1 / 32 + 1e-6, `keypoint ${i}: (${x}, ${y}) → (${x2}, ${y2})`);
      assert.ok(Math.abs(Math.log2(size2 / size)) <= 1 / 32 + 1e-6, `keypoint ${i}: size ${size} → ${size2}`);
      const da = Math.abs(angle - angle2) % 360;
      assert.ok(Math.min(da, 360 - da) <= 1.5, `keypoint ${i}: angle ${angle} → ${angle2}`);
    }
    // decoding copies: a reused input buffer does not change decoded features
    const copy = Buffer.from(bytes);
    const decoded = decodeFeatures(copy);
    copy.fill(0);
    assert.deepEqual(decoded.descriptors, f.descriptors);
    // an unaligned record decodes the same
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual(decodeFeatures(shifted.subarray(1)).keypoints, back.keypoints);
    // no keypoints
    const empty = decodeFeatures(encodeFeatures({ width: 8, height: 8, count: 0, keypoints: new Float32Array(0), descriptors: new Uint8Array(0) }));
    assert.deepEqual([empty.width, empty.height, empty.count, empty.descriptors.length], [8, 8, 0, 0]);
  });

  it('rejects truncated, padded and garbled records with typed errors', () => {
    const bytes = encodeFeatures(f);
    const damaged = (change: (b: Uint8Array) => Uint8Array | void) => {
      const b = Uint8Array.from(bytes);
      return change(b) ?? b;
    };
    throwsCode(() => decodeFeatures(new Uint8Array(0)), 'STORE_INCONSISTENT', 'empty');
    throwsCode(() => decodeFeatures(bytes.subarray(0, 11)), 'STORE_INCONSISTENT', 'shorter than the header');
    throwsCode(() => decodeFeatures(bytes.subarray(0, bytes.length - 1)), 'STORE_INCONSISTENT', 'one byte short');
    throwsCode(() => decodeFeatures(bytes.subarray(0, bytes.length - 38)), 'STORE_INCONSISTENT', 'one keypoint short');
    throwsCode(() => decodeFeatures(damaged((b) => { const c = new Uint8Array(b.length + 1); c.set(b); return c; })), 'STORE_INCONSISTENT', 'one byte too many');
    throwsCode(() => decodeFeatures(damaged((b) => { b[0] = 0x50; b[1] = 0x4e; })), 'STORE_INCONSISTENT', 'wrong magic (a PNG)');
    throwsCode(() => decodeFeatures(damaged((b) => { b[4] = 2; })), 'STORE_MISMATCH', 'another format version');
    throwsCode(() => decodeFeatures(damaged((b) => { b[5] = 1; })), 'STORE_INCONSISTENT', 'reserved byte set');
    throwsCode(() => decodeFeatures(damaged((b) => { b[10] ^= 1; })), 'STORE_INCONSISTENT', 'count changed');
    throwsCode(() => decodeFeatures(damaged((b) => { b[6] = 16; b[7] = 0; })), 'STORE_INCONSISTENT', 'width shrunk below its keypoints (16 px)');
    throwsCode(() => decodeFeatures(damaged((b) => { b[6] = 0xff; b[7] = 0xff; })), 'STORE_INCONSISTENT', 'width over 4095');
    throwsCode(() => decodeFeatures(damaged((b) => { b[FEATURES_HEADER_BYTES + 1] = 0xff; })), 'STORE_INCONSISTENT', 'a keypoint outside the image');
    throwsCode(() => encodeFeatures({ ...f, width: 5000 }), 'INVALID_PARAMETER', 'too wide to store');
    throwsCode(() => encodeFeatures({ ...f, count: f.count + 1 }), 'INVALID_PARAMETER', 'count not matching the arrays');
  });
});

describe('local features: extraction edge cases', () => {
  it('tiny and uniform images have no keypoints, without throwing', async () => {
    for (const [w, h] of [[8, 8], [31, 400], [1, 1], [0, 0]]) {
      const f = extractFeatures({ data: new Uint8Array(w * h).fill(128), width: w, height: h });
      assert.deepEqual([f.count, f.width, f.height, f.keypoints.length, f.descriptors.length], [0, w, h, 0, 0], `${w}×${h}`);
    }
    for (const value of [0, 128, 255]) {
      const f = extractFeatures({ data: new Uint8Array(300 * 200).fill(value), width: 300, height: 200 });
      assert.equal(f.count, 0, `uniform ${value}`);
      assert.deepEqual(decodeFeatures(encodeFeatures(f)).count, 0);
    }
    // a tiny real image through sharp: resized never enlarged, still 8×8
    const png = await (await import('sharp')).default({ create: { width: 8, height: 8, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toBuffer();
    const grey = await greyscale(png, REFERENCE_SIDE, MAX_PIXELS);
    assert.deepEqual([grey.width, grey.height, grey.data.length], [8, 8, 64]);
    assert.equal(extractFeatures(grey).count, 0);
    // an alpha channel does not leak into the greyscale
    const rgba = await (await import('sharp')).default({ create: { width: 40, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0.5 } } }).png().toBuffer();
    const g2 = await greyscale(rgba, REFERENCE_SIDE, MAX_PIXELS);
    assert.deepEqual([g2.width, g2.height, g2.data.length], [40, 20, 800]);
    // what is not an image is a typed error
    await assert.rejects(greyscale(Buffer.from('not an image at all'), REFERENCE_SIDE, MAX_PIXELS), (err: unknown) => err instanceof PixdexError && err.code === 'UNSUPPORTED_IMAGE');
    // matching and verification of empty features
    const none = extractFeatures(grey);
    assert.deepEqual(matchFeatures(none, none), []);
    assert.deepEqual(houghInliers(none, none, []), { inliers: 0, members: [] });
    assert.deepEqual(consistentInliers(none, none, []), { inliers: 0, members: [] });
    assert.equal(homography(none, none, []), undefined);
  });

  it('keeps the strongest keypoints up to maxKeypoints', async () => {
    const grey = await greyscale(fs.readFileSync(file('book_covers', 'reference', names('book_covers', 'reference')[0])), REFERENCE_SIDE, MAX_PIXELS);
    const few = extractFeatures(grey, 50);
    assert.ok(few.count > 0 && few.count <= 50, `${few.count} keypoints`);
    assert.equal(few.descriptors.length, few.count * DESCRIPTOR_BYTES);
  });
});

describe('local features: matching', () => {
  /** The obvious implementation: byte-wise popcount, 2-NN, ratio test, best ratio per reference keypoint. */
  function naiveMatch(q: LocalFeatures, r: LocalFeatures, ratio = 0.8): Match[] {
    const pop = (x: number) => { let n = 0; for (; x; x &= x - 1) n++; return n; };
    if (q.count < 2 || r.count < 2) return [];
    const best = new Map<number, Match>();
    for (let i = 0; i < q.count; i++) {
      let d1 = Infinity, d2 = Infinity, at = -1;
      for (let j = 0; j < r.count; j++) {
        let d = 0;
        for (let k = 0; k < DESCRIPTOR_BYTES; k++) d += pop(q.descriptors[i * DESCRIPTOR_BYTES + k] ^ r.descriptors[j * DESCRIPTOR_BYTES + k]);
        if (d < d1) [d2, d1, at] = [d1, d, j];
        else if (d < d2) d2 = d;
      }
      const rt = d2 > 0 ? d1 / d2 : 1;
      if (rt > ratio) continue;
      const prev = best.get(at);
      if (!prev || rt < prev.ratio) best.set(at, { q: i, r: at, ratio: rt });
    }
    return [...best.values()].sort((a, b) => a.q - b.q);
  }

  it('equals a naive matcher on a real pair, from aligned or unaligned descriptors', async () => {
    const name = names('book_covers', 'query')[0];
    const query = await featuresOf('book_covers', 'query', name);
    const ref = await featuresOf('book_covers', 'reference', name);
    const expected = naiveMatch(query, ref);
    assert.ok(expected.length > 50, `${expected.length} matches`);
    assert.deepEqual(matchFeatures(query, ref), expected);
    assert.deepEqual(matchFeatures(prepareQuery(query), ref), expected);
    const unaligned = (f: LocalFeatures): LocalFeatures => {
      const buf = new Uint8Array(f.descriptors.length + 3);
      buf.set(f.descriptors, 3);
      return { ...f, descriptors: buf.subarray(3) };
    };
    assert.deepEqual(matchFeatures(unaligned(query), unaligned(ref)), expected);
    assert.deepEqual(matchFeatures(query, ref, 0.6), naiveMatch(query, ref, 0.6));
  });

  it('matches descriptor sets larger than the WebAssembly memory it starts with', () => {
    let x = 99;
    const random = (n: number) => Uint8Array.from({ length: n * DESCRIPTOR_BYTES }, () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24));
    const f = (d: Uint8Array): LocalFeatures => ({ width: 100, height: 100, count: d.length / DESCRIPTOR_BYTES, keypoints: new Float32Array((d.length / DESCRIPTOR_BYTES) * 4), descriptors: d });
    const q = f(random(1500)), r = f(random(3000)); // 144 KB: over one 64 KB page
    assert.deepEqual(matchFeatures(q, r, 0.95), naiveMatch(q, r, 0.95));
  });

  it('handles distances 0 and 256 (identical and complementary descriptors)', () => {
    const kp = new Float32Array(12).fill(40);
    const desc = (bytes: number[][]) => Uint8Array.from(bytes.flatMap((b) => Array.from({ length: DESCRIPTOR_BYTES }, (_, k) => b[k % b.length])));
    const f = (d: Uint8Array): LocalFeatures => ({ width: 100, height: 100, count: d.length / DESCRIPTOR_BYTES, keypoints: kp.subarray(0, (d.length / DESCRIPTOR_BYTES) * 4), descriptors: d });
    const q = f(desc([[0x00], [0xff], [0x0f, 0xf0]]));
    const r = f(desc([[0xff], [0x0f, 0x0f], [0x00]]));
    assert.deepEqual(matchFeatures(q, r), naiveMatch(q, r));
    assert.deepEqual(matchFeatures(q, r).map((m) => [m.q, m.r, m.ratio]), [[0, 2, 0], [1, 0, 0]]);
  });
});

describe('local features: re-ranking candidates', () => {
  it('checks candidates in falling visual score and stops after a clear winner; the rest keep their visual order, unchecked', async () => {
    const refs = names('book_covers', 'reference').slice(0, 8);
    const name = refs[5];
    const query = await featuresOf('book_covers', 'query', name);
    const features = new Map<number, LocalFeatures>();
    for (const [i, r] of refs.entries()) features.set(i + 1, await featuresOf('book_covers', 'reference', r));
    // visual scores: the true reference (id 6) third; ids 1..8 given out of order
    const candidates = [8, 6, 1, 2, 3, 4, 5, 7].map((id) => ({ id, score: id === 6 ? 0.8 : id === 8 ? 0.9 : id === 1 ? 0.85 : 0.5 - id / 100 }));
    const all = verifyCandidates(query, candidates, (id) => features.get(id), { clearWinner: Infinity });
    const truth = all.find((h) => h.id === 6)!;
    assert.ok(truth.verified && truth.inliers! >= CLEAR_WINNER_INLIERS, `true pair: ${truth.inliers} inliers`);
    assert.equal(all[0].id, 6);
    assert.ok(all.every((h) => typeof h.inliers === 'number'), 'every candidate checked');
    assert.ok(all.slice(1).every((h) => !h.verified && h.inliers! < CLEAR_WINNER_INLIERS), JSON.stringify(all.map((h) => [h.id, h.inliers])));
    const early = verifyCandidates(query, candidates, (id) => features.get(id));
    assert.deepEqual(early.map((h) => h.id), [6, 8, 1, 2, 3, 4, 5, 7], 'the winner first, then the visual order');
    assert.deepEqual(early.slice(0, 3).map((h) => h.inliers), [truth.inliers, all.find((h) => h.id === 8)!.inliers, all.find((h) => h.id === 1)!.inliers], 'the candidates up to the winner are checked');
    assert.ok(early.slice(3).every((h) => h.inliers === undefined && h.verified === false), 'the ones after it are not');
    // but at least minChecked are (a search's k: every hit it returns was checked)
    const five = verifyCandidates(query, candidates, (id) => features.get(id), { minChecked: 5 });
    assert.deepEqual(five.map((h) => h.id), [6, 8, 1, 2, 3, 4, 5, 7]);
    assert.deepEqual(five.map((h) => h.inliers === undefined), [false, false, false, false, false, true, true, true]);
  });
});

describe('local features: worker threads', () => {
  it('loads OpenCV and extracts the same features in a worker thread', async () => {
    const grey = await greyscale(fs.readFileSync(file('museum_paintings', 'reference', names('museum_paintings', 'reference')[0])), REFERENCE_SIDE, MAX_PIXELS);
    const here = encodeFeatures(extractFeatures(grey));
    const url = (p: string) => JSON.stringify(pathToFileURL(path.join(REPO, p)).href);
    // the sources are TypeScript: register tsx's loader first, as indexer/workers/embed-worker.mjs does
    const code = `
      import { parentPort, workerData } from 'node:worker_threads';
      const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))});
      register();
      const { loadOpenCv, openCvLoaded } = await import(${url('src/local/opencv.ts')});
      const { encodeFeatures, extractFeatures } = await import(${url('src/local/features.ts')});
      const before = openCvLoaded();
      await loadOpenCv();
      parentPort.postMessage({ before, bytes: encodeFeatures(extractFeatures(workerData)) });`;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData: grey });
    try {
      const reply = await new Promise<{ before: boolean; bytes: Uint8Array }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
      });
      assert.equal(reply.before, false, 'a worker has its own, unloaded OpenCV');
      assert.deepEqual(new Uint8Array(reply.bytes), here);
    } finally {
      await worker.terminate();
    }
  });
});
