/**
 * `pixdex models list|fetch|verify|import`: the backbones pixdex can run, where they are, and
 * bringing one's own TFLite image model (src/models/manage.ts).
 */
import { parseArgs } from 'node:util';
import { resolveConfig } from '../src/config.ts';
import { InvalidParameterError, PixdexError } from '../src/errors.ts';
import { fetchModels, importModel, listModels, verifyModel } from '../src/models/manage.ts';
import { EXIT } from './exit.ts';
import { GLOBAL_OPTIONS, engineOptions, type Values } from './args.ts';

const USAGE = `Usage: pixdex models <list|fetch|verify|import> [options]

  list                  The backbones: built-in and imported, installed or not, where, how big
  fetch [ID...]         Download built-in backbones now (default: all) into the models folder
  verify [ID...]        Re-check installed backbones byte for byte (default: all installed)
  import FILE.tflite --name N [--feature-node X] [--input-range LO,HI]
                        Convert a TFLite image model (uint8 or float; conv, depthwise conv, pooling,
                        add, mul, mean, pad, fully connected, reshape, softmax, relu/relu6/logistic)
                        and register it as backbone N: then \`pixdex index DIR --backbone N --data NEW\`.
                        --feature-node: a 4-d node [1, h, w, c] to describe images by (default: the
                        input of the model's last global pooling); --input-range: the pixel range the
                        model expects (default: from its input quantization, else -1,1)

Models folder: --models DIR or PIXDEX_MODELS, else ~/.cache/pixdex/models (PIXDEX_CACHE_DIR moves
the cache), where missing built-in backbones are downloaded on first use, checked against pinned
SHA-256 digests. PIXDEX_MODELS_MIRROR=URL downloads from a mirror of that folder's layout instead.
`;

const OPTIONS = {
  ...GLOBAL_OPTIONS,
  name: { type: 'string' },
  'feature-node': { type: 'string' },
  'input-range': { type: 'string' },
} as const;

export async function models(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  const [verb, ...rest] = positionals;
  if (values.help || !verb) {
    process.stdout.write(USAGE);
    return verb || values.help ? EXIT.ok : EXIT.usage;
  }
  const config = resolveConfig(engineOptions(values as Values));
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
      if (rest.length !== 1) throw new PixdexError('USAGE', 'pixdex models import takes one FILE.tflite. Run `pixdex models --help` for usage.');
      if (!values.name) throw new PixdexError('USAGE', 'pixdex models import needs --name N, the backbone id to register. Run `pixdex models --help` for usage.');
      const spec = await importModel(config, rest[0], { name: values.name, featureNode: values['feature-node'], inputRange: parseRange(values['input-range']) });
      print({ modelsDir: config.modelsDir, backbone: spec }, `imported ${spec.id}: ${spec.inputSize}x${spec.inputSize} input in [${spec.inputRange.join(', ')}], ` +
        `features ${spec.featureMap.name} [${spec.featureMap.shape.join('x')}] → ${spec.dims}-d${spec.pooled ? ` (${spec.pooled})` : ' (mean)'}\n` +
        `use it for a new library: pixdex index DIR --backbone ${spec.id} --data NEW_FOLDER`);
      return EXIT.ok;
    }
    default:
      throw new PixdexError('USAGE', `Unknown models command "${verb}"; expected list, fetch, verify or import. Run \`pixdex models --help\` for usage.`);
  }
}

function parseRange(value: string | undefined): [number, number] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map(Number);
  if (parts.length !== 2 || !parts.every(Number.isFinite) || parts[0] >= parts[1]) throw new InvalidParameterError(`input-range must be LO,HI with LO < HI (such as -1,1 or 0,1); received ${JSON.stringify(value)}`);
  return [parts[0], parts[1]];
}
