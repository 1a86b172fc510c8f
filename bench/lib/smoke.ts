/**
 * Tiny inputs for the benchmarks' smoke runs (`npm run bench:smoke`, CI): a datasets folder that
 * mirrors the shared one (same folders, so labels, splits and smvs's query/reference pairs keep
 * working) with only the first few photos of each folder, hard-linked (copied where links are impossible)
 * into a temp folder. Scripts read it through PIXDEX_DATASETS like the real one.
 */
import fs from 'node:fs';
import path from 'node:path';

const IMAGE = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;

/**
 * Mirrors `source` into the new folder `target` keeping the first `perFolder` images (name order)
 * of every folder; other files (PROVENANCE.md) are left out. The caller removes it.
 */
export function tinyDatasets(source: string, target: string, perFolder: number): string {
  const mirror = (from: string, to: string) => {
    fs.mkdirSync(to, { recursive: true });
    const entries = fs.readdirSync(from, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    let images = 0;
    for (const e of entries) {
      const src = path.join(from, e.name);
      if (e.isDirectory()) mirror(src, path.join(to, e.name));
      else if (IMAGE.test(e.name) && images < perFolder) {
        // A hard link where the file system allows it (symbolic links are not files to loadDataset), else a copy.
        try {
          fs.linkSync(src, path.join(to, e.name));
        } catch {
          fs.copyFileSync(src, path.join(to, e.name));
        }
        images++;
      }
    }
  };
  mirror(path.resolve(source), target);
  return target;
}
