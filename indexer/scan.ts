/**
 * Library scanning: expands files and folders into the image files to index, recursively,
 * following symlinks once (a symlink loop is reported, not followed forever).
 */
import fs from 'node:fs/promises';
import path from 'node:path';

/** A file found by the scan, with the stat fields the incremental check compares. */
export interface ScannedFile {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface ScanResult {
  files: ScannedFile[];
  /** Folders scanned (absolute), so that files missing from them can be pruned. */
  roots: string[];
  errors: Array<{ path: string; error: string }>;
}

/**
 * Walks `inputs` and returns the files whose extension is in `extensions`, sorted by path.
 * `skipHidden`: files and folders whose name starts with a dot are left out (watch mode).
 */
export async function scanInputs(inputs: readonly string[], extensions: readonly string[], { skipHidden = false }: { skipHidden?: boolean } = {}): Promise<ScanResult> {
  const exts = new Set(extensions.map((e) => e.toLowerCase()));
  const result: ScanResult = { files: [], roots: [], errors: [] };
  const seenDirs = new Set<string>();
  const seenFiles = new Set<string>();

  const addFile = async (file: string, explicit: boolean): Promise<void> => {
    if (seenFiles.has(file)) return;
    if (!explicit && !exts.has(path.extname(file).toLowerCase())) return;
    try {
      const st = await fs.stat(file);
      if (!st.isFile()) return;
      seenFiles.add(file);
      result.files.push({ path: file, size: st.size, mtimeMs: Math.floor(st.mtimeMs) });
    } catch (err) {
      result.errors.push({ path: file, error: describeFsError(err) });
    }
  };

  const walk = async (dir: string): Promise<void> => {
    let real: string;
    try {
      real = await fs.realpath(dir);
    } catch (err) {
      result.errors.push({ path: dir, error: describeFsError(err) });
      return;
    }
    if (seenDirs.has(real)) {
      return; // already walked: a symlink loop or two links to one folder
    }
    seenDirs.add(real);
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      result.errors.push({ path: dir, error: describeFsError(err) });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (skipHidden && entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(full);
      } else if (entry.isSymbolicLink()) {
        try {
          const st = await fs.stat(full);
          if (st.isDirectory()) await walk(full);
          else await addFile(full, false);
        } catch (err) {
          result.errors.push({ path: full, error: describeFsError(err) });
        }
      } else if (entry.isFile()) {
        await addFile(full, false);
      }
    }
  };

  for (const input of inputs) {
    const abs = path.resolve(input);
    let st;
    try {
      st = await fs.stat(abs);
    } catch (err) {
      result.errors.push({ path: abs, error: describeFsError(err) });
      continue;
    }
    if (st.isDirectory()) {
      result.roots.push(abs);
      await walk(abs);
    } else {
      await addFile(abs, true);
    }
  }
  result.files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return result;
}

/** A file-system error as one readable line. */
export function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
      return 'file or folder does not exist (it may have been moved or deleted during the scan)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied: make the file readable by this user';
    case 'ELOOP':
      return 'too many levels of symbolic links (a symlink loop)';
    case 'EISDIR':
      return 'is a directory';
    default:
      return e.message ?? String(err);
  }
}
