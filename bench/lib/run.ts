/**
 * Runs one benchmark script in a child process (as `npm run bench:*` would) and collects the JSON
 * objects it prints, one a line, with the 1-minute load average before and after. Used by
 * bench/smoke.ts and bench/all.ts.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ScriptRun {
  /** The script, relative to the repo root (e.g. bench/index.ts). */
  script: string;
  args: string[];
  /** Node flags before `--import tsx` (e.g. --expose-gc). */
  nodeFlags?: string[];
  env?: Record<string, string>;
  timeoutSeconds: number;
}

export interface ScriptResult {
  /** Exit code, or the signal that ended it (a timeout is SIGTERM). */
  exit: number | string;
  timedOut: boolean;
  seconds: number;
  /** 1-minute load average before and after. */
  load: [number, number];
  /** Every stdout line that parsed as a JSON object, in order. */
  json: Array<Record<string, unknown>>;
  /** The last lines of stderr (for a failure's report). */
  stderrTail: string;
}

export const load1 = () => Math.round(os.loadavg()[0] * 100) / 100;

export function runScript(run: ScriptRun): Promise<ScriptResult> {
  const before = load1();
  const started = performance.now();
  const child = spawn(process.execPath, [...(run.nodeFlags ?? []), '--import', 'tsx', run.script, ...run.args], {
    cwd: REPO,
    env: { ...process.env, ...run.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  }, run.timeoutSeconds * 1000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        exit: code ?? signal ?? 'unknown',
        timedOut,
        seconds: Math.round((performance.now() - started) / 100) / 10,
        load: [before, load1()],
        json: parseJsonLines(stdout),
        stderrTail: stderr.split('\n').filter((l) => l.trim()).slice(-15).join('\n'),
      });
    });
  });
}

/** The lines of `text` that are JSON objects. */
export function parseJsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    const s = line.trim();
    if (!s.startsWith('{')) continue;
    try {
      const v = JSON.parse(s) as unknown;
      if (v && typeof v === 'object' && !Array.isArray(v)) out.push(v as Record<string, unknown>);
    } catch {
      // not a JSON line (a log line that starts with a brace)
    }
  }
  return out;
}
