/**
 * Thumbnails of indexed images, made with sharp from the indexed file (EXIF-rotated; a HEIC decoded
 * first by src/image/heic.ts) and kept in a byte-bounded LRU (lru-cache). The file is read through
 * server/indexed-file.ts: the one recorded for the id (no route takes a path), with the content
 * that was indexed.
 */
import { LRUCache } from 'lru-cache';
import sharp, { type Sharp } from 'sharp';
import { BadImageError } from '../src/errors.ts';
import { openHeic } from '../src/image/heic.ts';
import { readIndexedFile, type IndexedFile } from './indexed-file.ts';

/** Formats thumbnails come in, by the MIME type a client asks for. */
export type ThumbnailFormat = 'jpeg' | 'webp';

export const THUMBNAIL_TYPES: Readonly<Record<ThumbnailFormat, string>> = Object.freeze({ jpeg: 'image/jpeg', webp: 'image/webp' });

/** Encoder settings: quality 80 / 75 are visually clean at thumbnail size and ~10–20 KB each. */
const ENCODE = Object.freeze({ jpeg: { quality: 80 }, webp: { quality: 75 } });

export interface ThumbnailOptions {
  /** Longest side in pixels (smaller images are not enlarged). */
  size: number;
  /** Memory budget of the cache in bytes; 0 disables caching. */
  cacheBytes: number;
  /** Largest source image in pixels (the engine's maxInputPixels). */
  maxInputPixels: number;
}

/** What the thumbnail of one image is made from (a re-indexed file with new content gets a new cache entry). */
export type ThumbnailSource = IndexedFile;

/** Makes and caches thumbnails; concurrent requests for the same one share a single encode. */
export class Thumbnails {
  /** Encoded thumbnails by id, content, format and size; undefined when caching is off. */
  private readonly cache?: LRUCache<string, Buffer>;
  private readonly inFlight = new Map<string, Promise<Buffer>>();

  constructor(private readonly options: ThumbnailOptions) {
    if (options.cacheBytes > 0) this.cache = new LRUCache({ maxSize: options.cacheBytes, sizeCalculation: (b) => b.length });
  }

  /** Bytes held by the cache now. */
  get cachedBytes(): number {
    return this.cache?.calculatedSize ?? 0;
  }

  /** The encoded thumbnail of an indexed image. */
  async get(src: ThumbnailSource, format: ThumbnailFormat): Promise<Buffer> {
    const key = `${src.id}:${src.sha256}:${format}:${this.options.size}`;
    const hit = this.cache?.get(key);
    if (hit) return hit;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.make(src, format).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    const buf = await pending;
    if (this.cache && buf.length <= this.options.cacheBytes) this.cache.set(key, buf);
    return buf;
  }

  private async make(src: ThumbnailSource, format: ThumbnailFormat): Promise<Buffer> {
    // Only the content that was indexed is made into a thumbnail (server/indexed-file.ts).
    const input = await readIndexedFile(src, 'to make a thumbnail from');
    const heic = await openHeic(input, this.options.maxInputPixels, `the file of image ${src.id}`);
    return this.encode(heic?.pipeline() ?? sharp(input, { limitInputPixels: this.options.maxInputPixels, failOn: 'none' }), format);
  }

  /**
   * A JPEG thumbnail of an uploaded HEIC, not cached: browsers other than Safari cannot show a
   * HEIC, so the web page shows this instead of the photo it sends. Other formats are refused
   * (UNSUPPORTED_IMAGE): the browser shows them itself, and nothing else reaches sharp here.
   */
  async preview(input: Uint8Array): Promise<Buffer> {
    const heic = await openHeic(input, this.options.maxInputPixels, 'upload');
    if (!heic) throw new BadImageError('UNSUPPORTED_IMAGE', 'upload is not a HEIC/HEIF photo: previews are made only of those (browsers show the other formats themselves)');
    return this.encode(heic.pipeline(), 'jpeg');
  }

  private encode(source: Sharp, format: ThumbnailFormat): Promise<Buffer> {
    const size = this.options.size;
    const img = source.rotate().resize(size, size, { fit: 'inside', withoutEnlargement: true });
    return format === 'webp' ? img.webp(ENCODE.webp).toBuffer() : img.jpeg(ENCODE.jpeg).toBuffer();
  }
}
