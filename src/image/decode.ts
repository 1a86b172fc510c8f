/**
 * Decoding with sharp (HEIC decoded first by ./heic.ts): EXIF auto-rotate, short-side resize + center crop to the model input,
 * 8-bit sRGB RGB pixels. Every failure becomes a typed `BadImageError`.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import { BadImageError } from '../errors.ts';
import { openHeic } from './heic.ts';

/** A decoded, model-sized image: `size`×`size`×3 RGB bytes plus the original's dimensions. */
export interface DecodedImage {
  pixels: Uint8Array;
  size: number;
  /** Width and height of the original after EXIF orientation. */
  width: number;
  height: number;
  format: string;
  /** The same crop decoded at each of `DecodeOptions.smallerSides` (a `regional` library's database sides). */
  smaller?: Uint8Array[];
  /** The whole image in greyscale, long side `DecodeOptions.greySide` (never enlarged): for local features. */
  grey?: GreyImage;
}

/** One-channel 8-bit pixels, row-major. */
export interface GreyImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DecodeOptions {
  /** Square output side in pixels (the backbone's input, e.g. 224). */
  size: number;
  /** Largest input in pixels; larger images are refused before they are decoded. */
  maxInputPixels: number;
  /** Also decode the same crop at these sides (`DecodedImage.smaller`), each straight from the original. */
  smallerSides?: readonly number[];
  /** Also decode the whole image in greyscale with this long side (`DecodedImage.grey`). */
  greySide?: number;
}

/** Formats sharp decodes here (prebuilt libvips: 'heif' is AVIF); HEIC goes through ./heic.ts; SVG is refused on purpose. */
const ACCEPTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif']);

/** The formats pixdex decodes, as error messages name them. */
const FORMATS = 'JPEG, PNG, WebP, GIF, TIFF, AVIF, HEIC/HEIF';

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
    return new BadImageError('UNSUPPORTED_IMAGE', `${what} is not an image in a supported format (${FORMATS})`, { cause: err });
  }
  if (lower.includes('corrupt jpeg data')) {
    // libjpeg's warning for damaged entropy-coded data (even "premature end of data segment"):
    // a truncated file gives "premature end of JPEG file/image" instead.
    return new BadImageError('CORRUPT_IMAGE', `${what} could not be decoded: ${firstLine(message)}`, { cause: err });
  }
  if (lower.includes('premature end') || lower.includes('truncated') || lower.includes('unexpected end') || lower.includes('not enough data') || lower.includes('read error') || lower.includes('out of data')) {
    return new BadImageError('TRUNCATED_IMAGE', `${what} is truncated: ${firstLine(message)}`, { cause: err });
  }
  return new BadImageError('CORRUPT_IMAGE', `${what} could not be decoded: ${firstLine(message)}`, { cause: err });
}

/**
 * Whether a PNG, WebP or JPEG file holds all the bytes its structure declares (PNG: an IEND
 * chunk; WebP: the RIFF size; JPEG: an end-of-image marker after the last scan); undefined for
 * other formats. sharp does not always pass the decoder's words on ("Warning treated as error
 * due to failOn setting"), and libvips reports truncated and corrupt PNG/WebP with the same
 * words ("libpng read error", "corrupt header").
 */
function isComplete(input: Uint8Array): boolean | undefined {
  const b = Buffer.from(input.buffer, input.byteOffset, input.length);
  if (b.length >= 8 && b.readUInt32BE(0) === 0x89504e47) return b.indexOf('IEND', 8, 'latin1') > 0;
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return b.length >= 8 + b.readUInt32LE(4);
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    // JPEG: 0xFFD9 (end of image) only appears as a marker (0xFF in entropy data is stuffed as
    // 0xFF00), so a complete file has one after its last start of scan (0xFFDA); an EXIF
    // thumbnail's own end marker comes before the main image's scans.
    return b.lastIndexOf(Buffer.from([0xff, 0xd9])) > b.lastIndexOf(Buffer.from([0xff, 0xda]));
  }
  return undefined;
}

/** Maps a decoding failure like `toBadImageError`, telling truncated from corrupt by the bytes where the message cannot. */
function decodeError(err: unknown, input: Uint8Array, what: string): BadImageError {
  const e = toBadImageError(err, what);
  if (e.code !== 'TRUNCATED_IMAGE' && e.code !== 'CORRUPT_IMAGE') return e;
  const complete = isComplete(input);
  if (complete === undefined || complete === (e.code === 'CORRUPT_IMAGE')) return e;
  const detail = firstLine(err instanceof Error ? err.message : String(err));
  return complete
    ? new BadImageError('CORRUPT_IMAGE', `${what} could not be decoded: ${detail}`, { cause: err })
    : new BadImageError('TRUNCATED_IMAGE', `${what} is truncated: ${detail}`, { cause: err });
}

/**
 * Whether the input starts like markup (SVG, HTML, XML: `<` after an optional BOM and
 * whitespace). Markup is refused before sharp sees it: librsvg would parse it (an entity bomb,
 * an attack surface), and its XML errors reach sharp's message shared with concurrent decodes.
 */
function looksLikeMarkup(input: Uint8Array): boolean {
  let i = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0;
  while (i < input.length && i < 1024 && (input[i] === 0x20 || input[i] === 0x09 || input[i] === 0x0a || input[i] === 0x0d)) i++;
  return input[i] === 0x3c;
}

function firstLine(s: string): string {
  return s.split('\n')[0].trim();
}

/** sharp's reading of the header, checked against the accepted formats and the pixel limit. */
async function sharpMetadata(input: Uint8Array, maxInputPixels: number, what: string): Promise<Metadata & { format: string }> {
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: maxInputPixels }).metadata();
  } catch (err) {
    throw decodeError(err, input, what);
  }
  if (!meta.format || !ACCEPTED_FORMATS.has(meta.format)) {
    throw new BadImageError('UNSUPPORTED_IMAGE', `${what} is ${meta.format ?? 'an unknown'} format; pixdex indexes ${FORMATS}`);
  }
  const pixelCount = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixelCount > maxInputPixels) {
    throw new BadImageError('IMAGE_TOO_LARGE', `${what} is ${meta.width}x${meta.height} (${pixelCount} pixels), over the limit of ${maxInputPixels} pixels (maxInputPixels)`);
  }
  return { ...meta, format: meta.format };
}

/**
 * Decodes an encoded image into model input pixels (a HEIC through the wasm decoder, then the
 * same sharp pipeline). `what` names the input in error messages (a path or "upload").
 */
export async function decodeImage(input: Buffer | Uint8Array, options: DecodeOptions, what = 'image'): Promise<DecodedImage> {
  if (input.length === 0) throw new BadImageError('EMPTY_IMAGE', `${what} is empty (0 bytes)`);
  if (looksLikeMarkup(input)) {
    throw new BadImageError('UNSUPPORTED_IMAGE', `${what} is markup (SVG, HTML or XML), not an image in a supported format (${FORMATS})`);
  }
  const heic = await openHeic(input, options.maxInputPixels, what);
  const meta = heic ? { format: 'heic', width: heic.width, height: heic.height, orientation: 1 } : await sharpMetadata(input, options.maxInputPixels, what);
  const source = (): Sharp => heic?.pipeline() ?? sharp(input, { limitInputPixels: options.maxInputPixels, failOn: 'warning' });
  try {
    const render = async (size: number): Promise<Uint8Array> => {
      const { data, info } = await source()
        .rotate()
        .resize(size, size, { fit: 'cover', position: 'centre' })
        .removeAlpha()
        .toColourspace('srgb')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 3 || data.length !== size * size * 3) {
        throw new BadImageError('CORRUPT_IMAGE', `${what} decoded to ${info.channels} channels instead of 3`);
      }
      return new Uint8Array(data.buffer, data.byteOffset, data.length);
    };
    const grey = async (side: number): Promise<GreyImage> => {
      const { data, info } = await source()
        .rotate()
        .greyscale()
        .resize(side, side, { fit: 'inside', withoutEnlargement: true })
        .removeAlpha()
        .extractChannel(0)
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      return { data: new Uint8Array(data.buffer, data.byteOffset, info.width * info.height), width: info.width, height: info.height };
    };
    const [[pixels, ...smaller], greyImage] = await Promise.all([
      Promise.all([options.size, ...(options.smallerSides ?? [])].map(render)),
      options.greySide ? grey(options.greySide) : undefined,
    ]);
    const oriented = (meta.orientation ?? 1) >= 5;
    const out: DecodedImage = {
      pixels,
      size: options.size,
      width: (oriented ? meta.height : meta.width) ?? 0,
      height: (oriented ? meta.width : meta.height) ?? 0,
      format: meta.format,
    };
    if (options.smallerSides) out.smaller = smaller;
    if (greyImage) out.grey = greyImage;
    return out;
  } catch (err) {
    throw decodeError(err, input, what);
  }
}
