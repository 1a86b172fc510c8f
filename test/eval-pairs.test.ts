/**
 * `pixdex eval --queries DIR --references DIR` (src/eval/pairs.ts, issue 14): pairing by file name
 * and the metrics as pure functions, then one CLI run on six real smvs book covers (a temporary
 * library, removed at the end) with and without geometric verification.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pairByName, percentile, rankOf, summarizeMode, type ModeOutcome } from '../src/eval/pairs.ts';
import type { SearchResult } from '../src/search.ts';
import { BACKEND, CLI, MODELS, SMVS_BOOKS, tempDir } from './fixtures.ts';

describe('eval pairs: pairing by file name', () => {
  it('pairs smvs names (same file name), reports queries without a reference and unused references', () => {
    const p = pairByName(['/q/001.jpg', '/q/0000.jpg', '/q/102.jpg'], ['/r/001.jpg', '/r/0000.jpg', '/r/050.jpg']);
    assert.deepEqual(p.pairs, [
      { query: '/q/001.jpg', reference: '/r/001.jpg', rule: 'name' },
      { query: '/q/0000.jpg', reference: '/r/0000.jpg', rule: 'name' },
    ]);
    assert.deepEqual(p.unpaired.map((u) => u.query), ['/q/102.jpg']);
    assert.match(p.unpaired[0].reason, /no reference named 102/);
    assert.deepEqual(p.unusedReferences, ['/r/050.jpg']);
  });

  it('falls back to the name without extension (case aside), then to the same number', () => {
    const p = pairByName(['/q/IMG_7.JPG', '/q/12.jpg', '/q/cover.webp'], ['/r/img_7.png', '/r/012.jpg', '/r/cover.jpg']);
    assert.deepEqual(p.pairs.map((x) => [path.basename(x.query), path.basename(x.reference), x.rule]), [
      ['IMG_7.JPG', 'img_7.png', 'stem'],
      ['12.jpg', '012.jpg', 'number'],
      ['cover.webp', 'cover.jpg', 'stem'],
    ]);
    assert.equal(p.unpaired.length, 0);
  });

  it('prefers the exact file name, and reports an ambiguous match instead of guessing', () => {
    const exact = pairByName(['/q/a.jpg'], ['/r/a.png', '/r/a.jpg']);
    assert.deepEqual(exact.pairs, [{ query: '/q/a.jpg', reference: '/r/a.jpg', rule: 'name' }]);
    const ambiguous = pairByName(['/q/a.webp', '/q/7.jpg'], ['/r/a.png', '/r/a.jpg', '/r/07.jpg', '/r/007.png']);
    assert.equal(ambiguous.pairs.length, 0);
    assert.deepEqual(ambiguous.unpaired.map((u) => u.query), ['/q/a.webp', '/q/7.jpg']);
    assert.match(ambiguous.unpaired[0].reason, /ambiguous: 2 references match by stem \(a\.png, a\.jpg\)/);
    assert.match(ambiguous.unpaired[1].reason, /ambiguous: 2 references match by number/);
  });
});

describe('eval pairs: metrics', () => {
  const result = (id: number, verified?: boolean): SearchResult => ({ id, path: `/r/${id}.jpg`, score: 0.5, label: null, ...(verified === undefined ? {} : { verified, inliers: verified ? 40 : 3 }) });

  it('rankOf is the 1-based position of the target, or null', () => {
    const rs = [result(3), result(1), result(2)];
    assert.equal(rankOf(rs, (r) => r.id === 3), 1);
    assert.equal(rankOf(rs, (r) => r.id === 2), 3);
    assert.equal(rankOf(rs, (r) => r.id === 9), null);
    assert.equal(rankOf([], () => true), null);
  });

  it('percentile is nearest-rank', () => {
    const ten = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    assert.equal(percentile(ten, 0.5), 5);
    assert.equal(percentile(ten, 0.9), 9);
    assert.equal(percentile(ten, 1), 10);
    assert.equal(percentile([42], 0.5), 42);
    assert.equal(percentile([1, 2], 0.5), 1);
    assert.ok(Number.isNaN(percentile([], 0.5)));
  });

  it('summarizeMode counts P@1, R@5, latency and verified tops, wrong ones apart', () => {
    const o: ModeOutcome[] = [
      { rank: 1, ms: 10, topVerified: true }, // verified, right
      { rank: 2, ms: 20, topVerified: true }, // verified, wrong top: a false verification
      { rank: 5, ms: 30, topVerified: false },
      { rank: null, ms: 40, topVerified: false },
    ];
    const m = summarizeMode(o);
    assert.equal(m.queries, 4);
    assert.equal(m.p1, 0.25);
    assert.equal(m.r5, 0.75);
    assert.equal(m.hitsAt1, 1);
    assert.equal(m.hitsAt5, 3);
    assert.deepEqual(m.latencyMs, { p50: 20, p90: 40, mean: 25, max: 40 });
    assert.equal(m.verifiedTop, 2);
    assert.equal(m.verifiedTopCorrect, 1);
    assert.equal(m.falseVerified, 1);
    const none = summarizeMode([]);
    assert.equal(none.queries, 0);
    assert.ok(Number.isNaN(none.p1));
  });
});

describe('pixdex eval --queries --references (six smvs book covers)', () => {
  const tmp = tempDir();
  const queries = path.join(tmp.dir, 'query');
  const references = path.join(tmp.dir, 'reference');
  const names = ['001.jpg', '002.jpg', '003.jpg', '004.jpg', '005.jpg', '006.jpg'];

  before(() => {
    fs.mkdirSync(queries);
    fs.mkdirSync(references);
    for (const n of names) {
      fs.copyFileSync(path.join(SMVS_BOOKS, 'query', n), path.join(queries, n));
      fs.copyFileSync(path.join(SMVS_BOOKS, 'reference', n), path.join(references, n));
    }
    fs.copyFileSync(path.join(SMVS_BOOKS, 'query', '007.jpg'), path.join(queries, '007.jpg')); // no reference
  });
  after(() => tmp.cleanup());

  const pixdex = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args, '--models', MODELS, '--backend', BACKEND], { encoding: 'utf8', env: { ...process.env, PIXDEX_MODELS: MODELS, TMPDIR: tmp.dir }, maxBuffer: 1 << 24 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('reports both modes in a temporary library it removes; verification does not lower P@1', () => {
    const r = pixdex(['eval', '--queries', queries, '--references', references, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.queries, 6);
    assert.deepEqual(report.unpaired.map((u: { query: string }) => path.basename(u.query)), ['007.jpg']);
    assert.deepEqual(report.failed, []);
    assert.equal(report.index.references, 6);
    assert.equal(report.index.indexed, 6);
    assert.equal(report.index.libraryImages, 6);
    assert.equal(report.localFeatures, true);
    assert.deepEqual(report.library, { dataDir: null, temporary: true });
    for (const mode of ['visual', 'verified'] as const) {
      const m = report[mode];
      assert.equal(m.queries, 6);
      for (const x of [m.p1, m.r5]) assert.ok(x >= 0 && x <= 1, `${mode}: ${x}`);
      assert.ok(m.r5 >= m.p1);
      assert.ok(m.latencyMs.p50 > 0 && m.latencyMs.p90 >= m.latencyMs.p50, JSON.stringify(m.latencyMs));
      assert.equal(m.falseVerified, m.verifiedTop - m.verifiedTopCorrect);
    }
    assert.equal(report.visual.verifiedTop, 0, 'no verification without it');
    assert.ok(report.verified.p1 >= report.visual.p1, `verified P@1 ${report.verified.p1} < visual ${report.visual.p1}`);
    assert.ok(report.verified.verifiedTop > 0);
    assert.equal(report.loadavg.end.length, 3);
    assert.equal(report.perQuery.length, 6);
    for (const q of report.perQuery) assert.equal(path.basename(q.query), path.basename(q.reference));
    // The temporary library (under TMPDIR = tmp.dir) is gone.
    assert.deepEqual(fs.readdirSync(tmp.dir).filter((f) => f.startsWith('pixdex-eval-')), []);

    const text = pixdex(['eval', '--queries', queries, '--references', references]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /visual only +\d\.\d{3} +\d\.\d{3} +\d+ +\d+/);
    assert.match(text.stdout, /verified +\d\.\d{3} +\d\.\d{3} +\d+ +\d+ +\d+ \(\d+ wrong\)/);
    assert.match(text.stdout, /load average/);
    assert.match(text.stdout, /skipped \(no reference\): .*007\.jpg/);
  });

  it('--data keeps the library; bad folders and mixed forms are refused before anything is created', () => {
    const lib = path.join(tmp.dir, 'kept');
    const r = pixdex(['eval', '--queries', queries, '--references', references, '--data', lib, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).library.dataDir, lib);
    assert.ok(fs.existsSync(lib));

    const never = path.join(tmp.dir, 'never');
    const missing = pixdex(['eval', '--queries', path.join(tmp.dir, 'nope'), '--references', references, '--data', never]);
    assert.equal(missing.code, 3, missing.stderr);
    assert.match(missing.stderr, /^pixdex: NOT_FOUND: --queries folder .*nope does not exist/);
    const parent = pixdex(['eval', '--queries', tmp.dir, '--references', references, '--data', never]);
    assert.equal(parent.code, 2, parent.stderr);
    assert.match(parent.stderr, /INVALID_PARAMETER: --queries .* holds no images directly/);
    const both = pixdex(['eval', tmp.dir, '--queries', queries, '--references', references, '--data', never]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /USAGE: .*takes no dataset folder/);
    const half = pixdex(['eval', '--queries', queries, '--data', never]);
    assert.equal(half.code, 2, half.stderr);
    assert.match(half.stderr, /missing --references/);
    assert.ok(!fs.existsSync(never));
  });
});
