/**
 * Instance retrieval on real photos, through the product path (CI-sized): a 204-photo subset of
 * oxford_flowers17 (the first 12 of each class) is indexed into a library with the default
 * descriptor (`regional2`) and into one with `pooled` (the baseline); 40 queries "re-photographed"
 * from it (src/eval/instance-set.ts, fixed seed, every transformation) are searched with
 * `Engine.search` from their JPEG bytes, and the original must come back first. Then `pixdex
 * eval` must report category and instance retrieval for the descriptor it evaluates.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_EXTENSIONS } from '../src/config.ts';
import { Engine } from '../src/engine.ts';
import { loadDataset } from '../src/eval/evaluate.ts';
import { buildInstanceSet, INSTANCE_TRANSFORMS, planInstanceSet, scoreInstanceSet, type InstanceQuery, type InstanceReport } from '../src/eval/instance-set.ts';
import { DEFAULT_DESCRIPTOR } from '../src/descriptor-kind.ts';
import { BACKEND, CLI, FLOWERS, HYMENOPTERA, MODELS, engineOptions, tempDir } from './fixtures.ts';

const run = promisify(execFile);

/**
 * Measured on this set (mobilenet_v2, wasm and tensorflow): regional 36/40 (0.900, R@5 0.975),
 * pooled 33/40 (0.825). The bound is the regional figure minus 2 queries; the 243-query figures
 * come from bench/instance.ts. The default since issue 22, regional2 (two database sides instead
 * of four), measured 34/40 (0.850, R@5 0.975) on wasm, 40/40 verified: on the bound.
 */
const REGIONAL_MIN_P1 = 0.85;
const QUERIES = 40;
/** `pixdex eval` on hymenoptera, 27 queries, regional: measured 26/27 (0.963); the bound is 2 queries less. */
const MIN_EVAL_INSTANCE_P1 = 0.88;
const SEED = 8;

describe('instance retrieval through the engine (40 generated re-photographs of 204 indexed photos)', { timeout: 600_000 }, () => {
  const tmp = tempDir('pixdex-instance-');
  let queries: InstanceQuery[];
  let sources: string[];
  /** Per descriptor: the visual ranking alone (verify: false), and the product's verified ranking. */
  const reports: Partial<Record<'regional2' | 'pooled', { visual: InstanceReport; verified: InstanceReport }>> = {};

  before(async () => {
    const flowers = loadDataset(FLOWERS, DEFAULT_EXTENSIONS);
    const byClass = new Map<string, typeof flowers>();
    for (const f of flowers) byClass.set(f.label, [...(byClass.get(f.label) ?? []), f]);
    const picked = [...byClass.values()].flatMap((items) => items.slice(0, 12));
    // Clutter backgrounds: photos that are not in the library (other flowers17 photos, hymenoptera).
    const backgrounds = [...[...byClass.values()].flatMap((items) => items.slice(12, 20)), ...loadDataset(HYMENOPTERA, DEFAULT_EXTENSIONS)];
    sources = picked.map((s) => s.path);
    queries = await buildInstanceSet({ sources: picked, backgrounds, count: QUERIES, seed: SEED });
  });
  after(() => tmp.cleanup());

  /**
   * Indexes the sources into a fresh library with `descriptor` (local features on, the default)
   * and searches every query twice: the descriptor alone (verify: false) and verified.
   */
  async function measure(descriptor: 'regional2' | 'pooled'): Promise<{ visual: InstanceReport; verified: InstanceReport }> {
    const engine = await Engine.open({ ...engineOptions(path.join(tmp.dir, descriptor)), workers: 1, ...(descriptor === DEFAULT_DESCRIPTOR ? {} : { descriptor }) });
    try {
      assert.equal(engine.descriptor, descriptor);
      const summary = await engine.index(sources);
      assert.equal(summary.added, sources.length);
      const idOf = (i: number) => engine.resolve(sources[i]);
      const accepted = queries.map((q) => ({ ...q, accept: q.accept.map(idOf) }));
      const rank = async (verify: boolean) => {
        const rankings: number[][] = [];
        for (const q of queries) rankings.push((await engine.search(q.bytes, { k: 5, verify })).map((h) => h.id));
        return scoreInstanceSet(accepted, rankings);
      };
      return { visual: await rank(false), verified: await rank(true) };
    } finally {
      await engine.close();
    }
  }

  it('covers every transformation, deterministically', async () => {
    assert.equal(queries.length, QUERIES);
    assert.deepEqual(new Set(queries.map((q) => q.transform)), new Set(INSTANCE_TRANSFORMS));
    assert.ok(queries.every((q) => q.accept.includes(q.sourceIndex)));
    const again = await buildInstanceSet({ sources: sources.slice(0, 30).map((p) => ({ path: p })), backgrounds: queries.filter((q) => q.background).map((q) => ({ path: q.background! })), count: 3, seed: SEED });
    const twice = await buildInstanceSet({ sources: sources.slice(0, 30).map((p) => ({ path: p })), backgrounds: queries.filter((q) => q.background).map((q) => ({ path: q.background! })), count: 3, seed: SEED });
    assert.deepEqual(again.map((q) => q.bytes), twice.map((q) => q.bytes));
  });

  it(`finds the original first with the default descriptor (regional2: P@1 >= ${REGIONAL_MIN_P1})`, async () => {
    assert.equal(DEFAULT_DESCRIPTOR, 'regional2');
    const both = (reports.regional2 = await measure('regional2'));
    console.log(JSON.stringify({ regional2: both }));
    const r = both.visual;
    assert.ok(r.p1 >= REGIONAL_MIN_P1, `regional P@1 ${r.p1} < ${REGIONAL_MIN_P1}: ${JSON.stringify(r.perTransform)}`);
    assert.ok(r.r5 >= r.p1);
  });

  it('verification keeps or improves on the descriptor alone: P@1 and R@5 (the library has local features)', () => {
    const { visual, verified } = reports.regional2!;
    assert.ok(verified.p1 >= visual.p1, `verified P@1 ${verified.p1} < visual ${visual.p1}`);
    assert.ok(verified.r5 >= visual.r5, `verified R@5 ${verified.r5} < visual ${visual.r5}`);
  });

  it('beats plain pooling on the same queries, most of all on photos in clutter', async () => {
    const both = (reports.pooled = await measure('pooled'));
    console.log(JSON.stringify({ pooled: both }));
    // The descriptors compared on their own rankings (verification would make both perfect here).
    const r = both.visual;
    const regional = reports.regional2!.visual;
    assert.ok(regional.p1 > r.p1, `regional P@1 ${regional.p1} should beat pooled ${r.p1}`);
    const clutter = (x: InstanceReport) => (x.perTransform.clutter!.p1 + x.perTransform.combined!.p1) / 2;
    assert.ok(clutter(regional) > clutter(r), `clutter + combined: regional ${clutter(regional)} vs pooled ${clutter(r)}`);
  });
});

describe('pixdex eval reports category and instance retrieval for the descriptor it evaluates', { timeout: 600_000 }, () => {
  const tmp = tempDir('pixdex-eval-');
  after(() => tmp.cleanup());

  async function evalJson(descriptor: string, instance: number): Promise<any> {
    const { stdout } = await run(process.execPath, [CLI, 'eval', HYMENOPTERA, '--data', tmp.dir, '--models', MODELS, '--backend', BACKEND, '--descriptor', descriptor, '--instance', String(instance), '--json'], { maxBuffer: 1 << 24 });
    return JSON.parse(stdout);
  }

  it('pooled reproduces the NOTES baseline exactly (hymenoptera kNN val -> train)', async () => {
    const r = await evalJson('pooled', 0);
    assert.equal(r.descriptor, 'pooled');
    assert.deepEqual([r.knn.k1, r.knn.k5, r.knn.k10].map((x: number) => x.toFixed(3)), ['0.915', '0.954', '0.948']);
    assert.equal(r.instance, undefined);
  });

  it('regional keeps category retrieval at or above the baseline and reports instance retrieval per transformation', async () => {
    const r = await evalJson('regional', 27);
    console.log(JSON.stringify({ knn: r.knn, retrieval: r.retrieval, instance: r.instance }));
    assert.equal(r.descriptor, 'regional');
    // kNN votes by the global vector (GeM), as `pixdex classify` does: at or above pooled at every k.
    for (const [k, base] of [['k1', 0.915], ['k5', 0.9542], ['k10', 0.9477]] as const) assert.ok(r.knn[k] >= base, `kNN ${k} ${r.knn[k]} below the pooled baseline ${base}`);
    assert.equal(r.instance.queries, 27);
    assert.deepEqual(Object.keys(r.instance.perTransform).sort(), [...INSTANCE_TRANSFORMS].sort());
    assert.ok(r.instance.p1 >= MIN_EVAL_INSTANCE_P1, `instance P@1 ${r.instance.p1}`);
  });
});

describe('instance set plan and scoring (no model)', () => {
  const sources = Array.from({ length: 30 }, (_, i) => ({ path: `/x/${i}.jpg`, label: i < 15 ? 'a' : 'b' }));

  it('plans the same queries for the same seed, different ones for another seed', () => {
    const plan = (seed: number) => planInstanceSet({ sources, backgrounds: sources, count: 18, seed }).map(({ rng: _rng, ...q }) => q);
    assert.deepEqual(plan(8), plan(8));
    assert.notDeepEqual(plan(8), plan(9));
    const p = plan(8);
    assert.equal(new Set(p.map((q) => q.sourceIndex)).size, 18, 'each source used once');
    assert.deepEqual(p.slice(0, 9).map((q) => q.transform), [...INSTANCE_TRANSFORMS]);
    for (const q of p.filter((x) => x.background)) {
      assert.notEqual(sources.find((s) => s.path === q.background)!.label, sources[q.sourceIndex].label, 'background from another class');
    }
  });

  it('scores P@1 and R@5 per transformation, accepting copies of the source', () => {
    const q = (transform: InstanceQuery['transform'], accept: number[]) => ({ index: 0, transform, sourceIndex: accept[0], source: '', accept, params: {}, bytes: Buffer.alloc(0) });
    const report = scoreInstanceSet(
      [q('crop', [1]), q('crop', [2, 7]), q('blur', [3]), q('blur', [4])],
      [[1, 0, 0, 0, 0], [7, 2, 0, 0, 0], [0, 5, 6, 8, 3], [0, 5, 6, 8, 9, 4]],
    );
    assert.deepEqual(report, {
      queries: 4, p1: 0.5, r5: 0.75,
      perTransform: { crop: { n: 2, p1: 1, r5: 1 }, blur: { n: 2, p1: 0, r5: 0.5 } },
    });
  });
});
