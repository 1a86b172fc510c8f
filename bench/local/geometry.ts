/**
 * Geometric checks on ratio-test matches. Each returns an inlier count.
 *   homography  cv.findHomography RANSAC (reprojection threshold px), with a sanity check on H
 *   affine      cv.estimateAffine2D RANSAC with a large threshold (a looser planar model)
 *   hough2      Lowe-style voting on (orientation difference, log2 scale ratio): largest bin
 *   hough4      the same plus the predicted position of the query centre in the reference
 *   fundamental pixdex's own RANSAC: normalised 8-point, rank 2, Sampson distance (3-D scenes)
 *   fundHough   fundamental inliers that also agree with the dominant hough2 bin
 */
import { seededRandom } from '../../src/random.ts';
import { cv, type Features, type Match } from './features.ts';

export type Method = 'homography' | 'affine' | 'hough2' | 'hough4' | 'fundamental' | 'fundHough';
export const METHODS: Method[] = ['homography', 'affine', 'hough2', 'hough4', 'fundamental', 'fundHough'];

function points(q: Features, r: Features, ms: Match[]): { src: Float32Array; dst: Float32Array } {
  const src = new Float32Array(ms.length * 2);
  const dst = new Float32Array(ms.length * 2);
  ms.forEach((m, i) => {
    src[i * 2] = q.kp[m.qi * 4];
    src[i * 2 + 1] = q.kp[m.qi * 4 + 1];
    dst[i * 2] = r.kp[m.ri * 4];
    dst[i * 2 + 1] = r.kp[m.ri * 4 + 1];
  });
  return { src, dst };
}

export function homography(q: Features, r: Features, ms: Match[], thr = 6): number {
  if (ms.length < 4) return 0;
  const c = cv();
  const { src, dst } = points(q, r, ms);
  const a = c.matFromArray(ms.length, 1, c.CV_32FC2, Array.from(src));
  const b = c.matFromArray(ms.length, 1, c.CV_32FC2, Array.from(dst));
  const mask = new c.Mat();
  let H: ReturnType<typeof c.Mat> | undefined;
  try {
    H = c.findHomography(a, b, c.RANSAC, thr, mask);
    if (!H || H.empty() || H.rows !== 3) return 0;
    const h = H.data64F;
    const det = (h[0] * h[4] - h[1] * h[3]) / (h[8] * h[8]);
    // A mirror, a collapse or a blow-up is not a view of a flat object.
    if (!(det > 0.02 && det < 50) || Math.abs(h[6] / h[8]) > 0.005 || Math.abs(h[7] / h[8]) > 0.005) return 0;
    let n = 0;
    for (let i = 0; i < mask.rows; i++) n += mask.data[i] ? 1 : 0;
    return n;
  } finally {
    a.delete();
    b.delete();
    mask.delete();
    H?.delete();
  }
}

export function affine(q: Features, r: Features, ms: Match[], thr = 20): number {
  if (ms.length < 3) return 0;
  const c = cv();
  const { src, dst } = points(q, r, ms);
  const a = c.matFromArray(ms.length, 1, c.CV_32FC2, Array.from(src));
  const b = c.matFromArray(ms.length, 1, c.CV_32FC2, Array.from(dst));
  const mask = new c.Mat();
  let A: ReturnType<typeof c.Mat> | undefined;
  try {
    A = c.estimateAffine2D(a, b, mask, c.RANSAC, thr);
    if (!A || A.empty()) return 0;
    const h = A.data64F;
    const det = h[0] * h[4] - h[1] * h[3];
    if (!(det > 0.02 && det < 50)) return 0;
    let n = 0;
    for (let i = 0; i < mask.rows; i++) n += mask.data[i] ? 1 : 0;
    return n;
  } finally {
    a.delete();
    b.delete();
    mask.delete();
    A?.delete();
  }
}

const ANGLE_BIN = 30;
const SCALE_BIN = 1; // log2 units

function vote(keys: number[][], counts: Map<string, number>): void {
  // each value votes for its two nearest bins per dimension
  const dims = keys.length;
  for (let mask = 0; mask < 1 << dims; mask++) {
    const key = keys.map((k, d) => (mask >> d) & 1 ? k[1] : k[0]).join(',');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
}
function twoBins(v: number, width: number, wrap?: number): number[] {
  const x = v / width;
  const lo = Math.floor(x - 0.5);
  const a = wrap ? ((lo % wrap) + wrap) % wrap : lo;
  const b = wrap ? (((lo + 1) % wrap) + wrap) % wrap : lo + 1;
  return [a, b];
}
function similarityOf(q: Features, r: Features, m: Match): { dAngle: number; dScale: number; cx: number; cy: number } {
  const qs = q.kp[m.qi * 4 + 2], rs = r.kp[m.ri * 4 + 2];
  const s = rs / qs;
  const dAngle = (((r.kp[m.ri * 4 + 3] - q.kp[m.qi * 4 + 3]) % 360) + 360) % 360;
  const t = (dAngle * Math.PI) / 180;
  // where the query image centre falls in the reference under this match's similarity
  const vx = q.width / 2 - q.kp[m.qi * 4], vy = q.height / 2 - q.kp[m.qi * 4 + 1];
  const cx = r.kp[m.ri * 4] + s * (Math.cos(t) * vx - Math.sin(t) * vy);
  const cy = r.kp[m.ri * 4 + 1] + s * (Math.sin(t) * vx + Math.cos(t) * vy);
  return { dAngle, dScale: Math.log2(s), cx, cy };
}

/** Largest bin of the Hough transform; with `position`, 4-D (angle, scale, centre x, centre y). */
export function hough(q: Features, r: Features, ms: Match[], position: boolean): { count: number; members: Set<number> } {
  const counts = new Map<string, number>();
  const keysOf: string[][] = [];
  const side = Math.max(r.width, r.height) / 4;
  for (const m of ms) {
    const v = similarityOf(q, r, m);
    const keys = [twoBins(v.dAngle, ANGLE_BIN, 360 / ANGLE_BIN), twoBins(v.dScale, SCALE_BIN)];
    if (position) keys.push(twoBins(v.cx, side), twoBins(v.cy, side));
    vote(keys, counts);
    const all: string[] = [];
    for (let mask = 0; mask < 1 << keys.length; mask++) all.push(keys.map((k, d) => (mask >> d) & 1 ? k[1] : k[0]).join(','));
    keysOf.push(all);
  }
  let bestKey = '';
  let best = 0;
  for (const [k, n] of counts) if (n > best) (best = n), (bestKey = k);
  const members = new Set<number>();
  keysOf.forEach((ks, i) => ks.includes(bestKey) && members.add(i));
  return { count: best, members };
}

// ------------------------------------------------------------ fundamental matrix (own RANSAC)

/** Eigen-decomposition of a symmetric n×n matrix (cyclic Jacobi). Returns eigenvector of the smallest eigenvalue. */
function smallestEigenvector(a: Float64Array, n: number): Float64Array {
  const A = Float64Array.from(a);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 30; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q] ** 2;
    if (off < 1e-20) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (Math.abs(apq) < 1e-30) continue;
        const theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cs = 1 / Math.sqrt(t * t + 1), sn = t * cs;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p], akq = A[k * n + q];
          A[k * n + p] = cs * akp - sn * akq;
          A[k * n + q] = sn * akp + cs * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k], aqk = A[q * n + k];
          A[p * n + k] = cs * apk - sn * aqk;
          A[q * n + k] = sn * apk + cs * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p], vkq = V[k * n + q];
          V[k * n + p] = cs * vkp - sn * vkq;
          V[k * n + q] = sn * vkp + cs * vkq;
        }
      }
    }
  }
  let m = 0;
  for (let i = 1; i < n; i++) if (A[i * n + i] < A[m * n + m]) m = i;
  const v = new Float64Array(n);
  for (let k = 0; k < n; k++) v[k] = V[k * n + m];
  return v;
}

function normaliser(p: Float64Array): { s: number; mx: number; my: number } {
  const n = p.length / 2;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) (mx += p[2 * i]), (my += p[2 * i + 1]);
  mx /= n;
  my /= n;
  let d = 0;
  for (let i = 0; i < n; i++) d += Math.hypot(p[2 * i] - mx, p[2 * i + 1] - my);
  return { s: Math.SQRT2 / (d / n || 1), mx, my };
}

/** F from ≥ 8 correspondences (indices into pts), in normalised coordinates (x' F x = 0). */
function eightPoint(src: Float64Array, dst: Float64Array, idx: number[]): Float64Array {
  const ATA = new Float64Array(81);
  const row = new Float64Array(9);
  for (const i of idx) {
    const x = src[2 * i], y = src[2 * i + 1], u = dst[2 * i], v = dst[2 * i + 1];
    row.set([u * x, u * y, u, v * x, v * y, v, x, y, 1]);
    for (let a = 0; a < 9; a++) for (let b = 0; b < 9; b++) ATA[a * 9 + b] += row[a] * row[b];
  }
  const f = smallestEigenvector(ATA, 9);
  // rank 2: F' = F (I - v3 v3ᵀ), v3 the eigenvector of FᵀF with the smallest eigenvalue
  const FtF = new Float64Array(9);
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) for (let k = 0; k < 3; k++) FtF[a * 3 + b] += f[k * 3 + a] * f[k * 3 + b];
  const v3 = smallestEigenvector(FtF, 3);
  const F = new Float64Array(9);
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) {
    let s = 0;
    for (let k = 0; k < 3; k++) s += f[a * 3 + k] * ((k === b ? 1 : 0) - v3[k] * v3[b]);
    F[a * 3 + b] = s;
  }
  return F;
}

function sampson(F: Float64Array, x: number, y: number, u: number, v: number): number {
  const fx0 = F[0] * x + F[1] * y + F[2], fx1 = F[3] * x + F[4] * y + F[5], fx2 = F[6] * x + F[7] * y + F[8];
  const ft0 = F[0] * u + F[3] * v + F[6], ft1 = F[1] * u + F[4] * v + F[7];
  const e = u * fx0 + v * fx1 + fx2;
  return (e * e) / (fx0 * fx0 + fx1 * fx1 + ft0 * ft0 + ft1 * ft1 || 1e-30);
}


/** RANSAC fundamental matrix; `thr` = Sampson distance in pixels. Returns inlier indices. */
export function fundamental(q: Features, r: Features, ms: Match[], thr = 2, maxIter = 300): number[] {
  const n = ms.length;
  if (n < 12) return [];
  const sorted = ms.map((m, i) => [m.ratio, i] as const).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
  const raw = points(q, r, ms);
  const src0 = Float64Array.from(raw.src), dst0 = Float64Array.from(raw.dst);
  const ns = normaliser(src0), nd = normaliser(dst0);
  const src = src0.map((v, i) => (i % 2 ? v - ns.my : v - ns.mx) * ns.s);
  const dst = dst0.map((v, i) => (i % 2 ? v - nd.my : v - nd.mx) * nd.s);
  // Sampson distance in normalised units ~ pixels × scale
  const t2 = (thr * Math.sqrt(ns.s * nd.s)) ** 2;
  const pool = Math.min(n, Math.max(16, Math.ceil(n / 2))); // PROSAC-lite: sample from the best ratios
  const random = seededRandom(n * 7919 + 13); // deterministic: runs repeat
  let best: number[] = [];
  let iters = maxIter;
  for (let it = 0; it < iters; it++) {
    const pick = new Set<number>();
    while (pick.size < 8) pick.add(sorted[Math.floor(random() * pool)]);
    const F = eightPoint(src, dst, [...pick]);
    const inl: number[] = [];
    for (let i = 0; i < n; i++) if (sampson(F, src[2 * i], src[2 * i + 1], dst[2 * i], dst[2 * i + 1]) < t2) inl.push(i);
    if (inl.length > best.length) {
      best = inl;
      const w = Math.min(0.99, inl.length / pool);
      iters = Math.min(maxIter, Math.ceil(Math.log(0.01) / Math.log(1 - w ** 8 + 1e-12)));
    }
  }
  if (best.length >= 8) {
    // one refit on all inliers
    const F = eightPoint(src, dst, best);
    const inl: number[] = [];
    for (let i = 0; i < n; i++) if (sampson(F, src[2 * i], src[2 * i + 1], dst[2 * i], dst[2 * i + 1]) < t2) inl.push(i);
    if (inl.length >= best.length) best = inl;
  }
  return best;
}

export interface PairScores {
  matches: number;
  homography: number;
  affine: number;
  hough2: number;
  hough4: number;
  fundamental: number;
  fundHough: number;
  /** ms per method (matching excluded). */
  ms: Record<Method, number>;
}

export function scorePair(q: Features, r: Features, ms: Match[], opts: { hThr: number; aThr: number; fThr: number }): PairScores {
  const time: Record<string, number> = {};
  let t = performance.now();
  const lap = (k: string) => {
    const now = performance.now();
    time[k] = now - t;
    t = now;
  };
  const h = homography(q, r, ms, opts.hThr);
  lap('homography');
  const a = affine(q, r, ms, opts.aThr);
  lap('affine');
  const h2 = hough(q, r, ms, false);
  lap('hough2');
  const h4 = hough(q, r, ms, true).count;
  lap('hough4');
  const f = fundamental(q, r, ms, opts.fThr);
  lap('fundamental');
  const fh = f.filter((i) => h2.members.has(i)).length;
  time.fundHough = time.fundamental + time.hough2;
  return { matches: ms.length, homography: h, affine: a, hough2: h2.count, hough4: h4, fundamental: f.length, fundHough: fh, ms: time as Record<Method, number> };
}
