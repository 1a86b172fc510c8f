/**
 * Commands in every order (issue 21). The most natural first commands crashed the process: a
 * `stats` on a new library saved an empty HNSW snapshot (capacity 0) and the next `index` freed
 * hnswlib's memory twice. Here: those first commands through the real CLI, the sequences that
 * broke something kept as regular tests, and random sequences with SIGKILLs (fast-check, fixed
 * seed) against a model of what the library must hold (test/helpers/sequence-model.ts).
 * `node --import tsx bench/sequences.ts` runs longer sequences with any seed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { BACKEND, CLI, HYM_TRAIN, MODELS, imagesIn, tempDir } from './fixtures.ts';
import { makePool, runSequence, sequenceArb, type RunStats, type Step } from './helpers/sequence-model.ts';

/** Steps of random sequences per CI run: at least 500 on wasm (the bound); fewer on the second backend pass. */
const STEPS = Number(process.env.PIXDEX_SEQUENCE_STEPS ?? (BACKEND === 'tensorflow' ? 150 : 500));
const SEED = Number(process.env.PIXDEX_SEQUENCE_SEED ?? 21);

function pixdex(args: string[], dataDir: string) {
  const r = spawnSync(process.execPath, [CLI, ...args, '--data', dataDir, '--models', MODELS, '--backend', BACKEND], { encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.signal, null, `pixdex ${args.join(' ')} died of ${r.signal}: ${r.stderr}`);
  return r;
}

describe('the first commands on a new library', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());
  const photos = path.join(tmp.dir, 'photos');
  before(() => {
    fs.mkdirSync(photos);
    for (const f of imagesIn(path.join(HYM_TRAIN, 'ants')).slice(0, 20)) fs.copyFileSync(f, path.join(photos, path.basename(f)));
  });

  it('stats, search and check before the first index, then index, search and check: no crash', () => {
    const data = path.join(tmp.dir, 'first');
    const empty = path.join(tmp.dir, 'empty');
    fs.mkdirSync(empty);
    // Before anything was indexed there is no library: read-only commands say so and create nothing.
    for (const args of [['stats'], ['search', path.join(photos, fs.readdirSync(photos)[0])], ['check']]) {
      const r = pixdex(args, data);
      assert.equal(r.status, 3, `${args[0]} on no library: ${r.stderr}`);
      assert.match(r.stderr, /NOT_FOUND/);
      assert.equal(fs.existsSync(data), false, `${args[0]} created ${data}`);
    }
    // A library made by indexing an empty folder holds no image and an empty index.
    const made = pixdex(['index', empty, '--json'], data);
    assert.equal(JSON.parse(made.stdout).total, 0, made.stderr);
    for (const args of [['stats', '--json'], ['search', path.join(photos, fs.readdirSync(photos)[0]), '--json'], ['check', '--json']]) {
      const r = pixdex(args, data);
      assert.equal(r.status, 0, `${args[0]}: ${r.stderr}`);
    }
    const index = pixdex(['index', photos, '--json'], data);
    assert.equal(index.status, 0, index.stderr);
    assert.equal(JSON.parse(index.stdout).added, 20);
    const query = path.join(photos, fs.readdirSync(photos)[3]);
    const search = pixdex(['search', query, '--json', '--k', '3'], data);
    assert.equal(search.status, 0, search.stderr);
    assert.equal(JSON.parse(search.stdout).results[0].path, query);
    const check = pixdex(['check', '--json'], data);
    assert.equal(check.status, 0, check.stdout);
    // Shrink to nothing and grow again, each a separate process.
    for (const f of fs.readdirSync(photos)) pixdex(['remove', path.join(photos, f)], data);
    const stats = JSON.parse(pixdex(['stats', '--json'], data).stdout);
    assert.equal(stats.images, 0);
    assert.equal(JSON.parse(pixdex(['index', photos, '--json'], data).stdout).added, 20);
    assert.equal(pixdex(['check'], data).status, 0);
  });

  it('a kill in the first batch, then stats, then the resumed index: no crash, nothing twice', async () => {
    const data = path.join(tmp.dir, 'killed');
    const child = spawn(process.execPath, [CLI, 'index', photos, '--data', data, '--models', MODELS, '--backend', BACKEND, '--workers', '1'], { stdio: 'ignore' });
    // Kill once the library exists (its first batch is in the model, or not yet committed).
    const deadline = Date.now() + 60_000;
    while (!fs.existsSync(path.join(data, 'pixdex.lmdb')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.equal(pixdex(['stats'], data).status, 0);
    const resumed = pixdex(['index', photos, '--json'], data);
    assert.equal(resumed.status, 0, resumed.stderr);
    const stats = JSON.parse(pixdex(['stats', '--json'], data).stdout);
    assert.equal(stats.images, 20);
    assert.equal(pixdex(['check'], data).status, 0);
  });
});

describe('command sequences against a model of the library', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());
  let pool: Awaited<ReturnType<typeof makePool>>;
  before(async () => {
    pool = await makePool(path.join(tmp.dir, 'pool'));
  });
  const stats: RunStats = { steps: 0, kills: 0, cli: 0, seconds: 0 };

  /** Sequences that broke something once, kept as they were found (shrunk). */
  const REGRESSIONS: Array<{ name: string; steps: Step[] }> = [
    {
      name: 'stats on a new library, then index (empty HNSW snapshot of capacity 0: double free)',
      steps: [{ kind: 'stats' }, { kind: 'reopen' }, { kind: 'put', slot: 0, content: 1 }, { kind: 'index', roots: [0] }],
    },
    {
      name: 'two identical files in one run (stored twice: DUPLICATE_HASH, then STORE_INCONSISTENT)',
      steps: [{ kind: 'put', slot: 0, content: 3 }, { kind: 'put', slot: 1, content: 3 }, { kind: 'put', slot: 8, content: 3 }, { kind: 'index', roots: [0] }, { kind: 'search', content: 3, k: 2 }],
    },
    {
      name: 'a kill before the first batch committed, then stats, then index',
      steps: [{ kind: 'put', slot: 0, content: 1 }, { kind: 'put', slot: 1, content: 2 }, { kind: 'index-kill', roots: [0], afterMs: 0 }, { kind: 'stats' }, { kind: 'kill' }, { kind: 'index', roots: [0] }],
    },
    {
      name: 'two files swap their contents in one run (the second had to be embedded after all)',
      steps: [{ kind: 'put', slot: 0, content: 1 }, { kind: 'put', slot: 1, content: 2 }, { kind: 'index', roots: [0] }, { kind: 'label', pick: 0, alias: 0, label: 'ant' }, { kind: 'put', slot: 0, content: 2 }, { kind: 'put', slot: 1, content: 1 }, { kind: 'index', roots: [0] }],
    },
    {
      name: 'the own file of an image with an alias goes; the alias keeps the image and its label',
      steps: [{ kind: 'put', slot: 0, content: 4 }, { kind: 'put', slot: 15, content: 4 }, { kind: 'index', roots: [0, 2] }, { kind: 'label', pick: 0, alias: 1, label: 'bee' }, { kind: 'delete', slot: 0 }, { kind: 'index', roots: [0] }, { kind: 'remove', pick: 0, byPath: true }, { kind: 'index', roots: [2] }],
    },
    {
      name: 'a library switched to its autoencoder space, then changed, killed, labelled and searched',
      steps: [
        ...Array.from({ length: 18 }, (_, i): Step => ({ kind: 'put', slot: i, content: i })),
        { kind: 'index', roots: [0, 1, 2] },
        { kind: 'label', pick: 0, alias: 0, label: 'ant' },
        { kind: 'label', pick: 11, alias: 0, label: 'bee' },
        { kind: 'train' },
        { kind: 'search', content: 5, k: 3 },
        { kind: 'put', slot: 18, content: 19 },
        { kind: 'put', slot: 19, content: 2 },
        { kind: 'delete', slot: 3 },
        { kind: 'index-kill', roots: [2], afterMs: 150 },
        { kind: 'index', roots: [0] },
        { kind: 'propagate' },
        { kind: 'train-classifier' },
        { kind: 'classify', content: 7, method: 'both' },
        { kind: 'remove', pick: 4, byPath: false },
        { kind: 'reopen' },
        { kind: 'similar', pick: 2, k: 4 },
        { kind: 'cli', command: 'search', content: 19, roots: [0] },
      ],
    },
  ];

  for (const r of REGRESSIONS) {
    it(r.name, async () => {
      const counts: RunStats = { steps: 0, kills: 0, cli: 0, seconds: 0 };
      await runSequence(path.join(tmp.dir, 'regression'), pool, r.steps, counts);
      if (r.steps.some((s) => s.kind === 'train')) assert.equal(counts.trained, 1, 'the library trained its autoencoder');
    });
  }

  it(`random sequences, ${STEPS} steps in all, with kills and CLI processes (seed ${SEED}): the library always matches the model`, async () => {
    const started = performance.now();
    let round = 0;
    while (stats.steps < STEPS) {
      const before = stats.steps;
      await fc.assert(
        fc.asyncProperty(sequenceArb(120, round === 0), async (steps) => {
          await runSequence(path.join(tmp.dir, 'random'), pool, steps, stats);
        }),
        { seed: SEED + round, numRuns: 1, endOnFailure: Boolean(process.env.CI), verbose: 2 },
      );
      round++;
      assert.ok(stats.steps > before);
    }
    stats.seconds = (performance.now() - started) / 1000;
    console.log(`sequences: ${stats.steps} steps (${round} sequences, ${stats.kills} kills, ${stats.cli} CLI processes) in ${stats.seconds.toFixed(0)} s`);
    assert.ok(stats.kills > 0 && stats.cli > 0, 'kills and CLI processes took part');
  });
});
