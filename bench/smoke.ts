/**
 * Benchmarks must not rot: runs every benchmark script in bench/ on a tiny input (a few photos per
 * dataset folder, bench/lib/smoke.ts; small sizes and one round by their own flags) and fails when
 * one dies, times out or prints no JSON. CI runs it after the wasm `npm test`; the figures it
 * prints mean nothing (tiny inputs, a loaded machine).
 *
 *   npm run bench:smoke [-- --only index,query] [--per-folder 3] [--timeout 240]
 *
 * Prints one JSON line per script ({script, ok, seconds, exit, jsonLines}) and a summary line;
 * exit code 1 when any failed (its stderr tail goes to stderr). The research scripts of
 * bench/local/ (cached multi-step runs on smvs, see its README) are not run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runScript, type ScriptRun } from './lib/run.ts';
import { tinyDatasets } from './lib/smoke.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    'per-folder': { type: 'string', default: '3' },
    timeout: { type: 'string', default: '240' },
  },
});
const SHARED_DATASETS = path.resolve(process.env.PIXDEX_DATASETS ?? '../shared/datasets');

/** Each script with the flags that make it tiny; `data` is the tiny datasets folder. */
function smokeRuns(data: string): Record<string, Omit<ScriptRun, 'timeoutSeconds'>> {
  const flowers = path.join(data, 'oxford_flowers17');
  return {
    index: { script: 'bench/index.ts', args: [flowers, '--limit', '8', '--local-features', 'off,on', '--descriptor', 'regional,regional2'] },
    'decode-heic': { script: 'bench/decode-heic.ts', args: ['--rounds', '1'] },
    query: { script: 'bench/query.ts', args: ['--dataset', path.join(data, 'hymenoptera_data/train'), '--queries', path.join(data, 'hymenoptera_data/val'), '--n', '6', '--breakdown', '2'] },
    ann: { script: 'bench/ann.ts', args: ['--n', '600', '--dims', '64', '--queries', '20', '--ef', '16,64', '--repeat', '1'] },
    'ann-ab': { script: 'bench/ann.ts', args: ['--n', '600', '--dims', '64', '--queries', '20', '--ef', '16,64', '--repeat', '1', '--ab', 'portable,native', '--batch', '5'] },
    pgvector: { script: 'bench/pgvector.ts', args: ['--n', '400', '--dims', '16', '--queries', '5', '--ef', '40', '--store-n', '20'] },
    open: { script: 'bench/open.ts', args: ['--n', '600', '--dims', '64', '--runs', '1'] },
    labels: { script: 'bench/labels.ts', args: ['--datasets', data] },
    'open-set': { script: 'bench/open-set.ts', args: ['--smoke', '--datasets', data] },
    finetune: { script: 'bench/finetune.ts', args: ['--datasets', data], env: { PIXDEX_BENCH_SMOKE: '1' } },
    instance: { script: 'bench/instance.ts', args: ['--datasets', data, '--queries', '9', '--descriptors', 'regional,pooled', '--rounds', '1'] },
    descriptors: { script: 'bench/descriptors.ts', args: ['--datasets', data, '--queries', '9', '--quick', '--scales', '224', '--db-scales', '224,160', '--latency-queries', '2', '--latency-rounds', '1'] },
    smvs: { script: 'bench/smvs.ts', args: ['--libraries', 'categories', '--workers', '1'] },
    duplicates: { script: 'bench/duplicates.ts', args: ['--copies', '8', '--workers', '1'] },
    'duplicates-smvs': { script: 'bench/duplicates-smvs.ts', args: [] },
    'duplicates-scale': { script: 'bench/duplicates-scale.ts', nodeFlags: ['--expose-gc'], args: ['--n', '1500', '--adds', '2', '--pairs', '1'] },
    inverted: { script: 'bench/inverted.ts', nodeFlags: ['--expose-gc'], args: ['--images', '300', '--queries', '5', '--branching', '4', '--depth', '3', '--n', '10'] },
    'local-match': { script: 'bench/local-match.ts', args: ['--queries', '2', '--wrong', '1', '--repeat', '1'] },
    load: { script: 'bench/load.ts', args: ['--clients', '2', '--requests', '3', '--limit', '6'] },
    // Its pool is 20 distinct photos (test/helpers/sequence-model.ts): the real datasets, 20 photos of them.
    sequences: { script: 'bench/sequences.ts', args: ['--steps', '15', '--seed', '1', '--max-length', '15'], env: { PIXDEX_DATASETS: SHARED_DATASETS } },
  };
}

/** bench/ files that are not scripts of their own: modules the scripts import, and the runners. */
const NOT_SCRIPTS = new Set(['bench/smoke.ts', 'bench/all.ts', 'bench/index-stages.ts']);

/** A script added to bench/ without a smoke run would rot unseen: refuse to pass until it has one. */
function uncovered(runs: Record<string, { script: string }>): string[] {
  const covered = new Set(Object.values(runs).map((r) => r.script));
  return fs
    .readdirSync('bench')
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `bench/${f}`)
    .filter((f) => !covered.has(f) && !NOT_SCRIPTS.has(f));
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-smoke-run-'));
let failed = 0;
const started = performance.now();
try {
  const data = tinyDatasets(SHARED_DATASETS, path.join(root, 'datasets'), Number(values['per-folder']));
  const runs = smokeRuns(data);
  const missing = uncovered(runs);
  if (missing.length > 0) throw new Error(`no smoke run for ${missing.join(', ')}: add each to smokeRuns in bench/smoke.ts with the flags that make it tiny`);
  const only = values.only?.split(',');
  const unknown = only?.filter((name) => !(name in runs)) ?? [];
  if (unknown.length > 0) throw new Error(`--only: no benchmark named ${unknown.join(', ')}; the names are ${Object.keys(runs).join(', ')}`);
  for (const [name, run] of Object.entries(runs)) {
    if (only && !only.includes(name)) continue;
    const cache = path.join(root, 'cache');
    const result = await runScript({
      ...run,
      timeoutSeconds: Number(values.timeout),
      env: { PIXDEX_DATASETS: data, PIXDEX_BENCH_CACHE: cache, PIXDEX_LOCAL_CACHE: cache, ...run.env },
    });
    const ok = result.exit === 0 && result.json.length > 0;
    if (!ok) {
      failed++;
      const why = result.timedOut ? `timed out after ${values.timeout} s` : result.exit !== 0 ? `exit ${result.exit}` : 'printed no JSON line';
      process.stderr.write(`bench:smoke: ${name} (${run.script} ${run.args.join(' ')}) FAILED: ${why}\n${result.stderrTail}\n`);
    }
    console.log(JSON.stringify({ script: name, ok, seconds: result.seconds, exit: result.exit, jsonLines: result.json.length, load: result.load }));
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
console.log(JSON.stringify({ smoke: failed === 0 ? 'ok' : 'failed', failed, seconds: Math.round((performance.now() - started) / 1000) }));
if (failed > 0) process.exitCode = 1;
