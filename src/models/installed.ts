/**
 * What is installed in a models folder: each model folder pixdex wrote carries `pixdex-model.json`
 * (what it is, where it came from, the SHA-256 of every file), so `pixdex models verify` can
 * re-check it and imported backbones can describe themselves. Folders copied by hand (such as
 * ../shared/models) have no manifest and are checked against the pins alone.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { BackboneSpec } from './spec.ts';

export const MANIFEST = 'pixdex-model.json';

export interface ModelManifest {
  id: string;
  /** `tfjs` / `tflite`: a built-in backbone as downloaded; `imported`: `pixdex models import`. */
  kind: 'tfjs' | 'tflite' | 'imported';
  origin: string;
  installedAt: string;
  /** SHA-256 of every file of the folder but this manifest, by relative path. */
  files: Record<string, string>;
  /** An imported backbone's spec (built-in ones are in src/models/backbone.ts). */
  backbone?: BackboneSpec;
}

/** Writes `dir/pixdex-model.json` over the files now in `dir`. */
export async function writeManifest(dir: string, about: Pick<ModelManifest, 'id' | 'kind' | 'origin' | 'backbone'>): Promise<ModelManifest> {
  const manifest: ModelManifest = { ...about, installedAt: new Date().toISOString(), files: await hashFolder(dir) };
  await fs.writeFile(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** The manifest of `dir`, or undefined (none, or unreadable). */
export function readManifest(dir: string): ModelManifest | undefined {
  try {
    return JSON.parse(readFileSync(path.join(dir, MANIFEST), 'utf8')) as ModelManifest;
  } catch {
    return undefined;
  }
}

/** Imported backbones in `modelsDir` (folders whose manifest carries a spec), by id. */
export function importedBackbones(modelsDir: string): Map<string, BackboneSpec> {
  const found = new Map<string, BackboneSpec>();
  if (!existsSync(modelsDir)) return found;
  for (const entry of readdirSync(modelsDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const manifest = readManifest(path.join(modelsDir, entry.name));
    if (manifest?.kind === 'imported' && manifest.backbone) found.set(manifest.backbone.id, manifest.backbone);
  }
  return found;
}

/** SHA-256 of every file under `dir` (relative paths, '/'-separated), the manifest and hidden files excepted. */
export async function hashFolder(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const entries = await fs.readdir(dir, { withFileTypes: true, recursive: true });
  const paths = entries
    .filter((e) => e.isFile() && !e.name.startsWith('.') && e.name !== MANIFEST)
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
  for (const p of paths) files[p] = await sha256(path.join(dir, p));
  return files;
}

/** SHA-256 of a file, hex (streamed: model files can be large). */
export async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Total bytes of the files under `dir`. */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}
