/**
 * An index run: bulk indexing of folders and files. Scan → skip what is unchanged (path, size and
 * mtime) → read and hash → embed what is new content (this thread or worker threads) → write each
 * batch in one transaction (src/store/records.ts) → update the HNSW index (src/index-sync.ts),
 * with a snapshot every `snapshotEvery` changes and at the end → drop files gone from the scanned
 * folders. Incremental, resumable (a kill loses at most the batches in flight), and bad files are
 * reported and skipped. One upload (`addUpload`) takes the same write path.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PixdexConfig } from '../src/config.ts';
import { DECODE_CONCURRENCY, errorText, readImageFile, type Describer } from '../src/describe.ts';
import { PixdexError } from '../src/errors.ts';
import type { IndexSync } from '../src/index-sync.ts';
import { mapLimit, pipeline } from '../src/pool.ts';
import { checkLabel, type FileToWrite, type Records } from '../src/store/records.ts';
import { needsMetadata, readMetadata, type PhotoMetadata } from '../src/image/metadata.ts';
import { scanInputs, type ScannedFile } from './scan.ts';
import type { Embedder } from './workers/pool.ts';
import { decodeFeatures } from '../src/local/features.ts';
import type { VisualWords, VocabularyProgress } from '../src/local/visual-words.ts';
import type { CheckProgress, DuplicateFinder } from '../src/duplicates/finder.ts';

/** Summary of an index run (the CLI's `--json` output, DESIGN.md). */
export interface IndexSummary {
  added: number;
  updated: number;
  skipped: number;
  failed: number;
  removed: number;
  total: number;
  seconds: number;
  /** True when the run was stopped early (signal); what was done is kept. */
  interrupted?: boolean;
  errors: Array<{ path: string; error: string }>;
}

/** Progress of an index run, reported after every batch. */
export interface IndexProgress {
  done: number;
  total: number;
  /** Images per second over the files that needed work. */
  rate: number;
  etaSeconds: number;
  summary: IndexSummary;
}

export interface IndexOptions {
  /** Store each image's parent folder name as its label. */
  labelFromFolder?: boolean;
  onProgress?: (p: IndexProgress) => void;
  /** Told about trouble that does not stop the run (e.g. workers that could not start). */
  onWarning?: (message: string) => void;
  /** Stops the run after the batches in flight; the store stays consistent. */
  signal?: AbortSignal;
  /** Learning the visual vocabulary and giving every image its words (after the files, when due). */
  onVocabulary?: (p: VocabularyProgress) => void;
  /** Comparing the new images with their neighbours for near-duplicates (after the files). */
  onDuplicates?: (p: CheckProgress) => void;
  /** Leave out files and folders whose name starts with a dot (watch mode ignores them too). */
  skipHidden?: boolean;
}

/** What an index run works with. */
export interface IndexContext {
  records: Records;
  sync: IndexSync;
  describer: Describer;
  config: PixdexConfig;
  words: VisualWords;
  dupes: DuplicateFinder;
}

/** One file read and hashed; `bytes` kept while its content still needs embedding. */
interface Prepared {
  file: ScannedFile;
  sha256: string;
  bytes?: Uint8Array;
  label?: string;
  /** Capture metadata read here: stored content whose record has none yet (new content gets it from the embedder). */
  metadata?: PhotoMetadata;
}

type Fail = (file: string, error: string) => void;
type Counts = { added: number; updated: number; skipped: number };

/** The parent folder name of a file, used as its label by `--label-from-folder`. */
export function folderLabel(file: string): string {
  return path.basename(path.dirname(file));
}

/**
 * Images per batch in tensorflow workers: TensorFlow's kernels use the cores better on larger
 * batches (all 1,360 flowers17 photos, 2 workers, 7 alternating pairs: 32 faster in 5, median
 * ratio 1.07 over 16); wasm gained nothing measurable, so it keeps `batchSize`.
 */
export const TENSORFLOW_INDEX_BATCH = 32;

/** Images per index batch: as configured, else TENSORFLOW_INDEX_BATCH in tensorflow workers (`workersBackend`, `Embedder.backend`), else `batchSize`. */
export function indexBatchSize(config: PixdexConfig, workersBackend: string | undefined): number {
  return config.indexBatchSize ?? (workersBackend === 'tensorflow' ? TENSORFLOW_INDEX_BATCH : config.batchSize);
}

/** Indexes files and folders: incremental, batched, resumable; bad files are reported and skipped. */
export async function indexFiles(ctx: IndexContext, inputs: readonly string[], options: IndexOptions = {}): Promise<IndexSummary> {
  const { records, sync, config } = ctx;
  const started = performance.now();
  const summary: IndexSummary = { added: 0, updated: 0, skipped: 0, failed: 0, removed: 0, total: 0, seconds: 0, errors: [] };
  const fail: Fail = (p, error) => {
    summary.failed++;
    summary.errors.push({ path: p, error });
  };
  const scan = await scanInputs(inputs, config.extensions, { skipHidden: options.skipHidden });
  for (const e of scan.errors) fail(e.path, `UNREADABLE_FILE: ${e.error}`); // like every error: "CODE: message"
  summary.total = scan.files.length;

  const local = records.local.setting().enabled;
  const todo: ScannedFile[] = [];
  for (const file of scan.files) {
    const label = options.labelFromFolder ? folderLabel(file.path) : undefined;
    const id = records.idOfPath(file.path);
    const rec = id === undefined ? undefined : records.get(id);
    // Unchanged, with its capture metadata read, and with local features if the library has them
    // (turned on later, or a record from before metadata: read once more, not re-embedded).
    if (rec && rec.bytes === file.size && rec.mtimeMs === file.mtimeMs && !needsMetadata(rec) && (!local || records.local.hasFeatures(id!))) {
      if (label !== undefined && rec.label !== label && rec.path === file.path) {
        records.setLabel(id!, label);
        summary.updated++;
      } else {
        summary.skipped++;
      }
    } else {
      todo.push(file);
    }
  }

  const report = (done: number): void => {
    const elapsed = (performance.now() - started) / 1000;
    const rate = done / Math.max(elapsed, 1e-3);
    options.onProgress?.({ done: summary.total - todo.length + done, total: summary.total, rate, etaSeconds: rate > 0 ? (todo.length - done) / rate : 0, summary });
  };

  let sinceSnapshot = 0;
  let done = 0;
  const embedder = await ctx.describer.embedder(records.space(), todo.length, options.onWarning, undefined, local);
  const batches: ScannedFile[][] = [];
  const batchSize = indexBatchSize(config, embedder.backend);
  for (let i = 0; i < todo.length; i += batchSize) batches.push(todo.slice(i, i + batchSize));
  try {
    await pipeline(batches, embedder.parallelism, (batch) => readBatch(ctx, batch, options, fail), async (batch, read) => {
      try {
        const counts = await embedAndWrite(ctx, read, embedder, fail);
        summary.added += counts.added;
        summary.updated += counts.updated;
        summary.skipped += counts.skipped;
        sinceSnapshot += counts.added + counts.updated;
        done += batch.length;
        report(done);
        if (sinceSnapshot >= config.snapshotEvery) {
          sync.snapshot();
          sinceSnapshot = 0;
        }
      } catch (err) {
        for (const p of read) fail(p.file.path, errorText(err));
      }
    }, () => Boolean(options.signal?.aborted));
  } finally {
    await embedder.close();
  }
  if (options.signal?.aborted && done < todo.length) summary.interrupted = true;
  if (!summary.interrupted) summary.removed = await pruneMissing(ctx, scan.roots, scan.files);
  if (!summary.interrupted) {
    // Side by side on two cores: the vocabulary is learned in a worker thread while this one checks near-duplicates.
    await Promise.all([local && ctx.words.maintainAsync(options.onVocabulary), ctx.dupes.check({ signal: options.signal, onProgress: options.onDuplicates })]);
  }
  sync.snapshot();
  summary.seconds = Math.round((performance.now() - started) / 10) / 100;
  return summary;
}

/** Where an upload is kept, its label, and its SHA-256 when the caller hashed it already (the server names the kept file by it). */
export interface UploadOptions {
  path?: string;
  label?: string;
  sha256?: string;
}

/** Adds one encoded image (an upload). Identical content returns the existing id. */
export async function addUpload(ctx: IndexContext, bytes: Uint8Array, options: UploadOptions = {}): Promise<{ id: number; created: boolean }> {
  const { records, describer } = ctx;
  const sha256 = options.sha256 ?? createHash('sha256').update(bytes).digest('hex');
  const label = options.label === undefined ? undefined : checkLabel(options.label);
  const existing = records.idOfContent(sha256);
  if (existing !== undefined) {
    if (label !== undefined) records.setLabel(existing, label);
    return { id: existing, created: false };
  }
  const local = records.local.setting().enabled;
  const { embedding, width, height, features } = await describer.describeForStore(bytes, records.space(), options.path ?? 'upload', local);
  const metadata = await readMetadata(bytes);
  const file: FileToWrite = { path: options.path ?? `upload:${sha256}`, sha256, bytes: bytes.length, mtimeMs: 0, width, height, label, embedding, metadata };
  if (features) file.local = localToWrite(ctx, features);
  const written = records.writeFiles([file]);
  ctx.sync.refresh();
  // A library built by uploads alone gets its first vocabulary here (a small one: fast); re-learning is left to index runs.
  if (local && !records.local.setting().vocabulary && ctx.words.needsLearning()) ctx.words.maintain();
  const id = written.ids.get(0);
  if (id === undefined) throw new PixdexError('STORE_CONFLICT', 'The image was removed by another request while it was being added; send it again.');
  if (written.added === 1 || written.updated === 1) ctx.dupes.checkOne(id);
  // The same content arrived meanwhile (a twin upload, an index run): the label still applies.
  if (written.added === 0 && label !== undefined) records.setLabel(id, label);
  return { id, created: written.added === 1 };
}

/** Reads and hashes one batch (no decoding); unreadable files go to `fail`. */
async function readBatch(ctx: IndexContext, files: ScannedFile[], options: IndexOptions, fail: Fail): Promise<Prepared[]> {
  const results = await mapLimit(files, DECODE_CONCURRENCY, (f) => readFile(ctx, f, options.labelFromFolder ? folderLabel(f.path) : undefined, true));
  const out: Prepared[] = [];
  results.forEach((r, i) => {
    if ('value' in r) out.push(r.value);
    else fail(files[i].path, errorText(r.error));
  });
  return out;
}

/** Reads and hashes a file; its bytes are kept when its content is not stored yet (always, with `onlyNew` false). */
async function readFile(ctx: IndexContext, file: ScannedFile, label: string | undefined, onlyNew: boolean): Promise<Prepared> {
  const bytes = await readImageFile(file.path, ctx.config.maxFileBytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const prepared: Prepared = { file: { ...file, size: bytes.length }, sha256, label };
  const id = ctx.records.idOfContent(sha256);
  const needsFeatures = id !== undefined && ctx.records.local.setting().enabled && !ctx.records.local.hasFeatures(id);
  if (!onlyNew || id === undefined || needsFeatures) prepared.bytes = bytes;
  else if (needsMetadata(ctx.records.get(id) ?? {})) prepared.metadata = await readMetadata(bytes); // stored before metadata existed
  return prepared; // identical content is stored once: no decode, no embedding
}

/** Embeds what needs it, reports bad images, and writes the batch; content gone meanwhile is embedded after all. */
async function embedAndWrite(ctx: IndexContext, read: Prepared[], embedder: Embedder, fail: Fail, retried = false): Promise<Counts> {
  const needed = read.filter((p) => p.bytes);
  const results = needed.length > 0 ? await embedder.embed(needed.map((p) => ({ name: p.file.path, bytes: p.bytes! }))) : [];
  const files = new Map<Prepared, FileToWrite>();
  for (const p of read) files.set(p, { path: p.file.path, sha256: p.sha256, bytes: p.file.size, mtimeMs: p.file.mtimeMs, width: 0, height: 0, label: p.label, metadata: p.metadata });
  results.forEach((r, i) => {
    const p = needed[i];
    p.bytes = undefined;
    if (r.ok) Object.assign(files.get(p)!, { width: r.width, height: r.height, embedding: { pooled: r.vector, code: r.code, scales: r.scales }, local: r.features && localToWrite(ctx, r.features), metadata: r.metadata });
    else {
      files.delete(p);
      fail(p.file.path, `${r.code}: ${r.message}`);
    }
  });
  const kept = [...files.keys()];
  const written = ctx.records.writeFiles([...files.values()]);
  ctx.sync.refresh();
  const counts = { added: written.added, updated: written.updated, skipped: written.skipped };
  if (written.retry.length > 0 && !retried) {
    const again = await mapLimit(written.retry.map((i) => kept[i]), DECODE_CONCURRENCY, (p) => readFile(ctx, p.file, p.label, false));
    const reread = again.flatMap((r, j) => {
      if ('value' in r) return [r.value];
      fail(kept[written.retry[j]].file.path, errorText(r.error));
      return [];
    });
    const more = await embedAndWrite(ctx, reread, embedder, fail, true);
    counts.added += more.added;
    counts.updated += more.updated;
    counts.skipped += more.skipped;
  }
  return counts;
}

/** An image's encoded local features with their visual words under the library's vocabulary (if it has one). */
function localToWrite(ctx: IndexContext, features: Uint8Array): FileToWrite['local'] {
  return { features, words: ctx.words.wordsOf(decodeFeatures(features)) };
}

/** Removes images whose files were under a scanned folder and are gone from disk. */
async function pruneMissing(ctx: IndexContext, roots: string[], seen: ScannedFile[]): Promise<number> {
  const present = new Set(seen.map((f) => f.path));
  const gone: string[] = [];
  for (const root of roots) {
    for (const key of ctx.records.pathsUnder(root)) {
      if (present.has(key)) continue;
      try {
        await fs.access(key);
      } catch {
        gone.push(key);
      }
    }
  }
  const removed = gone.length > 0 ? ctx.records.removePaths(gone) : 0;
  ctx.sync.refresh();
  return removed;
}
