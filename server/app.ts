/**
 * The Express app over one open `Engine` (DESIGN.md, HTTP contract). `createApp` returns the app
 * and never listens: `cli/serve.ts` binds it, tests drive it on an ephemeral port.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import express, { type Express, type Request, type RequestHandler } from 'express';
import sharp from 'sharp';
import type { z } from 'zod';
import { Engine, type SearchResult } from '../src/engine.ts';
import { invalidParameter } from '../src/errors.ts';
import { isHeic } from '../src/image/heic.ts';
import { VERBS, imageId, parseParam, parseParams } from '../src/contracts/verbs.ts';
import type { ImageRecord } from '../src/store/lmdb.ts';
import { HttpError, errorHandler, routeNotFound } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { requireToken, securityHeaders } from './security.ts';
import { THUMBNAIL_TYPES, Thumbnails, type ThumbnailFormat } from './thumbnails.ts';
import { formField, imageUpload, uploadedImage } from './upload.ts';
import { mountBrowse } from './browse.ts';
import { mountIndexJobs } from './jobs.ts';
import { methodNotAllowed } from './methods.ts';
import { mountSuggestions } from './suggestions.ts';
import { pagePaths, webPage } from './web.ts';

/** Options of `createApp`; the limits default to the engine's `config.server`. */
export interface AppOptions {
  /** Bearer token for mutating routes (default: config.server.token; unset = open). */
  token?: string;
  /** Largest upload in bytes (default: config.server.maxUploadBytes). */
  maxUploadBytes?: number;
  /** Longest thumbnail side in px (default: config.server.thumbnailSize). */
  thumbnailSize?: number;
  /** Thumbnail cache budget in bytes (default: config.server.thumbnailCacheBytes). */
  thumbnailCacheBytes?: number;
  /** Where uploads are kept (default: config.server.uploadsDir). */
  uploadsDir?: string;
  /** Settles when the model is loaded and warmed; /readyz is 503 until then (default: `engine.model()`). */
  ready?: Promise<unknown>;
  /** Aborted when the server shuts down: /readyz turns 503 and connections are not kept alive. */
  signal?: AbortSignal;
  /** Receives one line per request (method, path, status, ms) and unexpected errors (default: stderr). */
  log?: (line: string) => void;
  /**
   * Worker threads describing query photos (default: config.server.queryWorkers; 0 = the main
   * thread). The engine keeps the first app's pool and stops it in `engine.close()`.
   */
  queryWorkers?: number;
  /** Photo queries that may wait before the server answers 503 BUSY (default: config.server.maxQueuedQueries). */
  maxQueuedQueries?: number;
}

/** A label body is `{"label": "..."}`: 4 KiB is plenty. */
const JSON_LIMIT = '4kb';
/** Extensions of kept uploads, by sharp's format name, so `pixdex index` can pick them up. */
const UPLOAD_EXTENSIONS: Readonly<Record<string, string>> = Object.freeze({ jpeg: '.jpg', png: '.png', webp: '.webp', gif: '.gif', tiff: '.tif', avif: '.avif', heic: '.heic' });

const VERSION = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Builds the app: security headers, request log, routes, index jobs, the web page, 405 and JSON 404, the one error handler. */
export function createApp(engine: Engine, options: AppOptions = {}): Express {
  const cfg = engine.config.server;
  const o = {
    token: 'token' in options ? options.token : cfg.token,
    maxUploadBytes: options.maxUploadBytes ?? cfg.maxUploadBytes,
    thumbnailSize: options.thumbnailSize ?? cfg.thumbnailSize,
    thumbnailCacheBytes: options.thumbnailCacheBytes ?? cfg.thumbnailCacheBytes,
    uploadsDir: path.resolve(options.uploadsDir ?? cfg.uploadsDir),
    log: options.log ?? ((line: string) => void process.stderr.write(line + '\n')),
  };
  // Query workers start with the server, not on the first query: their start (backend, model,
  // warm-up: 1–3 s each) is then paid before /readyz says ready instead of by the first users.
  const queries = engine.describer.startQueryPool({
    workers: options.queryWorkers ?? cfg.queryWorkers,
    maxQueued: options.maxQueuedQueries ?? cfg.maxQueuedQueries,
    localFeatures: engine.records.local.setting().enabled,
    log: o.log,
  });
  const readiness = trackReadiness(Promise.all([options.ready ?? engine.model(), queries.ready]));
  /** Refuses a photo query before its upload is read when the queue is already full. */
  const admit: RequestHandler = (_req, _res, next) => {
    next(queries.refusal());
  };
  const thumbnails = new Thumbnails({ size: o.thumbnailSize, cacheBytes: o.thumbnailCacheBytes, maxInputPixels: engine.config.maxInputPixels });
  const openapi = openApiDocument({ maxUploadBytes: o.maxUploadBytes, thumbnailSize: o.thumbnailSize, version: VERSION });
  const auth = requireToken(o.token);
  const upload = imageUpload(o.maxUploadBytes);

  const app = express();
  app.disable('x-powered-by');
  app.use(requestLog(o.log), securityHeaders, (req, res, next) => {
    if (options.signal?.aborted) res.set('Connection', 'close');
    if (req.path.startsWith('/api/')) res.set('Cache-Control', 'no-store');
    next();
  });

  // ------------------------------------------------------------------ health and docs
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res, next) => {
    if (options.signal?.aborted) return next(new HttpError('NOT_READY', 'The server is shutting down'));
    if (readiness.error) return next(new HttpError('NOT_READY', `The model failed to load: ${readiness.error}`));
    if (!readiness.ready) return next(new HttpError('NOT_READY', 'The model is loading and warming up; retry shortly'));
    res.json({ status: 'ready' });
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.get('/api/stats', async (_req, res) => {
    res.json(await engine.stats());
  });
  app.get('/api/labels', (_req, res) => {
    res.json({ labels: engine.labels() });
  });

  // ------------------------------------------------------------------ queries
  app.post('/api/search', params(VERBS.search), admit, upload, async (req, res) => {
    const options = res.locals.params as z.output<typeof VERBS.search>;
    const started = performance.now();
    const results = await engine.search(uploadedImage(req), options);
    res.json({ results: results.map(withThumbnail), tookMs: since(started) });
  });

  app.get('/api/duplicates', async (req, res) => {
    const options = parseParams(VERBS.duplicates, req.query);
    const started = performance.now();
    const r = await engine.duplicates(options);
    res.json({ ...r, groups: r.groups.map((g) => ({ ...g, members: g.members.map((m) => ({ ...m, thumbnailUrl: thumbnailUrl(m.id) })) })), tookMs: since(started) });
  });

  app.get('/api/images/:id/similar', (req, res) => {
    const id = idParam(req.params.id);
    const options = parseParams(VERBS.similar, req.query);
    const started = performance.now();
    const results = engine.similar(id, options);
    res.json({ results: results.map(withThumbnail), tookMs: since(started) });
  });

  app.post('/api/classify', params(VERBS.classify), admit, upload, async (req, res) => {
    const options = res.locals.params as z.output<typeof VERBS.classify>;
    const started = performance.now();
    const { neighbors, method: _m, ...vote } = await engine.classify(uploadedImage(req), options);
    res.json({ ...vote, method: options.method, neighbors: neighbors.map(withThumbnail), tookMs: since(started) });
  });

  // ------------------------------------------------------------------ images
  app.post('/api/images', auth, upload, async (req, res) => {
    const raw = formField(req, 'label') ?? req.query.label;
    const { label } = parseParams(VERBS.add, { label: raw === '' ? undefined : raw });
    const { id, created } = await addUpload(engine, o.uploadsDir, uploadedImage(req), label);
    res.status(created ? 201 : 200).location(`/api/images/${id}`).json({ id });
  });

  app.get('/api/images/:id', (req, res) => {
    res.json(toImage(engine.get(idParam(req.params.id))));
  });

  app.delete('/api/images/:id', auth, async (req, res) => {
    const rec = engine.get(idParam(req.params.id));
    engine.remove(rec.id);
    if (isInside(rec.path, o.uploadsDir)) await fs.promises.rm(rec.path, { force: true });
    res.json({ removed: rec.id });
  });

  app.put('/api/images/:id/label', auth, express.json({ limit: JSON_LIMIT }), (req, res) => {
    const id = idParam(req.params.id);
    if (!req.is('application/json')) {
      throw new HttpError('UNSUPPORTED_MEDIA_TYPE', 'Expected a JSON body {"label": "..."} with Content-Type application/json');
    }
    const { label } = parseParams(VERBS.label, req.body, { body: 'a JSON object {"label": string | null}' });
    res.json(toImage(engine.label(id, label)));
  });

  app.post('/api/preview', upload, async (req, res) => {
    res.type('image/jpeg').send(await thumbnails.preview(uploadedImage(req)));
  });

  app.get('/api/images/:id/thumbnail', async (req, res) => {
    const rec = engine.get(idParam(req.params.id));
    const format = thumbnailFormat(req);
    const buf = await thumbnails.get(rec, format);
    res.vary('Accept').type(THUMBNAIL_TYPES[format]).set('Cache-Control', 'private, max-age=3600').send(buf);
  });

  // ------------------------------------------------------------------ index jobs and the web page
  // `app.locals.indexJobs.stop()` cancels a running job and waits for it (before engine.close()).
  app.locals.indexJobs = mountIndexJobs(app, engine, { auth, signal: options.signal, log: o.log });
  mountSuggestions(app, engine, { auth, idParam, thumbnailUrl });
  mountBrowse(app, engine, { idParam, toImage });
  app.use(webPage()); // after the routes: a file never shadows an API path

  app.use(methodNotAllowed(app, pagePaths()), routeNotFound);
  app.use(errorHandler({ maxUploadBytes: o.maxUploadBytes }, o.log));
  return app;
}

// -------------------------------------------------------------------- helpers

/** Validates the query with the verb's schema before the upload is read, so a bad k never costs an upload. */
function params(schema: z.ZodObject): RequestHandler {
  return (req, res, next) => {
    res.locals.params = parseParams(schema, req.query);
    next();
  };
}

/** Image ids are positive uint32s written in decimal: "abc", "0", "1.5" and "1e3" are refused. */
function idParam(v: unknown): number {
  return parseParam(imageId, 'id', v);
}

function thumbnailFormat(req: Request): ThumbnailFormat {
  const f = req.query.format;
  if (f === undefined) return req.accepts(['image/jpeg', 'image/webp']) === 'image/webp' ? 'webp' : 'jpeg';
  if (f === 'jpeg' || f === 'jpg') return 'jpeg';
  if (f === 'webp') return 'webp';
  throw invalidParameter('format', 'jpeg or webp', f);
}

function thumbnailUrl(id: number): string {
  return `/api/images/${id}/thumbnail`;
}

function withThumbnail(r: SearchResult): SearchResult & { thumbnailUrl: string } {
  return { ...r, thumbnailUrl: thumbnailUrl(r.id) };
}

function toImage(rec: ImageRecord & { id: number }): Record<string, unknown> {
  const { takenAt, camera, orientation, gps } = rec; // capture metadata, each when the photo's EXIF has it
  return { id: rec.id, path: rec.path, sha256: rec.sha256, bytes: rec.bytes, width: rec.width, height: rec.height, mtimeMs: rec.mtimeMs, addedAt: rec.addedAt, label: rec.label ?? null, takenAt, camera, orientation, gps, thumbnailUrl: thumbnailUrl(rec.id) };
}

function since(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

function isInside(file: string, dir: string): boolean {
  return path.isAbsolute(file) && file.startsWith(dir + path.sep);
}

/**
 * Adds an upload and keeps its bytes as `<uploadsDir>/<sha256>.<ext>`, so it has a file to make
 * thumbnails from. The file is removed again when the upload fails or duplicates a stored image.
 */
async function addUpload(engine: Engine, uploadsDir: string, bytes: Buffer, label: string | undefined): Promise<{ id: number; created: boolean }> {
  // async: sharp throws synchronously for some input (an empty buffer), which must not become a 500
  const meta = await (async () => sharp(bytes).metadata())().catch(() => undefined);
  const format = isHeic(bytes) ? 'heic' : meta?.format === 'heif' && meta.compression === 'av1' ? 'avif' : meta?.format;
  const ext = format ? UPLOAD_EXTENSIONS[format] : undefined;
  if (!ext) return engine.add(bytes, { label }); // the engine refuses it with the right error
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const file = path.join(uploadsDir, sha256 + ext);
  await fs.promises.mkdir(uploadsDir, { recursive: true });
  let wrote = false;
  try {
    await fs.promises.writeFile(file, bytes, { flag: 'wx' });
    wrote = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  try {
    const added = await engine.add(bytes, { label, path: file, sha256 });
    if (wrote && !added.created && engine.get(added.id).path !== file) await fs.promises.rm(file, { force: true });
    return added;
  } catch (err) {
    if (wrote) await fs.promises.rm(file, { force: true });
    throw err;
  }
}

/** Follows the warm-up promise so /readyz can answer synchronously. */
function trackReadiness(ready: Promise<unknown>): { ready: boolean; error?: string } {
  const state: { ready: boolean; error?: string } = { ready: false };
  ready.then(
    () => {
      state.ready = true;
    },
    (err: unknown) => {
      state.error = err instanceof Error ? err.message : String(err);
    },
  );
  return state;
}

/** One line per request on completion: method, path (no query string), status, milliseconds. */
function requestLog(log: (line: string) => void): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const method = req.method;
    const url = req.originalUrl.split('?')[0];
    res.on('close', () => {
      const status = res.writableFinished ? String(res.statusCode) : `${res.statusCode} (aborted)`;
      log(`${method} ${url} ${status} ${(performance.now() - started).toFixed(1)}ms`);
    });
    next();
  };
}
