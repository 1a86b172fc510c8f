/**
 * The one place that decides, before a model loads, whether a missing backbone is downloaded or
 * reported: built-in backbones are fetched into the cache (pinned) when the models folder is
 * pixdex's own; a folder the user named is never written to, and offline the error names the
 * folder to copy and the variable to set.
 */
import path from 'node:path';
import type { PixdexConfig } from '../config.ts';
import { ModelNotFoundError, PixdexError } from '../errors.ts';
import { backboneSpec } from './backbone.ts';
import { modelSource } from './catalog.ts';
import { installModel, isInstalled } from './fetch.ts';

type ModelsConfig = Pick<PixdexConfig, 'modelsDir' | 'fetchModels' | 'modelMirror' | 'onModelDownload'>;

/** Makes sure backbone `id`'s files are in `config.modelsDir`, downloading a built-in one if allowed. */
export async function ensureBackbone(config: ModelsConfig, id: string): Promise<void> {
  const spec = backboneSpec(id, config.modelsDir);
  if (isInstalled(config.modelsDir, spec.dir)) return;
  const source = modelSource(spec.id);
  const folder = path.join(config.modelsDir, spec.dir);
  if (!source) throw new ModelNotFoundError(`Backbone ${id} is not in ${folder}: an imported backbone is only where it was imported. Import it again with \`pixdex models import FILE.tflite --name ${id}\`.`);
  if (!config.fetchModels) {
    throw new ModelNotFoundError(
      `Backbone ${id} not found: no model.json in ${folder}. Copy the folder ${spec.dir} into ${config.modelsDir}, ` +
        'or point --models / PIXDEX_MODELS at the folder that holds it, or unset them to let pixdex download it into its cache.',
    );
  }
  try {
    await installModel(source, { modelsDir: config.modelsDir, mirror: config.modelMirror, onProgress: config.onModelDownload });
  } catch (err) {
    if (!(err instanceof PixdexError) || err.code !== 'MODEL_DOWNLOAD_FAILED') throw err;
    throw new PixdexError(
      'MODEL_DOWNLOAD_FAILED',
      `Backbone ${id} is not in ${config.modelsDir} and could not be downloaded: ${err.message} ` +
        `Connect to the internet and run the command again (the download resumes), or copy the folder ${spec.dir} ` +
        `(from a machine that has it, in ~/.cache/pixdex/models) into ${config.modelsDir}, or set PIXDEX_MODELS to a folder that holds it.`,
      { cause: err },
    );
  }
}
