/** Shared bits of bench/local: paths, cache folder, stats helpers. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED = path.resolve(REPO, '../shared');
export const DATASETS = process.env.PIXDEX_DATASETS ?? path.join(SHARED, 'datasets');
export const MODELS = process.env.PIXDEX_MODELS ?? path.join(SHARED, 'models');
export const SMVS = path.join(DATASETS, 'smvs');
export const CATEGORIES = ['book_covers', 'museum_paintings', 'landmarks'] as const;
export type Category = (typeof CATEGORIES)[number];
export const CACHE = process.env.PIXDEX_LOCAL_CACHE ?? path.join(os.tmpdir(), 'pixdex-local-bench');
fs.mkdirSync(CACHE, { recursive: true });

export const log = (s: string) => process.stderr.write(`[bench:local ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
process.stdout.on('error', () => process.exit(0)); // a closed pipe (| head) ends the run quietly
export const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
export const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
export const r3 = (x: number) => Math.round(x * 1000) / 1000;
export function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
export const listJpg = (dir: string) => fs.readdirSync(dir).filter((f) => /\.jpe?g$/i.test(f)).sort();
