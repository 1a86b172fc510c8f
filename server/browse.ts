/**
 * Browsing the library over HTTP (the web page's Browse view): `GET /api/images` lists it page by
 * page, all or one label's, and `GET /api/images/:id/original` serves an image's original file,
 * only through the guard thumbnails use (server/indexed-file.ts): the file recorded for the id,
 * holding the content that was indexed.
 */
import path from 'node:path';
import type { Express } from 'express';
import sharp from 'sharp';
import type { Engine } from '../src/engine.ts';
import { VERBS, parseParams } from '../src/contracts/verbs.ts';
import type { ImageRecord } from '../src/store/lmdb.ts';
import { readIndexedFile } from './indexed-file.ts';

export interface BrowseRouteOptions {
  /** Parses an image id path parameter. */
  idParam: (v: unknown) => number;
  /** The JSON of an image, as GET /api/images/:id answers it. */
  toImage: (rec: ImageRecord & { id: number }) => Record<string, unknown>;
}

/** MIME types of the formats an original can have, by sharp's format name. */
const ORIGINAL_TYPES: Readonly<Record<string, string>> = Object.freeze({
  jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif', tiff: 'image/tiff', avif: 'image/avif', heif: 'image/heic',
});

/** Adds GET /api/images (a page of the library) and GET /api/images/:id/original. */
export function mountBrowse(app: Express, engine: Engine, o: BrowseRouteOptions): void {
  app.get('/api/images', (req, res) => {
    const page = engine.images(parseParams(VERBS.images, req.query));
    res.json({ ...page, images: page.images.map(o.toImage) });
  });

  app.get('/api/images/:id/original', async (req, res) => {
    const rec = engine.get(o.idParam(req.params.id));
    const { download } = parseParams(VERBS.original, req.query);
    const bytes = await readIndexedFile(rec, 'to serve');
    const type = await imageType(bytes);
    // An image opens in the browser; anything else (a format sharp reads but no browser shows) downloads.
    const disposition = download || !type ? 'attachment' : 'inline';
    res
      .type(type ?? 'application/octet-stream')
      .set('Content-Disposition', `${disposition}; filename*=UTF-8''${encodeURIComponent(path.basename(rec.path))}`)
      .set('Cache-Control', 'private, max-age=3600')
      .send(bytes);
  });
}

/** The MIME type of an image's bytes, sniffed (the file name is not trusted); undefined when not one of ORIGINAL_TYPES. */
async function imageType(bytes: Buffer): Promise<string | undefined> {
  const meta = await (async () => sharp(bytes).metadata())().catch(() => undefined);
  if (!meta?.format) return undefined;
  if (meta.format === 'heif' && meta.compression === 'av1') return ORIGINAL_TYPES.avif;
  return ORIGINAL_TYPES[meta.format];
}
