/** What the commands share: opening the engine, printing text or JSON, reading inputs, Ctrl-C. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { NotFoundError, PixdexError } from '../src/errors.ts';
import { EXIT } from './exit.ts';
import { engineOptions, type Values } from './args.ts';
import type { ProgressLine } from './progress.ts';

/**
 * Opens the engine for one command. Only commands that build a library (`index`, `train`, `eval`)
 * create one; every other command on a folder without a library fails with NOT_FOUND and creates
 * nothing (a mistyped --data must not leave an empty library behind).
 */
export async function withEngine<T>(v: Values, fn: (engine: Engine) => Promise<T>, { create = false }: { create?: boolean } = {}): Promise<T> {
  const engine = await Engine.open(engineOptions(v), { create });
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

/** Prints `json` with --json, else `text`, on stdout. */
export function out(v: Values, json: unknown, text: string): void {
  process.stdout.write(v.json ? JSON.stringify(json) + '\n' : text.endsWith('\n') ? text : text + '\n');
}

export async function readQuery(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`Query image ${file} does not exist (${path.resolve(file)})`);
    throw new PixdexError('UNREADABLE_FILE', `Cannot read query image ${file}: ${(err as Error).message}`);
  }
}

/** Refuses inputs that do not exist before anything is opened or created: NOT_FOUND, naming them. */
export async function checkInputsExist(inputs: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const input of inputs) {
    try {
      await fs.stat(input);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') missing.push(path.resolve(input));
      // other errors (permission denied...) are reported per path by the scan
    }
  }
  if (missing.length > 0) {
    throw new NotFoundError(`${missing.length === 1 ? 'Input does' : 'Inputs do'} not exist: ${missing.join(', ')}. Nothing was indexed; check the path${missing.length === 1 ? '' : 's'}.`);
  }
}

/**
 * Runs `work` with a signal that the first Ctrl-C (or SIGTERM) aborts, telling the user
 * `stopping`; a second one quits at once (exit code interrupted). The progress line is closed and
 * the handlers removed however `work` ends.
 */
export async function interruptible<T>(progress: ProgressLine, stopping: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    progress.note(stopping);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    progress.done();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
