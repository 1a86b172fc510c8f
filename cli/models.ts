/**
 * `pixdex models list|fetch|verify|import`: the backbones pixdex can run, where they are, and
 * bringing one's own TFLite image model (src/models/manage.ts).
 */
import { resolveConfig } from '../src/config.ts';
import { InvalidParameterError, PixdexError } from '../src/errors.ts';
import { fetchModels, importModel, listModels, verifyModel } from '../src/models/manage.ts';
import { EXIT } from './exit.ts';
import { engineOptions } from './args.ts';
import { UsageError, type Parsed } from './spec.ts';

/** Runs `pixdex models <list|fetch|verify|import>`; returns the exit code. */
export async function models({ values, pos }: Parsed): Promise<number> {
  const [verb, ...rest] = pos;
  const config = resolveConfig(engineOptions(values));
  const json = Boolean(values.json);
  const print = (data: unknown, text: string) => process.stdout.write(json ? `${JSON.stringify(data)}\n` : text.endsWith('\n') ? text : `${text}\n`);
  switch (verb) {
    case 'list': {
      const entries = await listModels(config);
      const rows = entries.map((e) => `${e.id.padEnd(24)} ${e.kind.padEnd(9)} ${String(e.dims).padStart(5)}-d  ${(e.bytes / 1e6).toFixed(1).padStart(5)} MB  ${e.installed ? e.folder : 'not downloaded'}`);
      print({ modelsDir: config.modelsDir, fetch: config.fetchModels, models: entries }, [`models folder: ${config.modelsDir}${config.fetchModels ? ' (missing built-in backbones are downloaded on first use)' : ''}`, ...rows].join('\n'));
      return EXIT.ok;
    }
    case 'fetch': {
      const fetched = await fetchModels(config, rest);
      print({ modelsDir: config.modelsDir, fetched }, `installed in ${config.modelsDir}: ${fetched.join(', ')}`);
      return EXIT.ok;
    }
    case 'verify': {
      const ids = rest.length ? rest : (await listModels(config)).filter((e) => e.installed).map((e) => e.id);
      const results = [];
      for (const id of ids) results.push(await verifyModel(config, id));
      print({ modelsDir: config.modelsDir, models: results }, results.length
        ? results.map((r) => `${r.id}: ${r.ok ? `ok (${r.checked} files)` : `FAILED\n  ${r.problems.join('\n  ')}`}`).join('\n')
        : `no backbone installed in ${config.modelsDir}`);
      if (results.some((r) => !r.ok)) {
        throw new PixdexError('MODEL_CHECKSUM_MISMATCH', `${results.filter((r) => !r.ok).map((r) => r.id).join(', ')} did not verify: delete ${results.filter((r) => !r.ok).map((r) => r.folder).join(', ')} and run \`pixdex models fetch\` to download again`);
      }
      return EXIT.ok;
    }
    case 'import': {
      if (rest.length !== 1) throw new UsageError('pixdex models import takes one FILE.tflite', 'models');
      if (!values.name) throw new UsageError('pixdex models import needs --name N, the backbone id to register', 'models');
      const spec = await importModel(config, rest[0], { name: String(values.name), featureNode: values['feature-node'] === undefined ? undefined : String(values['feature-node']), inputRange: parseRange(values['input-range']) });
      print({ modelsDir: config.modelsDir, backbone: spec }, `imported ${spec.id}: ${spec.inputSize}x${spec.inputSize} input in [${spec.inputRange.join(', ')}], ` +
        `features ${spec.featureMap.name} [${spec.featureMap.shape.join('x')}] → ${spec.dims}-d${spec.pooled ? ` (${spec.pooled})` : ' (mean)'}\n` +
        `use it for a new library: pixdex index DIR --backbone ${spec.id} --data NEW_FOLDER`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`Unknown models command "${verb}"; expected list, fetch, verify or import`, 'models');
  }
}

function parseRange(value: unknown): [number, number] | undefined {
  if (value === undefined) return undefined;
  const parts = String(value).split(',').map(Number);
  if (parts.length !== 2 || !parts.every(Number.isFinite) || parts[0] >= parts[1]) throw new InvalidParameterError(`input-range must be LO,HI with LO < HI (such as -1,1 or 0,1); received ${JSON.stringify(value)}`);
  return [parts[0], parts[1]];
}
