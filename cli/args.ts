/** Options every `pixdex` command takes, and how they become engine options (one place). */
import type { ParseArgsConfig } from 'node:util';
import type { PixdexOptions } from '../src/config.ts';
import { checkDescriptor } from '../src/descriptor-kind.ts';
import { optionalSwitch } from '../src/config.ts';
import { downloadProgress } from './progress.ts';

export const GLOBAL_OPTIONS = {
  data: { type: 'string' },
  models: { type: 'string' },
  backbone: { type: 'string' },
  descriptor: { type: 'string' },
  'local-features': { type: 'string' },
  backend: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

/** Parsed option values as node:util parseArgs returns them (plus numbers the CLI derives). */
export type Values = Record<string, string | number | boolean | undefined>;

/** The engine options named by the global flags (the rest comes from env and defaults). */
export function engineOptions(v: Values): PixdexOptions {
  const o: PixdexOptions = {};
  if (v.data) o.dataDir = String(v.data);
  if (v.models) o.modelsDir = String(v.models);
  if (v.backbone) o.backbone = String(v.backbone);
  if (v.descriptor) o.descriptor = checkDescriptor(v.descriptor);
  if (v['local-features'] !== undefined) o.localFeatures = optionalSwitch('local-features', v['local-features']);
  if (v.backend) o.backend = String(v.backend) as PixdexOptions['backend'];
  if (typeof v.workers === 'number') o.workers = v.workers;
  o.onModelDownload = downloadProgress();
  return o;
}
