/**
 * What a watcher (indexer/watch.ts) is doing, as `pixdex stats` and GET /api/stats report it. A
 * watching process keeps its status in `<dataDir>/watch/<pid>.json`, so a `pixdex stats` in
 * another process sees it too; files of processes that are gone (a kill -9) are ignored.
 */
import fs from 'node:fs';
import path from 'node:path';

/** A watched folder: `missing` while it is gone or unmounted (its images are kept meanwhile). */
export interface WatchedRoot {
  path: string;
  state: 'watching' | 'missing';
}

/** The last pass of a watcher: what it indexed and removed, and how long it took. */
export interface WatchPassReport {
  /** `full`: an incremental pass over whole folders (at start, when a folder came back); `changes`: the paths that changed. */
  kind: 'full' | 'changes';
  finishedAt: string;
  seconds: number;
  added: number;
  updated: number;
  removed: number;
  failed: number;
  /** Files the pass looked at (every file of a full pass, the changed ones otherwise). */
  files: number;
  interrupted: boolean;
}

/** One watching process. */
export interface WatchStatus {
  pid: number;
  roots: WatchedRoot[];
  /** `starting`: the first full pass is due or running; `pending`: changes wait for a quiet moment; `indexing`: a pass runs. */
  state: 'starting' | 'idle' | 'pending' | 'indexing' | 'stopped';
  /** Changed paths waiting for the next pass. */
  pending: number;
  passes: number;
  lastPass: WatchPassReport | null;
  startedAt: string;
  updatedAt: string;
}

/** The folder holding the status files of the watchers of a library. */
export function watchStatusDir(dataDir: string): string {
  return path.join(dataDir, 'watch');
}

/** Writes a watcher's status (atomically: a reader never sees half a file). */
export function writeWatchStatus(dataDir: string, status: WatchStatus): void {
  const dir = watchStatusDir(dataDir);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${status.pid}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(status));
  fs.renameSync(`${file}.tmp`, file);
}

/** Removes a watcher's status file (when it stops). */
export function removeWatchStatus(dataDir: string, pid: number): void {
  fs.rmSync(path.join(watchStatusDir(dataDir), `${pid}.json`), { force: true });
}

/** The statuses of the watchers still running on this library (none when nothing watches). */
export function readWatchStatuses(dataDir: string): WatchStatus[] {
  let names: string[];
  try {
    names = fs.readdirSync(watchStatusDir(dataDir)).filter((n) => /^\d+\.json$/.test(n));
  } catch {
    return [];
  }
  const out: WatchStatus[] = [];
  for (const name of names.sort()) {
    const pid = Number(name.slice(0, -5));
    if (!isAlive(pid)) continue; // killed without stopping: its file is stale
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(watchStatusDir(dataDir), name), 'utf8')) as WatchStatus);
    } catch {
      // removed or replaced meanwhile: the next read sees it
    }
  }
  return out;
}

/** Removes the status files of watchers that are gone (a new watcher tidies up after a kill -9). */
export function removeStaleWatchStatuses(dataDir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(watchStatusDir(dataDir));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^(\d+)\.json(\.tmp)?$/.exec(name)?.[1]);
    if (Number.isInteger(pid) && !isAlive(pid)) fs.rmSync(path.join(watchStatusDir(dataDir), name), { force: true });
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}
