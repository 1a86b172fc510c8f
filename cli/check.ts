/**
 * `pixdex check [--repair] [--json]`: verifies the store's invariants (src/check.ts) and, with
 * --repair, fixes what can be derived again. Without --repair nothing is written, not even the
 * index snapshot a normal close saves. Exit code 0 when no problem remains, 5 otherwise.
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkStore, repairStore, type CheckReport } from '../src/store/check.ts';
import { resolveConfig } from '../src/config.ts';
import { redactUrl } from '../src/store/pg-bridge.ts';
import { Engine } from '../src/engine.ts';
import { NotFoundError } from '../src/errors.ts';
import { EXIT } from './exit.ts';
import { engineOptions } from './args.ts';
import type { Parsed } from './spec.ts';

/** Runs `pixdex check`; returns the exit code. */
export async function check({ values: v }: Parsed): Promise<number> {
  const options = engineOptions(v);
  const config = resolveConfig(options);
  const dataDir = config.store === undefined ? config.dataDir : redactUrl(config.store);
  if (config.store === undefined && !fs.existsSync(path.join(dataDir, 'pixdex.lmdb'))) {
    throw new NotFoundError(`No store in ${dataDir} (no pixdex.lmdb there): run \`pixdex index <folder> --data ${dataDir}\` first, or pass the folder you index into with --data or PIXDEX_DATA.`);
  }

  const engine = await Engine.open(options, { create: false });
  let remaining: CheckReport;
  if (v.repair) {
    try {
      const r = repairStore(engine);
      remaining = r.after;
      const fixed = Object.entries(r.fixed).map(([what, n]) => `${what} ${n}`).join(', ');
      print(v.json, r, [describe(r.before, dataDir), r.before.ok ? 'nothing to repair' : `repaired: ${fixed}`, ...(r.before.ok ? [] : ['after repair:', describe(r.after, dataDir)])].join('\n'));
    } finally {
      await engine.close();
    }
  } else {
    try {
      remaining = checkStore(engine);
      print(v.json, remaining, describe(remaining, dataDir));
    } finally {
      await engine.store.close(); // not engine.close(): that saves a snapshot, and check writes nothing
    }
  }
  if (remaining.ok) return EXIT.ok;
  const total = Object.values(remaining.counts).reduce((a, b) => a + b, 0);
  process.stderr.write(`pixdex: STORE_INCONSISTENT: ${total} problem(s) ${v.repair ? 'remain after repair' : 'in the store; run `pixdex check --repair`'}\n`);
  return EXIT.environment;
}

function print(json: unknown, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value) + '\n' : text + '\n');
}

function describe(r: CheckReport, dataDir: string): string {
  const ix = r.index;
  const lines = [
    `store   ${dataDir}: ${r.images} images, ${r.vectors} vectors, ${r.paths} paths, ${r.labels} labels`,
    `index   ${ix.size} searchable, ${ix.source === 'snapshot' ? `from the snapshot at journal ${ix.snapshotSeq} + ${ix.journal} change(s) replayed` : 'rebuilt from the vectors (no usable snapshot)'}`,
  ];
  if (r.ok) {
    lines.push('ok      no problem found');
  } else {
    lines.push(`problems: ${Object.entries(r.counts).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const p of r.problems) lines.push(`  ${p.kind.padEnd(20)} ${p.message}`);
  }
  return lines.join('\n');
}
