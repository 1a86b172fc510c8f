/**
 * TensorFlow's CPU kernels (src/tensorflow-cpu.ts): on a CPU where oneDNN's widest kernels crash
 * (seen: an AMD EPYC guest that reports no cache sizes, SIGFPE in the 1x1 convolutions), pixdex
 * probes in child processes, records the setting that runs, and applies it before TensorFlow loads.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CPU_RECORD, CPU_SETTINGS, cpuFingerprint, cpuVerdict, tfjsNodeDir } from '../src/tensorflow-cpu.ts';
import { HYM_VAL, MODELS, REPO, imagesIn } from './fixtures.ts';

const pkgDir = tfjsNodeDir();
const skip = pkgDir ? false : '@tensorflow/tfjs-node is not installed (npm run setup:tensorflow)';

describe("TensorFlow's CPU kernels", { skip }, () => {
  const record = path.join(pkgDir ?? '', 'deps', CPU_RECORD);
  const saved = fs.existsSync(record) ? fs.readFileSync(record) : undefined;
  after(() => {
    if (saved) fs.writeFileSync(record, saved);
    else fs.rmSync(record, { force: true });
  });

  it('a fresh probe keeps the widest setting that runs a MobileNet, and every wider one crashed', () => {
    const v = cpuVerdict(pkgDir!, { reprobe: true });
    assert.equal(v.source, 'probed');
    assert.ok(v.setting, `no setting ran: ${JSON.stringify(v.trials)}`);
    const last = v.trials.at(-1)!;
    assert.equal(last.ok, true);
    assert.equal(last.label, v.setting.label);
    // The candidates were tried in order, and each one before the winner died of a signal.
    assert.deepEqual(v.trials.map((t) => t.label), CPU_SETTINGS.slice(0, v.trials.length).map((s) => s.label));
    for (const t of v.trials.slice(0, -1)) assert.match(t.outcome, /^killed by SIG/, t.label);
    // Recorded for this CPU and build: the next process reads it instead of probing.
    const again = cpuVerdict(pkgDir!);
    assert.equal(again.source, 'recorded');
    assert.deepEqual(again.setting, v.setting);
  });

  for (const backbone of ['mobilenet_v1_embedding', 'mobilenet_v2']) it(`real photos through ${backbone} on tensorflow, in a fresh process, under the recorded setting`, () => {
    const files = imagesIn(HYM_VAL).slice(0, 4);
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/helpers/embed-child.ts'), 'tensorflow', MODELS, ...files], {
      encoding: 'utf8', cwd: REPO, maxBuffer: 64 << 20, env: { ...process.env, EMBED_BACKBONE: backbone },
    });
    assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { backend: string; vectors: number[][] };
    assert.equal(out.backend, 'tensorflow');
    assert.equal(out.vectors.length, files.length);
    for (const v of out.vectors) assert.ok(v.some((x) => x > 0) && v.every(Number.isFinite));
  });

  it('a record made on another CPU is not believed; the one for this CPU is', () => {
    const fingerprint = cpuFingerprint(pkgDir!);
    const harmless = { label: 'oneDNN capped at SSE4.1', env: { ONEDNN_MAX_CPU_ISA: 'SSE41' } };
    fs.writeFileSync(record, JSON.stringify({ fingerprint: 'another-cpu', setting: harmless, trials: [], at: '2026-01-01T00:00:00Z' }));
    const probed = cpuVerdict(pkgDir!);
    assert.equal(probed.source, 'probed');
    assert.equal(probed.fingerprint, fingerprint);
    assert.ok(probed.trials.length >= 1);
    fs.writeFileSync(record, JSON.stringify({ fingerprint, setting: harmless, trials: [], at: '2026-01-01T00:00:00Z' }));
    const read = cpuVerdict(pkgDir!);
    assert.equal(read.source, 'recorded');
    assert.deepEqual(read.setting, harmless);
  });

  it('the environment is set when pixdex is imported, and starting TensorFlow writes none of it (a later write races with sharp reading it)', () => {
    const verdict = cpuVerdict(pkgDir!); // recorded (or probed and recorded now)
    assert.notEqual(verdict.source, 'user', 'unset ONEDNN_MAX_CPU_ISA / TF_ENABLE_ONEDNN_OPTS to run this test');
    const env = { ...process.env };
    for (const v of ['ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA', 'TF_ENABLE_ONEDNN_OPTS', 'TF_CPP_MIN_LOG_LEVEL']) delete env[v];
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/helpers/env-writes-child.ts')], { encoding: 'utf8', cwd: REPO, env });
    assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { atImport: Record<string, string | null>; writes: string[]; backend: string };
    assert.equal(out.backend, 'tensorflow');
    assert.equal(out.atImport.TF_CPP_MIN_LOG_LEVEL, '2');
    for (const [k, v] of Object.entries(verdict.setting!.env)) assert.equal(out.atImport[k], v, k);
    assert.deepEqual(out.writes, [], 'TensorFlow started with environment writes');
  });

  it("the user's own ONEDNN_MAX_CPU_ISA is taken as given (no probe)", () => {
    const before = process.env.ONEDNN_MAX_CPU_ISA;
    process.env.ONEDNN_MAX_CPU_ISA = 'SSE41';
    try {
      const v = cpuVerdict(pkgDir!, { reprobe: true });
      assert.equal(v.source, 'user');
      assert.deepEqual(v.trials, []);
      assert.match(v.setting!.label, /ONEDNN_MAX_CPU_ISA=SSE41/);
      assert.deepEqual(v.setting!.env, {});
    } finally {
      if (before === undefined) delete process.env.ONEDNN_MAX_CPU_ISA;
      else process.env.ONEDNN_MAX_CPU_ISA = before;
    }
  });
});
