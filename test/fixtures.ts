/**
 * Real inputs for the tests, named once. Models and datasets are never copied into the repo: they
 * are found in PIXDEX_MODELS / PIXDEX_DATASETS, then ../shared, then pixdex's cache
 * (test/helpers/resources.ts; test/preflight.ts checks they are all there before any test runs).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_EXTENSIONS } from '../src/config.ts';
import { testDatasetsDir, testModelsDir } from './helpers/resources.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MODELS = testModelsDir(REPO).dir;
export const DATASETS = testDatasetsDir(REPO).dir;
// CLI and server processes the tests start inherit the same folders (a child without them would
// look in the user's cache and download there).
process.env.PIXDEX_MODELS = MODELS;
process.env.PIXDEX_DATASETS = DATASETS;
export const HYMENOPTERA = path.join(DATASETS, 'hymenoptera_data');
export const HYM_TRAIN = path.join(HYMENOPTERA, 'train');
export const HYM_VAL = path.join(HYMENOPTERA, 'val');
export const FLOWERS = path.join(DATASETS, 'oxford_flowers17');
/** Real phone photos of book covers, museum paintings and landmarks, and their references (smvs/PROVENANCE.md). */
export const SMVS = path.join(DATASETS, 'smvs');
export const SMVS_BOOKS = path.join(SMVS, 'book_covers');
export const CLI = path.join(REPO, 'bin', 'pixdex.js');

/** The backend the tests run on (PIXDEX_BACKEND, default auto). */
export const BACKEND = (process.env.PIXDEX_BACKEND ?? 'auto') as 'auto' | 'tensorflow' | 'wasm' | 'cpu';

/** Files under `dir` with an extension pixdex indexes, sorted. */
export function imagesIn(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && DEFAULT_EXTENSIONS.includes(path.extname(e.name).toLowerCase()))
    .map((e) => path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort();
}

/** A fresh temporary folder, removed by the returned function. */
export function tempDir(prefix = 'pixdex-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Engine options for a test store in `dataDir`. */
export function engineOptions(dataDir: string) {
  return { dataDir, modelsDir: MODELS, backend: BACKEND };
}
