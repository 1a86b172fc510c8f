/**
 * `pixdex models import FILE.tflite --name N`: a TFLite image model of one's own becomes a
 * backbone beside the built-in ones, end to end to a search; files it cannot convert are refused
 * with a clear error and leave nothing behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { modelSource } from '../src/models/catalog.ts';
import { BACKEND, CLI, HYM_VAL, MODELS, imagesIn, tempDir } from './fixtures.ts';

const EMBEDDER = modelSource('mobilenet_v1_embedding')!;
const TFLITE = path.join(MODELS, EMBEDDER.dir, EMBEDDER.files[0].path);

describe('pixdex models import', () => {
  let tmp: ReturnType<typeof tempDir>;
  let env: NodeJS.ProcessEnv;
  const pixdex = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env, cwd: tmp.dir, encoding: 'utf8' });

  before(() => {
    tmp = tempDir();
    env = { ...process.env, PIXDEX_CACHE_DIR: path.join(tmp.dir, 'cache'), PIXDEX_BACKEND: BACKEND };
    delete env.PIXDEX_MODELS; // the user's cache, where imports are registered
  });
  after(() => tmp.cleanup());

  test('a TFLite embedder imported under a new name indexes and searches real photos', () => {
    const imported = pixdex('models', 'import', TFLITE, '--name', 'my-embedder', '--json');
    assert.equal(imported.status, 0, imported.stderr);
    const { backbone } = JSON.parse(imported.stdout);
    assert.deepEqual(
      { inputSize: backbone.inputSize, inputRange: backbone.inputRange, featureMap: backbone.featureMap, dims: backbone.dims },
      { inputSize: 224, inputRange: [-1, 1], featureMap: { name: 'MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6', shape: [7, 7, 1024] }, dims: 1024 },
    );
    const list = JSON.parse(pixdex('models', 'list', '--json').stdout);
    const mine = list.models.find((m: { id: string }) => m.id === 'my-embedder');
    assert.equal(mine.kind, 'imported');
    assert.equal(mine.installed, true);

    const photos = imagesIn(HYM_VAL).slice(0, 8);
    const data = path.join(tmp.dir, 'library');
    const index = pixdex('index', ...photos, '--data', data, '--backbone', 'my-embedder', '--local-features', 'off');
    assert.equal(index.status, 0, index.stderr);
    const stats = JSON.parse(pixdex('stats', '--data', data, '--json').stdout);
    assert.equal(stats.backbone, 'my-embedder');
    for (const query of [photos[1], photos[6]]) {
      const search = pixdex('search', query, '--data', data, '--json');
      assert.equal(search.status, 0, search.stderr);
      const { results } = JSON.parse(search.stdout);
      assert.equal(results[0].path, query);
      assert.ok(results[0].score > 0.99, `self-similarity ${results[0].score}`);
      assert.equal(results.length, 8);
    }
    const verify = pixdex('models', 'verify', 'my-embedder');
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  });

  test('a name that is taken or a built-in id is refused', () => {
    for (const name of ['my-embedder', 'mobilenet_v2', '../escape']) {
      const r = pixdex('models', 'import', TFLITE, '--name', name);
      assert.equal(r.status, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /INVALID_PARAMETER/);
    }
  });

  test('files that are not a convertible TFLite model are refused, naming why, and leave nothing', () => {
    const jpeg = imagesIn(HYM_VAL)[0];
    const empty = path.join(tmp.dir, 'empty.tflite');
    writeFileSync(empty, '');
    for (const file of [jpeg, empty]) {
      const r = pixdex('models', 'import', file, '--name', 'broken');
      assert.equal(r.status, 4, r.stderr);
      assert.match(r.stderr, /UNSUPPORTED_MODEL/);
    }
    const missing = pixdex('models', 'import', path.join(tmp.dir, 'nope.tflite'), '--name', 'broken');
    assert.equal(missing.status, 3, missing.stderr);
    const models = path.join(tmp.dir, 'cache', 'models');
    assert.ok(!existsSync(path.join(models, 'broken')));
    assert.deepEqual(readdirSync(models).filter((n) => n.startsWith('.import')), []);
  });

  test('an index with an unknown backbone lists the imported ones', () => {
    const r = pixdex('index', imagesIn(HYM_VAL)[0], '--data', path.join(tmp.dir, 'other'), '--backbone', 'nope');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /my-embedder/);
  });
});
