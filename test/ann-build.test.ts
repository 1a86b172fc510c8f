/**
 * The hnswlib-node install step (issue 22, scripts/build-hnswlib.mjs) and its start-up check
 * (src/ann-build.ts): `pixdex stats` reports the build the record describes, and only when it
 * describes the addon actually loaded; the script, run for real on temp copies of hnswlib-node
 * (the repo's node_modules is never touched), keeps the portable build when the compiler rejects
 * the flags or the build does not load, installs a checked native build otherwise, reuses it from
 * its cache, and restores the portable build on PIXDEX_PORTABLE_ANN=1. The compiling tests skip
 * without a C++ compiler.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { BUILD_RECORD, PORTABLE_ADDON, describeAddon } from '../src/ann-build.ts';
import { BACKEND, CLI, MODELS, REPO, tempDir } from './fixtures.ts';

const SCRIPT = path.join(REPO, 'scripts', 'build-hnswlib.mjs');
const PKG = fs.realpathSync(path.dirname(createRequire(path.join(REPO, 'package.json')).resolve('hnswlib-node/package.json')));
const RELEASE = path.join(PKG, 'build', 'Release');
const HAS_CXX = spawnSync(process.env.CXX || 'g++', ['--version']).status === 0;

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Loads `addon` in a child process and searches a small index: its top hit for a stored vector. */
function searches(addon: string): boolean {
  const probe = `const { HierarchicalNSW } = require(process.argv[1]);
    const i = new HierarchicalNSW('cosine', 8); i.initIndex({ maxElements: 100, m: 8, efConstruction: 50 });
    for (let n = 0; n < 100; n++) i.addPoint(Array.from({ length: 8 }, (_, j) => Math.sin(n * 7 + j * 3)), n);
    const r = i.searchKnn(Array.from({ length: 8 }, (_, j) => Math.sin(42 * 7 + j * 3)), 1);
    process.exit(r.neighbors[0] === 42 ? 0 : 1);`;
  return spawnSync(process.execPath, ['-e', probe, addon], { timeout: 30_000 }).status === 0;
}

describe('pixdex stats reports the hnswlib-node build (src/ann-build.ts)', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());
  const data = path.join(tmp.dir, 'lib');
  const pixdex = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(process.execPath, [CLI, ...args, '--data', data, '--models', MODELS, '--backend', BACKEND], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
    assert.equal(r.status, 0, `pixdex ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  before(() => {
    fs.mkdirSync(path.join(tmp.dir, 'empty'));
    pixdex(['index', path.join(tmp.dir, 'empty'), '--json']);
  });

  it('says native only when the build record describes the addon loaded, else portable or portable (unknown)', () => {
    const s = JSON.parse(pixdex(['stats', '--json'], { PIXDEX_PORTABLE_ANN: '' }));
    const record = fs.existsSync(path.join(RELEASE, BUILD_RECORD)) ? readJson(path.join(RELEASE, BUILD_RECORD)) : undefined;
    const addon = path.join(RELEASE, 'addon.node');
    // Expected from the files themselves, not from src/ann-build.ts.
    const expected = !record ? 'portable (unknown)'
      : record.addon?.sha256 !== sha256(addon) ? 'portable (unknown)'
        : record.build;
    assert.equal(s.ann.build, expected, JSON.stringify(s.ann));
    assert.equal(s.ann.addon, addon);
    if (expected === 'native') {
      assert.equal(s.ann.flags, record.flags);
      assert.equal(s.ann.compiler, record.compiler);
      assert.ok(s.ann.vector.length > 0, 'a native build names its vector instructions');
      assert.equal(s.ann.hugePages, typeof record.hugePages?.patch === 'string');
    } else {
      assert.equal(s.ann.flags, null);
    }
    const text = pixdex(['stats'], { PIXDEX_PORTABLE_ANN: '' });
    assert.match(text, new RegExp(`^ann +hnswlib-node ${expected.replace(/[()]/g, '\\$&')}`, 'm'), text);
  });

  it('PIXDEX_PORTABLE_ANN=1 runs the portable copy of a native build, and says so', (t) => {
    const record = fs.existsSync(path.join(RELEASE, BUILD_RECORD)) ? readJson(path.join(RELEASE, BUILD_RECORD)) : undefined;
    if (record?.build !== 'native' || record.addon?.sha256 !== sha256(path.join(RELEASE, 'addon.node'))) return t.skip('the installed build is not native');
    const s = JSON.parse(pixdex(['stats', '--json'], { PIXDEX_PORTABLE_ANN: '1' }));
    assert.equal(s.ann.build, 'portable');
    assert.equal(s.ann.addon, path.join(RELEASE, PORTABLE_ADDON));
    assert.match(s.ann.reason, /PIXDEX_PORTABLE_ANN/);
  });
});

describe('describeAddon: the record is believed only for the file it describes', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());
  it('missing record, stale record, native record, portable copy', () => {
    const addon = path.join(tmp.dir, 'addon.node');
    const portable = path.join(tmp.dir, PORTABLE_ADDON);
    const record = path.join(tmp.dir, BUILD_RECORD);
    fs.writeFileSync(addon, 'native bytes');
    fs.writeFileSync(portable, 'portable bytes');
    assert.equal(describeAddon(addon, record).build, 'portable (unknown)');
    assert.match(describeAddon(addon, record).reason, /no build record/);
    const native = { build: 'native', flags: '-O3 -march=native', compiler: 'g++ 12', isa: ['avx2', 'fma', 'sse42'], addon: { sha256: sha256(addon) }, portable: { sha256: sha256(portable) } };
    fs.writeFileSync(record, JSON.stringify(native));
    assert.deepEqual({ ...describeAddon(addon, record), builtAt: null, reason: '' }, { build: 'native', flags: '-O3 -march=native', compiler: 'g++ 12', vector: ['avx2', 'fma', 'sse42'], hugePages: false, builtAt: null, reason: '', addon });
    fs.writeFileSync(record, JSON.stringify({ ...native, hugePages: { patch: '0123456789ab', kernel: 'madvise', checkKb: 2048 } }));
    assert.equal(describeAddon(addon, record).hugePages, true, 'a build with the huge-pages patch says so');
    fs.writeFileSync(record, JSON.stringify({ ...native, hugePages: { patch: null, reason: 'PIXDEX_ANN_NO_HUGEPAGES is set' } }));
    assert.equal(describeAddon(addon, record).hugePages, false);
    assert.equal(describeAddon(portable, record).build, 'portable');
    fs.writeFileSync(addon, 'rebuilt by npm rebuild');
    assert.equal(describeAddon(addon, record).build, 'portable (unknown)');
    assert.match(describeAddon(addon, record).reason, /another addon/);
    fs.writeFileSync(record, '{ not json');
    assert.equal(describeAddon(addon, record).build, 'portable (unknown)');
  });
});

describe('scripts/build-hnswlib.mjs on a temp copy of hnswlib-node', { skip: HAS_CXX ? false : 'no C++ compiler' }, () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());
  const pkg = path.join(tmp.dir, 'node_modules', 'hnswlib-node');
  const release = path.join(pkg, 'build', 'Release');
  const addon = path.join(release, 'addon.node');
  const cache = path.join(tmp.dir, 'cache');
  let portableHash = '';
  /** Puts the portable addon in place as hnswlib-node's install leaves it: no record, no copy. */
  const freshInstall = () => {
    fs.rmSync(path.join(pkg, 'build'), { recursive: true, force: true });
    fs.mkdirSync(release, { recursive: true });
    const record = fs.existsSync(path.join(RELEASE, BUILD_RECORD)) ? readJson(path.join(RELEASE, BUILD_RECORD)) : undefined;
    const source = record?.build === 'native' && fs.existsSync(path.join(RELEASE, PORTABLE_ADDON)) ? path.join(RELEASE, PORTABLE_ADDON) : path.join(RELEASE, 'addon.node');
    fs.copyFileSync(source, addon);
    portableHash = sha256(addon);
  };
  const run = (env: NodeJS.ProcessEnv) => {
    const r = spawnSync(process.execPath, [SCRIPT, '--package', pkg], { encoding: 'utf8', timeout: 200_000, env: { ...process.env, PIXDEX_CACHE_DIR: cache, PIXDEX_PORTABLE_ANN: '', PIXDEX_ANN_FLAGS: '', ...env } });
    assert.equal(r.status, 0, `the install step must never fail: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${r.stdout}`);
    return { line: lines[0], record: readJson(path.join(release, BUILD_RECORD)) };
  };
  before(() => {
    fs.mkdirSync(pkg, { recursive: true });
    for (const f of ['package.json', 'binding.gyp', 'lib', 'src']) fs.cpSync(path.join(PKG, f), path.join(pkg, f), { recursive: true });
    freshInstall();
  });

  it('a flag the compiler rejects: the portable build is kept, recorded and loads', () => {
    const { line, record } = run({ PIXDEX_ANN_FLAGS: '-O3 -march=pixdex-no-such-cpu' });
    assert.match(line, /kept portable: .*rejects -O3 -march=pixdex-no-such-cpu/);
    assert.equal(sha256(addon), portableHash);
    assert.equal(record.build, 'portable');
    assert.equal(record.addon.sha256, portableHash);
    assert.ok(searches(addon));
  });

  it('a build that compiles but does not load (-O0 -fsanitize=address: no ASan runtime in node): the portable build is kept', () => {
    const { line, record } = run({ PIXDEX_ANN_FLAGS: '-O0 -fsanitize=address' });
    assert.match(line, /kept portable: (the built addon failed its check|build failed)/);
    assert.equal(sha256(addon), portableHash);
    assert.equal(record.build, 'portable');
    assert.ok(searches(addon));
    assert.equal(fs.existsSync(path.join(cache, 'hnswlib')) ? fs.readdirSync(path.join(cache, 'hnswlib')).length : 0, 0, 'a failed build is not cached');
  });

  it('the default flags: a checked native build, recorded; the next run keeps it; a fresh install reuses it from the cache; PIXDEX_PORTABLE_ANN=1 restores the portable build', () => {
    const first = run({});
    assert.match(first.line, /rebuilt for this CPU \(-O3 -march=native/);
    assert.equal(first.record.build, 'native');
    assert.equal(first.record.flags, '-O3 -march=native');
    assert.equal(first.record.addon.sha256, sha256(addon));
    assert.notEqual(sha256(addon), portableHash);
    assert.equal(first.record.portable.sha256, portableHash);
    assert.equal(sha256(path.join(release, PORTABLE_ADDON)), portableHash);
    assert.ok(first.record.check.cosine.recallAt10 >= 0.95);
    // The huge-pages patch applies to this hnswlib-node's sources; the check reports what the kernel gave.
    assert.match(first.record.hugePages.patch, /^[0-9a-f]{12}$/, JSON.stringify(first.record.hugePages));
    if (process.platform === 'linux') assert.equal(typeof first.record.hugePages.checkKb, 'number');
    assert.match(first.line, /, huge pages;/);
    assert.equal(describeAddon(addon, path.join(release, BUILD_RECORD)).hugePages, true);
    assert.ok(searches(addon));
    assert.equal(describeAddon(addon, path.join(release, BUILD_RECORD)).build, 'native');

    assert.match(run({}).line, /already built for this CPU/);
    freshInstall();
    const again = run({});
    assert.match(again.line, /native build reused from cache/);
    assert.equal(again.record.addon.sha256, first.record.addon.sha256);

    const portable = run({ PIXDEX_PORTABLE_ANN: '1' });
    assert.match(portable.line, /kept portable: PIXDEX_PORTABLE_ANN/);
    assert.equal(sha256(addon), portableHash);
    assert.equal(describeAddon(addon, path.join(release, BUILD_RECORD)).build, 'portable');
    assert.ok(searches(addon));
  });
});
