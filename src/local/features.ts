/**
 * Local features of one image (issue 14): sharp greyscale at a fixed working size, CLAHE, ORB
 * keypoints with 256-bit descriptors (OpenCV.js), and the compact binary record they are stored
 * as. The recipe and its measurements: bench/local/README.md, "Recommended recipe for the product".
 */
import sharp, { type OutputInfo } from 'sharp';
import { PixdexError, StoreMismatchError, invalidParameter } from '../errors.ts';
import { openHeic } from '../image/heic.ts';
import { toBadImageError } from '../image/decode.ts';
import { opencv } from './opencv.ts';
import { DESCRIPTOR_BYTES, type LocalFeatures } from './types.ts';

export { loadOpenCv } from './opencv.ts';

/** Long side of an indexed (reference) image's greyscale working copy, px (never enlarged). */
export const REFERENCE_SIDE = 480;
/** Long side of a query photo's greyscale working copy, px (never enlarged). */
export const QUERY_SIDE = 640;
/** Keypoints kept per image (ORB `nfeatures`; the strongest by response). */
export const MAX_KEYPOINTS = 500;
/**
 * Keypoints of a query photo: twice an indexed image's. Only the query side (nothing stored
 * changes): more of a building photographed from elsewhere survives into the matches, smvs
 * landmarks P@1 0.545 → 0.644 (bench/local/README.md, "More query keypoints"); matching a pair
 * costs ~2× (1000 × 500 descriptors).
 */
export const QUERY_KEYPOINTS = 1000;
/** ORB's scale pyramid: levels and the scale step between two. */
export interface Pyramid {
  levels: number;
  scale: number;
}
/**
 * An indexed (reference) image's pyramid: OpenCV's 8 levels 1.2× apart, as a query's. A 4-level
 * pyramid 1.44× apart (the same span of sizes) took ORB 0.56× the time, but with the
 * local-consistency check it cost landmarks R@5 0.851 → 0.832 through POST /api/search (5 levels
 * 1.3×: the same 0.832) and lifted indexing with local features only to 0.57× of the default on
 * an idle machine, short of issue 14's 0.6× either way (README, "The same object in a phone photo").
 */
export const REFERENCE_PYRAMID: Readonly<Pyramid> = { levels: 8, scale: 1.2 };
/** A query photo's pyramid: OpenCV's ORB defaults. */
export const QUERY_PYRAMID: Readonly<Pyramid> = { levels: 8, scale: 1.2 };
/** CLAHE before detection: clip limit and tiles per side (dark, low-contrast photos; README). */
export const CLAHE_CLIP = 2;
export const CLAHE_TILES = 8;
/** Images with a side below this have no keypoints (ORB's border alone is 31 px). */
export const MIN_SIDE = 32;

/** A one-channel 8-bit image, row-major, `width × height` bytes. */
export interface GreyImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Decodes an encoded image to greyscale (EXIF-oriented), fitted inside `longSide × longSide`
 * without enlarging. Failures are `BadImageError`s (as src/image/decode.ts maps them); `what`
 * names the input in their messages.
 */
export async function greyscale(input: Uint8Array | Buffer, longSide: number, maxInputPixels: number, what = 'image'): Promise<GreyImage> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    const heic = await openHeic(input, maxInputPixels, what);
    decoded = await (heic?.pipeline() ?? sharp(input, { limitInputPixels: maxInputPixels }))
      .rotate()
      .greyscale()
      .resize(longSide, longSide, { fit: 'inside', withoutEnlargement: true })
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw toBadImageError(err, what);
  }
  const { data, info } = decoded;
  if (info.channels !== 1) {
    // greyscale() of an image with alpha keeps the alpha channel: take the first band only
    const out = new Uint8Array(info.width * info.height);
    for (let i = 0, j = 0; i < out.length; i++, j += info.channels) out[i] = data[j];
    return { data: out, width: info.width, height: info.height };
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, info.width * info.height), width: info.width, height: info.height };
}

/** Features with no keypoints (tiny or blank images). */
export function emptyFeatures(width: number, height: number): LocalFeatures {
  return { width, height, count: 0, keypoints: new Float32Array(0), descriptors: new Uint8Array(0) };
}

/**
 * CLAHE then ORB (with `pyramid`: an indexed image's by default, `QUERY_PYRAMID` for a query photo) on a greyscale image; keeps the `maxKeypoints` strongest keypoints (by response,
 * ties in detection order). Synchronous: `loadOpenCv()` must have completed in this thread. Tiny
 * (a side < `MIN_SIDE`) and blank images give `count` 0. Every OpenCV object is freed.
 */
export function extractFeatures(grey: GreyImage, maxKeypoints = MAX_KEYPOINTS, pyramid: Readonly<Pyramid> = REFERENCE_PYRAMID): LocalFeatures {
  const { width, height, data } = grey;
  if (!Number.isInteger(maxKeypoints) || maxKeypoints < 1 || maxKeypoints > 0xffff) throw invalidParameter('maxKeypoints', 'integer between 1 and 65535', maxKeypoints);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0 || data.length < width * height) {
    throw invalidParameter('grey', `${width}×${height} bytes of greyscale pixels`, `${data.length} bytes`);
  }
  if (width < MIN_SIDE || height < MIN_SIDE) return emptyFeatures(width, height);
  const cv = opencv();
  const image = new cv.Mat(height, width, cv.CV_8UC1);
  const equalised = new cv.Mat();
  const noMask = new cv.Mat();
  const found = new cv.KeyPointVector();
  const described = new cv.Mat();
  const tiles = new cv.Size(CLAHE_TILES, CLAHE_TILES);
  const clahe = new cv.CLAHE(CLAHE_CLIP, tiles);
  // this build binds only ORB(nfeatures): no FAST threshold setter (CLAHE stands in for it)
  const orb = new cv.ORB(maxKeypoints);
  orb.setNLevels(pyramid.levels);
  orb.setScaleFactor(pyramid.scale);
  try {
    image.data.set(data.subarray(0, width * height));
    clahe.apply(image, equalised);
    orb.detectAndCompute(equalised, noMask, found, described);
    const total: number = found.size();
    if (total === 0 || described.rows !== total || described.cols !== DESCRIPTOR_BYTES) return emptyFeatures(width, height);
    const points = new Array<{ x: number; y: number; size: number; angle: number; response: number; index: number }>(total);
    for (let i = 0; i < total; i++) {
      const k = found.get(i);
      points[i] = { x: k.pt.x, y: k.pt.y, size: k.size, angle: k.angle, response: k.response, index: i };
    }
    if (total > maxKeypoints) {
      points.sort((a, b) => b.response - a.response || a.index - b.index);
      points.length = maxKeypoints;
    }
    const count = points.length;
    const keypoints = new Float32Array(count * 4);
    const descriptors = new Uint8Array(count * DESCRIPTOR_BYTES);
    const source: Uint8Array = described.data;
    for (let j = 0; j < count; j++) {
      const p = points[j];
      keypoints[j * 4] = p.x;
      keypoints[j * 4 + 1] = p.y;
      keypoints[j * 4 + 2] = p.size;
      keypoints[j * 4 + 3] = p.angle;
      descriptors.set(source.subarray(p.index * DESCRIPTOR_BYTES, (p.index + 1) * DESCRIPTOR_BYTES), j * DESCRIPTOR_BYTES);
    }
    return { width, height, count, keypoints, descriptors };
  } finally {
    image.delete();
    equalised.delete();
    noMask.delete();
    found.delete();
    described.delete();
    clahe.delete();
    orb.delete();
    tiles.delete?.();
  }
}

// ------------------------------------------------------------------------------- stored record

/**
 * The stored record, little-endian:
 *
 *     offset  size        field
 *     0       4           magic 'PXLF'
 *     4       1           version (1)
 *     5       1           reserved, 0
 *     6       2           width, px (uint16, ≤ 4095)
 *     8       2           height, px (uint16, ≤ 4095)
 *     10      2           count (uint16)
 *     12      6·count     per keypoint: x, y (uint16, 1/16 px), size (uint8, 16·log2(px)),
 *                         angle (uint8, 256/360 per degree)
 *     …       32·count    descriptors, keypoint order
 *
 * 12 + 38·count bytes: 19,012 for 500 keypoints. Size is kept to 1/16 octave (±2.2 %): the
 * Hough vote uses only the ratio of two sizes, in 1-octave bins. Angles to ±0.7°.
 */
const FEATURES_MAGIC = 'PXLF';
export const FEATURES_VERSION = 1;
export const FEATURES_HEADER_BYTES = 12;
/** Stored bytes per keypoint: 6 of geometry + the descriptor. */
export const KEYPOINT_BYTES = 6 + DESCRIPTOR_BYTES;
/** Largest width/height the 1/16-px fixed point holds. */
export const MAX_STORED_SIDE = 4095;
const SUBPIXEL = 16;
const SIZE_STEPS_PER_OCTAVE = 16;
const ANGLE_STEPS = 256;

/** Bytes of the stored record of `count` keypoints. */
export function featuresBytes(count: number): number {
  return FEATURES_HEADER_BYTES + KEYPOINT_BYTES * count;
}

/** The stored record of `f` (see the layout above). Throws `InvalidParameterError` for features it cannot hold. */
export function encodeFeatures(f: LocalFeatures): Uint8Array {
  const { width, height, count } = f;
  if (!Number.isInteger(width) || width < 0 || width > MAX_STORED_SIDE) throw invalidParameter('features.width', `integer between 0 and ${MAX_STORED_SIDE}`, width);
  if (!Number.isInteger(height) || height < 0 || height > MAX_STORED_SIDE) throw invalidParameter('features.height', `integer between 0 and ${MAX_STORED_SIDE}`, height);
  if (!Number.isInteger(count) || count < 0 || count > 0xffff) throw invalidParameter('features.count', 'integer between 0 and 65535', count);
  if (f.keypoints.length !== count * 4 || f.descriptors.length !== count * DESCRIPTOR_BYTES) {
    throw invalidParameter('features', `${count * 4} keypoint floats and ${count * DESCRIPTOR_BYTES} descriptor bytes`, `${f.keypoints.length} and ${f.descriptors.length}`);
  }
  const out = new Uint8Array(featuresBytes(count));
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = FEATURES_MAGIC.charCodeAt(i);
  out[4] = FEATURES_VERSION;
  view.setUint16(6, width, true);
  view.setUint16(8, height, true);
  view.setUint16(10, count, true);
  const kp = f.keypoints;
  for (let i = 0, o = FEATURES_HEADER_BYTES; i < count; i++, o += 6) {
    view.setUint16(o, fixed(kp[i * 4], width), true);
    view.setUint16(o + 2, fixed(kp[i * 4 + 1], height), true);
    const size = kp[i * 4 + 2];
    out[o + 4] = size > 1 ? Math.min(255, Math.round(Math.log2(size) * SIZE_STEPS_PER_OCTAVE)) : 0;
    const angle = kp[i * 4 + 3];
    out[o + 5] = Number.isFinite(angle) ? ((Math.round((angle * ANGLE_STEPS) / 360) % ANGLE_STEPS) + ANGLE_STEPS) % ANGLE_STEPS : 0;
  }
  out.set(f.descriptors, FEATURES_HEADER_BYTES + 6 * count);
  return out;
}

/** A coordinate in 1/16 px, clamped into the image (keypoints lie inside it). */
function fixed(v: number, side: number): number {
  const max = Math.max(0, side * SUBPIXEL - 1);
  return Number.isFinite(v) ? Math.min(max, Math.max(0, Math.round(v * SUBPIXEL))) : 0;
}

/**
 * Reads a stored record back. Validates everything (magic, version, reserved byte, exact length,
 * dimensions, every keypoint inside the image): this is what `pixdex check` relies on to find a
 * corrupt record. Throws `StoreMismatchError` (STORE_MISMATCH) for a record of another format
 * version and `PixdexError` STORE_INCONSISTENT for anything corrupt. The result owns its memory
 * (the input may be a reused database buffer).
 */
export function decodeFeatures(bytes: Uint8Array): LocalFeatures {
  const corrupt = (why: string) => new PixdexError('STORE_INCONSISTENT', `Corrupt local-features record: ${why}; run \`pixdex check --repair\` to recompute it.`);
  if (bytes.length < FEATURES_HEADER_BYTES) throw corrupt(`${bytes.length} bytes, shorter than its ${FEATURES_HEADER_BYTES}-byte header`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== FEATURES_MAGIC.charCodeAt(i)) throw corrupt(`it does not start with '${FEATURES_MAGIC}'`);
  if (bytes[4] !== FEATURES_VERSION) {
    throw new StoreMismatchError(`The local-features record has format version ${bytes[4]}; this pixdex reads version ${FEATURES_VERSION}. Recompute local features (pixdex check --repair) or use a matching pixdex.`);
  }
  if (bytes[5] !== 0) throw corrupt(`reserved byte is ${bytes[5]}, not 0`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint16(6, true);
  const height = view.getUint16(8, true);
  const count = view.getUint16(10, true);
  if (width > MAX_STORED_SIDE || height > MAX_STORED_SIDE) throw corrupt(`${width}×${height} px is over ${MAX_STORED_SIDE} px`);
  if (bytes.length !== featuresBytes(count)) throw corrupt(`${bytes.length} bytes for ${count} keypoints (expected ${featuresBytes(count)})`);
  if (count > 0 && (width < MIN_SIDE || height < MIN_SIDE)) throw corrupt(`${count} keypoints in a ${width}×${height} image`);
  const keypoints = new Float32Array(count * 4);
  const maxX = width * SUBPIXEL, maxY = height * SUBPIXEL;
  for (let i = 0, o = FEATURES_HEADER_BYTES; i < count; i++, o += 6) {
    const x = view.getUint16(o, true);
    const y = view.getUint16(o + 2, true);
    if (x >= maxX || y >= maxY) throw corrupt(`keypoint ${i} at (${x / SUBPIXEL}, ${y / SUBPIXEL}) lies outside the ${width}×${height} image`);
    keypoints[i * 4] = x / SUBPIXEL;
    keypoints[i * 4 + 1] = y / SUBPIXEL;
    keypoints[i * 4 + 2] = 2 ** (bytes[o + 4] / SIZE_STEPS_PER_OCTAVE);
    keypoints[i * 4 + 3] = (bytes[o + 5] * 360) / ANGLE_STEPS;
  }
  const start = FEATURES_HEADER_BYTES + 6 * count;
  const descriptors = new Uint8Array(count * DESCRIPTOR_BYTES); // a copy (Buffer#slice would share memory)
  descriptors.set(bytes.subarray(start, start + count * DESCRIPTOR_BYTES));
  return { width, height, count, keypoints, descriptors };
}
