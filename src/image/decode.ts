/**
 * Decoding with sharp: EXIF auto-rotate, short-side resize + center crop to the model input,
 * 8-bit sRGB RGB pixels. Every failure becomes a typed `BadImageError`.
 */
import sharp, { type Metadata } from 'sharp';
import { BadImageError } from '../errors.ts';

/** A decoded, model-sized image: `size`×`size`×3 RGB bytes plus the original's dimensions. */
export interface DecodedImage {
  pixels: Uint8Array;
  size: number;
  /** Width and height of the original after EXIF orientation. */
  width: number;
  height: number;
  format: string;
}

export interface DecodeOptions {
  /** Square output side in pixels (the backbone's input, e.g. 224). */
  size: number;
  /** Largest input in pixels; larger images are refused before they are decoded. */
  maxInputPixels: number;
}

/** Formats sharp decodes here (prebuilt libvips); HEIC/HEVC and SVG are refused on purpose. */
const ACCEPTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif']);

/** Maps a sharp/libvips failure to a typed error with an actionable message. */
export function toBadImageError(err: unknown, what: string): BadImageError {
  if (err instanceof BadImageError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const lower = message.toLowerCase();
  if (lower.includes('empty')) {
    return new BadImageError('EMPTY_IMAGE', `${what} is empty (0 bytes)`, { cause: err });
  }
  if (lower.includes('pixel limit')) {
    return new BadImageError('IMAGE_TOO_LARGE', `${what} has more pixels than the limit (maxInputPixels)`, { cause: err });
  }
  if (lower.includes('unsupported image format') || lower.includes('bad seek') || lower.includes('no decoder') || lower.includes('compression format')) {
    return new BadImageError('UNSUPPORTED_IMAGE', `${what} is not an image in a supported format (JPEG, PNG, WebP, GIF, TIFF, AVIF)`, { cause: err });
  }
  if (lower.includes('premature end') || lower.includes('truncated') || lower.includes('unexpected end') || lower.includes('not enough data') || lower.includes('read error') || lower.includes('out of data')) {
    return new BadImageError('TRUNCATED_IMAGE', `${what} is truncated: ${firstLine(message)}`, { cause: err });
  }
  return new BadImageError('CORRUPT_IMAGE', `${what} could not be decoded: ${firstLine(message)}`, { cause: err });
}

function firstLine(s: string): string {
  return s.split('\n')[0].trim();
}

/**
 * Decodes an encoded image into model input pixels. `what` names the input in error messages
 * (a path or "upload").
 */
export async function decodeImage(input: Buffer | Uint8Array, options: DecodeOptions, what = 'image'): Promise<DecodedImage> {
  if (input.length === 0) throw new BadImageError('EMPTY_IMAGE', `${what} is empty (0 bytes)`);
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: options.maxInputPixels }).metadata();
  } catch (err) {
    throw toBadImageError(err, what);
  }
  if (!meta.format || !ACCEPTED_FORMATS.has(meta.format)) {
    throw new BadImageError('UNSUPPORTED_IMAGE', `${what} is ${meta.format ?? 'an unknown'} format; pixdex indexes JPEG, PNG, WebP, GIF, TIFF and AVIF`);
  }
  const pixelCount = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixelCount > options.maxInputPixels) {
    throw new BadImageError('IMAGE_TOO_LARGE', `${what} is ${meta.width}x${meta.height} (${pixelCount} pixels), over the limit of ${options.maxInputPixels} pixels (maxInputPixels)`);
  }
  try {
    const { data, info } = await sharp(input, { limitInputPixels: options.maxInputPixels, failOn: 'warning' })
      .rotate()
      .resize(options.size, options.size, { fit: 'cover', position: 'centre' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== options.size * options.size * 3) {
      throw new BadImageError('CORRUPT_IMAGE', `${what} decoded to ${info.channels} channels instead of 3`);
    }
    const oriented = (meta.orientation ?? 1) >= 5;
    return {
      pixels: new Uint8Array(data.buffer, data.byteOffset, data.length),
      size: options.size,
      width: (oriented ? meta.height : meta.width) ?? 0,
      height: (oriented ? meta.width : meta.height) ?? 0,
      format: meta.format,
    };
  } catch (err) {
    throw toBadImageError(err, what);
  }
}
