/**
 * An instance-retrieval test set generated from real photos: each query is one library photo
 * "re-photographed" in simulation with sharp (and a little raw-pixel JS), so the right answer
 * is known: the original must come back at rank 1. Deterministic given the seed (and the sharp /
 * libvips build): the same seed gives the same sources, parameters and JPEG bytes.
 *
 * Transformations (one tag per query, assigned round-robin over the shuffled sources):
 * - `perspective`: the photo warped onto a tilted quadrilateral (one side shortened by 10–25%,
 *   corners jittered ±4%, inset 0–8%) over an unrelated photo; raw homography remap, bilinear.
 * - `crop`: a partial crop keeping 60–80% of the width and of the height, anywhere.
 * - `rotate`: rotated by 5–20° (either way), then cropped to the largest upright rectangle inside.
 * - `scale`: downscaled to 25% of its width and height (the decoder upsamples it again).
 * - `color`: brightness ×0.6–0.8 or ×1.2–1.4, saturation ×0.5–1.5, hue ±30°, per-channel
 *   gains ×0.85–1.15 (white balance).
 * - `blur`: Gaussian blur, σ = 1–2.5 pixels at the model's 224 input (scaled to the photo's size).
 * - `jpeg`: re-encoded at JPEG quality 30.
 * - `clutter`: pasted, unscaled, into an unrelated photo (another class, or hymenoptera) so
 *   that it covers 40–50% of a square frame, at a random position.
 * - `combined`: rotate 0–10°, colour (brightness ×0.8–1.2, saturation ×0.8–1.2, hue ±10°), blur
 *   σ 0.5–1 model pixel, perspective (one side −5…15%) onto an unrelated photo covering about
 *   40–55% of the frame, then JPEG quality 30: a quick phone snap of a print on a wall.
 * Every query but `jpeg`/`combined` is saved as JPEG quality 90.
 */
import fs from 'node:fs';
import sharp from 'sharp';
import { InvalidParameterError } from '../errors.ts';
import { seededRandom } from '../random.ts';
import { type Raw, decodeRaw, jpeg, rawSharp, round3, uniform } from './raw-image.ts';

/** The transformation tags, in the order they are assigned. */
export const INSTANCE_TRANSFORMS = Object.freeze(['perspective', 'crop', 'rotate', 'scale', 'color', 'blur', 'jpeg', 'clutter', 'combined'] as const);
export type InstanceTransform = (typeof INSTANCE_TRANSFORMS)[number];

/** A photo the set draws from; `label` keeps clutter backgrounds unrelated (another class). */
export interface InstanceSource {
  path: string;
  label?: string;
}

/** One generated query: JPEG bytes, its tag and parameters, and the index of its original. */
export interface InstanceQuery {
  /** Position in the set (0-based). */
  index: number;
  transform: InstanceTransform;
  /** Index into `sources` of the photo that must come back. */
  sourceIndex: number;
  /** Indices into `sources` that count as correct: the source and its pixel-identical copies. */
  accept: number[];
  source: string;
  /** Background photo for `perspective`, `clutter` and `combined`. */
  background?: string;
  /** The drawn parameters (angles in degrees, fractions of the photo's size). */
  params: Record<string, number>;
  /** The query as an encoded JPEG. */
  bytes: Buffer;
}

/** Options of `buildInstanceSet`. */
export interface InstanceSetOptions {
  /** The indexed photos queries are made from (e.g. all of oxford_flowers17). */
  sources: readonly InstanceSource[];
  /** Unrelated photos for clutter (a background never has the source's label or path). */
  backgrounds: readonly InstanceSource[];
  /** Number of queries (≤ sources.length; each source used at most once). */
  count: number;
  seed: number;
  /** Tags to cycle through (default: all of INSTANCE_TRANSFORMS). */
  transforms?: readonly InstanceTransform[];
  /** `findDuplicates` of the sources' paths, if already known (computed otherwise). */
  duplicates?: readonly number[][];
}

/** Seeded Fisher–Yates shuffle of 0..n−1. */
export function seededPermutation(n: number, seed: number): number[] {
  const rng = seededRandom(seed);
  const out = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * The queries' plan (sources, tags, backgrounds) without generating images: cheap, and what
 * `buildInstanceSet` follows. Query i uses its own PRNG (seed, i), so a longer set starts with the
 * same queries as a shorter one.
 */
export function planInstanceSet(options: InstanceSetOptions): Array<Omit<InstanceQuery, 'bytes' | 'params' | 'accept'> & { rng: () => number }> {
  const { sources, backgrounds, count, seed } = options;
  const transforms = options.transforms ?? INSTANCE_TRANSFORMS;
  if (!Number.isInteger(count) || count < 1 || count > sources.length) {
    throw new InvalidParameterError(`Instance set count must be 1..${sources.length} (one query per source photo); got ${count}.`);
  }
  if (transforms.length === 0) throw new InvalidParameterError('Instance set needs at least one transformation.');
  const order = seededPermutation(sources.length, seed);
  return Array.from({ length: count }, (_, index) => {
    const rng = seededRandom((seed * 2654435761 + index * 40503 + 1) >>> 0);
    const sourceIndex = order[index];
    const source = sources[sourceIndex];
    const transform = transforms[index % transforms.length];
    const plan: Omit<InstanceQuery, 'bytes' | 'params' | 'accept'> & { rng: () => number } = { index, transform, sourceIndex, source: source.path, rng };
    if (transform === 'perspective' || transform === 'clutter' || transform === 'combined') {
      const candidates = backgrounds.filter((b) => b.path !== source.path && (b.label === undefined || b.label !== source.label));
      if (candidates.length === 0) throw new InvalidParameterError('Instance set needs at least one background photo unrelated to the sources.');
      plan.background = candidates[Math.floor(rng() * candidates.length)].path;
    }
    return plan;
  });
}

/**
 * Groups of pixel-identical photos (re-encoded copies: oxford_flowers17 holds dozens of such
 * pairs). A query made from one of them has every copy as a correct answer, since they are
 * the same picture. Compares 16×16 thumbnails: same aspect ratio (±1%) and mean absolute
 * difference ≤ `maxDiff` grey levels. Returns, per path, the indices of its copies (itself
 * included). ~5 ms per photo.
 */
export async function findDuplicates(paths: readonly string[], maxDiff = 2): Promise<number[][]> {
  const side = 16;
  const thumbs: Array<{ t: Buffer; aspect: number }> = [];
  for (const p of paths) {
    const img = sharp(fs.readFileSync(p)).rotate();
    const meta = await img.metadata();
    const oriented = (meta.orientation ?? 1) >= 5;
    const aspect = oriented ? (meta.height ?? 1) / (meta.width ?? 1) : (meta.width ?? 1) / (meta.height ?? 1);
    const t = await img.resize(side, side, { fit: 'fill' }).removeAlpha().toColourspace('srgb').raw().toBuffer();
    thumbs.push({ t, aspect });
  }
  const groups = paths.map((_, i) => [i]);
  for (let i = 0; i < thumbs.length; i++) {
    for (let j = i + 1; j < thumbs.length; j++) {
      if (Math.abs(thumbs[i].aspect / thumbs[j].aspect - 1) > 0.01) continue;
      let diff = 0;
      const a = thumbs[i].t;
      const b = thumbs[j].t;
      for (let k = 0; k < a.length; k++) diff += Math.abs(a[k] - b[k]);
      if (diff / a.length <= maxDiff) {
        groups[i].push(j);
        groups[j].push(i);
      }
    }
  }
  return groups.map((g) => g.sort((x, y) => x - y));
}

/** Generates the set (≈ 20–40 ms per query, plus `findDuplicates` over the sources unless given). */
export async function buildInstanceSet(options: InstanceSetOptions): Promise<InstanceQuery[]> {
  const plans = planInstanceSet(options);
  const duplicates = options.duplicates ?? (await findDuplicates(options.sources.map((s) => s.path)));
  const out: InstanceQuery[] = [];
  for (const plan of plans) {
    const { rng, ...rest } = plan;
    const { bytes, params } = await renderQuery(plan.transform, fs.readFileSync(plan.source), plan.background ? fs.readFileSync(plan.background) : undefined, rng);
    out.push({ ...rest, accept: [...(duplicates[plan.sourceIndex] ?? [plan.sourceIndex])], params, bytes });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering

const signed = (rng: () => number, lo: number, hi: number) => (rng() < 0.5 ? -1 : 1) * uniform(rng, lo, hi);

/** Background photo resized to cover w×h. */
async function backgroundOf(bytes: Buffer, width: number, height: number): Promise<Raw> {
  return decodeRaw(sharp(bytes).rotate().resize(width, height, { fit: 'cover' }));
}

/** Largest axis-aligned rectangle inside a w×h rectangle rotated by `deg`. */
function inscribed(w: number, h: number, deg: number): { width: number; height: number } {
  const a = (Math.abs(deg) * Math.PI) / 180;
  const sin = Math.abs(Math.sin(a));
  const cos = Math.abs(Math.cos(a));
  const long = Math.max(w, h);
  const short = Math.min(w, h);
  if (short <= 2 * sin * cos * long || Math.abs(sin - cos) < 1e-10) {
    const x = 0.5 * short;
    return w >= h ? { width: x / sin, height: x / cos } : { width: x / cos, height: x / sin };
  }
  const cos2 = cos * cos - sin * sin;
  return { width: (w * cos - h * sin) / cos2, height: (h * cos - w * sin) / cos2 };
}

async function rotateInscribed(r: Raw, deg: number): Promise<Raw> {
  const rotated = await decodeRaw(rawSharp(r).rotate(deg, { background: { r: 128, g: 128, b: 128 } }));
  const box = inscribed(r.width, r.height, deg);
  const width = Math.max(1, Math.floor(box.width) - 2);
  const height = Math.max(1, Math.floor(box.height) - 2);
  const left = Math.max(0, Math.floor((rotated.width - width) / 2));
  const top = Math.max(0, Math.floor((rotated.height - height) / 2));
  return decodeRaw(rawSharp(rotated).extract({ left, top, width: Math.min(width, rotated.width - left), height: Math.min(height, rotated.height - top) }));
}

async function colour(r: Raw, brightness: number, saturation: number, hue: number, gains: [number, number, number]): Promise<Raw> {
  return decodeRaw(rawSharp(r).modulate({ brightness, saturation, hue: Math.round(hue) }).linear(gains, [0, 0, 0]));
}

async function blur(r: Raw, modelSigma: number): Promise<Raw> {
  const sigma = Math.max(0.3, (modelSigma * Math.min(r.width, r.height)) / 224);
  return decodeRaw(rawSharp(r).blur(sigma));
}

/** 3×3 homography H (h33 = 1) with H·from[i] ∝ to[i], by Gaussian elimination on the 8×8 system. */
function homography(from: ReadonlyArray<[number, number]>, to: ReadonlyArray<[number, number]>): number[] {
  const a: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = from[i];
    const [u, v] = to[i];
    a.push([x, y, 1, 0, 0, 0, -u * x, -u * y, u]);
    a.push([0, 0, 0, x, y, 1, -v * x, -v * y, v]);
  }
  for (let c = 0; c < 8; c++) {
    let pivot = c;
    for (let r = c + 1; r < 8; r++) if (Math.abs(a[r][c]) > Math.abs(a[pivot][c])) pivot = r;
    [a[c], a[pivot]] = [a[pivot], a[c]];
    for (let r = 0; r < 8; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      for (let k = c; k < 9; k++) a[r][k] -= f * a[c][k];
    }
  }
  return [...a.map((row, i) => row[8] / row[i]), 1];
}

/**
 * Warps `photo` onto the quadrilateral `quad` (corners TL, TR, BR, BL in output pixels) over
 * `bg` (which sets the output size): inverse homography per output pixel, bilinear sampling
 * (no anti-aliasing: the photo is shrunk by at most ~25%), hard 1-pixel edges.
 */
function warpOnto(photo: Raw, bg: Raw, quad: ReadonlyArray<[number, number]>): Raw {
  const { width: sw, height: sh, data: src } = photo;
  const corners: Array<[number, number]> = [[0, 0], [sw - 1, 0], [sw - 1, sh - 1], [0, sh - 1]];
  const h = homography(quad, corners); // output → source
  const out = Buffer.from(bg.data);
  const { width: ow, height: oh } = bg;
  const xs = quad.map((p) => p[0]);
  const ys = quad.map((p) => p[1]);
  const x0 = Math.max(0, Math.floor(Math.min(...xs)));
  const x1 = Math.min(ow - 1, Math.ceil(Math.max(...xs)));
  const y0 = Math.max(0, Math.floor(Math.min(...ys)));
  const y1 = Math.min(oh - 1, Math.ceil(Math.max(...ys)));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const wz = h[6] * x + h[7] * y + h[8];
      const u = (h[0] * x + h[1] * y + h[2]) / wz;
      const v = (h[3] * x + h[4] * y + h[5]) / wz;
      if (u < 0 || v < 0 || u > sw - 1 || v > sh - 1) continue;
      const ux = Math.min(Math.floor(u), sw - 2);
      const vy = Math.min(Math.floor(v), sh - 2);
      const fx = u - ux;
      const fy = v - vy;
      const i00 = (vy * sw + ux) * 3;
      const i10 = i00 + 3;
      const i01 = i00 + sw * 3;
      const i11 = i01 + 3;
      const o = (y * ow + x) * 3;
      for (let c = 0; c < 3; c++) {
        const top = src[i00 + c] * (1 - fx) + src[i10 + c] * fx;
        const bottom = src[i01 + c] * (1 - fx) + src[i11 + c] * fx;
        out[o + c] = Math.round(top * (1 - fy) + bottom * fy);
      }
    }
  }
  return { data: out, width: ow, height: oh };
}

/**
 * A tilted-view quadrilateral for a `w`×`h` photo inside a frame of `fw`×`fh`: the photo's box
 * (`box` = left, top, width, height in the frame), one side shortened by `tilt` (its two
 * corners move towards each other), every corner jittered by up to `jitter` of the box size.
 */
function tiltedQuad(rng: () => number, box: [number, number, number, number], tilt: number, jitter: number): { quad: Array<[number, number]>; side: number } {
  const [l, t, bw, bh] = box;
  const q: Array<[number, number]> = [[l, t], [l + bw, t], [l + bw, t + bh], [l, t + bh]];
  const side = Math.floor(rng() * 4); // 0 top, 1 right, 2 bottom, 3 left shortened
  const dx = (tilt * bw) / 2;
  const dy = (tilt * bh) / 2;
  if (side === 0) { q[0][0] += dx; q[1][0] -= dx; }
  if (side === 2) { q[3][0] += dx; q[2][0] -= dx; }
  if (side === 1) { q[1][1] += dy; q[2][1] -= dy; }
  if (side === 3) { q[0][1] += dy; q[3][1] -= dy; }
  for (const p of q) {
    p[0] += uniform(rng, -jitter, jitter) * bw;
    p[1] += uniform(rng, -jitter, jitter) * bh;
  }
  return { quad: q, side };
}

/** Renders one query; exported for tests that want a single transformation. */
export async function renderQuery(transform: InstanceTransform, photoBytes: Buffer, backgroundBytes: Buffer | undefined, rng: () => number): Promise<{ bytes: Buffer; params: Record<string, number> }> {
  const photo = await decodeRaw(photoBytes);
  const { width: w, height: h } = photo;
  const needBackground = () => {
    if (!backgroundBytes) throw new InvalidParameterError(`Transformation ${transform} needs a background photo.`);
    return backgroundBytes;
  };
  switch (transform) {
    case 'crop': {
      const fx = uniform(rng, 0.6, 0.8);
      const fy = uniform(rng, 0.6, 0.8);
      const width = Math.round(w * fx);
      const height = Math.round(h * fy);
      const left = Math.floor(rng() * (w - width + 1));
      const top = Math.floor(rng() * (h - height + 1));
      const bytes = await rawSharp(photo).extract({ left, top, width, height }).jpeg({ quality: 90 }).toBuffer();
      return { bytes, params: { fx: round3(fx), fy: round3(fy), left: round3(left / w), top: round3(top / h) } };
    }
    case 'rotate': {
      const angle = signed(rng, 5, 20);
      return { bytes: await jpeg(await rotateInscribed(photo, angle), 90), params: { angle: round3(angle) } };
    }
    case 'scale': {
      const factor = 0.25;
      const bytes = await rawSharp(photo).resize(Math.max(1, Math.round(w * factor)), Math.max(1, Math.round(h * factor))).jpeg({ quality: 90 }).toBuffer();
      return { bytes, params: { factor } };
    }
    case 'color': {
      const brightness = rng() < 0.5 ? uniform(rng, 0.6, 0.8) : uniform(rng, 1.2, 1.4);
      const saturation = uniform(rng, 0.5, 1.5);
      const hue = uniform(rng, -30, 30);
      const gains: [number, number, number] = [uniform(rng, 0.85, 1.15), uniform(rng, 0.85, 1.15), uniform(rng, 0.85, 1.15)];
      return {
        bytes: await jpeg(await colour(photo, brightness, saturation, hue, gains), 90),
        params: { brightness: round3(brightness), saturation: round3(saturation), hue: Math.round(hue), gainR: round3(gains[0]), gainG: round3(gains[1]), gainB: round3(gains[2]) },
      };
    }
    case 'blur': {
      const sigma = uniform(rng, 1, 2.5);
      return { bytes: await jpeg(await blur(photo, sigma), 90), params: { sigma: round3(sigma) } };
    }
    case 'jpeg':
      return { bytes: await jpeg(photo, 30), params: { quality: 30 } };
    case 'clutter': {
      const area = uniform(rng, 0.4, 0.5);
      let pw = w;
      let ph = h;
      let side = Math.round(Math.sqrt((w * h) / area));
      if (Math.max(w, h) > side) {
        // Very elongated photo: shrink it so it fits the square frame.
        const f = side / Math.max(w, h);
        pw = Math.round(w * f);
        ph = Math.round(h * f);
        side = Math.round(Math.sqrt((pw * ph) / area));
      }
      const bg = await backgroundOf(needBackground(), side, side);
      const left = Math.floor(rng() * (side - pw + 1));
      const top = Math.floor(rng() * (side - ph + 1));
      const pasted = pw === w ? await jpeg(photo, 95) : await rawSharp(photo).resize(pw, ph).jpeg({ quality: 95 }).toBuffer();
      const bytes = await rawSharp(bg).composite([{ input: pasted, left, top }]).jpeg({ quality: 90 }).toBuffer();
      return { bytes, params: { area: round3((pw * ph) / (side * side)), left: round3(left / side), top: round3(top / side) } };
    }
    case 'perspective': {
      const tilt = uniform(rng, 0.1, 0.25);
      const inset = uniform(rng, 0, 0.08);
      const bg = await backgroundOf(needBackground(), w, h);
      const box: [number, number, number, number] = [inset * w, inset * h, (1 - 2 * inset) * w, (1 - 2 * inset) * h];
      const { quad, side } = tiltedQuad(rng, box, tilt, 0.04);
      return { bytes: await jpeg(warpOnto(photo, bg, quad), 90), params: { tilt: round3(tilt), inset: round3(inset), side } };
    }
    case 'combined': {
      const angle = uniform(rng, -10, 10);
      const brightness = uniform(rng, 0.8, 1.2);
      const saturation = uniform(rng, 0.8, 1.2);
      const hue = uniform(rng, -10, 10);
      const sigma = uniform(rng, 0.5, 1);
      const tilt = uniform(rng, 0.05, 0.15);
      const area = uniform(rng, 0.4, 0.55);
      let p = await rotateInscribed(photo, angle);
      p = await colour(p, brightness, saturation, hue, [1, 1, 1]);
      p = await blur(p, sigma);
      // Square frame; the photo's box covers `area` of it (before the tilt), at a random place.
      const side = Math.round(Math.sqrt((p.width * p.height) / area));
      const f = Math.min(1, (0.95 * side) / Math.max(p.width, p.height));
      const bw = p.width * f;
      const bh = p.height * f;
      const left = rng() * (side - bw);
      const top = rng() * (side - bh);
      const bg = await backgroundOf(needBackground(), side, side);
      const { quad } = tiltedQuad(rng, [left, top, bw, bh], tilt, 0.02);
      return {
        bytes: await jpeg(warpOnto(p, bg, quad), 30),
        params: { angle: round3(angle), brightness: round3(brightness), saturation: round3(saturation), hue: Math.round(hue), sigma: round3(sigma), tilt: round3(tilt), area: round3((bw * bh) / (side * side)), quality: 30 },
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Scoring

/** P@1 and R@5 of an instance set, overall and per transformation. */
export interface InstanceReport {
  queries: number;
  p1: number;
  r5: number;
  perTransform: Partial<Record<InstanceTransform, { n: number; p1: number; r5: number }>>;
}

/**
 * Scores ranked results: `rankings[i]` = database indices (into the set's `sources`) for query
 * i, best first (at least 5). A query counts at rank r when the first accepted index (the
 * source or a pixel-identical copy) is at position r.
 */
export function scoreInstanceSet(queries: readonly InstanceQuery[], rankings: readonly (readonly number[])[]): InstanceReport {
  if (rankings.length !== queries.length) throw new InvalidParameterError(`Expected ${queries.length} rankings (one per query); got ${rankings.length}.`);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const per = new Map<InstanceTransform, { n: number; p1: number; r5: number }>();
  let p1 = 0;
  let r5 = 0;
  queries.forEach((q, i) => {
    const rank = rankings[i].findIndex((j) => q.accept.includes(j));
    const t = per.get(q.transform) ?? { n: 0, p1: 0, r5: 0 };
    per.set(q.transform, t);
    t.n++;
    if (rank === 0) { t.p1++; p1++; }
    if (rank >= 0 && rank < 5) { t.r5++; r5++; }
  });
  const perTransform: InstanceReport['perTransform'] = {};
  for (const t of INSTANCE_TRANSFORMS) {
    const x = per.get(t);
    if (x) perTransform[t] = { n: x.n, p1: round(x.p1 / x.n), r5: round(x.r5 / x.n) };
  }
  const n = Math.max(1, queries.length);
  return { queries: queries.length, p1: round(p1 / n), r5: round(r5 / n), perTransform };
}
