/**
 * Geometric verification of one (query, reference) pair's matches (issue 14).
 *
 * - `consistentInliers`: the check search uses (src/local/rerank.ts). Local consistency: each
 *   match's similarity transform (its keypoints' scale ratio and orientation difference) predicts
 *   where the other matches' query points land in the reference; a match agrees when it lands
 *   within `CONSISTENCY_TOLERANCE` of its distance plus `CONSISTENCY_SLACK` px and its own rotation
 *   and scale are close. The count is 1 + the most agreeing matches of any one match. A similarity
 *   holds *locally* on a building photographed from elsewhere, where one global transform (the Hough
 *   vote's) does not: smvs landmarks P@1 0.653 → 0.713, R@5 0.762 → 0.812 (README, tmp study).
 * - `houghInliers`: the 4-D Hough vote (bench/local/README.md, "hough4"), one similarity for the
 *   whole image; the duplicate check at indexing uses it.
 * - `homography` + `outline`: RANSAC homography (OpenCV) for the few verified hits, to draw where
 *   the reference was found in the query photo.
 */
import { opencv } from './opencv.ts';
import type { LocalFeatures, Match, Verification } from './types.ts';

/**
 * A pair with at least this many `consistentInliers` is *verified*. With the matches of
 * `VERIFY_RATIO`, wrong pairs reach at most 9 in hymenoptera (153 val photos × ~65 candidates: two
 * photos of different ants) and museum paintings, 13 in book covers (shared logos, series covers);
 * true pairs have a median of 138 (book covers), 119 (museum), 12 (landmarks). 10 keeps category
 * search (hymenoptera kNN@1) exactly as without verification.
 */
export const VERIFIED_INLIERS = 10;
/** Lowe's ratio of the matches verification checks (looser than `MATCH_RATIO`: buildings' repeated windows fail 0.8). */
export const VERIFY_RATIO = 0.85;
/** A match agrees with another's similarity within this fraction of their distance (query px, scaled) … */
export const CONSISTENCY_TOLERANCE = 0.25;
/** … plus this many px (of the reference's working size). */
export const CONSISTENCY_SLACK = 6;
/** … with orientations within this many degrees, and scales within a factor 2^CONSISTENCY_OCTAVES. */
export const CONSISTENCY_ANGLE = 30;
export const CONSISTENCY_OCTAVES = 1;

/** Hough bin widths: orientation difference (degrees), log2 scale ratio (octaves), centre position (fraction of the reference's long side). */
export const HOUGH_ANGLE_BIN = 30;
export const HOUGH_SCALE_BIN = 1;
export const HOUGH_POSITION_BIN = 1 / 4;
/** RANSAC reprojection threshold of `homography`, px (of the reference's working size). */
export const HOMOGRAPHY_THRESHOLD = 6;

const ANGLE_BINS = 360 / HOUGH_ANGLE_BIN;
/** Position bins further than this from the reference (garbage votes: the centre lands thousands of sides away) are dropped. */
const MAX_POSITION_BIN = 30_000;
const MAX_SCALE_BIN = 60;
const DEG = Math.PI / 180;

// Open-addressing hash of bin → count, reused across calls; a slot is live when its stamp is the call's.
let capacity = 0;
let slotHi = new Int32Array(0);
let slotLo = new Int32Array(0);
let slotCount = new Int32Array(0);
let slotOrder = new Int32Array(0);
let slotStamp = new Int32Array(0);
let stamp = 0;
/** Per match: its lower bin in each dimension (angle, scale, x, y), or angle −1 when it does not vote. */
let lowBins = new Int32Array(0);

function ensureScratch(matches: number): void {
  const needed = Math.max(64, matches * 16 * 2);
  if (capacity < needed) {
    capacity = 1 << Math.ceil(Math.log2(needed));
    slotHi = new Int32Array(capacity);
    slotLo = new Int32Array(capacity);
    slotCount = new Int32Array(capacity);
    slotOrder = new Int32Array(capacity);
    slotStamp = new Int32Array(capacity);
    stamp = 0;
  }
  if (lowBins.length < matches * 4) lowBins = new Int32Array(Math.max(matches * 4, 256));
  stamp++;
  if (stamp === 0x7fffffff) {
    slotStamp.fill(0);
    stamp = 1;
  }
}

/**
 * The 4-D Hough transform of the matches' similarity transforms: each match (query keypoint →
 * reference keypoint) predicts a rotation (orientation difference, 30° bins, wrapping), a scale
 * (log2 of the size ratio, 1-octave bins) and where the query image's centre lands in the
 * reference (bins of ¼ of the reference's long side), and votes for the 2 nearest bins in each
 * dimension (16 bins). `inliers` is the largest bin's count (ties: the bin voted for first) and
 * `members` the indexes (into `matches`) of the matches in it.
 */
export function houghInliers(query: LocalFeatures, ref: LocalFeatures, matches: readonly Match[]): Verification {
  const n = matches.length;
  if (n === 0) return { inliers: 0, members: [] };
  ensureScratch(n);
  const qk = query.keypoints, rk = ref.keypoints;
  const qcx = query.width / 2, qcy = query.height / 2;
  const side = Math.max(ref.width, ref.height) * HOUGH_POSITION_BIN;
  const mask = capacity - 1;
  let bestCount = 0, bestOrder = 0x7fffffff, bestHi = 0, bestLo = 0, inserted = 0;
  for (let m = 0; m < n; m++) {
    const { q, r } = matches[m];
    const qx = qk[q * 4], qy = qk[q * 4 + 1], qs = qk[q * 4 + 2], qa = qk[q * 4 + 3];
    const rx = rk[r * 4], ry = rk[r * 4 + 1], rs = rk[r * 4 + 2], ra = rk[r * 4 + 3];
    const s = rs / qs;
    let dAngle = (ra - qa) % 360;
    if (dAngle < 0) dAngle += 360;
    const t = dAngle * DEG, cos = Math.cos(t), sin = Math.sin(t);
    const vx = qcx - qx, vy = qcy - qy;
    const cx = rx + s * (cos * vx - sin * vy);
    const cy = ry + s * (sin * vx + cos * vy);
    // lower of the two nearest bins: floor(v / width − ½)
    let a = Math.floor(dAngle / HOUGH_ANGLE_BIN - 0.5);
    const sb = Math.floor(Math.log2(s) / HOUGH_SCALE_BIN - 0.5);
    const xb = Math.floor(cx / side - 0.5);
    const yb = Math.floor(cy / side - 0.5);
    if (!(Math.abs(sb) <= MAX_SCALE_BIN && Math.abs(xb) <= MAX_POSITION_BIN && Math.abs(yb) <= MAX_POSITION_BIN)) {
      lowBins[m * 4] = -1; // NaN/∞ sizes or a centre thousands of sides away: no vote
      continue;
    }
    if (a < 0) a += ANGLE_BINS;
    lowBins[m * 4] = a;
    lowBins[m * 4 + 1] = sb;
    lowBins[m * 4 + 2] = xb;
    lowBins[m * 4 + 3] = yb;
    for (let v = 0; v < 16; v++) {
      let ab = a + (v & 1);
      if (ab === ANGLE_BINS) ab = 0;
      // key: angle (4 bits) + scale (12 bits, offset) | x (16 bits, offset) + y (16 bits, offset)
      const hi = (ab << 12) | ((sb + ((v >> 1) & 1) + 2048) & 0xfff);
      const lo = (((xb + ((v >> 2) & 1) + 32768) & 0xffff) << 16) | ((yb + ((v >> 3) & 1) + 32768) & 0xffff);
      let slot = (Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) >>> 7) & mask;
      while (slotStamp[slot] === stamp && (slotHi[slot] !== hi || slotLo[slot] !== lo)) slot = (slot + 1) & mask;
      let count: number, order: number;
      if (slotStamp[slot] !== stamp) {
        slotStamp[slot] = stamp;
        slotHi[slot] = hi;
        slotLo[slot] = lo;
        slotCount[slot] = count = 1;
        slotOrder[slot] = order = inserted++;
      } else {
        count = ++slotCount[slot];
        order = slotOrder[slot];
      }
      if (count > bestCount || (count === bestCount && order < bestOrder)) {
        bestCount = count;
        bestOrder = order;
        bestHi = hi;
        bestLo = lo;
      }
    }
  }
  if (bestCount === 0) return { inliers: 0, members: [] };
  const angle = bestHi >> 12, scale = (bestHi & 0xfff) - 2048;
  const x = ((bestLo >>> 16) & 0xffff) - 32768, y = (bestLo & 0xffff) - 32768;
  const members: number[] = [];
  for (let m = 0; m < n; m++) {
    const a = lowBins[m * 4];
    if (a < 0) continue;
    const inAngle = a === angle || (a + 1) % ANGLE_BINS === angle;
    const ds = scale - lowBins[m * 4 + 1], dx = x - lowBins[m * 4 + 2], dy = y - lowBins[m * 4 + 3];
    if (inAngle && (ds === 0 || ds === 1) && (dx === 0 || dx === 1) && (dy === 0 || dy === 1)) members.push(m);
  }
  return { inliers: bestCount, members };
}

// Per-match scratch of consistentInliers (qx, qy, rx, ry, log2 scale, angle, scale, scale·cos, scale·sin), grown on demand.
let cq = new Float64Array(0);

/** Whether match j lands where match i's similarity puts it (`cq` filled), with a close rotation and scale. */
function agrees(i: number, j: number): boolean {
  const o = i * 9, p = j * 9;
  let da = Math.abs(cq[p + 5] - cq[o + 5]);
  if (da > 180) da = 360 - da;
  if (da > CONSISTENCY_ANGLE || Math.abs(cq[p + 4] - cq[o + 4]) > CONSISTENCY_OCTAVES) return false;
  const s = cq[o + 6], c = cq[o + 7], sn = cq[o + 8];
  const dx = cq[p] - cq[o], dy = cq[p + 1] - cq[o + 1];
  const ex = cq[o + 2] + c * dx - sn * dy - cq[p + 2], ey = cq[o + 3] + sn * dx + c * dy - cq[p + 3];
  const tol = CONSISTENCY_TOLERANCE * s * Math.sqrt(dx * dx + dy * dy) + CONSISTENCY_SLACK;
  return ex * ex + ey * ey <= tol * tol;
}

/**
 * Local-consistency verification (see the module comment): `inliers` is 1 + the largest number of
 * matches agreeing with one match's similarity, `members` that match and those agreeing with it
 * (indexes into `matches`). O(matches²): ~0.1 ms for 100 matches.
 */
export function consistentInliers(query: LocalFeatures, ref: LocalFeatures, matches: readonly Match[]): Verification {
  const n = matches.length;
  if (n === 0) return { inliers: 0, members: [] };
  if (cq.length < n * 9) cq = new Float64Array(Math.max(n * 9, 256));
  const qk = query.keypoints, rk = ref.keypoints;
  for (let m = 0; m < n; m++) {
    const { q, r } = matches[m];
    const s = rk[r * 4 + 2] / qk[q * 4 + 2];
    let a = (rk[r * 4 + 3] - qk[q * 4 + 3]) % 360;
    if (a < 0) a += 360;
    const o = m * 9;
    cq[o] = qk[q * 4]; cq[o + 1] = qk[q * 4 + 1]; cq[o + 2] = rk[r * 4]; cq[o + 3] = rk[r * 4 + 1];
    cq[o + 4] = Math.log2(s); cq[o + 5] = a; cq[o + 6] = s; cq[o + 7] = Math.cos(a * DEG) * s; cq[o + 8] = Math.sin(a * DEG) * s;
  }
  let best = -1, bestAt = 0;
  for (let i = 0; i < n; i++) {
    const s = cq[i * 9 + 6];
    if (!(s > 0 && Number.isFinite(s))) continue;
    let count = 0;
    for (let j = 0; j < n; j++) if (j !== i && agrees(i, j)) count++;
    if (count > best) {
      best = count;
      bestAt = i;
    }
  }
  if (best < 0) return { inliers: 0, members: [] };
  const members = [bestAt];
  for (let j = 0; j < n; j++) if (j !== bestAt && agrees(bestAt, j)) members.push(j);
  members.sort((a, b) => a - b);
  return { inliers: best + 1, members };
}

/** A homography and the RANSAC inliers that support it. */
export interface Homography {
  /** 3×3, row-major, maps query working-size pixels to reference working-size pixels; `H[8]` = 1. */
  H: number[];
  inliers: number;
}

/**
 * RANSAC homography (OpenCV `findHomography`, 6 px) from the matches, or only from
 * `matches[members[i]]` (e.g. the Hough inliers). Undefined with fewer than 4 matches, when RANSAC
 * finds none, or when H is not a plausible view of a flat object (a mirror, a collapse or a
 * blow-up: det of the 2×2 part outside (0.02, 50), or strong perspective terms; the research's
 * sanity check). OpenCV's RANSAC is seeded: the same input gives the same H.
 */
export function homography(query: LocalFeatures, ref: LocalFeatures, matches: readonly Match[], members?: readonly number[]): Homography | undefined {
  const n = members ? members.length : matches.length;
  if (n < 4) return undefined;
  const cv = opencv();
  const src = new cv.Mat(n, 1, cv.CV_32FC2);
  const dst = new cv.Mat(n, 1, cv.CV_32FC2);
  const inlierMask = new cv.Mat();
  let H: { delete(): void; empty(): boolean; rows: number; cols: number; data64F: Float64Array } | undefined;
  try {
    const s: Float32Array = src.data32F, d: Float32Array = dst.data32F;
    for (let i = 0; i < n; i++) {
      const m = matches[members ? members[i] : i];
      s[i * 2] = query.keypoints[m.q * 4];
      s[i * 2 + 1] = query.keypoints[m.q * 4 + 1];
      d[i * 2] = ref.keypoints[m.r * 4];
      d[i * 2 + 1] = ref.keypoints[m.r * 4 + 1];
    }
    H = cv.findHomography(src, dst, cv.RANSAC, HOMOGRAPHY_THRESHOLD, inlierMask);
    if (!H || H.empty() || H.rows !== 3 || H.cols !== 3) return undefined;
    const h = Array.from(H.data64F);
    if (!h.every(Number.isFinite) || Math.abs(h[8]) < 1e-12) return undefined;
    const H9 = h.map((v) => v / h[8]);
    const det = H9[0] * H9[4] - H9[1] * H9[3];
    if (!(det > 0.02 && det < 50) || Math.abs(H9[6]) > 0.005 || Math.abs(H9[7]) > 0.005) return undefined;
    let inliers = 0;
    const flags: Uint8Array = inlierMask.data;
    for (let i = 0; i < flags.length; i++) if (flags[i]) inliers++;
    return { H: H9, inliers };
  } finally {
    src.delete();
    dst.delete();
    inlierMask.delete();
    H?.delete();
  }
}

/** Farther than this many query widths/heights from the photo, an outline is not drawable. */
const MAX_OUTLINE_EXTENT = 10;

/**
 * The reference image's four corners (top-left, top-right, bottom-right, bottom-left) as seen in
 * the query photo, as fractions of the query's width and height (0..1 inside the photo; a partial
 * view goes slightly outside). `H` maps query → reference (as `homography` returns it), so the
 * corners go through its inverse. Undefined when the quadrilateral is degenerate: a corner at or
 * beyond infinity, not convex, or absurdly far (over 10 photo sizes).
 */
export function outline(H: readonly number[], ref: LocalFeatures, query: LocalFeatures): Array<[number, number]> | undefined {
  const inv = invert3(H);
  if (!inv || query.width <= 0 || query.height <= 0) return undefined;
  const corners: Array<[number, number]> = [[0, 0], [ref.width, 0], [ref.width, ref.height], [0, ref.height]];
  const out: Array<[number, number]> = [];
  let sign = 0;
  for (const [x, y] of corners) {
    const w = inv[6] * x + inv[7] * y + inv[8];
    if (!(Math.abs(w) > 1e-9)) return undefined;
    if (sign === 0) sign = Math.sign(w);
    else if (Math.sign(w) !== sign) return undefined; // the quadrilateral crosses the line at infinity
    const u = (inv[0] * x + inv[1] * y + inv[2]) / w / query.width;
    const v = (inv[3] * x + inv[4] * y + inv[5]) / w / query.height;
    if (!(Math.abs(u) <= MAX_OUTLINE_EXTENT && Math.abs(v) <= MAX_OUTLINE_EXTENT)) return undefined;
    out.push([u, v]);
  }
  // convex and non-degenerate: every turn the same way, in pixels (aspect matters for the turn)
  let turn = 0;
  for (let i = 0; i < 4; i++) {
    const [ax, ay] = out[i], [bx, by] = out[(i + 1) % 4], [cx, cy] = out[(i + 2) % 4];
    const cross = ((bx - ax) * (cy - by) - (by - ay) * (cx - bx)) * query.width * query.height;
    if (!(Math.abs(cross) > 1e-6)) return undefined;
    if (turn === 0) turn = Math.sign(cross);
    else if (Math.sign(cross) !== turn) return undefined;
  }
  return out;
}

/** Inverse of a row-major 3×3 matrix, or undefined when singular. */
export function invert3(m: readonly number[]): number[] | undefined {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return undefined;
  const inv = [A, -(b * i - c * h), b * f - c * e, B, a * i - c * g, -(a * f - c * d), C, -(a * h - b * g), a * e - b * d];
  return inv.map((v) => v / det);
}
