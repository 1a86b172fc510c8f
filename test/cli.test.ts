/**
 * The `pixdex` command line as a user runs it: JSON shapes of DESIGN.md, exit codes, one-line
 * errors, and a `kill -9` in the middle of indexing followed by a resuming run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { CLI, HYM_VAL, MODELS, engineOptions, imagesIn, tempDir } from './fixtures.ts';

function pixdex(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, PIXDEX_MODELS: MODELS, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}

describe('pixdex CLI', () => {
  const tmp = tempDir();
  const lib = path.join(tmp.dir, 'library');
  const data = path.join(tmp.dir, 'data');
  const files = imagesIn(HYM_VAL).filter((_, i) => i % 8 === 0); // 20 photos, both classes

  before(() => {
    for (const f of files) {
      const dest = path.join(lib, path.basename(path.dirname(f)), path.basename(f));
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.copyFileSync(f, dest);
    }
  });
  after(() => tmp.cleanup());

  it('index --json prints exactly the summary of the contract', () => {
    const r = pixdex(['index', lib, '--data', data, '--label-from-folder', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = r.json();
    assert.deepEqual(Object.keys(s).sort(), ['added', 'errors', 'failed', 'removed', 'seconds', 'skipped', 'total', 'updated']);
    assert.deepEqual({ ...s, seconds: 0 }, { added: files.length, updated: 0, skipped: 0, failed: 0, removed: 0, total: files.length, seconds: 0, errors: [] });
    // The progress line (stderr, off a TTY: the first update at least) counts in the summary's words.
    const progress = /^indexed (\d+)\/(\d+) .*\((\d+) added, (\d+) updated, (\d+) skipped, (\d+) failed\)$/m.exec(r.stderr);
    assert.ok(progress, r.stderr);
    assert.equal(Number(progress[2]), files.length);
    assert.equal(Number(progress[3]) + Number(progress[6]), Number(progress[1]), 'added + failed = done in a new library');
  });

  it('index text summary says what --json says, in the same words', () => {
    const r = pixdex(['index', lib, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^0 added, 0 updated, ${files.length} skipped, 0 failed, 0 removed of ${files.length} files in [\\d.]+s\n$`));
    assert.doesNotMatch(r.stdout + r.stderr, /unchanged|\(\+\d/);
  });

  it('search --json returns the query photo first with its label and score >= 0.999', () => {
    const query = path.join(lib, 'bees', path.basename(files.at(-1)!));
    const r = pixdex(['search', query, '--k', '5', '--data', data, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { results } = r.json();
    assert.equal(results.length, 5);
    assert.deepEqual(Object.keys(results[0]), ['id', 'path', 'score', 'label', 'inliers', 'verified', 'outline']);
    assert.equal(results[0].path, query);
    assert.equal(results[0].label, 'bees');
    assert.ok(results[0].score >= 0.999);
    // A new library has local features: the photo itself is verified and outlined.
    assert.equal(results[0].verified, true);
    assert.ok(results[0].inliers >= 12, `inliers ${results[0].inliers}`);
    assert.equal(results[0].outline.length, 4);
  });

  it('stats --json reports images, labels, backbone, dims, backend, index and store size', () => {
    const r = pixdex(['stats', '--data', data, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = r.json();
    assert.equal(s.images, files.length);
    assert.equal(s.labels.ants + s.labels.bees, files.length);
    assert.equal(s.backbone, 'mobilenet_v2');
    assert.equal(s.dims, 1280);
    assert.ok(['tensorflow', 'wasm'].includes(s.backend), s.backend);
    assert.equal(s.space, 'backbone');
    assert.equal(s.index.size, files.length);
    assert.ok(s.storeBytes > 0);
  });

  it('remove takes a path and the image is gone from search', () => {
    const victim = path.join(lib, 'ants', path.basename(files[0]));
    assert.equal(pixdex(['remove', victim, '--data', data, '--json']).code, 0);
    const { results } = pixdex(['search', victim, '--k', '50', '--data', data, '--json']).json();
    assert.equal(results.length, files.length - 1);
    assert.ok(!results.some((r: { path: string }) => r.path === victim));
  });

  it('fails with one line on stderr and a distinct exit code', () => {
    const missingModels = pixdex(['search', files[0], '--data', data, '--models', path.join(tmp.dir, 'nowhere')]);
    assert.equal(missingModels.code, 5);
    assert.match(missingModels.stderr, /^pixdex: MODEL_NOT_FOUND: Backbone mobilenet_v2 not found: no model.json in .*nowhere.*Copy the folder mobilenet_v2_1.0_224_quant into .*nowhere/);
    assert.equal(missingModels.stderr.trim().split('\n').length, 1);

    const badImage = path.join(tmp.dir, 'notes.jpg');
    fs.writeFileSync(badImage, 'not an image');
    const bad = pixdex(['search', badImage, '--data', data]);
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /^pixdex: UNSUPPORTED_IMAGE: /);

    assert.equal(pixdex(['search', files[0], '--k', '0', '--data', data]).code, 2);
    assert.equal(pixdex(['frobnicate']).code, 2);
    assert.equal(pixdex(['remove', '999999', '--data', data]).code, 3);
    const unknown = pixdex(['search', files[0], '--data', data, '--top', '3']);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, 'pixdex: USAGE: pixdex search has no option --top. Run `pixdex search --help` for usage.\n');
  });

  it('label sets a label and --clear removes it (by path and by id)', () => {
    const target = path.join(lib, 'bees', path.basename(files.at(-1)!));
    const before = pixdex(['stats', '--data', data, '--json']).json().labels;
    const set = pixdex(['label', target, 'wasp', '--data', data, '--json']);
    assert.equal(set.code, 0, set.stderr);
    const { id, label } = set.json();
    assert.equal(label, 'wasp');
    assert.deepEqual(pixdex(['stats', '--data', data, '--json']).json().labels, { ...before, bees: before.bees - 1, wasp: 1 });

    const cleared = pixdex(['label', String(id), '--clear', '--data', data]);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.equal(cleared.stdout, `${target}: label cleared\n`);
    assert.deepEqual(pixdex(['stats', '--data', data, '--json']).json().labels, { ...before, bees: before.bees - 1 });
    const [top] = pixdex(['search', target, '--k', '1', '--data', data, '--json']).json().results;
    assert.equal(top.path, target);
    assert.equal(top.label, null);
    // clearing an unlabelled image is not an error; an unknown one is NOT_FOUND
    assert.equal(pixdex(['label', target, '--clear', '--data', data]).code, 0);
    assert.equal(pixdex(['label', '999999', '--clear', '--data', data]).code, 3);
  });

  it('stats text shows every field of stats --json, the trained classifier included', () => {
    const untrained = pixdex(['stats', '--data', data]);
    assert.equal(untrained.code, 0, untrained.stderr);
    assert.match(untrained.stdout, /^classifier +none \(`pixdex train-classifier`/m);
    assert.equal(pixdex(['train-classifier', '--data', data]).code, 0);

    const text = pixdex(['stats', '--data', data]).stdout;
    const s = pixdex(['stats', '--data', data, '--json']).json();
    const line = (name: string): string => {
      const m = new RegExp(`^${name} +(.*)$`, 'm').exec(text);
      assert.ok(m, `no "${name}" line in:\n${text}`);
      return m[1];
    };
    // One check per field of --json: a new field fails here until the text shows it.
    const checks: Record<string, () => void> = {
      images: () => assert.equal(line('images'), String(s.images)),
      labels: () => assert.equal(line('labels'), Object.entries(s.labels).map(([l, n]) => `${l} ${n}`).join(', ')),
      suggestions: () => assert.match(line('suggestions'), new RegExp(`^${s.suggestions} pending`)),
      classifier: () => {
        const c = s.classifier;
        assert.ok(c, 'trained');
        const l = line('classifier');
        for (const part of [`head on ${c.classes.length} labels (${c.classes.join(', ')})`, `held-out accuracy ${c.heldOutAccuracy.toFixed(3)} on ${c.heldOutImages} images`, `trained on ${c.trainImages} images in ${c.epochs} epochs`, new Date(c.trainedAt).toISOString()]) {
          assert.ok(l.includes(part), `${part} in ${l}`);
        }
      },
      backbone: () => assert.ok(line('backbone').startsWith(`${s.backbone} (`)),
      dims: () => assert.ok(line('backbone').includes(`(${s.dims}-d)`)),
      descriptor: () => assert.ok(line('backbone').endsWith(`descriptor ${s.descriptor}`)),
      backend: () => assert.ok(line('backend').startsWith(`${s.backend} `)),
      backendReason: () => assert.ok(line('backend').includes(`(${s.backendReason})`)),
      space: () => assert.ok(line('space').startsWith(s.space)),
      spaceInfo: () => assert.equal(s.spaceInfo.kind, s.space), // backbone: nothing more to show
      index: () => {
        const l = line('index');
        const ix = s.index;
        for (const part of [`${ix.type} ${ix.metric}`, `M=${ix.m}`, `efConstruction=${ix.efConstruction}`, `ef=${ix.efSearch}`, `${ix.size} vectors of ${ix.dims}-d`, `capacity ${ix.capacity}`, `${ix.pendingChanges} changes since the snapshot`, ix.snapshotSeq === null ? 'no snapshot yet' : `snapshot at journal ${ix.snapshotSeq}`]) {
          assert.ok(l.includes(part), `${part} in ${l}`);
        }
      },
      ann: () => assert.ok(line('ann').startsWith(`hnswlib-node ${s.ann.build}`)),
      storeBytes: () => assert.ok(line('store').startsWith(`${(s.storeBytes / 1048576).toFixed(1)} MiB`)),
      store: () => assert.ok(line('store').includes(` in ${s.store}`)),
      dataDir: () => assert.ok(line('store').endsWith(s.dataDir)),
      localFeatures: () => assert.ok(line('local').startsWith(`on, ${s.localFeatures.images} images with local features`)),
      dates: () => assert.equal(line('dates'), s.dates.dated === 0 ? 'none (no image has an EXIF capture date)' : `${s.dates.earliest} … ${s.dates.latest} (${s.dates.dated} of ${s.images} images dated)`),
      watch: () => {
        assert.deepEqual(s.watch, [], 'no process watches this library');
        assert.doesNotMatch(text, /^watch /m); // test/watch.test.ts checks the line of a watching process
      },
    };
    assert.deepEqual(Object.keys(s).sort(), Object.keys(checks).sort(), 'every --json field has a check');
    for (const check of Object.values(checks)) check();
  });
});

describe('pixdex index killed with SIGKILL', () => {
  const tmp = tempDir();
  const data = path.join(tmp.dir, 'data');
  after(() => tmp.cleanup());

  it('resumes without duplicates and ends with every image indexed once and searchable', async () => {
    const run = spawn(process.execPath, [CLI, 'index', HYM_VAL, '--data', data], { env: { ...process.env, PIXDEX_MODELS: MODELS }, stdio: ['ignore', 'ignore', 'pipe'] });
    // Progress is printed after every committed batch (at most every 5 s off a TTY): kill after the first.
    await new Promise<void>((resolve, reject) => {
      run.stderr!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('indexed')) resolve();
      });
      run.on('exit', () => reject(new Error('indexer finished before it could be killed')));
    });
    run.kill('SIGKILL');
    await new Promise((resolve) => run.on('close', resolve));

    const resumed = pixdex(['index', HYM_VAL, '--data', data, '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const s = resumed.json();
    assert.ok(s.skipped > 0, 'the killed run committed at least one batch');
    assert.equal(s.added + s.skipped, 153);

    const engine = await Engine.open(engineOptions(data));
    try {
      assert.equal(engine.store.images.getCount(), 153);
      assert.equal(engine.store.vectors.getCount(), 153);
      assert.equal(new Set([...engine.store.images.getRange()].map((r) => r.value.path)).size, 153);
      const st = await engine.stats();
      assert.equal(st.index.size, 153);
      const probe = imagesIn(HYM_VAL)[5];
      const [top] = await engine.search(fs.readFileSync(probe), { k: 1 });
      assert.equal(top.path, probe);
    } finally {
      await engine.close();
    }
  });
});
