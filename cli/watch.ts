/**
 * `pixdex index DIR... --watch`: indexes the folders, then keeps the library in step with them
 * (indexer/watch.ts) until Ctrl-C or SIGTERM, printing one line per pass (`--json`: one object
 * per pass). The first signal stops after the batch in flight (what it wrote is kept; the next
 * start catches up), a second quits at once.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Engine } from '../src/engine.ts';
import { NotFoundError, PixdexError } from '../src/errors.ts';
import type { WatchPassReport } from '../src/watch-status.ts';
import { FolderWatcher, type WatcherOptions } from '../indexer/watch.ts';
import { runWatchPass } from '../indexer/watch-pass.ts';
import { EXIT } from './exit.ts';

/** Folders only: watch mode follows folders (a single file is indexed with plain `pixdex index`). */
export async function watchRoots(inputs: readonly string[]): Promise<string[]> {
  const roots: string[] = [];
  for (const input of inputs) {
    const abs = path.resolve(input);
    const st = await fs.stat(abs).catch(() => undefined);
    if (!st) throw new NotFoundError(`No folder ${abs} to watch: check the path. Nothing was indexed.`);
    if (!st.isDirectory()) throw new PixdexError('USAGE', `--watch follows folders, and ${abs} is not a folder; index single files without --watch. Run \`pixdex index --help\` for usage.`);
    roots.push(abs);
  }
  return [...new Set(roots)];
}

/** One line for a pass: what it did and how long it took. */
export function passLine(r: WatchPassReport): string {
  return `watch: ${r.kind === 'full' ? 'full pass' : 'changes'}: ${r.added} added, ${r.updated} updated, ${r.removed} removed, ${r.failed} failed of ${r.files} files in ${r.seconds}s${r.interrupted ? ' (interrupted: the next start catches up)' : ''}`;
}

/** Starts watching `roots` into the engine's library with its watch settings; `run` runs each pass. */
export function startWatcher(engine: Engine, roots: string[], log: (line: string) => void, run: WatcherOptions['run'], onPass: WatcherOptions['onPass']): Promise<FolderWatcher> {
  return FolderWatcher.start({ roots, config: engine.config.watch, extensions: engine.config.extensions, dataDir: engine.config.dataDir, log, run, onPass });
}

/** Runs watch mode on an open engine until a signal; returns the exit code. */
export async function watchFolders(engine: Engine, roots: string[], o: { labelFromFolder: boolean; json: boolean }): Promise<number> {
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const watcher = await startWatcher(engine, roots, log,
    (pass, signal) => runWatchPass(engine, pass, { labelFromFolder: o.labelFromFolder, signal, onWarning: (m) => log(`warning: ${m}`) }),
    (report, summary) => {
      if (o.json) process.stdout.write(JSON.stringify({ ...report, errors: summary.errors }) + '\n');
      else process.stdout.write([passLine(report), ...summary.errors.map((e) => `  failed: ${e.path}: ${e.error}`)].join('\n') + '\n');
    });
  log(`watch: watching ${roots.join(', ')} (Ctrl-C to stop)`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const quit = (): void => process.exit(EXIT.interrupted);
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  log(`watch: ${signal}: stopping after the batch in flight (again to quit at once; the store stays consistent)`);
  await watcher.stop();
  log('watch: stopped');
  return EXIT.ok;
}
