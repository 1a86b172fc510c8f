/**
 * Where the tests find their real models and photos, in one order (README, "Install and test"):
 * PIXDEX_MODELS / PIXDEX_DATASETS, then ../shared beside the clone, then pixdex's cache
 * (`~/.cache/pixdex/models` — where pixdex downloads backbones — and `~/.cache/pixdex/datasets`).
 * test/fixtures.ts and test/preflight.ts both resolve through here.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { resolveConfig } from '../../src/config.ts';

export interface Resolved {
  dir: string;
  /** Where it came from, for messages. */
  from: 'env' | 'shared' | 'cache';
}

/** The models folder the tests use. */
export function testModelsDir(repo: string, env: NodeJS.ProcessEnv = process.env): Resolved {
  if (env.PIXDEX_MODELS) return { dir: path.resolve(env.PIXDEX_MODELS), from: 'env' };
  const shared = path.resolve(repo, '../shared/models');
  if (existsSync(shared)) return { dir: shared, from: 'shared' };
  return { dir: resolveConfig({}, env).modelsDir, from: 'cache' };
}

/** The datasets folder the tests use. */
export function testDatasetsDir(repo: string, env: NodeJS.ProcessEnv = process.env): Resolved {
  if (env.PIXDEX_DATASETS) return { dir: path.resolve(env.PIXDEX_DATASETS), from: 'env' };
  const shared = path.resolve(repo, '../shared/datasets');
  if (existsSync(shared)) return { dir: shared, from: 'shared' };
  return { dir: path.join(resolveConfig({}, env).cacheDir, 'datasets'), from: 'cache' };
}

/**
 * The labelled photo sets the tests read, each with a folder that must exist inside it and where
 * to get it (see each set's PROVENANCE.md in ../shared/datasets).
 */
export const TEST_DATASETS = [
  {
    name: 'hymenoptera_data',
    marker: 'train/ants',
    howTo: 'ants and bees (PyTorch transfer-learning tutorial): git clone https://github.com/sayheyhey/hymenoptera_data, then ' +
      '`git archive 4a8ac7063913c374c0312cf91a5ae96d11472d2b train val | tar -x -C hymenoptera_data`',
  },
  {
    name: 'oxford_flowers17',
    marker: 'daisy',
    howTo: 'Oxford 17 Category Flowers: 17flowers.tgz (VGG, Oxford), its jpg/ images in one folder per class ' +
      '(image_0001-0080 daffodil, then snowdrop, lily_valley, bluebell, crocus, iris, tigerlily, tulip, fritillary, sunflower, daisy, colts_foot, dandelion, cowslip, buttercup, windflower, pansy)',
  },
  {
    name: 'smvs',
    marker: 'book_covers/query',
    howTo: 'Stanford Mobile Visual Search (book_covers, landmarks, museum_paintings; each query/ and reference/ with NNN.jpg pairs); ' +
      'not downloadable as used here (a resized subset): copy it from a pixdex developer machine (../shared/datasets/smvs)',
  },
] as const;
