/**
 * A photo's capture metadata, read once at indexing from the bytes already in hand (exifr): when
 * it was taken, the camera, the EXIF orientation and where (GPS). Everything is optional: a photo
 * without EXIF, or with an EXIF block that cannot be read, simply has none, and still indexes.
 *
 * Dates. `takenAt` is ISO 8601: DateTimeOriginal with OffsetTimeOriginal when the camera wrote
 * one ("2021-06-05T14:30:00+02:00"), else CreateDate (DateTimeDigitized) with OffsetTimeDigitized;
 * without an offset it carries none ("2021-06-05T14:30:00", the camera's clock). For comparisons
 * (the `after`/`before` filters, the date range) a time without an offset is read as UTC, the
 * same rule as for a filter bound given without one.
 */
import exifr from 'exifr';
import { exifDate } from '../dates.ts';

/** What pixdex keeps of a photo's EXIF; every field is absent when the photo does not say. */
export interface PhotoMetadata {
  /** Capture time, ISO 8601, with the camera's UTC offset when it recorded one. */
  takenAt?: string;
  /** Camera maker and model as the camera wrote them (trimmed). */
  camera?: { make?: string; model?: string };
  /** EXIF orientation 1..8 (1 = as stored; 6 = rotate 90° clockwise to view). Decoding applies it. */
  orientation?: number;
  /** Where it was taken, decimal degrees (WGS 84). */
  gps?: { lat: number; lon: number };
}

/** Version of what `readMetadata` extracts: a record with an older one (or none) is read again by the next index run. */
export const METADATA_VERSION = 1;

/** A record's metadata fields replaced by `m` (none kept from an earlier read), stamped with `METADATA_VERSION`. */
export function withMetadata<T extends PhotoMetadata & { metadata?: number }>(rec: T, m: PhotoMetadata): T {
  const { takenAt: _t, camera: _c, orientation: _o, gps: _g, ...rest } = rec;
  const out = { ...rest, metadata: METADATA_VERSION } as T;
  if (m.takenAt !== undefined) out.takenAt = m.takenAt;
  if (m.camera !== undefined) out.camera = m.camera;
  if (m.orientation !== undefined) out.orientation = m.orientation;
  if (m.gps !== undefined) out.gps = m.gps;
  return out;
}

/** Whether a record's metadata was never read, or by an older `readMetadata`. */
export function needsMetadata(rec: { metadata?: number }): boolean {
  return (rec.metadata ?? 0) < METADATA_VERSION;
}

/** The tags read: nothing else is parsed (no thumbnails, XMP, ICC, IPTC). */
const TAGS = ['DateTimeOriginal', 'OffsetTimeOriginal', 'CreateDate', 'OffsetTimeDigitized', 'Make', 'Model', 'Orientation', 'GPSLatitude', 'GPSLatitudeRef', 'GPSLongitude', 'GPSLongitudeRef'];
const EXIFR_OPTIONS = { tiff: true, exif: true, gps: true, ifd1: false, interop: false, xmp: false, icc: false, iptc: false, jfif: false, ihdr: false, reviveValues: false, translateValues: false, pick: TAGS };

/** Longest maker or model string kept (EXIF strings are free text). */
const MAX_CAMERA_TEXT = 64;

/**
 * The metadata of an encoded image. Never throws: an image with no EXIF, a format exifr does not
 * read, or a corrupt EXIF block gives `{}` (or what could be read of it).
 */
export async function readMetadata(bytes: Uint8Array): Promise<PhotoMetadata> {
  let tags: Record<string, unknown> | undefined;
  try {
    tags = (await exifr.parse(bytes, EXIFR_OPTIONS)) as Record<string, unknown> | undefined;
  } catch {
    return {};
  }
  return tags && typeof tags === 'object' ? metadataOf(tags) : {};
}

/** The metadata in exifr's raw tags (values not revived: dates as "YYYY:MM:DD HH:MM:SS" text). */
export function metadataOf(tags: Record<string, unknown>): PhotoMetadata {
  const out: PhotoMetadata = {};
  const takenAt = exifDate(tags.DateTimeOriginal, tags.OffsetTimeOriginal) ?? exifDate(tags.CreateDate, tags.OffsetTimeDigitized);
  if (takenAt) out.takenAt = takenAt;
  const make = text(tags.Make);
  const model = text(tags.Model);
  if (make || model) out.camera = { ...(make ? { make } : {}), ...(model ? { model } : {}) };
  if (Number.isInteger(tags.Orientation) && (tags.Orientation as number) >= 1 && (tags.Orientation as number) <= 8) out.orientation = tags.Orientation as number;
  const { latitude: lat, longitude: lon } = tags;
  if (typeof lat === 'number' && typeof lon === 'number' && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) out.gps = { lat, lon };
  return out;
}

/** A printable, trimmed EXIF string (NULs and control characters dropped), or undefined when empty. */
function text(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = v.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, MAX_CAMERA_TEXT);
  return t === '' ? undefined : t;
}
