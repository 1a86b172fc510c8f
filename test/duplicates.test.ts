/**
 * Near-duplicates (issue 15) on real photos: a library of 16 oxford_flowers17 photos (one per
 * class but one) with generated copies of four of them (src/eval/near-duplicate-set.ts: resized,
 * cropped, watermarked, re-saved as PNG) and a byte-identical copy under another name. The index
 * run compares every image with its neighbours; groups pair each copy with its original, best copy
 * first, and never join two different photos; the evidence follows removals and uploads; the CLI
 * and the HTTP route answer the same. The grouping rule itself is checked on hand-made edges.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { groupEdges, pairKind, type DuplicateThresholds, type MemberFacts } from '../src/duplicates/groups.ts';
import { YIELD_MS } from '../src/duplicates/finder.ts';
import { DEFAULT_THRESHOLDS } from '../src/duplicates/thresholds.ts';
import { Engine } from '../src/engine.ts';
import { renderNearCopy } from '../src/eval/near-duplicate-set.ts';
import { seededRandom } from '../src/random.ts';
import { CLI, FLOWERS, MODELS, engineOptions, imagesIn, tempDir } from './fixtures.ts';
import { type TestServer, startServer } from './helpers/browser.ts';

const T: DuplicateThresholds = { nearCosine: 0.9, nearInliers: 12, nearCosineAlone: 0.97, similarCosine: 0.8 };

describe('duplicate groups from pairwise evidence (pure)', () => {
  const facts = (sizes: Record<number, [number, number, number]>) => (id: number): MemberFacts | undefined => {
    const s = sizes[id];
    return s && { id, path: `/p/${id}.jpg`, width: s[0], height: s[1], bytes: 1000, mtimeMs: s[2] };
  };

  it('classifies a pair by cosine and, when verified, inliers', async () => {
    assert.equal(pairKind({ cosine: 0.95, inliers: 40 }, T), 'near');
    assert.equal(pairKind({ cosine: 0.98, inliers: -1 }, T), 'near'); // no local features: a stricter cosine alone
    assert.equal(pairKind({ cosine: 0.95, inliers: -1 }, T), 'similar');
    assert.equal(pairKind({ cosine: 0.95, inliers: 3 }, T), 'similar'); // close, but not the same picture
    assert.equal(pairKind({ cosine: 0.85, inliers: 100 }, T), 'similar');
    assert.equal(pairKind({ cosine: 0.79, inliers: 100 }, T), undefined);
  });

  it('joins chains into one group, best copy first (most pixels, then oldest, then lowest id)', async () => {
    const edges = [
      { id: 1, edges: [{ id: 2, cosine: 0.97, inliers: 50 }] },
      { id: 2, edges: [{ id: 1, cosine: 0.97, inliers: 50 }, { id: 3, cosine: 0.95, inliers: 30 }] },
      { id: 3, edges: [{ id: 2, cosine: 0.95, inliers: 30 }] },
      { id: 4, edges: [{ id: 5, cosine: 0.85, inliers: 2 }] },
    ];
    const f = facts({ 1: [100, 100, 5], 2: [200, 100, 9], 3: [200, 100, 1], 4: [50, 50, 0], 5: [50, 50, 0] });
    const near = groupEdges(edges, 'near', T, f);
    assert.equal(near.length, 1);
    assert.deepEqual(near[0].members.map((m) => m.id), [3, 2, 1]); // 3 and 2 have most pixels; 3 is older
    assert.deepEqual(near[0].members[1].evidence, { kind: 'near', cosine: 0.95, inliers: 30 });
    assert.equal(near[0].members[2].evidence, null); // 1 is joined to 3 only through 2
    assert.equal(near[0].members[0].evidence, undefined);
    const similar = groupEdges(edges, 'similar', T, f);
    assert.deepEqual(similar.map((g) => g.members.map((m) => m.id)), [[3, 2, 1], [4, 5]]); // similar includes near
  });

  it('leaves out images that are gone and groups that shrink below two', async () => {
    const edges = [{ id: 1, edges: [{ id: 2, cosine: 0.99, inliers: 80 }] }];
    assert.deepEqual(groupEdges(edges, 'near', T, facts({ 1: [10, 10, 0] })), []);
  });
});

describe('near-duplicates in a library of real photos', { timeout: 300_000 }, () => {
  const tmp = tempDir('pixdex-dupes-');
  const lib = path.join(tmp.dir, 'library');
  const data = path.join(tmp.dir, 'data');
  const classes = fs.readdirSync(FLOWERS, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const originals = classes.slice(0, 16).map((c) => imagesIn(path.join(FLOWERS, c))[3]);
  const copied = [
    { source: originals[0], transform: 'resize' as const },
    { source: originals[1], transform: 'crop' as const },
    { source: originals[2], transform: 'overlay' as const },
    { source: originals[3], transform: 'format' as const },
  ];
  const copyPath = (i: number, ext: string) => path.join(lib, `copies/copy-${i}-${copied[i].transform}${ext}`);
  const twin = path.join(lib, 'twin-of-5.jpg');
  let copies: string[] = [];
  let engine: Engine;
  let served: TestServer | undefined;

  before(async () => {
    fs.mkdirSync(path.join(lib, 'copies'), { recursive: true });
    for (const o of originals) fs.copyFileSync(o, path.join(lib, path.basename(o)));
    fs.copyFileSync(originals[5], twin);
    copies = [];
    for (const [i, c] of copied.entries()) {
      const r = await renderNearCopy(c.transform, fs.readFileSync(c.source), seededRandom(100 + i), 0);
      fs.writeFileSync(copyPath(i, r.ext), r.bytes);
      copies.push(copyPath(i, r.ext));
    }
    engine = await Engine.open({ ...engineOptions(data), workers: 1 });
  });
  after(async () => {
    await served?.close();
    await engine?.close();
    tmp.cleanup();
  });

  const inLib = (file: string) => path.join(lib, path.basename(file));
  const groupsOf = async (kind: 'near' | 'similar' | 'exact' = 'near') => (await engine.duplicates({ kind })).groups.map((g) => g.members.map((m) => m.path));

  it('compares every image with its neighbours during the index run', async () => {
    const s = await engine.index([lib]);
    assert.equal(s.added, 20); // 16 originals + 4 copies; the twin is an alias of its original
    assert.equal(engine.dupes.pending().length, 0);
    assert.equal((await engine.duplicates()).checked.checked, 0); // nothing left to compare
  });

  it('groups each copy with its original, the original first, and nothing else', async () => {
    const near = await groupsOf('near');
    const expected = copies.map((c, i) => [inLib(copied[i].source), c]);
    assert.deepEqual(
      near.map((g) => [...g].sort()).sort(),
      expected.map((g) => [...g].sort()).sort(),
      `near groups: ${JSON.stringify(near.map((g) => g.map((p) => path.relative(lib, p))))}`,
    );
    // Best copy first: every copy here has fewer pixels than its original, or the same (format).
    for (const g of (await engine.duplicates()).groups) {
      assert.ok(g.members[0].width * g.members[0].height >= g.members[1].width * g.members[1].height);
      const e = g.members[1].evidence!;
      assert.equal(e.kind, 'near');
      assert.ok(e.cosine >= DEFAULT_THRESHOLDS.nearCosine, `cosine ${e.cosine}`);
      assert.ok(e.inliers >= DEFAULT_THRESHOLDS.nearInliers, `inliers ${e.inliers}`);
    }
    // The PNG re-save of a photo is the same picture: cosine ~1.
    const png = (await engine.duplicates()).groups.find((g) => g.members.some((m) => m.path === copies[3]))!;
    assert.ok(png.members[1].evidence!.cosine >= 0.99);
  });

  it('lists byte-identical files under exact, with both paths', async () => {
    assert.deepEqual(await groupsOf('exact'), [[inLib(originals[5]), twin].sort()]);
  });

  it('follows removals: a removed original takes its group with it', async () => {
    engine.remove(inLib(originals[0]));
    const near = await groupsOf('near');
    assert.equal(near.length, 3);
    assert.ok(!near.flat().includes(copies[0]));
    const id = engine.resolve(copies[0]);
    assert.ok(engine.records.dupes.edges(id).every((e) => engine.records.exists(e.id)), 'no edge to a removed image');
  });

  it('checks an upload at once: a resized copy sent to the library joins its original', async () => {
    const r = await renderNearCopy('resize', fs.readFileSync(originals[6]), seededRandom(7), 0);
    const { id } = await engine.add(r.bytes, { path: path.join(tmp.dir, 'upload.jpg') });
    assert.ok(engine.records.dupes.checked(id));
    const group = (await engine.duplicates()).groups.find((g) => g.members.some((m) => m.id === id));
    assert.ok(group, 'the upload is in a group');
    assert.deepEqual(group.members.map((m) => m.path), [inLib(originals[6]), path.join(tmp.dir, 'upload.jpg')]);
  });

  it('pixdex check finds evidence for a gone image or kept on one side only, and repair drops it', async () => {
    assert.equal(engine.check().ok, true, JSON.stringify(engine.check().problems));
    const store = engine.store;
    const id = engine.resolve(copies[1]);
    const [edge] = engine.records.dupes.edges(id);
    store.write(() => {
      store.dupes.putSync(999_999, { v: 1, edges: [] }); // no such image
      const other = store.dupes.get(edge.id)!;
      store.dupes.putSync(edge.id, { ...other, edges: other.edges.filter((e) => e.id !== id) }); // one side only
    });
    const kinds = engine.check().problems.map((p) => p.kind).sort();
    assert.deepEqual(kinds, ['DUPES_EDGE', 'DUPES_WITHOUT_IMAGE']);
    const r = engine.repair();
    assert.equal(r.after.ok, true, JSON.stringify(r.after.problems));
    assert.equal(engine.records.dupes.checked(id), false); // compared again by the next check
    assert.ok((await engine.duplicates()).checked.checked >= 1);
    assert.ok((await groupsOf('near')).some((g) => g.includes(copies[1])), 'the crop is back in its group');
  });

  it('a library from before the duplicate check has every image compared once, then nothing', async () => {
    const before = await groupsOf('near');
    const store = engine.store;
    store.write(() => {
      for (const id of store.dupes.getKeys()) store.dupes.removeSync(id);
      for (const id of store.dupesPending.getKeys()) store.dupesPending.removeSync(id);
      const { dupes: _d, ...meta } = store.getMeta()!;
      store.putMeta(meta);
    });
    assert.equal(engine.dupes.pending().length, engine.records.count());
    // A check never holds the event loop much longer than YIELD_MS (a server keeps answering): a
    // check that took longer than that let timers fire while it went on; a shorter one (the
    // matcher is fast, ~40 ms for this library on an idle machine) had no need to yield.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = performance.now();
    const [r, again] = await Promise.all([engine.duplicates(), engine.duplicates()]); // two callers: one check, then nothing left
    const elapsed = performance.now() - started;
    clearInterval(timer);
    assert.ok(ticks > 0 || elapsed < 2 * YIELD_MS, `the event loop did not run during a check of ${elapsed.toFixed(0)} ms`);
    assert.equal(r.checked.checked + again.checked.checked, engine.records.count());
    assert.deepEqual(again.groups.map((g) => g.members.map((m) => m.path)), before);
    assert.deepEqual(r.groups.map((g) => g.members.map((m) => m.path)), before);
    assert.equal((await engine.duplicates()).checked.checked, 0);
  });

  it('GET /api/duplicates answers the same groups with thumbnails; a bad kind is a 400', async () => {
    served = await startServer(engine);
    const r = await fetch(`${served.base}/api/duplicates?kind=near`);
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(body.kind, 'near');
    assert.deepEqual(body.groups.map((g: { members: Array<{ path: string }> }) => g.members.map((m) => m.path)), await groupsOf('near'));
    assert.match(body.groups[0].members[0].thumbnailUrl, /^\/api\/images\/\d+\/thumbnail$/);
    const bad = await fetch(`${served.base}/api/duplicates?kind=blurry`);
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, 'INVALID_PARAMETER');
    const threshold = await fetch(`${served.base}/api/duplicates?kind=near&threshold=1.5`);
    assert.equal(threshold.status, 400);
  });

  it('pixdex duplicates --json prints the groups; a wrong --kind says what it takes', async () => {
    await served?.close();
    served = undefined;
    await engine.close();
    const run = (args: string[]) => spawnSync(process.execPath, [CLI, 'duplicates', '--data', data, ...args], { encoding: 'utf8', env: { ...process.env, PIXDEX_MODELS: MODELS } });
    const ok = run(['--json']);
    assert.equal(ok.status, 0, ok.stderr);
    const report = JSON.parse(ok.stdout);
    assert.equal(report.groups.length, 4); // three copies left plus the upload
    const text = run([]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^4 groups of near duplicates, 8 images/);
    const bad = run(['--kind', 'blurry']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /exact, near or similar for kind/);
    engine = await Engine.open({ ...engineOptions(data), workers: 1 });
  });
});
