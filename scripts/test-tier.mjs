#!/usr/bin/env node
/**
 * Test tiers. `unit`: the fast tier (target: under 60 s on a busy 2-core machine), the test files
 * listed in UNIT below: pure math, parsing, store and index code, and tests that load the model
 * once on a handful of photos. `all`: exactly what `npm test` runs (test/preflight.ts, tsc, then every
 * test/*.test.ts one file at a time).
 *
 *   node scripts/test-tier.mjs unit|all [--list]     (npm run test:unit, npm run test:all)
 *
 * A file goes into UNIT when it takes well under 10 s alone while the machine is busy (time it:
 * `/usr/bin/time -f %e node --import tsx --test test/FILE.test.ts`); new test files are in `all`
 * only until someone lists them here.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Budget of the unit tier in seconds: a warning above it, so the list gets trimmed. */
const UNIT_BUDGET_S = 60;

/** The fast tier, with its time alone measured on a loaded 2-core machine. */
const UNIT = [
  'ann.test.ts', // ~3.5 s, no model
  'architecture.test.ts', // ~1.5 s, no model: sources only
  'autoencoder.test.ts', // ~3 s
  'classify.test.ts', // <1 s, no model
  'decode.test.ts', // ~3 s, no model
  'descriptors.test.ts', // ~1 s
  'evaluate.test.ts', // ~1 s
  'http-hardening.test.ts', // ~4 s
  'index-jobs.test.ts', // ~4.5 s
  'local-features.test.ts', // ~2.5 s, no model: OpenCV.js on a few smvs photos
  'matconv.test.ts', // ~1 s
  'near-duplicate-set.test.ts', // ~1.5 s, no model: generated copies of 30 flowers17 photos
  'package-api.test.ts', // ~5 s: three photos through the model
  'thumbnails.test.ts', // ~1 s, no model
  'vector.test.ts', // <1 s, no model
];

function testFiles() {
  return fs.readdirSync(path.join(REPO, 'test')).filter((f) => f.endsWith('.test.ts')).sort();
}

function run(args) {
  const r = spawnSync(process.execPath, args, { cwd: REPO, stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

const [tier, ...flags] = process.argv.slice(2);
if (tier !== 'unit' && tier !== 'all') {
  console.error('usage: node scripts/test-tier.mjs unit|all [--list]');
  process.exit(2);
}
const present = testFiles();
// A listed file that is gone is an error, so the list cannot rot quietly.
const missing = UNIT.filter((f) => !present.includes(f));
if (missing.length) {
  console.error(`scripts/test-tier.mjs: unit tier lists missing test files: ${missing.join(', ')}`);
  process.exit(2);
}
const files = (tier === 'unit' ? UNIT.filter((f) => present.includes(f)) : present).map((f) => path.join('test', f));
if (flags.includes('--list')) {
  console.log(files.join('\n'));
  process.exit(0);
}

const started = performance.now();
let status = 0;
status = run(['--import', 'tsx', path.join(REPO, 'test', 'preflight.ts')]); // the models and photos are there, or one message says what is missing
if (status === 0 && tier === 'all') status = run([path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit']);
if (status === 0) status = run(['--import', 'tsx', '--test', '--test-concurrency=1', ...files]);
const seconds = (performance.now() - started) / 1000;
console.error(`test:${tier}: ${files.length} files in ${seconds.toFixed(1)} s${tier === 'unit' && seconds > UNIT_BUDGET_S ? ` (over the ${UNIT_BUDGET_S} s budget: move the slowest files out of UNIT in scripts/test-tier.mjs)` : ''}`);
process.exit(status);
