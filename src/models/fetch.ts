/**
 * Downloads a built-in backbone from its public origin into the models folder (the cache by
 * default): pinned SHA-256 per file, resumable (a cut connection continues with an HTTP Range
 * request, in this run or the next), one download for concurrent first uses (a lock file per
 * model), and an atomic install (the finished folder is renamed into place; a half-written model
 * is never visible). TFLite sources are converted to tfjs after download.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { PixdexError } from '../errors.ts';
import { downloadBytes, type ModelSource, type PinnedFile } from './catalog.ts';
import { convertTflite, writeConverted } from './tflite/convert.ts';
import { sha256, writeManifest } from './installed.ts';

/** What a download reports while it runs (bytes of the whole model). */
export interface DownloadProgress {
  model: string;
  file: string;
  received: number;
  total: number;
}

export interface FetchOptions {
  /** Folder the model folder is installed into. */
  modelsDir: string;
  /** Base URL serving the models folder's layout (`<mirror>/<dir>/<path>`) instead of the public origins. */
  mirror?: string;
  onProgress?: (p: DownloadProgress) => void;
  /**
   * Further attempts after a failed request or a cut connection, each resuming where the last
   * stopped (default: 4, waiting 0.5, 1, 2, 4 s: rides out a flaky connection, gives up within
   * ten seconds when offline).
   */
  retries?: number;
}

/** How long a second process waits for another's download of the same model (10 min: ~10 MB on a slow line). */
const LOCK_WAIT_MS = 10 * 60_000;

/** True when `<modelsDir>/<dir>` holds a model (its model.json). */
export function isInstalled(modelsDir: string, dir: string): boolean {
  return existsSync(path.join(modelsDir, dir, 'model.json'));
}

/** Downloads, checks, converts and installs `source` unless it is already there; returns its folder. */
export async function installModel(source: ModelSource, options: FetchOptions): Promise<string> {
  const { modelsDir } = options;
  const target = path.join(modelsDir, source.dir);
  if (isInstalled(modelsDir, source.dir)) return target;
  await fs.mkdir(modelsDir, { recursive: true });
  const release = await lock(modelsDir, source);
  try {
    if (isInstalled(modelsDir, source.dir)) return target; // another process finished it while we waited
    const partial = path.join(modelsDir, '.partial', source.dir);
    const progress = new Progress(source, options.onProgress);
    for (const file of source.files) await downloadFile(file, partial, urlOf(file, source, options.mirror), progress, options.retries ?? 4);
    const staging = path.join(modelsDir, `.staging-${source.dir}-${process.pid}`);
    await fs.rm(staging, { recursive: true, force: true });
    await fs.cp(partial, staging, { recursive: true });
    if (source.kind === 'tflite') {
      const tflite = path.join(staging, source.files[0].path);
      await writeConverted(convertTflite(await fs.readFile(tflite)), staging);
    }
    await writeManifest(staging, { id: source.id, kind: source.kind, origin: source.origin });
    await fs.rm(target, { recursive: true, force: true }); // a folder without model.json: leftovers of a manual copy
    await fs.rename(staging, target);
    await fs.rm(partial, { recursive: true, force: true });
    return target;
  } finally {
    await release();
  }
}

/** The URL of `file`: its pinned origin, or the same path on a mirror of the models folder. */
function urlOf(file: PinnedFile, source: ModelSource, mirror: string | undefined): string {
  return mirror ? `${mirror.replace(/\/+$/, '')}/${source.dir}/${file.path}` : file.url;
}

/** Waits for (then holds) the model's lock; a lock whose holder died goes stale after 20 s. */
async function lock(modelsDir: string, source: ModelSource): Promise<() => Promise<void>> {
  const lockPath = path.join(modelsDir, `.${source.dir}.lock`);
  const pollMs = 250;
  return lockfile.lock(modelsDir, {
    lockfilePath: lockPath,
    realpath: false,
    stale: 20_000,
    update: 5_000,
    retries: { retries: LOCK_WAIT_MS / pollMs, factor: 1, minTimeout: pollMs, maxTimeout: pollMs },
  });
}

/** Bytes received across the model's files, reported at most 10 times a second and at the end. */
class Progress {
  private done = 0;
  private last = 0;
  readonly total: number;
  constructor(private readonly source: ModelSource, private readonly report?: (p: DownloadProgress) => void) {
    this.total = downloadBytes(source);
  }
  fileDone(bytes: number): void {
    this.done += bytes;
  }
  update(file: string, received: number, final = false): void {
    const now = Date.now();
    if (!this.report || (!final && now - this.last < 100)) return;
    this.last = now;
    this.report({ model: this.source.id, file, received: this.done + received, total: this.total });
  }
}

/**
 * Gets one pinned file into `partial/<path>`: skipped when already there and intact, resumed from
 * `<path>.part`, retried with back-off. Bytes that do not hash to the pin are deleted.
 */
async function downloadFile(file: PinnedFile, partial: string, url: string, progress: Progress, retries: number): Promise<void> {
  const dest = path.join(partial, file.path);
  const part = `${dest}.part`;
  await fs.mkdir(path.dirname(dest), { recursive: true });
  if (existsSync(dest) && (await sha256(dest)) === file.sha256) {
    progress.fileDone(file.bytes);
    return;
  }
  let lastError: unknown;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
    try {
      await fetchInto(url, part, file, progress);
      lastError = undefined;
      break;
    } catch (err) {
      if (err instanceof PixdexError) throw err; // a checksum mismatch is not retried
      lastError = err;
    }
  }
  if (lastError !== undefined) {
    const reason = lastError instanceof Error ? (lastError.cause instanceof Error ? `${lastError.message}: ${lastError.cause.message}` : lastError.message) : String(lastError);
    throw new PixdexError('MODEL_DOWNLOAD_FAILED', `Could not download ${url} (${reason}).`, { cause: lastError });
  }
  const actual = await sha256(part);
  if (actual !== file.sha256) {
    await fs.rm(part, { force: true });
    throw new PixdexError('MODEL_CHECKSUM_MISMATCH', `${url} is not the pinned file: SHA-256 ${actual}, expected ${file.sha256}. Nothing was kept; the origin (or a proxy in between) serves other bytes.`);
  }
  await fs.rename(part, dest);
  progress.fileDone(file.bytes);
}

/** One request: continues `part` from its length (Range), or starts over when the server ignores ranges. */
async function fetchInto(url: string, part: string, file: PinnedFile, progress: Progress): Promise<void> {
  let start = existsSync(part) ? (await fs.stat(part)).size : 0;
  if (start > file.bytes) {
    await fs.rm(part, { force: true });
    start = 0;
  }
  if (start === file.bytes) return; // complete: the caller checks the bytes
  const response = await fetch(url, { headers: start > 0 ? { range: `bytes=${start}-` } : {}, redirect: 'follow' });
  if (response.status === 416) {
    await fs.rm(part, { force: true }); // the range is past the server's file: start over next attempt
    throw new Error('HTTP 416 (range not satisfiable)');
  }
  if (response.status !== 200 && response.status !== 206) {
    await response.body?.cancel();
    const error = new Error(`HTTP ${response.status} ${response.statusText}`);
    if (response.status === 404 || response.status === 403 || response.status === 410) throw new PixdexError('MODEL_DOWNLOAD_FAILED', `Could not download ${url} (${error.message}).`);
    throw error;
  }
  if (response.status === 200) start = 0;
  const handle = await fs.open(part, start > 0 ? 'a' : 'w');
  let received = start;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      if (received > file.bytes) {
        await handle.close().catch(() => undefined);
        await fs.rm(part, { force: true });
        throw new PixdexError('MODEL_CHECKSUM_MISMATCH', `${url} sends more than the pinned ${file.bytes} bytes. Nothing was kept; the origin (or a proxy in between) serves other bytes.`);
      }
      await handle.write(chunk);
      progress.update(file.path, received);
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  progress.update(file.path, received, true);
  if (received < file.bytes) throw new Error(`the connection ended after ${received} of ${file.bytes} bytes`);
}
