/**
 * `npm test` on a machine without the models or photos stops before the suite with one message
 * that names each missing item and where to get it (test/preflight.ts), instead of dozens of
 * failures.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO, tempDir } from './fixtures.ts';

const PREFLIGHT = path.join(REPO, 'test', 'preflight.ts');

function preflight(env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ['--import', 'tsx', PREFLIGHT], { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8' });
}

test('with every model and photo set present it passes and says where they are', () => {
  const r = preflight({});
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^test inputs: models in .+, photos in .+$/m);
});

test('missing photo sets stop the suite with one message naming each and where to get it', () => {
  const empty = tempDir();
  try {
    const r = preflight({ PIXDEX_DATASETS: empty.dir });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.match(/npm test stopped/g)?.length, 1, r.stderr);
    for (const name of ['hymenoptera_data', 'oxford_flowers17', 'smvs']) assert.match(r.stderr, new RegExp(`^    ${name}: `, 'm'));
    assert.match(r.stderr, /set PIXDEX_DATASETS/);
    assert.ok(r.stderr.includes(empty.dir));
  } finally {
    empty.cleanup();
  }
});

test('a models folder without the backbones is named, with what to do; nothing is written to it', () => {
  const empty = tempDir();
  try {
    const r = preflight({ PIXDEX_MODELS: empty.dir });
    assert.equal(r.status, 1);
    for (const dir of ['mobilenet_v2_1.0_224_quant', 'mobilenet_v1_0.75_224', 'mobilenet_v1_1.0_224_embedding']) assert.match(r.stderr, new RegExp(`^    ${dir.replace(/\./g, '\\.')} \\(`, 'm'));
    assert.match(r.stderr, /unset PIXDEX_MODELS and run `npx pixdex models fetch`/);
    assert.doesNotMatch(r.stderr, /photo sets missing/);
    assert.deepEqual(readdirSync(empty.dir), []);
  } finally {
    empty.cleanup();
  }
});
