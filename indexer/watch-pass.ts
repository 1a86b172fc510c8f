/**
 * One pass of watch mode (indexer/watch.ts) through the same incremental pipeline as `pixdex
 * index` (indexer/run.ts): whole folders when they are due a full pass, else the files that were
 * added or changed; then the paths that went. Additions come before removals, so a rename (an
 * unlink and an add) makes the new path an alias of the stored content first and then drops the
 * old path: the image keeps its id and label, and its content is neither embedded nor stored twice.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { indexFiles, type IndexContext, type IndexOptions, type IndexSummary } from './run.ts';

/** What one pass does; paths are absolute. */
export interface WatchPass {
  /** Folders indexed in full (incremental: unchanged files are skipped; files gone from them are removed). */
  full: string[];
  /** Files added or changed outside those folders. */
  changed: string[];
  /** Files and folders that went outside those folders; one that exists again is kept. */
  removed: string[];
  /** The watched folders: a removal is applied only while its folder is there (a folder that went is not a deletion). */
  roots: string[];
  /**
   * A file that fails and was modified less than this many ms before the pass began, or since, is
   * still being written (a half-copied photo the full pass met before its size was stable): not a
   * failure but `deferred`, for the watcher to take again once it settles (default: 0, none).
   */
  settleMs?: number;
}

/** A pass's summary; `deferred` lists the files left for the next pass because they were still being written. */
export type WatchPassSummary = IndexSummary & { deferred?: string[] };

/** Runs one watch pass; `summary.total` counts the files looked at, `removed` the images removed. */
export async function runWatchPass(ctx: IndexContext, pass: WatchPass, options: IndexOptions = {}): Promise<WatchPassSummary> {
  const started = performance.now();
  const youngSince = Date.now() - (pass.settleMs ?? 0);
  const summary: IndexSummary = { added: 0, updated: 0, skipped: 0, failed: 0, removed: 0, total: 0, seconds: 0, errors: [] };
  const aborted = (): boolean => Boolean(options.signal?.aborted);
  options = { ...options, skipHidden: true }; // as the watcher's events: dotfiles and dot folders are not followed
  if (pass.full.length > 0) merge(summary, await indexFiles(ctx, pass.full, options));
  const changed = await existingFiles(pass.changed);
  if (changed.length > 0 && !aborted()) merge(summary, await indexFiles(ctx, changed, options));
  if (pass.removed.length > 0 && !aborted()) summary.removed += await removeGone(ctx, pass.removed, pass.roots);
  if (aborted()) summary.interrupted = true;
  if (pass.settleMs) await deferYoung(summary, youngSince);
  summary.seconds = Math.round((performance.now() - started) / 10) / 100;
  return summary;
}

function merge(into: IndexSummary, s: IndexSummary): void {
  into.added += s.added;
  into.updated += s.updated;
  into.skipped += s.skipped;
  into.failed += s.failed;
  into.removed += s.removed;
  into.total += s.total;
  into.errors.push(...s.errors);
  if (s.interrupted) into.interrupted = true;
}

/** Moves the failures of files modified since `youngSince` (still being written) from `errors` to `deferred`. */
async function deferYoung(summary: WatchPassSummary, youngSince: number): Promise<void> {
  const kept: IndexSummary['errors'] = [];
  for (const e of summary.errors) {
    const mtime = await fs.stat(e.path).then((st) => st.mtimeMs, () => -Infinity);
    if (mtime >= youngSince) (summary.deferred ??= []).push(e.path);
    else kept.push(e);
  }
  summary.failed -= summary.errors.length - kept.length;
  summary.errors = kept;
}

/** The paths that are still files (one removed again since its event waits for its unlink). */
async function existingFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    try {
      if ((await fs.stat(p)).isFile()) out.push(p);
    } catch {
      // gone again: its unlink event follows
    }
  }
  return out;
}

async function isFolder(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Removes the stored paths at or under `removed` whose files are gone; returns the images removed. */
async function removeGone(ctx: IndexContext, removed: readonly string[], roots: readonly string[]): Promise<number> {
  const gone = new Set<string>();
  for (const p of removed) {
    const root = roots.filter((r) => p.startsWith(r + path.sep)).sort((a, b) => b.length - a.length)[0];
    if (root === undefined || !(await isFolder(root))) continue; // gone or unmounted meanwhile: kept
    const candidates = [...(ctx.records.idOfPath(p) === undefined ? [] : [p]), ...ctx.records.pathsUnder(p)];
    for (const c of candidates) if (!(await exists(c))) gone.add(c);
  }
  if (gone.size === 0) return 0;
  const n = ctx.records.removePaths([...gone]);
  ctx.sync.refresh();
  return n;
}
