/**
 * A near-duplicate test set generated from real photos (issue 15): each copy is one photo edited
 * the way pictures drift between phones, chats and websites (resized, re-encoded, cropped a
 * little, colour-edited, watermarked, re-saved in another format), so which files are "the same
 * picture" is known. Deterministic given the seed (and the sharp / libvips build): the same seed
 * gives the same sources, parameters and bytes. Modelled on ./instance-set.ts.
 *
 * Transformations (one tag per copy, assigned round-robin over the shuffled sources):
 * - `resize`: downscaled to 30–70% of its width, aspect kept; JPEG quality 85.
 * - `reencode`: JPEG quality 35–65, chroma 4:2:0 or 4:4:4, same size.
 * - `crop`: keeps 80–95% of the width and of the height, anywhere; JPEG quality 90.
 * - `color`: brightness ×0.75–1.3, saturation ×0.6–1.4, then a gamma (0.7–1.4) or a linear
 *   contrast (×0.75–1.3 about mid-grey), greyscale for ~1 copy in 5; JPEG quality 90.
 * - `overlay`: a watermark (semi-transparent box, a round "logo" and a line of text, an SVG
 *   composited by sharp) covering 3–10% of the area in a corner or along the top/bottom edge;
 *   JPEG quality 90. `params` gives the box in pixels (boxLeft, boxTop, boxWidth, boxHeight).
 * - `format`: re-saved losslessly as PNG or as WebP quality 80 (alternately), same size.
 * - `combined`: crop keeping 90–100% of each side, resize to 50–90%, mild colour (brightness
 *   ×0.9–1.1, saturation ×0.85–1.15), JPEG quality 60.
 * Every copy is decoded with its EXIF orientation applied and saved without metadata.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidParameterError } from '../errors.ts';
import { seededRandom } from '../random.ts';
import { seededPermutation } from './instance-set.ts';
import { type Raw, decodeRaw, jpeg, rawSharp, round3, uniform } from './raw-image.ts';

/** The transformation tags, in the order they are assigned. */
export const NEAR_TRANSFORMS = Object.freeze(['resize', 'reencode', 'crop', 'color', 'overlay', 'format', 'combined'] as const);
export type NearTransform = (typeof NEAR_TRANSFORMS)[number];

/** One generated copy: its encoded bytes, tag, parameters and the photo it was made from. */
export interface NearCopy {
  /** Position in the set (0-based). */
  index: number;
  transform: NearTransform;
  /** Index into `sources` of the photo the copy was made from. */
  sourceIndex: number;
  /** That photo's path. */
  source: string;
  /** The drawn parameters (fractions of the photo's size, qualities, placement, pixel boxes). */
  params: Record<string, number | string>;
  /** The copy as an encoded file. */
  bytes: Buffer;
  ext: '.jpg' | '.png' | '.webp';
}

/** Options of `buildNearDuplicateSet`. */
export interface NearDuplicateSetOptions {
  /** The photos copies are made from (each used at most once). */
  sources: ReadonlyArray<{ path: string }>;
  /** Number of copies (1..sources.length). */
  count: number;
  seed: number;
}

/**
 * Picks `count` distinct sources (seeded shuffle) and renders one copy of each, tags assigned
 * round-robin. Copy i draws from its own PRNG (seed, i), so a longer set starts with the same
 * copies as a shorter one. ≈ 20–60 ms per copy.
 */
export async function buildNearDuplicateSet(options: NearDuplicateSetOptions): Promise<NearCopy[]> {
  const { sources, count, seed } = options;
  if (!Number.isInteger(count) || count < 1 || count > sources.length) {
    throw new InvalidParameterError(`Near-duplicate set count must be 1..${sources.length} (one copy per source photo); got ${count}.`);
  }
  if (!Number.isSafeInteger(seed)) throw new InvalidParameterError(`Near-duplicate set seed must be an integer; got ${seed}.`);
  const order = seededPermutation(sources.length, seed);
  const out: NearCopy[] = [];
  for (let index = 0; index < count; index++) {
    const rng = seededRandom((Math.imul(seed >>> 0, 0x9e3779b1) + Math.imul(index + 1, 0x85ebca6b) + 0x1b873593) >>> 0);
    const sourceIndex = order[index];
    const source = sources[sourceIndex].path;
    const transform = NEAR_TRANSFORMS[index % NEAR_TRANSFORMS.length];
    const occurrence = Math.floor(index / NEAR_TRANSFORMS.length);
    const rendered = await renderNearCopy(transform, fs.readFileSync(source), rng, occurrence);
    out.push({ index, transform, sourceIndex, source, ...rendered });
  }
  return out;
}

/** Writes each copy to `dir/copy-<index>-<transform><ext>` (creating `dir`); returns the paths in order. */
export async function writeNearDuplicateSet(copies: readonly NearCopy[], dir: string): Promise<string[]> {
  await fs.promises.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const c of copies) {
    const p = path.join(dir, `copy-${c.index}-${c.transform}${c.ext}`);
    await fs.promises.writeFile(p, c.bytes);
    paths.push(p);
  }
  return paths;
}

// ---------------------------------------------------------------------------------------------
// Ground truth

/** The key of an unordered pair of paths: `"<a>\u0000<b>"` with a < b. */
export function pairKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

/**
 * The pairs of files that are "the same picture", as `pairKey`s: every copy with its source and
 * with the source's pixel-identical photos (`identicalGroups` = `findDuplicates(sourcePaths)`
 * from ./instance-set.ts), two copies whose sources are the same or pixel-identical, and the
 * pixel-identical pairs among the sources. `copies[i].path` is where copy i was written
 * (e.g. `writeNearDuplicateSet`'s result); its `source` must be one of `sourcePaths`.
 */
export function nearDuplicateTruth(
  sourcePaths: readonly string[],
  copies: ReadonlyArray<{ source: string; path: string }>,
  identicalGroups: readonly (readonly number[])[],
): Set<string> {
  if (identicalGroups.length !== sourcePaths.length) {
    throw new InvalidParameterError(`Expected one identical group per source path (${sourcePaths.length}); got ${identicalGroups.length}. Pass findDuplicates(sourcePaths).`);
  }
  const indexOf = new Map(sourcePaths.map((p, i) => [p, i]));
  const truth = new Set<string>();
  const add = (a: string, b: string) => {
    if (a !== b) truth.add(pairKey(a, b));
  };
  // Per source: itself and its pixel-identical photos.
  const same = sourcePaths.map((p, i) => new Set([i, ...identicalGroups[i]]));
  same.forEach((group, i) => group.forEach((j) => add(sourcePaths[i], sourcePaths[j])));
  const copySource = copies.map((c) => {
    const i = indexOf.get(c.source);
    if (i === undefined) throw new InvalidParameterError(`Copy ${c.path} was made from ${c.source}, which is not among the ${sourcePaths.length} source paths; pass the paths the set was built from.`);
    return i;
  });
  copies.forEach((c, k) => {
    for (const j of same[copySource[k]]) add(c.path, sourcePaths[j]);
    for (let m = k + 1; m < copies.length; m++) {
      if (same[copySource[k]].has(copySource[m])) add(c.path, copies[m].path);
    }
  });
  return truth;
}

// ---------------------------------------------------------------------------------------------
// Rendering

const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];

async function resized(r: Raw, factor: number): Promise<Raw> {
  return decodeRaw(rawSharp(r).resize(Math.max(1, Math.round(r.width * factor)), Math.max(1, Math.round(r.height * factor)), { fit: 'fill' }));
}

/** A crop keeping fractions `fx`×`fy` of the photo at a random place; positions as fractions. */
async function cropped(r: Raw, rng: () => number, fx: number, fy: number): Promise<{ raw: Raw; left: number; top: number }> {
  const width = Math.max(1, Math.round(r.width * fx));
  const height = Math.max(1, Math.round(r.height * fy));
  const left = Math.floor(rng() * (r.width - width + 1));
  const top = Math.floor(rng() * (r.height - height + 1));
  return { raw: await decodeRaw(rawSharp(r).extract({ left, top, width, height })), left: round3(left / r.width), top: round3(top / r.height) };
}

/** Applies a 256-entry lookup table to every channel. */
function mapLevels(r: Raw, f: (v: number) => number): Raw {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.max(0, Math.min(255, Math.round(f(v))));
  const data = Buffer.alloc(r.data.length);
  for (let i = 0; i < data.length; i++) data[i] = lut[r.data[i]];
  return { ...r, data };
}

/** Replaces every pixel with its Rec. 709 luma (still 3 channels). */
function greyscale(r: Raw): Raw {
  const data = Buffer.alloc(r.data.length);
  for (let i = 0; i < data.length; i += 3) {
    const y = Math.round(0.2126 * r.data[i] + 0.7152 * r.data[i + 1] + 0.0722 * r.data[i + 2]);
    data[i] = data[i + 1] = data[i + 2] = y;
  }
  return { ...r, data };
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const WATERMARKS = Object.freeze(['© pixdex 2024', 'SAMPLE', 'photo: J. Smith', '@flowers_daily', 'Garden Stock', 'PREVIEW ONLY']);
const PLACEMENTS = Object.freeze(['top-left', 'top-right', 'bottom-left', 'bottom-right', 'top', 'bottom'] as const);

/** The watermark's SVG for a w×h box: a dark translucent rounded box, a light disc and the text. */
function watermarkSvg(w: number, h: number, text: string, opacity: number): Buffer {
  const r = h * 0.32;
  const textLeft = Math.min(w * 0.5, h * 0.85);
  const fontSize = Math.max(6, Math.min(h * 0.5, ((w - textLeft - h * 0.2) / Math.max(1, text.length)) * 1.7));
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">` +
    `<rect x="0" y="0" width="${w}" height="${h}" rx="${Math.round(h * 0.12)}" fill="#101010" fill-opacity="${opacity.toFixed(3)}"/>` +
    `<circle cx="${(h * 0.45).toFixed(1)}" cy="${(h / 2).toFixed(1)}" r="${r.toFixed(1)}" fill="#f5c518" fill-opacity="0.85"/>` +
    `<text x="${textLeft.toFixed(1)}" y="${(h / 2).toFixed(1)}" dominant-baseline="central" font-family="DejaVu Sans, sans-serif" font-weight="bold" ` +
    `font-size="${fontSize.toFixed(1)}" fill="#ffffff" fill-opacity="0.9">${xmlEscape(text)}</text></svg>`;
  return Buffer.from(svg);
}

/** Composites a watermark covering `area` of the photo in a corner or along the top/bottom edge. */
async function overlaid(r: Raw, rng: () => number): Promise<{ raw: Raw; params: Record<string, number | string> }> {
  const { width: w, height: h } = r;
  const area = uniform(rng, 0.03, 0.1);
  const placement = pick(rng, PLACEMENTS);
  const text = pick(rng, WATERMARKS);
  const opacity = uniform(rng, 0.45, 0.7);
  const pixels = area * w * h;
  let bw: number;
  let bh: number;
  let left: number;
  let top: number;
  if (placement === 'top' || placement === 'bottom') {
    bw = Math.round(uniform(rng, 0.5, 0.9) * w);
    bh = Math.min(h, Math.max(8, Math.round(pixels / bw)));
    left = Math.floor(rng() * (w - bw + 1));
    top = placement === 'top' ? 0 : h - bh;
  } else {
    const aspect = uniform(rng, 2.5, 4);
    bw = Math.min(Math.round(0.9 * w), Math.round(Math.sqrt(pixels * aspect)));
    bh = Math.min(h, Math.max(8, Math.round(pixels / bw)));
    const margin = Math.round(uniform(rng, 0, 0.03) * Math.min(w, h));
    left = placement.endsWith('left') ? margin : w - bw - margin;
    top = placement.startsWith('top') ? margin : h - bh - margin;
  }
  const svg = watermarkSvg(bw, bh, text, opacity);
  const raw = await decodeRaw(rawSharp(r).composite([{ input: svg, left, top }]));
  return {
    raw,
    params: { area: round3((bw * bh) / (w * h)), placement, text, opacity: round3(opacity), boxLeft: left, boxTop: top, boxWidth: bw, boxHeight: bh },
  };
}

/**
 * Renders one copy of `photoBytes`; exported for tests that want a single transformation.
 * `occurrence` (how many copies with this tag came before) alternates `format` between PNG
 * (even) and WebP (odd).
 */
export async function renderNearCopy(
  transform: NearTransform,
  photoBytes: Buffer,
  rng: () => number,
  occurrence = 0,
): Promise<{ bytes: Buffer; params: Record<string, number | string>; ext: NearCopy['ext'] }> {
  const photo = await decodeRaw(photoBytes);
  switch (transform) {
    case 'resize': {
      const factor = uniform(rng, 0.3, 0.7);
      return { bytes: await jpeg(await resized(photo, factor), 85), params: { factor: round3(factor), quality: 85 }, ext: '.jpg' };
    }
    case 'reencode': {
      const quality = 35 + Math.floor(rng() * 31);
      const chroma = rng() < 0.5 ? '4:2:0' : '4:4:4';
      const bytes = await rawSharp(photo).jpeg({ quality, chromaSubsampling: chroma }).toBuffer();
      return { bytes, params: { quality, chroma }, ext: '.jpg' };
    }
    case 'crop': {
      const fx = uniform(rng, 0.8, 0.95);
      const fy = uniform(rng, 0.8, 0.95);
      const { raw, left, top } = await cropped(photo, rng, fx, fy);
      return { bytes: await jpeg(raw, 90), params: { fx: round3(fx), fy: round3(fy), left, top, quality: 90 }, ext: '.jpg' };
    }
    case 'color': {
      const brightness = uniform(rng, 0.75, 1.3);
      const saturation = uniform(rng, 0.6, 1.4);
      const curve = rng() < 0.5 ? 'gamma' : 'contrast';
      const amount = curve === 'gamma' ? uniform(rng, 0.7, 1.4) : uniform(rng, 0.75, 1.3);
      const grey = rng() < 0.2;
      let p = await decodeRaw(rawSharp(photo).modulate({ brightness, saturation }));
      p = curve === 'gamma' ? mapLevels(p, (v) => 255 * (v / 255) ** amount) : mapLevels(p, (v) => 128 + amount * (v - 128));
      if (grey) p = greyscale(p);
      return {
        bytes: await jpeg(p, 90),
        params: { brightness: round3(brightness), saturation: round3(saturation), curve, amount: round3(amount), greyscale: grey ? 1 : 0, quality: 90 },
        ext: '.jpg',
      };
    }
    case 'overlay': {
      const { raw, params } = await overlaid(photo, rng);
      return { bytes: await jpeg(raw, 90), params: { ...params, quality: 90 }, ext: '.jpg' };
    }
    case 'format': {
      if (occurrence % 2 === 0) return { bytes: await rawSharp(photo).png().toBuffer(), params: { format: 'png' }, ext: '.png' };
      return { bytes: await rawSharp(photo).webp({ quality: 80 }).toBuffer(), params: { format: 'webp', quality: 80 }, ext: '.webp' };
    }
    case 'combined': {
      const fx = uniform(rng, 0.9, 1);
      const fy = uniform(rng, 0.9, 1);
      const factor = uniform(rng, 0.5, 0.9);
      const brightness = uniform(rng, 0.9, 1.1);
      const saturation = uniform(rng, 0.85, 1.15);
      const { raw, left, top } = await cropped(photo, rng, fx, fy);
      const p = await decodeRaw(rawSharp(await resized(raw, factor)).modulate({ brightness, saturation }));
      return {
        bytes: await jpeg(p, 60),
        params: { fx: round3(fx), fy: round3(fy), left, top, factor: round3(factor), brightness: round3(brightness), saturation: round3(saturation), quality: 60 },
        ext: '.jpg',
      };
    }
  }
}
