/**
 * Model-based testing of command sequences (issue 21), shared by test/sequences.test.ts (a fixed
 * seed, bounded) and bench/sequences.ts (longer, any seed).
 *
 * A real library (a child process running the engine, test/helpers/sequence-driver.ts, plus the
 * real CLI as separate processes) is driven by random sequences of steps: files appear, change
 * and go in three overlapping folders; `index` (also killed with SIGKILL at a random moment),
 * `remove`, `label`, `search`, `similar`, `classify`, `stats`, `check`, `train`,
 * `train-classifier`, `label propagate` + accept, reopen, SIGKILL between commands, and CLI
 * commands from another process. A simple model says what the library must hold: which paths
 * are indexed with which content (identical content is one image, its paths its aliases) and the
 * labels. After every step the store must open, `check` must be clean, searches must return only
 * live images, and images, paths and labels must match the model.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import fc from 'fast-check';
import sharp from 'sharp';
import type { DriverCommand, LibraryState } from './sequence-driver.ts';
import { BACKEND, CLI, HYM_TRAIN, MODELS, REPO, imagesIn } from '../fixtures.ts';

/** Distinct real photos in the pool (train needs 16 images: the pool can exceed that). */
export const POOL_SIZE = 20;
const BAD = -1; // a truncated JPEG: never indexed, always reported
const ROOTS = ['A', 'A/sub', 'B'] as const;
const SLOTS = [
  ...['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8'].map((n) => `A/${n}.jpg`),
  ...['s1', 's2', 's3', 's4', 's5', 's6'].map((n) => `A/sub/${n}.jpg`),
  ...['b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8'].map((n) => `B/${n}.jpg`),
];
const LABELS = ['ant', 'bee', 'other'] as const;

export type Step =
  | { kind: 'put'; slot: number; content: number }
  | { kind: 'delete'; slot: number }
  | { kind: 'index'; roots: number[] }
  | { kind: 'index-kill'; roots: number[]; afterMs: number }
  | { kind: 'remove'; pick: number; byPath: boolean }
  | { kind: 'label'; pick: number; alias: number; label: string | null }
  | { kind: 'search'; content: number; k: number }
  | { kind: 'similar'; pick: number; k: number }
  | { kind: 'classify'; content: number; method: 'knn' | 'head' | 'both' }
  | { kind: 'stats' }
  | { kind: 'check' }
  | { kind: 'train' }
  | { kind: 'train-classifier' }
  | { kind: 'propagate' }
  | { kind: 'reopen' }
  | { kind: 'kill' }
  | { kind: 'cli'; command: 'stats' | 'check' | 'search' | 'index'; content: number; roots: number[] };

const roots = fc.uniqueArray(fc.integer({ min: 0, max: ROOTS.length - 1 }), { minLength: 1, maxLength: 3 });
const slot = fc.integer({ min: 0, max: SLOTS.length - 1 });
const content = fc.integer({ min: 0, max: POOL_SIZE - 1 });
const pick = fc.nat(1000);

/** One random step, weighted so that the library grows, changes and is queried. */
export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('put' as const), slot, content: fc.oneof({ weight: 12, arbitrary: content }, { weight: 1, arbitrary: fc.constant(BAD) }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), slot }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('index' as const), roots }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('index-kill' as const), roots, afterMs: fc.integer({ min: 0, max: 1500 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick, byPath: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('label' as const), pick, alias: pick, label: fc.constantFrom<string | null>(...LABELS, null) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('search' as const), content, k: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('similar' as const), pick, k: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('classify' as const), content, method: fc.constantFrom('knn' as const, 'head' as const, 'both' as const) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'stats' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'check' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'train-classifier' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'propagate' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'kill' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cli' as const), command: fc.constantFrom('stats' as const, 'check' as const, 'search' as const, 'index' as const), content, roots }) },
);

/** `train` is slow (it re-embeds the library): a sequence holds it at most once, when asked. */
export function sequenceArb(maxLength: number, withTrain: boolean): fc.Arbitrary<Step[]> {
  const steps = fc.array(stepArb, { minLength: 1, maxLength, size: 'max' });
  if (!withTrain) return steps;
  return fc.tuple(steps, fc.nat(maxLength)).map(([s, at]) => [...s.slice(0, at), { kind: 'train' as const }, ...s.slice(at)]);
}

/** The pool of real photos (shrunk: decoding stays cheap) and a truncated one, made once. */
export async function makePool(dir: string): Promise<{ files: string[]; bad: string; sha: string[] }> {
  fs.mkdirSync(dir, { recursive: true });
  const sources = [...imagesIn(path.join(HYM_TRAIN, 'ants')).slice(0, POOL_SIZE / 2), ...imagesIn(path.join(HYM_TRAIN, 'bees')).slice(0, POOL_SIZE / 2)];
  const files: string[] = [];
  const sha: string[] = [];
  for (const [i, src] of sources.entries()) {
    const bytes = await sharp(src).rotate().resize(192, 192, { fit: 'inside' }).jpeg({ quality: 85 }).toBuffer();
    const file = path.join(dir, `p${i}.jpg`);
    fs.writeFileSync(file, bytes);
    files.push(file);
    sha.push(createHash('sha256').update(bytes).digest('hex'));
  }
  const bad = path.join(dir, 'bad.jpg');
  const whole = fs.readFileSync(files[0]);
  fs.writeFileSync(bad, whole.subarray(0, Math.floor(whole.length * 0.4)));
  assert.equal(new Set(sha).size, POOL_SIZE, 'the pool photos are distinct');
  return { files, bad, sha };
}

/** The engine in a child process that can be killed at any moment. */
class Driver {
  private child!: ChildProcessWithoutNullStreams;
  private lines!: AsyncIterator<string>;
  private stderr = '';

  constructor(private readonly dataDir: string) {}

  async start(): Promise<void> {
    this.stderr = '';
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/helpers/sequence-driver.ts'), this.dataDir, MODELS, BACKEND], { cwd: REPO, stdio: 'pipe' });
    this.child.stderr.on('data', (d) => (this.stderr += d));
    this.lines = readline.createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
    const first = await this.next();
    assert.equal(first, '@@ready', `the driver did not start: ${first}\n${this.stderr}`);
  }

  private async next(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) {
      const code = await this.exitCode();
      throw new Error(`the driver died (exit ${code.code}, signal ${code.signal}): ${this.stderr.slice(-2000)}`);
    }
    return r.value;
  }

  private exitCode(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve({ code: this.child.exitCode, signal: this.child.signalCode });
    return new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  send(command: DriverCommand): void {
    this.child.stdin.write(JSON.stringify(command) + '\n');
  }

  async call(command: DriverCommand): Promise<{ ok: true; value: any } | { ok: false; code: string; message: string }> {
    this.send(command);
    const reply = JSON.parse(await this.next());
    if (!reply.ok && reply.code === 'UNEXPECTED') throw new Error(`${command.op}: unexpected error: ${reply.message}`);
    return reply;
  }

  async value(command: DriverCommand): Promise<any> {
    const reply = await this.call(command);
    if (!reply.ok) throw new Error(`${command.op} failed: ${reply.code}: ${reply.message}`);
    return reply.value;
  }

  /** SIGKILL, then wait until it is gone; a native crash before the kill is an error. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      const { signal, code } = await this.exitCode();
      assert.ok(signal === 'SIGKILL', `the driver ended by itself (exit ${code}, signal ${signal}) before it was killed: ${this.stderr.slice(-2000)}`);
    }
  }

  /** Closes the library properly (snapshot saved) and ends the process. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin.end();
    const { code, signal } = await this.exitCode();
    assert.equal(code, 0, `the driver exited with ${code} (${signal}): ${this.stderr.slice(-2000)}`);
  }
}

/** What the library must hold. */
class Model {
  /** Files on disk: slot → content (BAD for the truncated one). */
  disk = new Map<number, number>();
  /** Indexed paths (absolute) → their content. */
  lib = new Map<string, number>();
  /** Labels by content; '?' when the order of one run decides it (then learnt from the store). */
  labels = new Map<number, string>();

  contents(): Set<number> {
    return new Set(this.lib.values());
  }

  pathsOf(c: number): string[] {
    return [...this.lib].filter(([, x]) => x === c).map(([p]) => p).sort();
  }

  dropContentIfGone(c: number): void {
    if (![...this.lib.values()].includes(c)) this.labels.delete(c);
  }
}

export interface RunStats {
  steps: number;
  kills: number;
  cli: number;
  /** `train` runs that trained (16 images or more) and switched the library's space. */
  trained?: number;
  seconds: number;
}

/** Runs one sequence on a fresh library under `root`; throws on the first broken rule. */
export async function runSequence(root: string, pool: { files: string[]; bad: string; sha: string[] }, steps: Step[], stats: RunStats, log?: (line: string) => void): Promise<void> {
  fs.rmSync(root, { recursive: true, force: true });
  const photos = path.join(root, 'photos');
  for (const r of ROOTS) fs.mkdirSync(path.join(photos, r), { recursive: true });
  const dataDir = path.join(root, 'data');
  const model = new Model();
  const driver = new Driver(dataDir);
  const abs = (slot: number) => path.join(photos, SLOTS[slot]);
  let mtime = 1_700_000_000;
  let state: LibraryState = { images: [], labels: {}, suggestions: [], space: 'backbone' };
  await driver.start();
  try {
    for (const [n, step] of steps.entries()) {
      const started = performance.now();
      try {
        await apply(step);
        await verify();
      } catch (err) {
        (err as Error).message = `step ${n} ${JSON.stringify(step)}: ${(err as Error).message}`;
        throw err;
      }
      stats.steps++;
      log?.(`${n} ${step.kind} ${Math.round(performance.now() - started)} ms`);
    }
  } finally {
    await driver.kill().catch(() => undefined);
  }

  /** The image (from the last state) a random `pick` names, or undefined in an empty library. */
  function picked(p: number): LibraryState['images'][number] | undefined {
    return state.images.length === 0 ? undefined : state.images[p % state.images.length];
  }

  function contentOf(sha: string): number {
    const c = pool.sha.indexOf(sha);
    assert.ok(c >= 0, `the store holds content that is no pool photo (${sha})`);
    return c;
  }

  /** What `pixdex index` of `rootIdx` does to the model; returns the bad files it must report. */
  function indexModel(rootIdx: number[]): number {
    const dirs = rootIdx.map((r) => path.join(photos, ROOTS[r]));
    const under = (p: string) => dirs.some((d) => p.startsWith(d + path.sep));
    let bad = 0;
    const seen = new Set<string>();
    for (const [s, c] of [...model.disk].sort((a, b) => (SLOTS[a[0]] < SLOTS[b[0]] ? -1 : 1))) {
      const p = abs(s);
      if (!under(p) || seen.has(p)) continue;
      seen.add(p);
      if (c === BAD) {
        bad++;
        continue; // reported; an earlier good version of the file stays indexed
      }
      const old = model.lib.get(p);
      if (old === c) continue;
      if (old !== undefined) {
        // Which of two changes in one run is written first decides where a label goes: learnt.
        const uncertain = model.labels.has(old) || model.labels.has(c);
        model.lib.set(p, c);
        model.dropContentIfGone(old);
        if (uncertain) {
          if (model.contents().has(old)) model.labels.set(old, '?');
          model.labels.set(c, '?');
        }
      } else {
        model.lib.set(p, c);
      }
    }
    for (const p of [...model.lib.keys()]) {
      if (!under(p)) continue;
      const s = SLOTS.findIndex((x) => path.join(photos, x) === p);
      if (!model.disk.has(s)) {
        const c = model.lib.get(p)!;
        model.lib.delete(p);
        model.dropContentIfGone(c);
      }
    }
    return bad;
  }

  function checkIndexSummary(summary: { failed: number; errors: Array<{ path: string; error: string }> }, bad: number): void {
    assert.equal(summary.failed, bad, `failures: ${JSON.stringify(summary.errors)}`);
    for (const e of summary.errors) assert.match(e.error, /^(TRUNCATED_IMAGE|CORRUPT_IMAGE):/);
  }

  function checkHits(hits: Array<{ id: number; score: number }>, k: number, excluded?: number): void {
    const live = new Set(state.images.map((i) => i.id));
    for (const h of hits) assert.ok(live.has(h.id), `search returned ${h.id}, which is no live image`);
    assert.equal(new Set(hits.map((h) => h.id)).size, hits.length, 'an image came back twice');
    if (excluded !== undefined) assert.ok(!hits.some((h) => h.id === excluded), 'similar returned the image itself');
    const expected = Math.min(k, live.size - (excluded === undefined ? 0 : 1));
    assert.equal(hits.length, expected, `expected ${expected} results of ${live.size} images`);
  }

  async function restartAfterKill(): Promise<void> {
    stats.kills++;
    await driver.kill();
    await driver.start(); // the store must open after a kill at any moment
    const check = await driver.value({ op: 'check' });
    assert.ok(check.ok, `check after a kill: ${JSON.stringify(check)}`);
  }

  function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
    stats.cli++;
    const r = spawnSync(process.execPath, [CLI, ...args, '--data', dataDir, '--models', MODELS, '--backend', BACKEND, '--json'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, PIXDEX_WORKERS: '1' } });
    assert.ok(r.signal === null, `pixdex ${args.join(' ')} died of ${r.signal}: ${r.stderr}`);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async function apply(step: Step): Promise<void> {
    switch (step.kind) {
      case 'put': {
        const p = abs(step.slot);
        fs.copyFileSync(step.content === BAD ? pool.bad : pool.files[step.content], p);
        fs.utimesSync(p, ++mtime, ++mtime); // every change is seen (size and mtime)
        model.disk.set(step.slot, step.content);
        return;
      }
      case 'delete':
        fs.rmSync(abs(step.slot), { force: true });
        model.disk.delete(step.slot);
        return;
      case 'index': {
        const summary = await driver.value({ op: 'index', roots: step.roots.map((r) => path.join(photos, ROOTS[r])) });
        checkIndexSummary(summary, indexModel(step.roots));
        return;
      }
      case 'index-kill': {
        const command: DriverCommand = { op: 'index', roots: step.roots.map((r) => path.join(photos, ROOTS[r])) };
        driver.send(command);
        await new Promise((r) => setTimeout(r, step.afterMs));
        await restartAfterKill();
        // The user runs it again: it carries on where the kill left it.
        checkIndexSummary(await driver.value(command), indexModel(step.roots));
        return;
      }
      case 'remove': {
        const img = picked(step.pick);
        if (!img) {
          const r = await driver.call({ op: 'remove', ref: 99999 });
          assert.ok(!r.ok && r.code === 'NOT_FOUND');
          return;
        }
        await driver.value({ op: 'remove', ref: step.byPath ? img.path : img.id });
        const c = contentOf(img.sha256);
        for (const p of model.pathsOf(c)) model.lib.delete(p);
        model.labels.delete(c);
        return;
      }
      case 'label': {
        const img = picked(step.pick);
        if (!img) return;
        const ref = img.paths[step.alias % img.paths.length]; // an alias names the same image
        await driver.value({ op: 'label', ref, label: step.label });
        const c = contentOf(img.sha256);
        if (step.label === null) model.labels.delete(c);
        else model.labels.set(c, step.label);
        return;
      }
      case 'search': {
        const hits = await driver.value({ op: 'search', file: pool.files[step.content], k: step.k });
        checkHits(hits, step.k);
        if (model.contents().has(step.content)) {
          assert.equal(hits[0].path && state.images.find((i) => i.id === hits[0].id)?.sha256, pool.sha[step.content], 'an indexed photo comes back first');
          assert.ok(hits[0].score > 0.99, `an indexed photo scores ${hits[0].score}`);
        }
        return;
      }
      case 'similar': {
        const img = picked(step.pick);
        if (!img) return;
        checkHits(await driver.value({ op: 'similar', id: img.id, k: step.k }), step.k, img.id);
        return;
      }
      case 'classify': {
        const r = await driver.call({ op: 'classify', file: pool.files[step.content], method: step.method });
        if (r.ok) {
          const label = r.value.label as string | null;
          if (label !== null) assert.ok(LABELS.includes(label as (typeof LABELS)[number]), `classify answered ${label}`);
        } else {
          assert.ok(['NO_CLASSIFIER', 'INVALID_PARAMETER'].includes(r.code), `classify: ${r.code}: ${r.message}`);
        }
        return;
      }
      case 'stats': {
        const s = await driver.value({ op: 'stats' });
        assert.equal(s.images, model.contents().size);
        assert.equal(s.size, model.contents().size, 'every image is searchable');
        return;
      }
      case 'check': {
        const c = await driver.value({ op: 'check' });
        assert.ok(c.ok, JSON.stringify(c));
        return;
      }
      case 'train': {
        const r = await driver.call({ op: 'train', epochs: 1, dim: 16 });
        if (model.contents().size < 16) assert.ok(!r.ok && r.code === 'INVALID_PARAMETER', `train on ${model.contents().size} images: ${JSON.stringify(r)}`);
        else {
          assert.ok(r.ok, `train: ${JSON.stringify(r)}`);
          stats.trained = (stats.trained ?? 0) + 1;
        }
        return;
      }
      case 'train-classifier': {
        const r = await driver.call({ op: 'trainClassifier', epochs: 5 });
        if (!r.ok) assert.equal(r.code, 'INVALID_PARAMETER', r.message);
        return;
      }
      case 'propagate': {
        await driver.value({ op: 'propagate', minConfidence: 0.5 });
        const accepted: Array<{ id: number; label: string }> = await driver.value({ op: 'acceptAll' });
        for (const a of accepted) {
          const img = state.images.find((i) => i.id === a.id);
          assert.ok(img, `a suggestion for ${a.id}, which is no image`);
          assert.equal(img.label, null, 'only unlabelled images get suggestions');
          model.labels.set(contentOf(img.sha256), a.label);
        }
        return;
      }
      case 'reopen':
        await driver.value({ op: 'reopen' });
        return;
      case 'kill':
        await restartAfterKill();
        return;
      case 'cli': {
        if (step.command === 'index') {
          const r = cli(['index', ...step.roots.map((x) => path.join(photos, ROOTS[x]))]);
          const bad = indexModel(step.roots);
          const summary = JSON.parse(r.stdout);
          checkIndexSummary(summary, bad);
          const indexed = summary.added + summary.updated + summary.skipped;
          assert.equal(r.status, bad > 0 && indexed === 0 ? 4 : 0, `exit code of index: ${r.stderr}`);
          return;
        }
        if (step.command === 'search') {
          const r = cli(['search', pool.files[step.content], '--k', '3']);
          if (model.contents().size === 0) {
            assert.equal(r.status, 0, r.stderr);
            return;
          }
          assert.equal(r.status, 0, r.stderr);
          checkHits(JSON.parse(r.stdout).results, 3);
          return;
        }
        const r = cli([step.command]);
        assert.equal(r.status, 0, `pixdex ${step.command}: ${r.stderr}`);
        const out = JSON.parse(r.stdout);
        if (step.command === 'stats') assert.equal(out.images, model.contents().size);
        else assert.equal(out.ok, true, r.stdout);
        return;
      }
    }
  }

  /** After every step: the store opens, check is clean, images, paths and labels match the model. */
  async function verify(): Promise<void> {
    const check = await driver.value({ op: 'check' });
    assert.ok(check.ok, `check: ${JSON.stringify(check)}`);
    state = await driver.value({ op: 'state' });
    const stored = new Map<number, LibraryState['images'][number]>();
    for (const img of state.images) {
      const c = contentOf(img.sha256);
      assert.ok(!stored.has(c), `content ${c} is stored twice`);
      stored.set(c, img);
    }
    assert.deepEqual([...stored.keys()].sort((a, b) => a - b), [...model.contents()].sort((a, b) => a - b), 'the stored images are the indexed contents');
    const counts: Record<string, number> = {};
    for (const [c, img] of stored) {
      assert.deepEqual(img.paths, model.pathsOf(c), `the paths of content ${c}`);
      assert.ok(img.paths.includes(img.path), 'an image is reachable by its own path');
      const want = model.labels.get(c);
      if (want === '?') {
        if (img.label === null) model.labels.delete(c);
        else model.labels.set(c, img.label);
      } else {
        assert.equal(img.label, want ?? null, `the label of content ${c}`);
      }
      if (img.label !== null) counts[img.label] = (counts[img.label] ?? 0) + 1;
    }
    assert.deepEqual(state.labels, counts, 'label counts');
  }
}
