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
