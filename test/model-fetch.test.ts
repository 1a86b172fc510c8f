/**
 * A fresh machine: backbones are downloaded on first use from their public origins — here a
 * loopback server serving ../shared/models' bytes (PIXDEX_MODELS_MIRROR) — checked against pinned
 * SHA-256 digests, resumed after a cut connection, downloaded once by concurrent first uses, and
 * installed atomically into ~/.cache/pixdex/models. Offline, one clear error.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../src/config.ts';
import { modelSource } from '../src/models/catalog.ts';
import { ensureBackbone } from '../src/models/ensure.ts';
import { installModel } from '../src/models/fetch.ts';
import { verifyModel } from '../src/models/manage.ts';
import { BACKEND, CLI, HYM_VAL, MODELS, imagesIn, tempDir } from './fixtures.ts';
import { startMirror, type Mirror } from './helpers/mirror.ts';

const V2 = modelSource('mobilenet_v2')!;
const V2_TFLITE = V2.files[0].path;
const V2_BYTES = V2.files[0].bytes;

/** The environment of a user on a fresh machine: an empty HOME, no PIXDEX_MODELS, the mirror as origin. */
function freshEnv(home: string, mirror: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, PIXDEX_MODELS_MIRROR: mirror, PIXDEX_BACKEND: BACKEND };
  for (const k of ['PIXDEX_MODELS', 'PIXDEX_CACHE_DIR', 'XDG_CACHE_HOME', 'PIXDEX_DATA']) delete env[k];
  return env;
}

/**
 * Runs the CLI without blocking: the mirror answers from this process, so a synchronous spawn
 * would wait for a download that can never be served.
 */
function pixdex(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Everything left in a models folder besides finished model folders (partial downloads, staging, locks). */
function leftovers(modelsDir: string): string[] {
  return existsSync(modelsDir) ? readdirSync(modelsDir).filter((n) => n.startsWith('.') && n !== '.partial') : [];
}

describe('models on first use', () => {
  let mirror: Mirror;
  before(async () => {
    mirror = await startMirror(MODELS);
  });
  after(() => mirror.close());

  test('a missing backbone is downloaded, converted from TFLite, checked and installed; the next use downloads nothing', async () => {
    const tmp = tempDir();
    try {
      const config = { modelsDir: path.join(tmp.dir, 'models'), fetchModels: true, modelMirror: mirror.url };
      const progress: number[] = [];
      await ensureBackbone({ ...config, onModelDownload: (p) => progress.push(p.received) }, 'mobilenet_v2');
      const folder = path.join(config.modelsDir, V2.dir);
      for (const f of ['model.json', 'group1-shard1of1.bin', V2_TFLITE, 'pixdex-model.json']) assert.ok(existsSync(path.join(folder, f)), f);
      // The conversion on this machine gives exactly the weights of the tfjs model in ../shared.
      assert.ok(readFileSync(path.join(folder, 'group1-shard1of1.bin')).equals(readFileSync(path.join(MODELS, V2.dir, 'group1-shard1of1.bin'))));
      assert.equal(progress.at(-1), V2_BYTES);
      assert.deepEqual(leftovers(config.modelsDir), []);
      assert.ok(!existsSync(path.join(config.modelsDir, '.partial', V2.dir)));
      const verified = await verifyModel(config, 'mobilenet_v2');
      assert.ok(verified.ok, verified.problems.join('; '));
      const served = mirror.log.length;
      await ensureBackbone(config, 'mobilenet_v2');
      assert.equal(mirror.log.length, served, 'an installed model is not downloaded again');
    } finally {
      tmp.cleanup();
    }
  });

  test('a connection cut mid-file resumes with a Range request; the bytes are sent once', async () => {
    const tmp = tempDir();
    try {
      mirror.log.length = 0;
      mirror.faults.set(V2_TFLITE, { cutAfter: 1_000_000, times: 1 });
      await installModel(V2, { modelsDir: tmp.dir, mirror: mirror.url });
      const requests = mirror.log.filter((r) => r.path.endsWith(V2_TFLITE));
      assert.equal(requests.length, 2);
      assert.equal(requests[0].bytes, 1_000_000);
      assert.equal(requests[1].range, 'bytes=1000000-');
      assert.equal(requests[1].status, 206);
      assert.equal(requests[0].bytes + requests[1].bytes, V2_BYTES);
      assert.ok((await verifyModel({ modelsDir: tmp.dir, fetchModels: true, modelMirror: mirror.url }, 'mobilenet_v2')).ok);
    } finally {
      mirror.faults.clear();
      tmp.cleanup();
    }
  });

  test('a download that gives up keeps its bytes and the next run continues from them', async () => {
    const tmp = tempDir();
    try {
      mirror.log.length = 0;
      mirror.faults.set(V2_TFLITE, { cutAfter: 700_000, times: 1 });
      await assert.rejects(installModel(V2, { modelsDir: tmp.dir, mirror: mirror.url, retries: 0 }), { code: 'MODEL_DOWNLOAD_FAILED' });
      assert.ok(!existsSync(path.join(tmp.dir, V2.dir)), 'nothing is installed');
      assert.equal(statSync(path.join(tmp.dir, '.partial', V2.dir, `${V2_TFLITE}.part`)).size, 700_000);
      await installModel(V2, { modelsDir: tmp.dir, mirror: mirror.url, retries: 0 });
      const last = mirror.log.at(-1)!;
      assert.equal(last.range, 'bytes=700000-');
      assert.equal(last.bytes, V2_BYTES - 700_000);
      assert.ok(existsSync(path.join(tmp.dir, V2.dir, 'model.json')));
      assert.deepEqual(leftovers(tmp.dir), []);
    } finally {
      mirror.faults.clear();
      tmp.cleanup();
    }
  });

  test('other bytes than the pinned ones are refused and nothing half-written is left', async () => {
    const tmp = tempDir();
    try {
      mirror.faults.set(V2_TFLITE, { corrupt: true });
      await assert.rejects(installModel(V2, { modelsDir: tmp.dir, mirror: mirror.url }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'MODEL_CHECKSUM_MISMATCH');
        assert.match(err.message, /SHA-256 [0-9a-f]{64}, expected 7aad0c74/);
        return true;
      });
      assert.ok(!existsSync(path.join(tmp.dir, V2.dir)));
      const partial = path.join(tmp.dir, '.partial', V2.dir);
      const kept = existsSync(partial) ? readdirSync(partial, { recursive: true }).filter((n) => String(n).endsWith('.tflite') || String(n).endsWith('.part')) : [];
      assert.deepEqual(kept, []);
      assert.deepEqual(leftovers(tmp.dir), []);
    } finally {
      mirror.faults.clear();
      tmp.cleanup();
    }
  });

  test('two processes starting at once download the model once', async () => {
    const tmp = tempDir();
    try {
      mirror.log.length = 0;
      mirror.faults.set(V2_TFLITE, { chunk: 256 * 1024, delayMs: 40 }); // ~0.6 s: the second process starts while the first downloads
      const env = freshEnv(tmp.dir, mirror.url);
      const [a, b] = await Promise.all([0, 1].map(() => pixdex(['models', 'fetch', 'mobilenet_v2'], env, tmp.dir)));
      assert.equal(a.status, 0, a.stderr);
      assert.equal(b.status, 0, b.stderr);
      const full = mirror.log.filter((r) => r.path.endsWith(V2_TFLITE));
      assert.equal(full.length, 1, `one download, got ${full.length}`);
      assert.equal(full[0].bytes, V2_BYTES);
      const cache = path.join(tmp.dir, '.cache', 'pixdex', 'models');
      assert.ok((await verifyModel({ modelsDir: cache, fetchModels: true, modelMirror: undefined }, 'mobilenet_v2')).ok);
      assert.deepEqual(leftovers(cache), []);
    } finally {
      mirror.faults.clear();
      tmp.cleanup();
    }
  });

  test('a fresh machine: `pixdex index` then `pixdex search` work from an empty HOME', async () => {
    const tmp = tempDir();
    try {
      mirror.log.length = 0;
      const env = freshEnv(tmp.dir, mirror.url);
      const photos = imagesIn(HYM_VAL).slice(0, 6);
      const data = path.join(tmp.dir, 'library');
      const index = await pixdex(['index', ...photos, '--data', data], env, tmp.dir);
      assert.equal(index.status, 0, index.stderr);
      assert.match(index.stderr, /downloaded mobilenet_v2/);
      const search = await pixdex(['search', photos[2], '--data', data, '--json'], env, tmp.dir);
      assert.equal(search.status, 0, search.stderr);
      assert.equal(JSON.parse(search.stdout).results[0].path, photos[2]);
      assert.ok(existsSync(path.join(tmp.dir, '.cache', 'pixdex', 'models', V2.dir, 'model.json')));
      assert.equal(mirror.log.filter((r) => r.path.endsWith(V2_TFLITE)).length, 1, 'downloaded by the first command only');
    } finally {
      tmp.cleanup();
    }
  });

  test('offline: one clear error naming the folder to fill and the variable to set', async () => {
    const tmp = tempDir();
    const closed = await startMirror(MODELS);
    await closed.close(); // a port nobody listens on
    try {
      const env = freshEnv(tmp.dir, closed.url);
      const r = await pixdex(['index', imagesIn(HYM_VAL)[0], '--data', path.join(tmp.dir, 'library')], env, tmp.dir);
      assert.equal(r.status, 5, r.stderr);
      const cache = path.join(tmp.dir, '.cache', 'pixdex', 'models');
      assert.match(r.stderr, /MODEL_DOWNLOAD_FAILED/);
      assert.ok(r.stderr.includes(cache), r.stderr);
      assert.match(r.stderr, /PIXDEX_MODELS/);
      assert.match(r.stderr, /copy the folder mobilenet_v2_1\.0_224_quant/);
      assert.ok(!existsSync(path.join(cache, V2.dir)));
    } finally {
      tmp.cleanup();
    }
  });

  test('a models folder the user named is never written to', async () => {
    const tmp = tempDir();
    try {
      const config = resolveConfig({ modelsDir: tmp.dir, modelMirror: mirror.url });
      assert.equal(config.fetchModels, false);
      await assert.rejects(ensureBackbone(config, 'mobilenet_v2'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'MODEL_NOT_FOUND');
        assert.match(err.message, /unset them to let pixdex download it/);
        return true;
      });
      assert.deepEqual(readdirSync(tmp.dir), []);
    } finally {
      tmp.cleanup();
    }
  });
});
