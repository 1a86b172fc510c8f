/**
 * One pixdex library in a child process, driven by test/sequences.test.ts: it reads one JSON
 * command per line on stdin and answers one JSON line on stdout, so the test can SIGKILL it at
 * any moment (also in the middle of a command) and start it again on the same store.
 *
 *   node --import tsx test/helpers/sequence-driver.ts <dataDir> <modelsDir> <backend>
 *
 * Answers: {"ok":true,"value":...} or {"ok":false,"code":"CODE","message":"..."}; "@@ready" first.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { checkStore } from '../../src/store/check.ts';
import { Engine } from '../../src/engine.ts';
import { PixdexError } from '../../src/errors.ts';

const [dataDir, modelsDir, backend] = process.argv.slice(2);

/** What the test compares with its model after every step. */
export interface LibraryState {
  images: Array<{ id: number; path: string; sha256: string; label: string | null; paths: string[] }>;
  labels: Record<string, number>;
  suggestions: Array<{ id: number; label: string }>;
  space: string;
}

export type DriverCommand =
  | { op: 'index'; roots: string[] }
  | { op: 'remove'; ref: string | number }
  | { op: 'label'; ref: string | number; label: string | null }
  | { op: 'search'; file: string; k: number }
  | { op: 'similar'; id: number; k: number }
  | { op: 'classify'; file: string; method: 'knn' | 'head' | 'both' }
  | { op: 'stats' }
  | { op: 'check' }
  | { op: 'train'; epochs: number; dim: number }
  | { op: 'trainClassifier'; epochs: number }
  | { op: 'propagate'; minConfidence: number }
  | { op: 'acceptAll' }
  | { op: 'state' }
  | { op: 'reopen' };

let engine = await Engine.open({ dataDir, modelsDir, backend: backend as 'auto', workers: 1 });

function state(): LibraryState {
  engine.refresh();
  const { store } = engine;
  const byId = new Map<number, string[]>();
  for (const { key, value } of store.paths.getRange()) byId.set(value, [...(byId.get(value) ?? []), key]);
  const images: LibraryState['images'] = [];
  for (const { key: id, value: rec } of store.images.getRange()) {
    images.push({ id, path: rec.path, sha256: rec.sha256, label: rec.label ?? null, paths: (byId.get(id) ?? []).sort() });
  }
  return { images, labels: Object.fromEntries(engine.labels().map((l) => [l.label, l.count])), suggestions: engine.suggestions().map((s) => ({ id: s.id, label: s.label })), space: engine.space().kind };
}

async function run(c: DriverCommand): Promise<unknown> {
  switch (c.op) {
    case 'index':
      return engine.index(c.roots);
    case 'remove':
      return engine.remove(c.ref);
    case 'label':
      return engine.label(c.ref, c.label);
    case 'search':
      return engine.search(fs.readFileSync(c.file), { k: c.k });
    case 'similar':
      return engine.similar(c.id, { k: c.k });
    case 'classify':
      return engine.classify(fs.readFileSync(c.file), { method: c.method });
    case 'stats': {
      const s = await engine.stats();
      return { images: s.images, labels: s.labels, size: s.index.size, space: s.space };
    }
    case 'check': {
      const r = checkStore(engine);
      return { ok: r.ok, counts: r.counts, problems: r.problems.slice(0, 5), images: r.images, size: r.index.size };
    }
    case 'train':
      return engine.train({ epochs: c.epochs, dim: c.dim, batchSize: 8 });
    case 'trainClassifier':
      return engine.trainClassifier({ epochs: c.epochs });
    case 'propagate':
      return engine.propagate({ apply: true, minConfidence: c.minConfidence, k: 5 });
    case 'acceptAll':
      return engine.suggestions().map((s) => engine.acceptSuggestion(s.id));
    case 'state':
      return state();
    case 'reopen':
      await engine.close();
      engine = await Engine.open({ dataDir, modelsDir, backend: backend as 'auto', workers: 1 });
      return null;
  }
}

function answer(value: object): void {
  fs.writeSync(1, JSON.stringify(value) + '\n');
}

fs.writeSync(1, '@@ready\n');
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line) as DriverCommand;
  try {
    answer({ ok: true, value: (await run(command)) ?? null });
  } catch (err) {
    if (err instanceof PixdexError) answer({ ok: false, code: err.code, message: err.message });
    else answer({ ok: false, code: 'UNEXPECTED', message: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) });
  }
}
await engine.close();
