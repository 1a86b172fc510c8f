/**
 * Crash safety: `pixdex index` is SIGKILLed again and again, at seeded random points — in
 * mid-inference, inside a batch's LMDB transaction (before commit, and between two of its
 * vectors), while the HNSW index is serialised, inside a snapshot transaction, and at random
 * moments — and re-run each time. After every kill the store must open and `checkStore` must
 * find nothing wrong; the run that finally completes must give a store whose search results
 * are those of an uninterrupted run over the same files (same paths, scores within 1e-6).
 *
 * The kill points inside the process come from test/helpers/crash-child.ts (the real CLI with
 * its methods wrapped); PIXDEX_SNAPSHOT_EVERY=16 makes a snapshot follow every batch.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { checkStore } from '../src/store/check.ts';
import { Engine } from '../src/engine.ts';
import { rng } from './helpers/hostile-corpus.ts';
import { BACKEND, CLI, HYM_TRAIN, HYM_VAL, MODELS, REPO, engineOptions, imagesIn, tempDir } from './fixtures.ts';

const SEED = 6_2024;
const CHILD = path.join(REPO, 'test', 'helpers', 'crash-child.ts');
const ENV = { ...process.env, PIXDEX_MODELS: MODELS, PIXDEX_BACKEND: BACKEND, PIXDEX_SNAPSHOT_EVERY: '16' };
const BATCH = 16;

interface Outcome {
  /** Signal the run died of (SIGKILL), or null when it exited. */
  signal: NodeJS.Signals | null;
  code: number | null;
  stdout: string;
  /** The "@@..." lines the child printed. */
  markers: string[];
}

/**
 * Runs the indexer through crash-child with a kill point. `external` kills it from here: after
 * the `afterEmbed`-th inference batch starts (plus `delayMs`), or `delayMs` after the start.
 */
function runIndexer(args: string[], point: string, external?: { afterEmbed?: number; delayMs: number }): Promise<Outcome> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, point, ...args], { cwd: REPO, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const markers: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const kill = (): void => void child.kill('SIGKILL');
  if (external && external.afterEmbed === undefined) timer = setTimeout(kill, external.delayMs);
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
    const lines = stderr.split('\n');
    stderr = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('@@')) continue;
      markers.push(line.slice(2));
      if (external?.afterEmbed !== undefined && line === `@@embed ${external.afterEmbed}` && !timer) timer = setTimeout(kill, external.delayMs);
    }
  });
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ signal, code, stdout, markers });
    });
  });
}

/** Opens the store, checks it, and closes it without writing (no snapshot on close). */
async function checkedImages(dataDir: string): Promise<number> {
  const engine = await Engine.open(engineOptions(dataDir));
  try {
    const report = checkStore(engine);
    assert.deepEqual(report.problems, [], `check after a kill: ${JSON.stringify(report.counts)}`);
    assert.equal(report.vectors, report.images);
    assert.equal(report.index.size, report.images);
    return report.images;
  } finally {
    await engine.store.close();
  }
}

describe('pixdex index killed with SIGKILL at random points', () => {
  const tmp = tempDir('pixdex-crash-');
  const lib = path.join(tmp.dir, 'library');
  const refLib = path.join(tmp.dir, 'reference-library');
  const data = path.join(tmp.dir, 'crashed');
  const reference = path.join(tmp.dir, 'reference');
  // 80 photos (5 batches), both classes, labelled from their folders.
  // Enough photos that a kill which misses (the run finished first) cannot use up the library
  // before every kind of kill has had its turn: each turn may grow it by up to two batches.
  const files = [...imagesIn(HYM_VAL), ...imagesIn(HYM_TRAIN)].filter((_, i) => i % 2 === 0);
  const indexArgs = (dataDir: string, folder = lib) => ['index', folder, '--data', dataDir, '--workers', '1', '--label-from-folder', '--json'];

  /** Copies the first `n` photos into the library folder (the crashed runs see it grow). */
  const copyLibrary = (n: number, into = lib): void => {
    for (const f of files.slice(0, n)) {
      const dest = path.join(into, path.basename(path.dirname(f)), path.basename(f));
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      if (!fs.existsSync(dest)) fs.copyFileSync(f, dest);
    }
  };
  before(() => copyLibrary(files.length, refLib));
  after(() => tmp.cleanup());

  it('ends, after every kill and at last, with a consistent store that searches like an uninterrupted run', async () => {
    const ref = await runIndexer(indexArgs(reference, refLib), 'none');
    assert.equal(ref.code, 0, ref.stdout);
    assert.equal(JSON.parse(ref.stdout).added, files.length);

    const r = rng(SEED);
    const pick = (n: number): number => 1 + Math.floor(r() * n);
    // The kinds of kill in order; each is fitted to the work left when its turn comes. The
    // end-of-run snapshot only has something to save when the last batch is a partial one, so
    // that kill waits until less than a batch is left.
    const plan = ['embed', 'write', 'write-mid', 'snapshot', 'time', 'serialize', 'final-snapshot', 'embed', 'write-mid', 'write', 'snapshot', 'time', 'serialize'];
    const killed: string[] = [];
    const missed: string[] = [];
    const log: string[] = [];
    let stored = 0;
    let copied = 0;
    for (let turn = 0; turn < plan.length; turn++) {
      const kind = plan[turn];
      if (stored === copied) {
        // All indexed so far: the library grows (less than a batch when the end-of-run snapshot is next).
        if (copied === files.length) break;
        copied = Math.min(files.length, copied + (kind === 'final-snapshot' ? pick(BATCH - 1) : BATCH + pick(BATCH)));
        copyLibrary(copied);
      }
      const left = copied - stored;
      if (kind === 'final-snapshot' && left >= BATCH) {
        if (turn < plan.length - 1) plan.push(kind);
        continue;
      }
      const batches = Math.ceil(left / BATCH);
      let outcome: Outcome;
      let what: string;
      if (kind === 'embed') {
        const at = pick(Math.min(batches, 2));
        const delayMs = Math.floor(r() * 400);
        what = `embed ${at} +${delayMs}ms`;
        outcome = await runIndexer(indexArgs(data), 'none', { afterEmbed: at, delayMs });
      } else if (kind === 'time') {
        const delayMs = 1000 + Math.floor(r() * 4000);
        what = `time ${delayMs}ms`;
        outcome = await runIndexer(indexArgs(data), 'none', { delayMs });
      } else {
        what = kind === 'write-mid' ? `write-mid:1:${pick(Math.min(BATCH, left))}` : kind === 'final-snapshot' ? kind : `${kind}:1`;
        outcome = await runIndexer(indexArgs(data), what);
        if (outcome.signal === 'SIGKILL') assert.ok(outcome.markers.includes(`kill ${what}`), `${what}: killed elsewhere (${outcome.markers.join(', ')})`);
      }
      if (outcome.signal === 'SIGKILL') killed.push(what);
      else {
        assert.equal(outcome.code, 0, `${what}: exit ${outcome.code} ${outcome.stdout}`);
        missed.push(what);
      }
      stored = await checkedImages(data);
      log.push(`${what}: ${outcome.signal ?? `exit ${outcome.code}`}, ${stored} stored`);
    }
    copyLibrary(files.length);
    const finished = await runIndexer(indexArgs(data), 'none');
    assert.equal(finished.code, 0, finished.stdout);
    const summary = JSON.parse(finished.stdout);
    assert.equal(summary.failed, 0);
    assert.equal(summary.added + summary.skipped, files.length);

    // Kills happened at each kind of point, and enough of them.
    process.stderr.write(`# ${killed.length} kills survived: ${killed.join('; ')}${missed.length ? ` (run finished before: ${missed.join('; ')})` : ''}\n`);
    assert.ok(killed.length >= 8, `only ${killed.length} kills: ${log.join('; ')}`);
    for (const kind of ['embed', 'write:', 'write-mid:', 'snapshot:', 'serialize:', 'final-snapshot']) assert.ok(killed.some((k) => k.startsWith(kind)), `no kill at ${kind}`);

    // The CLI's own check agrees.
    const cli = spawnSync(process.execPath, [CLI, 'check', '--data', data, '--json'], { encoding: 'utf8', env: ENV });
    assert.equal(cli.status, 0, cli.stdout + cli.stderr);
    assert.equal(JSON.parse(cli.stdout).images, files.length);

    // Same search results as the uninterrupted run, for every image as the query.
    const a = await Engine.open(engineOptions(reference));
    const b = await Engine.open(engineOptions(data));
    try {
      assert.deepEqual(checkStore(b).problems, []);
      assert.deepEqual(b.labels(), a.labels());
      let compared = 0;
      const rel = (root: string) => (x: { path: string }) => path.relative(root, x.path);
      for (const { key: file, value: id } of a.store.paths.getRange()) {
        const query = a.store.getVector(id)!;
        const want = a.searchVector(query, { k: 10 });
        const got = b.searchVector(query, { k: 10 });
        assert.deepEqual(got.map(rel(lib)), want.map(rel(refLib)), `results for ${file}`);
        got.forEach((x, i) => assert.ok(Math.abs(x.score - want[i].score) <= 1e-6, `${file}: score ${x.score} vs ${want[i].score}`));
        assert.deepEqual(got.map((x) => x.label), want.map((x) => x.label));
        compared++;
      }
      assert.equal(compared, files.length);
    } finally {
      await a.store.close();
      await b.store.close();
    }
  });
});
