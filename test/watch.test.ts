/**
 * Watch mode (issue 19): `pixdex index DIR --watch` and `pixdex serve --watch DIR` keep a library
 * in step with a folder. Real photos (hymenoptera) copied into a temporary folder, real CLI and
 * server processes through the real model and store:
 *  - the acceptance scenario: 50 photos copied in bursts (some written slowly, as a copy over a
 *    network would be), 5 renamed, 5 deleted: the index ends up with exactly the folder's paths,
 *    each content stored once, `pixdex check` clean; the time from the last change to a matching
 *    index is measured and printed (the target is 10 s; the machine is shared, so the test
 *    waits up to a minute and reports);
 *  - kill -9 of the watcher in the middle of a pass, changes while it is down, restart: the same
 *    end state;
 *  - in process: a rename keeps the image's id and label; a folder moved away is not a deletion;
 *  - serve --watch: the passes run as index jobs, GET /api/stats shows the watcher.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { Engine } from '../src/engine.ts';
import { FolderWatcher } from '../indexer/watch.ts';
import { runWatchPass } from '../indexer/watch-pass.ts';
import type { IndexSummary } from '../indexer/run.ts';
import { readWatchStatuses } from '../src/watch-status.ts';
import { CLI, HYM_TRAIN, MODELS, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The bound, reported against; the test itself waits up to CONVERGE_MS on a loaded machine. */
const TARGET_MS = 10_000;
const CONVERGE_MS = 60_000;
const CHILD_ENV = { ...process.env, PIXDEX_MODELS: MODELS, PIXDEX_QUERY_WORKERS: '0' };

/** `n` photos of distinct content (identical files would be aliases, not images). */
function distinctPhotos(n: number): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const f of [...imagesIn(path.join(HYM_TRAIN, 'ants')), ...imagesIn(path.join(HYM_TRAIN, 'bees'))]) {
    const h = sha(f);
    if (seen.has(h)) continue;
    seen.add(h);
    out.push(f);
    if (out.length === n) break;
  }
  assert.equal(out.length, n);
  return out;
}

function sha(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Copies `src` to `dest`; `slow`: in two halves 700 ms apart, as a copy in progress (the watcher must wait for the whole file). */
async function copy(src: string, dest: string, slow = false): Promise<void> {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  if (!slow) return fs.copyFileSync(src, dest);
  const bytes = fs.readFileSync(src);
  const half = Math.floor(bytes.length / 2);
  fs.writeFileSync(dest, bytes.subarray(0, half));
  await sleep(700);
  fs.appendFileSync(dest, bytes.subarray(half));
}

/** How the library differs from the folder: paths only on one side, contents stored twice, images without a file. */
function differences(engine: Engine, folder: string): string[] {
  const files = imagesIn(folder);
  const stored = [...engine.store.paths.getRange()].map((e) => ({ path: e.key as string, id: e.value as number }));
  const storedPaths = new Set(stored.map((s) => s.path));
  const onDisk = new Set(files);
  const problems: string[] = [];
  for (const f of files) if (!storedPaths.has(f)) problems.push(`not indexed: ${f}`);
  for (const s of stored) if (!onDisk.has(s.path)) problems.push(`indexed but gone: ${s.path}`);
  const hashes = new Map<string, number>();
  for (const { value } of engine.store.images.getRange()) {
    const rec = value as { sha256: string; path: string };
    hashes.set(rec.sha256, (hashes.get(rec.sha256) ?? 0) + 1);
  }
  for (const [h, n] of hashes) if (n > 1) problems.push(`content ${h.slice(0, 12)} stored ${n} times`);
  const distinct = new Set(files.map(sha)).size;
  if (engine.store.images.getCount() !== distinct) problems.push(`${engine.store.images.getCount()} images for ${distinct} distinct contents`);
  return problems;
}

/** Polls until the library matches the folder; returns the milliseconds it took (or throws with the differences). */
async function converge(dataDir: string, folder: string, since: number, timeoutMs = CONVERGE_MS): Promise<number> {
  const engine = await Engine.open(engineOptions(dataDir), { create: false });
  try {
    let last: string[] = [];
    while (Date.now() - since < timeoutMs) {
      last = differences(engine, folder);
      if (last.length === 0) return Date.now() - since;
      await sleep(200);
    }
    throw new Error(`the library did not match the folder ${timeoutMs} ms after the last change:\n  ${last.slice(0, 20).join('\n  ')}`);
  } finally {
    await engine.close();
  }
}

function checkClean(dataDir: string): void {
  const r = spawnSync(process.execPath, [CLI, 'check', '--data', dataDir, '--json'], { encoding: 'utf8', env: CHILD_ENV });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.ok, true, r.stdout);
}

/** A `pixdex` child; `lines` collects its stdout and stderr lines. */
function start(args: string[]): { child: ChildProcess; out: string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  for (const s of [child.stdout!, child.stderr!]) s.on('data', (b: Buffer) => out.push(...b.toString().split('\n').filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, exited };
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('watch mode: pixdex index DIR --watch', () => {
  const tmp = tempDir('pixdex-watch-');
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    tmp.cleanup();
  });

  it('50 photos in bursts, 5 renamed, 5 deleted: the index matches the folder, each content once, check clean', async (t) => {
    const folder = path.join(tmp.dir, 'accept', 'photos');
    const data = path.join(tmp.dir, 'accept', 'data');
    fs.mkdirSync(folder, { recursive: true });
    const photos = distinctPhotos(50);
    const w = start(['index', folder, '--watch', '--data', data, '--workers', '1']);
    children.push(w.child);
    await until('the watcher to start', () => w.out.some((l) => l.includes('watch: watching')));

    // 5 bursts of 10, 1.5 s apart; the first file of each burst is written slowly.
    for (let b = 0; b < 5; b++) {
      await Promise.all(photos.slice(b * 10, b * 10 + 10).map((p, i) => copy(p, path.join(folder, b % 2 ? 'sub' : '', `b${b}-${path.basename(p)}`), i === 0)));
      await sleep(1500);
    }
    const names = imagesIn(folder);
    // 5 renamed (one into another folder: a move), then 5 others deleted.
    for (const f of names.slice(0, 4)) fs.renameSync(f, f.replace(/\.jpg$/, '-renamed.jpg'));
    fs.renameSync(names[4], path.join(folder, 'moved-here.jpg'));
    for (const f of names.slice(10, 15)) fs.rmSync(f);
    const lastChange = Date.now();

    const ms = await converge(data, folder, lastChange);
    t.diagnostic(`the index matched the folder ${ms} ms after the last change (target ${TARGET_MS} ms; 50 photos, 5 renamed, 5 deleted); passes:`);
    for (const l of w.out.filter((x) => x.startsWith('watch: '))) t.diagnostic(`  ${l}`);
    const stats = JSON.parse(spawnSync(process.execPath, [CLI, 'stats', '--data', data, '--json'], { encoding: 'utf8', env: CHILD_ENV }).stdout);
    assert.equal(stats.images, 45);
    assert.equal(imagesIn(folder).length, 45);
    assert.equal(stats.watch.length, 1, 'stats shows the watching process');
    assert.equal(stats.watch[0].pid, w.child.pid);
    assert.deepEqual(stats.watch[0].roots, [{ path: folder, state: 'watching' }]);
    assert.ok(stats.watch[0].passes >= 2 && stats.watch[0].lastPass, JSON.stringify(stats.watch[0]));
    const text = spawnSync(process.execPath, [CLI, 'stats', '--data', data], { encoding: 'utf8', env: CHILD_ENV }).stdout;
    assert.match(text, new RegExp(`^watch +${folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: idle, 0 pending, \\d+ passes; last pass .*: \\d+ added, \\d+ updated, \\d+ removed, 0 failed in `, 'm'), text);
    assert.ok(ms <= TARGET_MS, `the index matched the folder ${ms} ms after the last change: over the ${TARGET_MS} ms the issue asks (is the machine busy? load ${os.loadavg()[0].toFixed(1)})`);
    checkClean(data);
    // The watcher's own delay, with no backlog to embed: one rename, one deletion, one new photo.
    const rest = imagesIn(folder);
    fs.renameSync(rest[0], path.join(folder, 'one-more-rename.jpg'));
    fs.rmSync(rest[1]);
    fs.copyFileSync(photos[10], path.join(folder, 'back-again.jpg'));
    const idle = await converge(data, folder, Date.now());
    t.diagnostic(`with no backlog (1 rename, 1 deletion, 1 new photo): matched ${idle} ms after the change`);
    // The first pass runs in the background after "watching": under load the first burst may
    // already be in the folder when it scans, so its count is not fixed; its kind is.
    const passes = w.out.filter((l) => /^watch: (?:full pass|changes): /.test(l));
    assert.match(passes[0] ?? '', /^watch: full pass: \d+ added/, `the first pass is a full pass:\n${passes.join('\n')}`);
    assert.ok(!w.out.some((l) => /failed: /.test(l)), `no file failed (half-copied files are waited for):\n${w.out.join('\n')}`);

    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.out.join('\n'));
    assert.deepEqual(readWatchStatuses(data), [], 'a stopped watcher leaves no status behind');
  });

  it('kill -9 during a pass, changes while down, restart: the same end state', async (t) => {
    const folder = path.join(tmp.dir, 'kill', 'photos');
    const data = path.join(tmp.dir, 'kill', 'data');
    fs.mkdirSync(folder, { recursive: true });
    const photos = distinctPhotos(40);
    const args = ['index', folder, '--watch', '--data', data, '--workers', '1'];
    const first = start(args);
    children.push(first.child);
    await until('the watcher to start', () => first.out.some((l) => l.includes('watch: watching')));
    for (const p of photos.slice(0, 10)) await copy(p, path.join(folder, path.basename(p)));
    // Counted from every pass: the first (full) pass runs while the burst is copied and may take
    // some of it (seen on tensorflow, whose model loads slower), the change passes the rest.
    const added = (out: string[]) => out.reduce((n, l) => n + Number(/^watch: (?:full pass|changes): (\d+) added/.exec(l)?.[1] ?? 0), 0);
    await until('the first burst to be indexed', () => added(first.out) >= 10, 60_000);
    // The second burst; kill -9 once its pass is indexing.
    for (const p of photos.slice(10, 25)) await copy(p, path.join(folder, path.basename(p)));
    const statusFile = path.join(data, 'watch', `${first.child.pid}.json`);
    const killedIndexing = await until('a pass to be indexing', () => {
      try {
        return JSON.parse(fs.readFileSync(statusFile, 'utf8')).state === 'indexing' ? true : undefined;
      } catch {
        return undefined;
      }
    }, 20_000).catch(() => false);
    await sleep(300);
    first.child.kill('SIGKILL');
    await first.exited;
    t.diagnostic(`killed ${killedIndexing ? 'during a pass' : 'without having seen a pass running'}`);
    // While nothing watches: 2 renamed, 2 deleted, 5 added.
    const names = imagesIn(folder);
    for (const f of names.slice(0, 2)) fs.renameSync(f, f.replace(/\.jpg$/, '-while-down.jpg'));
    for (const f of names.slice(5, 7)) fs.rmSync(f);
    for (const p of photos.slice(25, 30)) await copy(p, path.join(folder, 'later', path.basename(p)));

    const second = start(args);
    children.push(second.child);
    await until('the watcher to restart', () => second.out.some((l) => l.includes('watch: watching')));
    for (const p of photos.slice(30, 40)) await copy(p, path.join(folder, path.basename(p)), p === photos[30]);
    const now = imagesIn(folder);
    for (const f of now.slice(10, 13)) fs.renameSync(f, f.replace(/\.jpg$/, '-after.jpg'));
    for (const f of now.slice(20, 23)) fs.rmSync(f);
    const lastChange = Date.now();
    const ms = await converge(data, folder, lastChange);
    t.diagnostic(`after kill -9 and restart, the index matched the folder ${ms} ms after the last change`);
    assert.equal(imagesIn(folder).length, 35);
    checkClean(data);
    second.child.kill('SIGINT');
    assert.equal(await second.exited, 0, second.out.join('\n'));
  });
});

describe('watch mode in process: renames and folders that go away', () => {
  const tmp = tempDir('pixdex-watch-unit-');
  after(() => tmp.cleanup());

  it('a rename keeps the id and label; a folder moved away keeps its images, and is indexed again when back', async () => {
    const folder = path.join(tmp.dir, 'photos');
    fs.mkdirSync(folder);
    const photos = distinctPhotos(3);
    photos.forEach((p, i) => fs.copyFileSync(p, path.join(folder, `p${i}.jpg`)));
    const engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1, watch: { quietMs: 300, rootPollMs: 200 } });
    const log: string[] = [];
    const watcher = await FolderWatcher.start({
      roots: [folder],
      config: engine.config.watch,
      extensions: engine.config.extensions,
      dataDir: engine.config.dataDir,
      log: (l) => log.push(l),
      run: (pass, signal) => runWatchPass(engine, pass, { signal }),
    });
    try {
      await watcher.settled();
      assert.equal(engine.store.images.getCount(), 3);
      const id = engine.resolve(path.join(folder, 'p0.jpg'));
      engine.label(id, 'ant');

      fs.renameSync(path.join(folder, 'p0.jpg'), path.join(folder, 'renamed.jpg'));
      fs.writeFileSync(path.join(folder, '.hidden.jpg'), fs.readFileSync(photos[1])); // dotfiles are not followed
      fs.writeFileSync(path.join(folder, 'notes.txt'), 'not an image');
      await until('the rename', () => engine.store.paths.get(path.join(folder, 'renamed.jpg')) !== undefined && engine.store.paths.get(path.join(folder, 'p0.jpg')) === undefined, 20_000);
      await watcher.settled();
      assert.equal(engine.resolve(path.join(folder, 'renamed.jpg')), id, 'same image: not embedded again');
      assert.equal(engine.get(id).label, 'ant');
      assert.equal(engine.get(id).path, path.join(folder, 'renamed.jpg'));
      assert.equal(engine.store.paths.getCount(), 3, 'the dotfile is not indexed');

      // Moved away (as an unmounted folder would be): not a deletion.
      const away = path.join(tmp.dir, 'away');
      fs.renameSync(folder, away);
      await until('the folder to be seen missing', () => watcher.status.roots[0].state === 'missing', 10_000);
      assert.equal(engine.store.images.getCount(), 3, 'images of a missing folder are kept');
      assert.ok(log.some((l) => /not a deletion/.test(l)), log.join('\n'));
      assert.equal(readWatchStatuses(engine.config.dataDir)[0].roots[0].state, 'missing');
      // Back, with one file gone meanwhile: indexed again in full, the gone file dropped.
      fs.rmSync(path.join(away, 'p1.jpg'));
      fs.renameSync(away, folder);
      await until('the folder to be back', () => watcher.status.roots[0].state === 'watching', 10_000);
      await until('the pass over it', () => engine.store.paths.get(path.join(folder, 'p1.jpg')) === undefined, 20_000);
      await watcher.settled();
      assert.equal(engine.store.images.getCount(), 2);
      assert.ok(log.some((l) => /is back/.test(l)), log.join('\n'));
      fs.copyFileSync(photos[1], path.join(folder, 'p1-again.jpg')); // still watched after coming back
      await until('a new file after the return', () => engine.store.paths.get(path.join(folder, 'p1-again.jpg')) !== undefined, 20_000);
      assert.equal(engine.check().ok, true);
    } finally {
      await watcher.stop();
      await engine.close();
    }
  });

  it('a photo half-written when the first full pass meets it is taken once complete, not reported failed', async () => {
    const folder = path.join(tmp.dir, 'copying');
    fs.mkdirSync(folder);
    const [whole, slow] = distinctPhotos(2);
    fs.copyFileSync(whole, path.join(folder, 'whole.jpg'));
    const engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data-copying')), workers: 1, watch: { quietMs: 300, stableMs: 2000 } });
    const bytes = fs.readFileSync(slow);
    const copying = path.join(folder, 'copying.jpg');
    fs.writeFileSync(copying, bytes.subarray(0, bytes.length >> 1)); // the copy has begun when the watcher starts
    const log: string[] = [];
    const reports: IndexSummary[] = [];
    const watcher = await FolderWatcher.start({
      roots: [folder],
      config: engine.config.watch,
      extensions: engine.config.extensions,
      log: (l) => log.push(l),
      run: (pass, signal) => runWatchPass(engine, pass, { signal }),
      onPass: (_report, summary) => reports.push(summary),
    });
    try {
      await until('the first pass', () => reports.length > 0, 60_000);
      fs.appendFileSync(copying, bytes.subarray(bytes.length >> 1)); // the copy ends
      assert.deepEqual(reports[0].errors, [], 'a file still being written is not a failure');
      assert.equal(reports[0].added, 1);
      assert.ok(log.some((l) => /1 file\(s\) still being written/.test(l)), log.join('\n'));
      await until('the finished copy', () => engine.store.paths.get(copying) !== undefined, 30_000);
      await watcher.settled();
      assert.equal(engine.store.images.getCount(), 2);
      assert.deepEqual(reports.flatMap((r) => r.errors), [], 'no pass reported it failed');
    } finally {
      await watcher.stop();
    }
    try {
      // A truncated file that has not changed for longer than the settle time is a failure, as in `pixdex index`.
      const stalled = path.join(folder, 'stalled.jpg');
      fs.writeFileSync(stalled, bytes.subarray(0, bytes.length >> 1));
      const young = await runWatchPass(engine, { full: [], changed: [stalled], removed: [], roots: [folder], settleMs: 2000 });
      assert.deepEqual([young.failed, young.deferred], [0, [stalled]]);
      const old = new Date(Date.now() - 60_000);
      fs.utimesSync(stalled, old, old);
      const settled = await runWatchPass(engine, { full: [], changed: [stalled], removed: [], roots: [folder], settleMs: 2000 });
      assert.equal(settled.failed, 1);
      assert.match(settled.errors[0].error, /^TRUNCATED_IMAGE: /);
      assert.equal(settled.deferred, undefined);
      const plain = await runWatchPass(engine, { full: [], changed: [stalled], removed: [], roots: [folder] });
      assert.equal(plain.failed, 1, 'without settleMs nothing is deferred');
    } finally {
      await engine.close();
    }
  });
});

describe('watch mode: a folder unmounted and mounted again', () => {
  const tmp = tempDir('pixdex-watch-mount-');
  const store = path.join(tmp.dir, 'store');
  const point = path.join(tmp.dir, 'point');
  const mount = (...args: string[]) => spawnSync('mount', args, { encoding: 'utf8' });
  const umount = (dir: string) => spawnSync('umount', [dir], { encoding: 'utf8' });
  fs.mkdirSync(store);
  fs.mkdirSync(point);
  // A tmpfs holds the photos; bound onto `point`, which is then a mount point (another device than its parent).
  const can = mount('-t', 'tmpfs', 'none', store).status === 0;
  after(() => {
    umount(point);
    umount(store);
    tmp.cleanup();
  });

  it('keeps the images while unmounted, and follows the folder again once mounted', { skip: can ? false : 'mounting is not permitted here (needs root: mount -t tmpfs, mount --bind)' }, async () => {
    const photos = distinctPhotos(4);
    photos.slice(0, 3).forEach((p, i) => fs.copyFileSync(p, path.join(store, `m${i}.jpg`)));
    assert.equal(mount('--bind', store, point).status, 0);
    const engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, 'data')), workers: 1, watch: { rootPollMs: 200 } });
    const log: string[] = [];
    const watcher = await FolderWatcher.start({ roots: [point], config: engine.config.watch, extensions: engine.config.extensions, log: (l) => log.push(l), run: (pass, signal) => runWatchPass(engine, pass, { signal }) });
    try {
      await watcher.settled();
      assert.equal(engine.store.images.getCount(), 3);
      assert.equal(umount(point).status, 0);
      await until('the folder to be seen unmounted', () => watcher.status.roots[0].state === 'missing', 10_000);
      assert.deepEqual(fs.readdirSync(point), [], 'an empty mount point');
      await sleep(500);
      await watcher.settled();
      assert.equal(engine.store.images.getCount(), 3, 'unmounted is not deleted');
      fs.rmSync(path.join(store, 'm2.jpg')); // gone while unmounted
      assert.equal(mount('--bind', store, point).status, 0);
      await until('the folder to be back', () => watcher.status.roots[0].state === 'watching', 10_000);
      fs.copyFileSync(photos[3], path.join(point, 'm3.jpg'));
      await until('the pass after the return, and the new photo', () => engine.store.paths.get(path.join(point, 'm3.jpg')) !== undefined && engine.store.paths.get(path.join(point, 'm2.jpg')) === undefined, 30_000);
      await watcher.settled();
      assert.equal(engine.store.images.getCount(), 3);
      assert.equal(engine.check().ok, true);
      assert.ok(log.some((l) => /not a deletion/.test(l)) && log.some((l) => /is back/.test(l)), log.join('\n'));
    } finally {
      await watcher.stop();
      await engine.close();
    }
  });
});

describe('watch mode: pixdex serve --watch DIR', () => {
  const tmp = tempDir('pixdex-watch-serve-');
  let server: ReturnType<typeof start> | undefined;
  after(() => {
    if (server?.child.exitCode === null) server.child.kill('SIGKILL');
    tmp.cleanup();
  });

  it('indexes the folder as index jobs and shows the watcher in GET /api/stats', async () => {
    const folder = path.join(tmp.dir, 'photos');
    fs.mkdirSync(folder);
    const photos = distinctPhotos(8);
    for (const p of photos.slice(0, 4)) fs.copyFileSync(p, path.join(folder, path.basename(p)));
    server = start(['serve', '--watch', folder, '--port', '0', '--data', path.join(tmp.dir, 'data')]);
    const base = await until('the server to listen', () => server!.out.map((l) => /listening on (http:\/\/\S+)/.exec(l)?.[1]).find(Boolean));
    const stats = async () => (await fetch(`${base}/api/stats`)).json();
    await until('the first pass', () => server!.out.some((l) => /watch: full pass: 4 added/.test(l)), 60_000);
    for (const p of photos.slice(4)) fs.copyFileSync(p, path.join(folder, path.basename(p)));
    fs.rmSync(path.join(folder, path.basename(photos[0])));
    let s = await stats();
    const deadline = Date.now() + CONVERGE_MS;
    while ((s.images !== 7 || s.watch[0]?.state !== 'idle') && Date.now() < deadline) {
      await sleep(200);
      s = await stats();
    }
    assert.equal(s.images, 7, JSON.stringify(s.watch));
    assert.equal(s.watch.length, 1);
    assert.deepEqual(s.watch[0].roots, [{ path: folder, state: 'watching' }]);
    assert.equal(s.watch[0].state, 'idle');
    assert.equal(s.watch[0].pending, 0);
    assert.ok(s.watch[0].passes >= 2);
    assert.equal(s.watch[0].lastPass.kind, 'changes');
    const { jobs } = await (await fetch(`${base}/api/index`)).json();
    assert.ok(jobs.length >= 2 && jobs.every((j: { origin: string }) => j.origin === 'watch'), JSON.stringify(jobs));
    assert.deepEqual(jobs[0].paths, [folder]);
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0, server.out.join('\n'));
  });
});
