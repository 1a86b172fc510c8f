/** Options every `pixdex` command takes, and how they become engine options (one place). */
import type { PixdexOptions } from '../src/config.ts';
import { checkDescriptor } from '../src/descriptor-kind.ts';
import { optionalSwitch } from '../src/config.ts';
import { downloadProgress } from './progress.ts';

/**
 * One command-line option: how node:util parseArgs reads it and what `--help` says about it.
 * `field` names the verb parameter it fills (src/contracts/verbs.ts), `negates` for `--no-X`.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The value's placeholder in help (`N`, `DIR`, `knn|head|both`); none for a boolean. */
  value?: string;
  /** What it does, with its default. */
  help: string;
  field?: string;
  negates?: boolean;
  /** May be given more than once (`--watch A --watch B`): the value is an array. */
  multiple?: boolean;
}

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = Object.freeze({
  data: { type: 'string', value: 'DIR', help: 'Data directory of the library (default: ./data, env PIXDEX_DATA).' },
  store: { type: 'string', value: 'URL', help: 'Keep the library in PostgreSQL with pgvector: postgres://user:password@host:port/database (env PIXDEX_STORE; default: pixdex.lmdb in --data).' },
  models: { type: 'string', value: 'DIR', help: 'Folder with the backbone model folders (env PIXDEX_MODELS; default: the cache ~/.cache/pixdex/models, where missing ones are downloaded).' },
  backbone: { type: 'string', value: 'ID', help: 'Backbone of a new library: mobilenet_v2 (default), mobilenet_v1_0.75, mobilenet_v1_embedding or an imported one.' },
  descriptor: { type: 'string', value: 'regional2|regional|gem|pooled', help: 'How a new library describes images (default: regional2, env PIXDEX_DESCRIPTOR; a library keeps the one it was made with).' },
  'local-features': { type: 'string', value: 'on|off', help: 'Keypoints and geometric verification of the same object (default: on for a new library; on an existing one, on adds them at the next index run and off drops them; env PIXDEX_LOCAL_FEATURES).' },
  backend: { type: 'string', value: 'auto|tensorflow|wasm|cpu', help: 'Where the model runs (default: auto, env PIXDEX_BACKEND).' },
  json: { type: 'boolean', help: 'Machine-readable output on stdout.' },
  help: { type: 'boolean', short: 'h', help: 'This command\'s usage, options and examples.' },
});

/** Parsed option values as node:util parseArgs returns them (plus numbers the CLI derives). */
export type Values = Record<string, string | string[] | number | boolean | undefined>;

/** The engine options named by the global flags (the rest comes from env and defaults). */
export function engineOptions(v: Values): PixdexOptions {
  const o: PixdexOptions = {};
  if (v.data) o.dataDir = String(v.data);
  if (v.store) o.store = String(v.store);
  if (v.models) o.modelsDir = String(v.models);
  if (v.backbone) o.backbone = String(v.backbone);
  if (v.descriptor) o.descriptor = checkDescriptor(v.descriptor);
  if (v['local-features'] !== undefined) o.localFeatures = optionalSwitch('local-features', v['local-features']);
  if (v.backend) o.backend = String(v.backend) as PixdexOptions['backend'];
  if (typeof v.workers === 'number') o.workers = v.workers;
  o.onModelDownload = downloadProgress();
  return o;
}
