/**
 * pixdex as a library (src/index.ts, package.json `exports`): another ESM program, in a folder of
 * its own with pixdex as a `file:` dependency (node_modules/pixdex → this repo, as `npm install`
 * lays it out), runs through tsx, imports 'pixdex', indexes three real photos and searches one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as pixdex from '../src/index.ts';
import { BACKEND, HYM_TRAIN, MODELS, REPO, imagesIn, tempDir } from './fixtures.ts';

/** The embedding program, as a user would write it (README "Use pixdex from your own program"). */
const PROGRAM = `
import fs from 'node:fs/promises';
import { open, isPixdexError, type PixdexOptions, type SearchResult } from 'pixdex';

const [dataDir, modelsDir, backend, ...photos] = process.argv.slice(2);
const library = await open({ dataDir, modelsDir, backend: backend as PixdexOptions['backend'], workers: 1 });
try {
  const summary = await library.index(photos);
  const results: SearchResult[] = await library.search(await fs.readFile(photos[1]), { k: 3 });
  let notFound = false;
  try {
    library.get(999_999);
  } catch (err) {
    notFound = isPixdexError(err, 'NOT_FOUND');
  }
  const stats = await library.stats();
  console.log(JSON.stringify({ resolved: import.meta.resolve('pixdex'), summary, results, images: stats.images, notFound }));
} finally {
  await library.close();
}
`;

describe('pixdex as a library', () => {
  it('exports open, the Engine façade and the typed errors', () => {
    assert.equal(typeof pixdex.open, 'function');
    assert.equal(typeof pixdex.withPixdex, 'function');
    assert.equal(typeof pixdex.Engine.open, 'function');
    const err = new pixdex.NotFoundError('no image 7');
    assert.ok(err instanceof pixdex.PixdexError);
    assert.ok(pixdex.isPixdexError(err, 'NOT_FOUND'));
    assert.ok(!pixdex.isPixdexError(err, 'INVALID_PARAMETER'));
    assert.ok(!pixdex.isPixdexError(new Error('plain')));
    assert.equal(pixdex.ERRORS.NOT_FOUND.status, 404);
    assert.equal(pixdex.ERRORS.NOT_FOUND.exit, 3);
    assert.ok(pixdex.ERROR_CODES.includes('MODEL_NOT_FOUND'));
  });

  it('open({ create: false }) on an empty folder is NOT_FOUND and creates nothing', async () => {
    const tmp = tempDir('pixdex-api-');
    try {
      const dataDir = path.join(tmp.dir, 'data');
      await assert.rejects(pixdex.open({ dataDir, modelsDir: MODELS, create: false }), (err) => pixdex.isPixdexError(err, 'NOT_FOUND'));
      assert.ok(!fs.existsSync(path.join(dataDir, 'pixdex.lmdb')));
    } finally {
      tmp.cleanup();
    }
  });

  it("is imported as 'pixdex' by another ESM program and indexes and searches real photos", () => {
    const tmp = tempDir('pixdex-embed-');
    try {
      const app = path.join(tmp.dir, 'app');
      fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true });
      fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'embeds-pixdex', private: true, type: 'module', dependencies: { pixdex: `file:${REPO}` } }, null, 2));
      fs.symlinkSync(REPO, path.join(app, 'node_modules', 'pixdex'), 'dir');
      fs.writeFileSync(path.join(app, 'main.mts'), PROGRAM);
      const photos = imagesIn(path.join(HYM_TRAIN, 'ants')).slice(0, 3);
      assert.equal(photos.length, 3);
      const tsx = pathToFileURL(fs.realpathSync(path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs'))).href;
      const r = spawnSync(process.execPath, ['--import', tsx, 'main.mts', path.join(tmp.dir, 'data'), MODELS, BACKEND, ...photos], { cwd: app, encoding: 'utf8', timeout: 240_000 });
      assert.equal(r.status, 0, `the program failed (${r.signal ?? r.status}):\n${r.stderr}`);
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
      assert.equal(out.resolved, pathToFileURL(path.join(REPO, 'src', 'index.ts')).href, "'pixdex' resolves to src/index.ts through package.json exports");
      assert.equal(out.summary.added, 3, JSON.stringify(out.summary));
      assert.equal(out.summary.failed, 0);
      assert.equal(out.images, 3);
      assert.equal(out.results.length, 3);
      assert.equal(out.results[0].path, photos[1], 'the query photo comes back first');
      assert.ok(out.results[0].score > 0.99, `score ${out.results[0].score}`);
      assert.ok(out.notFound, 'an unknown id is a NOT_FOUND PixdexError');
    } finally {
      tmp.cleanup();
    }
  });
});
