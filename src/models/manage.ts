/**
 * `pixdex models list|fetch|verify|import`: what is installed, what it should be, and bringing a
 * TFLite image model of one's own as a backbone.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PixdexConfig } from '../config.ts';
import { NotFoundError, PixdexError, invalidParameter } from '../errors.ts';
import { BACKBONES, backboneSpec, type BackboneSpec } from './backbone.ts';
import { downloadBytes, modelSource, modelSources } from './catalog.ts';
import { ensureBackbone } from './ensure.ts';
import { isInstalled } from './fetch.ts';
import { folderBytes, importedBackbones, readManifest, sha256, writeManifest } from './installed.ts';
import { convertTflite, writeConverted, type ConvertedModel } from './tflite/convert.ts';

type ModelsConfig = Pick<PixdexConfig, 'modelsDir' | 'fetchModels' | 'modelMirror' | 'onModelDownload'>;

export interface ModelEntry {
  id: string;
  /** Its folder in the models folder. */
  folder: string;
  kind: 'built-in' | 'imported';
  dims: number;
  installed: boolean;
  /** Bytes on disk when installed, else the bytes a download takes. */
  bytes: number;
  origin: string;
}

/** Built-in backbones and those imported into the models folder. */
export async function listModels(config: ModelsConfig): Promise<ModelEntry[]> {
  const entries: ModelEntry[] = [];
  const specs: Array<[BackboneSpec, 'built-in' | 'imported']> = [
    ...Object.values(BACKBONES).map((s) => [s, 'built-in'] as [BackboneSpec, 'built-in']),
    ...[...importedBackbones(config.modelsDir).values()].map((s) => [s, 'imported'] as [BackboneSpec, 'imported']),
  ];
  for (const [spec, kind] of specs) {
    const folder = path.join(config.modelsDir, spec.dir);
    const installed = isInstalled(config.modelsDir, spec.dir);
    const source = modelSource(spec.id);
    entries.push({
      id: spec.id,
      folder,
      kind,
      dims: spec.dims,
      installed,
      bytes: installed ? await folderBytes(folder) : source ? downloadBytes(source) : 0,
      origin: source?.origin ?? readManifest(folder)?.origin ?? '',
    });
  }
  return entries;
}

/** Downloads the named built-in backbones (all when none is named) that are not installed yet. */
export async function fetchModels(config: ModelsConfig, ids: readonly string[]): Promise<readonly string[]> {
  const wanted = ids.length ? ids : modelSources().map((s) => s.id);
  for (const id of wanted) {
    if (!modelSource(backboneSpec(id, config.modelsDir).id)) throw invalidParameter('model', `a built-in backbone (${modelSources().map((s) => s.id).join(', ')})`, id);
  }
  for (const id of wanted) await ensureBackbone({ ...config, fetchModels: true }, id);
  return wanted;
}

export interface Verification {
  id: string;
  folder: string;
  ok: boolean;
  /** Files whose bytes were checked. */
  checked: number;
  problems: string[];
}

/**
 * Re-checks an installed backbone: pinned files against their pins, other files against the
 * manifest written at install, and a converted model without a manifest against a fresh
 * conversion of its pinned TFLite source.
 */
export async function verifyModel(config: ModelsConfig, id: string): Promise<Verification> {
  const spec = backboneSpec(id, config.modelsDir);
  const folder = path.join(config.modelsDir, spec.dir);
  const result: Verification = { id: spec.id, folder, ok: false, checked: 0, problems: [] };
  if (!isInstalled(config.modelsDir, spec.dir)) {
    result.problems.push(`not installed (no model.json in ${folder}): \`pixdex models fetch ${spec.id}\``);
    return result;
  }
  const source = modelSource(spec.id);
  const manifest = readManifest(folder);
  const pinned = new Set<string>();
  for (const file of source?.files ?? []) {
    pinned.add(file.path);
    const p = path.join(folder, file.path);
    if (!existsSync(p)) {
      if (source?.kind === 'tfjs') result.problems.push(`${file.path} is missing`);
      continue;
    }
    result.checked++;
    const actual = await sha256(p);
    if (actual !== file.sha256) result.problems.push(`${file.path} has SHA-256 ${actual}, pinned ${file.sha256}`);
  }
  if (manifest) {
    for (const [file, hash] of Object.entries(manifest.files)) {
      if (pinned.has(file)) continue;
      result.checked++;
      const p = path.join(folder, file);
      if (!existsSync(p)) result.problems.push(`${file} is missing`);
      else if ((await sha256(p)) !== hash) result.problems.push(`${file} changed since it was installed`);
    }
  } else if (source?.kind === 'tflite') {
    const tflite = path.join(folder, source.files[0].path);
    if (!existsSync(tflite)) {
      result.problems.push(`cannot check the converted model: its TFLite source ${source.files[0].path} is not in the folder`);
    } else {
      const converted = convertTflite(await fs.readFile(tflite));
      const weights = await fs.readFile(path.join(folder, 'group1-shard1of1.bin')).catch(() => undefined);
      result.checked++;
      if (!weights || Buffer.compare(weights, Buffer.from(converted.weightData)) !== 0) result.problems.push('group1-shard1of1.bin is not what the pinned TFLite source converts to');
    }
  }
  result.ok = result.problems.length === 0;
  return result;
}

export interface ImportOptions {
  name: string;
  /** A 4-d node [1, h, w, c] to use as the feature map; default: the input of the model's last global pooling. */
  featureNode?: string;
  /** The model's input range; default: from the TFLite input quantization, else [-1, 1]. */
  inputRange?: [number, number];
}

/** Names an imported backbone can take: a folder name that is not a built-in id or folder. */
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

/** Converts a TFLite image model and registers it as backbone `name` in the models folder. */
export async function importModel(config: ModelsConfig, file: string, options: ImportOptions): Promise<BackboneSpec> {
  const { name } = options;
  if (!NAME.test(name)) throw invalidParameter('name', 'letters, digits, dot, dash or underscore (at most 64, starting with a letter or digit)', name);
  if (Object.values(BACKBONES).some((b) => b.id === name || b.dir === name)) throw invalidParameter('name', 'a name that is not a built-in backbone', name);
  const target = path.join(config.modelsDir, name);
  if (existsSync(target)) throw invalidParameter('name', `a name not taken in ${config.modelsDir} (remove ${target} to import again)`, name);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`Model file ${file} does not exist (${path.resolve(file)})`);
    throw new PixdexError('UNREADABLE_FILE', `Cannot read model file ${file}: ${(err as Error).message}`);
  }
  const converted = convertTflite(bytes);
  const spec = importedSpec(converted, options);
  await fs.mkdir(config.modelsDir, { recursive: true });
  const staging = path.join(config.modelsDir, `.import-${name}-${process.pid}`);
  await fs.rm(staging, { recursive: true, force: true });
  try {
    await writeConverted(converted, staging);
    await fs.mkdir(path.join(staging, 'source'), { recursive: true });
    await fs.writeFile(path.join(staging, 'source', path.basename(file)), bytes);
    await writeManifest(staging, { id: name, kind: 'imported', origin: `imported from ${path.resolve(file)}`, backbone: spec });
    await fs.rename(staging, target);
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
  return spec;
}

/** The backbone spec of a converted model: input size and range, feature map, pooled vector. */
function importedSpec(model: ConvertedModel, options: ImportOptions): BackboneSpec {
  const [n, h, w, c] = model.input.shape;
  if (model.input.shape.length !== 4 || c !== 3 || h !== w || !(h > 0) || (n !== 1 && n !== -1)) {
    throw new PixdexError('UNSUPPORTED_MODEL', `The model's input is [${model.input.shape.join(', ')}]; pixdex needs square RGB images, [1, S, S, 3].`);
  }
  let featureMap: BackboneSpec['featureMap'];
  let pooled: string | undefined;
  if (options.featureNode !== undefined) {
    const node = model.nodes.find((x) => x.name === options.featureNode);
    const shape = node?.shape;
    if (!node || !shape || shape.length !== 4) {
      const maps = model.nodes.filter((x) => x.shape?.length === 4).map((x) => x.name);
      throw invalidParameter('feature-node', `a 4-d node [1, h, w, c] of the model (${maps.slice(-5).join(', ')}…)`, options.featureNode);
    }
    featureMap = { name: node.name, shape: [shape[1], shape[2], shape[3]] };
  } else if (model.features) {
    featureMap = model.features.featureMap;
    pooled = model.features.pooled;
  } else {
    const maps = model.nodes.filter((x) => x.shape?.length === 4).map((x) => x.name);
    throw new PixdexError('UNSUPPORTED_MODEL', `The model has no global pooling whose input could be the feature map; name one with --feature-node (its last 4-d nodes: ${maps.slice(-5).join(', ')}).`);
  }
  return {
    id: options.name,
    dir: options.name,
    format: 'graph',
    inputSize: h,
    inputRange: options.inputRange ?? rangeOf(model.input.quantization),
    featureMap,
    ...(pooled ? { pooled } : {}),
    dims: featureMap.shape[2],
  };
}

/**
 * The real values a uint8 input covers (`scale·(q − zeroPoint)`), snapped to the conventional
 * range it approximates (1/128 with zero point 128 is [-1, 1)); a float input: [-1, 1], the range
 * of MobileNet-style models (override with --input-range).
 */
function rangeOf(q: { scale: number; zeroPoint: number } | undefined): [number, number] {
  if (!q) return [-1, 1];
  const snap = (v: number) => (Math.abs(v - Math.round(v * 2) / 2) < 0.01 ? Math.round(v * 2) / 2 : v);
  return [snap(q.scale * (0 - q.zeroPoint)), snap(q.scale * (255 - q.zeroPoint))];
}
