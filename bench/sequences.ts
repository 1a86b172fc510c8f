/**
 * Longer model-based runs of command sequences than CI's (test/sequences.test.ts): random
 * sequences with SIGKILLs and CLI processes against a model of the library, shrunk by fast-check
 * to the shortest failing sequence when one breaks a rule.
 *
 *   node --import tsx bench/sequences.ts [--steps 3000] [--seed N] [--max-length 200]
 *
 * Prints the steps, kills, CLI processes and time; exits 1 with the counterexample on failure
 * (keep it as a regression in test/sequences.test.ts).
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { makePool, runSequence, sequenceArb, type RunStats } from '../test/helpers/sequence-model.ts';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '3000' }, seed: { type: 'string' }, 'max-length': { type: 'string', default: '200' } } });
const target = Number(values.steps);
const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);
const maxLength = Number(values['max-length']);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-sequences-'));
const stats: RunStats = { steps: 0, kills: 0, cli: 0, seconds: 0 };
const started = performance.now();
try {
  const pool = await makePool(path.join(dir, 'pool'));
  for (let round = 0; stats.steps < target; round++) {
    await fc.assert(
      fc.asyncProperty(sequenceArb(maxLength, round % 4 === 0), (steps) => runSequence(path.join(dir, 'run'), pool, steps, stats)),
      { seed: seed + round, numRuns: 1, verbose: 2 },
    );
    const s = (performance.now() - started) / 1000;
    process.stderr.write(`\r${stats.steps}/${target} steps, ${round + 1} sequences, ${stats.kills} kills, ${stats.cli} CLI, ${(stats.steps / s).toFixed(1)} steps/s`);
  }
  stats.seconds = (performance.now() - started) / 1000;
  console.log(`\n${JSON.stringify({ seed, ...stats, loadavg: os.loadavg().map((x) => +x.toFixed(2)) })}`);
} catch (err) {
  console.error(`\nseed ${seed}: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
