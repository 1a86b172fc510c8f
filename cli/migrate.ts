/**
 * `pixdex migrate --from A --to B`: copies a library between an LMDB data folder and a PostgreSQL
 * database (either way; src/store/migrate.ts), then runs `pixdex check` on both and says whether
 * they agree. Exit code 0 when both are clean and hold the same images, vectors, paths and labels.
 */
import { Engine } from '../src/engine.ts';
import { InvalidParameterError } from '../src/errors.ts';
import { checkStore, type CheckReport } from '../src/store/check.ts';
import { migrateStore, type MigrateReport } from '../src/store/migrate.ts';
import { openStore } from '../src/store/open.ts';
import { isPostgresUrl } from '../src/store/postgres.ts';
import { engineOptions } from './args.ts';
import { EXIT } from './exit.ts';
import type { Parsed } from './spec.ts';

/** A folder or a postgres:// URL as the engine's options. */
function target(value: unknown, name: string): { dataDir?: string; store?: string } {
  if (typeof value !== 'string' || value === '') throw new InvalidParameterError(`pixdex migrate needs --${name} (a data folder or a postgres:// URL)`);
  return isPostgresUrl(value) ? { store: value } : { dataDir: value, store: undefined };
}

export async function migrate({ values: v }: Parsed): Promise<number> {
  const from = target(v.from, 'from');
  const to = target(v.to, 'to');
  const base = engineOptions(v);
  const source = openStore({ dataDir: from.dataDir ?? '', store: from.store }, { create: false });
  let report: MigrateReport;
  try {
    const dest = openStore({ dataDir: to.dataDir ?? '', store: to.store });
    try {
      report = migrateStore(source, dest);
    } finally {
      await dest.close();
    }
  } finally {
    await source.close();
  }
  const checks: CheckReport[] = [];
  for (const t of [from, to]) {
    const engine = await Engine.open({ ...base, ...t, backbone: undefined, descriptor: undefined, localFeatures: undefined }, { create: false });
    try {
      checks.push(checkStore(engine));
    } finally {
      await engine.store.close(); // as `pixdex check`: no snapshot written
    }
  }
  const [a, b] = checks;
  const same = a.ok && b.ok && a.images === b.images && a.vectors === b.vectors && a.paths === b.paths && a.labels === b.labels;
  if (v.json) {
    process.stdout.write(JSON.stringify({ ...report, check: { from: a, to: b, agree: same } }) + '\n');
  } else {
    const rows = Object.entries(report.rows).filter(([, n]) => n > 0).map(([t, n]) => `${t} ${n}`).join(', ');
    process.stdout.write(
      `copied ${report.from} -> ${report.to} in ${report.seconds.toFixed(1)} s: ${rows}\n` +
        `check   from: ${a.ok ? 'ok' : `${a.problems.length} problem(s)`}, ${a.images} images, ${a.vectors} vectors, ${a.paths} paths, ${a.labels} labels\n` +
        `check   to:   ${b.ok ? 'ok' : `${b.problems.length} problem(s)`}, ${b.images} images, ${b.vectors} vectors, ${b.paths} paths, ${b.labels} labels\n` +
        `${same ? 'the two stores agree' : 'the two stores DIFFER'}\n`,
    );
  }
  return same ? EXIT.ok : EXIT.environment;
}
