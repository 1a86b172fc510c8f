/**
 * Runs before the test suite (`npm test`): the tests need the three pretrained backbones and three
 * sets of real photos. Models missing from pixdex's cache are downloaded (pinned, as pixdex does
 * on first use); anything still missing stops the suite here with one message that names it and
 * says where to get it — instead of dozens of failing tests.
 *
 *   node --import tsx test/preflight.ts
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig } from '../src/config.ts';
import { BACKBONES } from '../src/models/backbone.ts';
import { ensureBackbone } from '../src/models/ensure.ts';
import { downloadProgress } from '../cli/progress.ts';
import { TEST_DATASETS, testDatasetsDir, testModelsDir } from './helpers/resources.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WHERE = { env: 'from PIXDEX_{M}', shared: 'beside the clone', cache: "pixdex's cache" } as const;

const models = testModelsDir(REPO);
const datasets = testDatasetsDir(REPO);
const problems: string[] = [];

const config = { ...resolveConfig({ modelsDir: models.dir }), fetchModels: models.from === 'cache', onModelDownload: downloadProgress() };
const missingModels: string[] = [];
let offline = false;
for (const spec of Object.values(BACKBONES)) {
  try {
    // After one failed download the others would fail the same way: list them without waiting.
    await ensureBackbone(offline ? { ...config, fetchModels: false } : config, spec.id);
  } catch (err) {
    offline ||= (err as { code?: string }).code === 'MODEL_DOWNLOAD_FAILED';
    missingModels.push(`    ${spec.dir} (${(err as Error).message.split('. ')[0]})`);
  }
}
if (missingModels.length) {
  problems.push(
    `  backbones missing in ${models.dir} (${WHERE[models.from].replace('{M}', 'MODELS')}):\n${missingModels.join('\n')}\n` +
      '    → with a network: unset PIXDEX_MODELS and run `npx pixdex models fetch` (or just run the tests again); offline: copy the model folders there.',
  );
}

const missingSets = TEST_DATASETS.filter((d) => !existsSync(path.join(datasets.dir, d.name, d.marker)));
if (missingSets.length) {
  problems.push(
    `  photo sets missing in ${datasets.dir} (${WHERE[datasets.from].replace('{M}', 'DATASETS')}):\n` +
      missingSets.map((d) => `    ${d.name}: ${d.howTo}`).join('\n') +
      '\n    → put them in one folder and set PIXDEX_DATASETS to it (or place it at ../shared/datasets beside the clone).',
  );
}

if (problems.length) {
  process.stderr.write(
    `\nnpm test stopped before running: the tests run real photos through the real models, and some are not on this machine.\n` +
      `Looked in PIXDEX_MODELS / PIXDEX_DATASETS, then ../shared beside the clone, then pixdex's cache.\n${problems.join('\n')}\n\n`,
  );
  process.exit(1);
}
process.stderr.write(`test inputs: models in ${models.dir}, photos in ${datasets.dir}\n`);
