/**
 * Raw 8-bit sRGB images for the generated test sets (instance-set.ts, near-duplicate-set.ts):
 * decode with EXIF orientation, back to sharp, JPEG, and the little random helpers they share.
 */
import sharp, { type Sharp } from 'sharp';

/** 3-channel sRGB pixels, row-major. */
export interface Raw {
  data: Buffer;
  width: number;
  height: number;
}

/** A uniform draw in [lo, hi). */
export const uniform = (rng: () => number, lo: number, hi: number) => lo + (hi - lo) * rng();
export const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Decodes to 8-bit sRGB, 3 channels, EXIF orientation applied (a Sharp pipeline as it is). */
export async function decodeRaw(input: Buffer | Sharp): Promise<Raw> {
  const s = Buffer.isBuffer(input) ? sharp(input).rotate() : input;
  const { data, info } = await s.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** A sharp pipeline over raw pixels. */
export const rawSharp = (r: Raw) => sharp(r.data, { raw: { width: r.width, height: r.height, channels: 3 } });

export async function jpeg(r: Raw, quality: number): Promise<Buffer> {
  return rawSharp(r).jpeg({ quality }).toBuffer();
}
