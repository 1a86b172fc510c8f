/**
 * Watch mode: keeps a library in step with folders (`pixdex index DIR --watch`, `pixdex serve
 * --watch DIR`). chokidar reports new, changed, moved and deleted files; a file is taken once its
 * size has been stable for `stableMs` (no half-copied file is indexed); dotfiles and temporary
 * files are ignored. Changes are gathered until `quietMs` pass without one (or `maxWaitMs` after
 * the first), then one pass runs them through the incremental pipeline (indexer/watch-pass.ts),
 * one pass at a time. The first pass indexes the folders in full (incremental), which also
 * catches up with whatever changed while nothing watched, e.g. after a kill -9.
 *
 * A folder that goes away (unmounted, moved, deleted) is not a deletion: its images are kept,
 * removals under it are dropped with a log line, and it is checked every `rootPollMs` until it is
 * back, then indexed in full again. A folder that was a mount point at start counts as gone while
 * it is an empty mount point again (its device is its parent's).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { WatchConfig } from '../src/config.ts';
import { removeStaleWatchStatuses, removeWatchStatus, writeWatchStatus, type WatchPassReport, type WatchStatus } from '../src/watch-status.ts';
import type { IndexSummary } from './run.ts';
import type { WatchPass, WatchPassSummary } from './watch-pass.ts';

export type { WatchPass, WatchPassSummary } from './watch-pass.ts';

/** Options of `FolderWatcher.start`. */
export interface WatcherOptions {
  /** Folders to watch (absolute, existing). */
  roots: readonly string[];
  config: WatchConfig;
  /** Extensions indexed (lower case, with dot): other files are ignored. */
  extensions: readonly string[];
  /** Runs one pass (the CLI: on its engine; the server: as an index job, taking turns with HTTP jobs). */
  run: (pass: WatchPass, signal: AbortSignal) => Promise<WatchPassSummary>;
  /** One line per event worth telling (a folder gone or back, a failed pass). */
  log: (line: string) => void;
  /** Told after every pass. */
  onPass?: (report: WatchPassReport, summary: IndexSummary) => void;
  /** The library's folder: the status goes to `<dataDir>/watch/<pid>.json` for `pixdex stats`. */
  dataDir?: string;
}

/** Suffixes of files being written by another program (downloads, editors, copies in progress). */
const TEMP_SUFFIXES = ['~', '.tmp', '.temp', '.part', '.partial', '.crdownload', '.download', '.swp'];
/** Status writes while changes pour in are at most this often. */
const STATUS_EVERY_MS = 250;

interface Root {
  path: string;
  /** It was a mount point when watching started: an empty mount point again means unmounted. */
  mountPoint: boolean;
  available: boolean;
}

/** Watches folders and runs passes; `stop()` ends it (the pass in flight stops after its batch). */
export class FolderWatcher {
  private fsw?: FSWatcher;
  private readonly roots: Root[];
  /** Changed paths waiting for the next pass, the last event winning, with the time it came. */
  private readonly pending = new Map<string, { kind: 'changed' | 'removed'; at: number }>();
  /** Roots due a full pass (at start, and when one comes back). */
  private readonly full = new Set<string>();
  private quietTimer?: NodeJS.Timeout;
  private maxTimer?: NodeJS.Timeout;
  private pollTimer?: NodeJS.Timeout;
  private statusTimer?: NodeJS.Timeout;
  private passing?: Promise<void>;
  /** A timer fired while a pass ran: the next pass starts when it ends. */
  private due = false;
  private stopped = false;
  private readonly controller = new AbortController();
  readonly status: WatchStatus;

  private constructor(private readonly o: WatcherOptions, roots: Root[]) {
    this.roots = roots;
    const now = new Date().toISOString();
    this.status = { pid: process.pid, roots: roots.map((r) => ({ path: r.path, state: 'watching' })), state: 'starting', pending: 0, passes: 0, lastPass: null, startedAt: now, updatedAt: now };
  }

  /** Starts watching `roots`, then runs the first (full, incremental) pass in the background. */
  static async start(o: WatcherOptions): Promise<FolderWatcher> {
    const roots: Root[] = [];
    for (const p of o.roots) roots.push({ path: path.resolve(p), mountPoint: await isMountPoint(path.resolve(p)), available: true });
    const w = new FolderWatcher(o, roots);
    if (o.dataDir) removeStaleWatchStatuses(o.dataDir);
    w.publish(true);
    await w.watchRoots(roots.map((r) => r.path));
    for (const r of roots) w.full.add(r.path);
    w.fire();
    w.pollTimer = setInterval(() => void w.pollRoots(), o.config.rootPollMs);
    return w;
  }

  /** Resolves when no pass runs and none is waiting (tests, and callers that want a settled library). */
  async settled(): Promise<void> {
    while (this.passing || this.pending.size > 0 || this.full.size > 0) {
      await (this.passing ?? new Promise((resolve) => setTimeout(resolve, 50)));
    }
  }

  /** Stops watching; the pass in flight stops after the batches it has in flight (what they wrote is kept). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.quietTimer);
    clearTimeout(this.maxTimer);
    clearInterval(this.pollTimer);
    clearTimeout(this.statusTimer);
    this.controller.abort();
    await this.fsw?.close();
    await this.passing;
    this.status.state = 'stopped';
    if (this.o.dataDir) removeWatchStatus(this.o.dataDir, process.pid);
  }

  // ------------------------------------------------------------------ events

  private async watchRoots(paths: string[]): Promise<void> {
    if (!this.fsw) {
      const exts = new Set(this.o.extensions);
      const roots = new Set(this.roots.map((r) => r.path));
      this.fsw = watch(paths, {
        ignoreInitial: true,
        persistent: true,
        followSymlinks: true,
        awaitWriteFinish: { stabilityThreshold: this.o.config.stableMs, pollInterval: Math.min(100, this.o.config.stableMs) },
        ignored: (p, stats) => !roots.has(p) && (isHiddenOrTemp(p) || Boolean(stats?.isFile() && !exts.has(path.extname(p).toLowerCase()))),
      });
      this.fsw.on('add', (p) => this.onEvent(p, 'changed', exts));
      this.fsw.on('change', (p) => this.onEvent(p, 'changed', exts));
      this.fsw.on('unlink', (p) => this.onEvent(p, 'removed', exts));
      this.fsw.on('unlinkDir', (p) => this.onEvent(p, 'removed'));
      this.fsw.on('error', (err) => this.o.log(`watch: error: ${err instanceof Error ? err.message : String(err)}`));
      await new Promise<void>((resolve) => this.fsw!.once('ready', () => resolve()));
    } else {
      this.fsw.unwatch(paths);
      this.fsw.add(paths);
    }
  }

  private onEvent(p: string, kind: 'changed' | 'removed', exts?: Set<string>): void {
    if (this.stopped || (exts && !exts.has(path.extname(p).toLowerCase()))) return;
    if (this.roots.some((r) => r.path === p)) return; // a root that goes is handled by pollRoots
    this.pending.delete(p); // re-inserted last: the map keeps the order changes came in
    this.pending.set(p, { kind, at: Date.now() });
    this.status.pending = this.pending.size;
    if (this.status.state === 'idle') this.status.state = 'pending';
    this.publish();
    clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.fire(), this.o.config.quietMs);
    this.maxTimer ??= setTimeout(() => this.fire(), this.o.config.maxWaitMs);
  }

  // ------------------------------------------------------------------ passes

  private fire(): void {
    clearTimeout(this.quietTimer);
    clearTimeout(this.maxTimer);
    this.quietTimer = this.maxTimer = undefined;
    if (this.stopped) return;
    if (this.passing) {
      this.due = true;
      return;
    }
    this.passing = this.pass().finally(() => {
      this.passing = undefined;
      if (this.due) {
        this.due = false;
        this.fire();
      }
    });
  }

  private async pass(): Promise<void> {
    await this.checkRoots();
    const available = (root: string): boolean => this.roots.some((r) => r.path === root && r.available);
    const full = [...this.full].filter(available);
    this.full.clear();
    const pass: WatchPass = { full, changed: [], removed: [], roots: this.roots.map((r) => r.path), settleMs: this.o.config.stableMs };
    let dropped = 0;
    const young = Date.now() - this.holdMs();
    for (const [p, { kind, at }] of this.pending) {
      // A rename is an unlink now and an add once the new name's size has been stable: a removal
      // waits for that add, so the new path becomes an alias before the old one goes (same id, no new embedding).
      if (kind === 'removed' && at > young) continue;
      this.pending.delete(p);
      const root = this.rootOf(p);
      if (!root || !root.available) {
        if (kind === 'removed') dropped++;
        continue; // the full pass when it is back takes whatever changed meanwhile
      }
      if (full.includes(root.path)) continue;
      (kind === 'changed' ? pass.changed : pass.removed).push(p);
    }
    if (this.pending.size > 0) this.quietTimer ??= setTimeout(() => this.fire(), this.holdMs());
    this.status.pending = this.pending.size;
    if (dropped > 0) this.o.log(`watch: ${dropped} removal(s) under a missing folder ignored: a folder that is gone or unmounted is not a deletion; its images are kept`);
    if (full.length + pass.changed.length + pass.removed.length === 0) {
      this.setState(this.pending.size > 0 ? 'pending' : 'idle');
      return;
    }
    this.setState(full.length > 0 && this.status.passes === 0 ? 'starting' : 'indexing');
    try {
      const summary = await this.o.run(pass, this.controller.signal);
      const report: WatchPassReport = {
        kind: full.length > 0 ? 'full' : 'changes',
        finishedAt: new Date().toISOString(),
        seconds: summary.seconds,
        added: summary.added,
        updated: summary.updated,
        removed: summary.removed,
        failed: summary.failed,
        files: summary.total + pass.removed.length,
        interrupted: Boolean(summary.interrupted),
      };
      if (summary.deferred?.length) {
        // Met half-written (the full pass scans without chokidar's wait for a stable size): taken again once settled.
        this.o.log(`watch: ${summary.deferred.length} file(s) still being written, taken again once their size is stable`);
        for (const p of summary.deferred) this.onEvent(p, 'changed');
      }
      this.status.passes++;
      this.status.lastPass = report;
      this.o.onPass?.(report, summary);
      if (summary.interrupted && !this.stopped) {
        // Cancelled from outside (DELETE /api/index/:jobId): what it did not do is not lost.
        this.o.log(`watch: the pass was cancelled; the folders get a full (incremental) pass in ${Math.round(this.o.config.maxWaitMs / 1000)} s`);
        this.retryInFull();
      }
    } catch (err) {
      // Nothing is lost: the folders get a full pass (incremental) when the next change comes or the retry is due.
      this.o.log(`watch: the pass failed, retrying in ${Math.round(this.o.config.maxWaitMs / 1000)} s with a full pass: ${err instanceof Error ? err.message : String(err)}`);
      this.retryInFull();
    }
    this.setState(this.pending.size > 0 || this.full.size > 0 ? 'pending' : 'idle');
  }

  /** Every folder gets a full pass after `maxWaitMs` (after a failed or cancelled pass). */
  private retryInFull(): void {
    for (const r of this.roots) this.full.add(r.path);
    this.maxTimer ??= setTimeout(() => this.fire(), this.o.config.maxWaitMs);
  }

  /** How long a removal waits for the add of a rename: the write-finish wait and its polls, and a margin. */
  private holdMs(): number {
    return this.o.config.stableMs + 2 * Math.min(100, this.o.config.stableMs) + 250;
  }

  private rootOf(p: string): Root | undefined {
    return this.roots.find((r) => p === r.path || p.startsWith(r.path + path.sep));
  }

  // ------------------------------------------------------------------ roots gone and back

  /** Updates each root's availability; one that came back is watched again and due a full pass. */
  private async checkRoots(): Promise<boolean> {
    let back = false;
    let changed = false;
    for (const r of this.roots) {
      const now = await isAvailable(r);
      if (now === r.available) continue;
      r.available = now;
      changed = true;
      if (!now) {
        this.o.log(`watch: ${r.path} is gone or unmounted: not a deletion, its images are kept; checking every ${Math.round(this.o.config.rootPollMs / 100) / 10} s for it to come back`);
      } else {
        this.o.log(`watch: ${r.path} is back: indexing it again (incremental)`);
        this.full.add(r.path);
        if (this.fsw && !this.stopped) await this.watchRoots([r.path]);
        back = true;
      }
    }
    this.status.roots = this.roots.map((r) => ({ path: r.path, state: r.available ? 'watching' : 'missing' }));
    if (changed) this.publish(true);
    return back;
  }

  private async pollRoots(): Promise<void> {
    if (this.stopped) return;
    if (await this.checkRoots()) this.fire();
  }

  // ------------------------------------------------------------------ status

  private setState(state: WatchStatus['state']): void {
    this.status.state = this.stopped ? 'stopped' : state;
    this.status.pending = this.pending.size;
    this.publish(true);
  }

  /** Writes the status file now, or soon when changes pour in. */
  private publish(now = false): void {
    if (!this.o.dataDir || this.stopped) return;
    const write = (): void => {
      this.statusTimer = undefined;
      if (this.stopped) return;
      this.status.updatedAt = new Date().toISOString();
      try {
        writeWatchStatus(this.o.dataDir!, this.status);
      } catch (err) {
        this.o.log(`watch: cannot write the status for pixdex stats: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    if (now) {
      clearTimeout(this.statusTimer);
      write();
    } else {
      this.statusTimer ??= setTimeout(write, STATUS_EVERY_MS);
    }
  }
}

/** Dotfiles and dot folders, and files another program is still writing under a temporary name. */
function isHiddenOrTemp(p: string): boolean {
  const name = path.basename(p);
  return name.startsWith('.') || TEMP_SUFFIXES.some((s) => name.toLowerCase().endsWith(s));
}

/** A folder on another device than its parent (or the file system's root). */
async function isMountPoint(dir: string): Promise<boolean> {
  try {
    const [st, parent] = await Promise.all([fs.stat(dir), fs.stat(path.dirname(dir))]);
    return st.dev !== parent.dev || st.ino === parent.ino;
  } catch {
    return false;
  }
}

/** A root is there: a readable folder, and (if it was a mount point) still mounted. */
async function isAvailable(r: Root): Promise<boolean> {
  try {
    const st = await fs.stat(r.path);
    if (!st.isDirectory()) return false;
    await fs.access(r.path, fs.constants.R_OK | fs.constants.X_OK);
    return !r.mountPoint || (await isMountPoint(r.path));
  } catch {
    return false;
  }
}
