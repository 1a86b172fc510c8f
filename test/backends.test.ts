/**
 * Backend parity: the same photos through every tfjs backend that loads here give the same
 * embeddings (cosine >= 0.9999) and so the same neighbours.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { cosine } from '../src/vector.ts';
import { HYM_VAL, MODELS, REPO, imagesIn } from './fixtures.ts';

const require = createRequire(import.meta.url);
function tensorflowInstalled(): boolean {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}

/** The cpu backend is pure JS (~1 s per image): a few images are enough to compare it. */
const FILES = imagesIn(HYM_VAL).filter((_, i) => i % 19 === 0); // 9 photos, ants and bees
const CPU_FILES = FILES.slice(0, 3);

function embed(backend: string, files: string[]): number[][] {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/helpers/embed-child.ts'), backend, MODELS, ...files], { encoding: 'utf8', cwd: REPO, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.backend, backend);
  return out.vectors;
}

function assertSame(a: number[][], b: number[][], what: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    const c = cosine(a[i], b[i]);
    assert.ok(c >= 0.9999, `${what}: image ${i} cosine ${c}`);
  }
  // Same neighbours: for each image, the ranking of the others agrees.
  const rank = (vs: number[][], q: number) => vs.map((v, j) => ({ j, s: cosine(vs[q], v) })).filter((x) => x.j !== q).sort((x, y) => y.s - x.s).map((x) => x.j);
  for (let q = 0; q < a.length; q++) assert.deepEqual(rank(a, q).slice(0, 3), rank(b, q).slice(0, 3), `${what}: neighbours of image ${q}`);
}

describe('backend parity (mobilenet_v2 pooled vectors)', () => {
  const wasm = embed('wasm', FILES);

  it('cpu (pure JS) agrees with wasm', () => {
    assertSame(embed('cpu', CPU_FILES), wasm.slice(0, CPU_FILES.length), 'cpu vs wasm');
  });

  it('tensorflow (tfjs-node) agrees with wasm', { skip: tensorflowInstalled() ? false : '@tensorflow/tfjs-node is not installed (npm run setup:tensorflow)' }, () => {
    assertSame(embed('tensorflow', FILES), wasm, 'tensorflow vs wasm');
  });
});
