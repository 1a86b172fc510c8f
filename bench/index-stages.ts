/**
 * Where indexing time goes (issue 22: `endToEndVsBackbone` explained stage by stage). The stages
 * of one index run, timed one at a time in this thread over the same files, with the library's
 * descriptor (the default `regional`: the crop at 224 px and again at 192, 160 and 128, four
 * backbone passes) and, when on, local features:
 *
 *   read             the file's bytes (readImageFile)
 *   hash             SHA-256 of them
 *   decode@S         decodeImage at side S: metadata + EXIF rotate + resize/crop to S (each side is
 *                    its own sharp pipeline from the file's bytes, as src/image/decode.ts runs them)
 *   grey@480         the greyscale image local features are found on (local features only)
 *   backbone@S       the backbone's feature map at side S, batch by batch (batchSize)
 *   descriptor       GeM + L2 of every side's map (regional, gem); nothing for pooled
 *   localFeatures    ORB keypoints + descriptors, encoded (local features only)
 *   commit           Records.writeFiles + IndexSync.refresh per batch (LMDB + HNSW), into a fresh store
 *   vocabulary       after the files (local features only): learning the visual vocabulary, quantizing every image
 *   duplicates       after the files: the near-duplicate check (matches local features when there are some)
 *   snapshot         after the files: the HNSW snapshot
 *
 * `msPerImage` is each stage's time over the images; their sum is what one image costs done one
 * stage after another. The index run overlaps reading and decoding (4 files in flight, sharp's own
 * threads) with the backbone, so its time per image is below the sum: `overlapMs` is the part
 * hidden that way (negative: time the stages do not account for).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../src/engine.ts';
import { readImageFile } from '../src/describe.ts';
import { decodeImage } from '../src/image/decode.ts';
import { gemPool, l2normalizeRows } from '../src/descriptors.ts';
import { LIBRARY_GEM_P } from '../src/library-descriptor.ts';
import { encodeFeatures, extractFeatures, greyscale, loadOpenCv, REFERENCE_SIDE, decodeFeatures } from '../src/local/features.ts';
import { tf } from '../src/backend.ts';
import type { FileToWrite } from '../src/store/records.ts';
import type { PixdexOptions } from '../src/config.ts';

export interface StageReport {
  images: number;
  descriptor: string;
  sides: number[];
  localFeatures: boolean;
  /** Each stage's total time over all images, divided by the images, in ms. */
  msPerImage: Record<string, number>;
  sumMsPerImage: number;
  /** The backbone stages alone, per image (all sides). */
  backboneMsPerImage: number;
}

const ms = (x: number) => Math.round(x * 100) / 100;

/** Times the stages of indexing `files` into a fresh library opened with `options`. */
export async function measureStages(files: readonly string[], options: PixdexOptions, localFeatures: boolean): Promise<StageReport> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdex-bench-stages-'));
  const engine = await Engine.open({ ...options, dataDir, workers: 1, localFeatures });
  try {
    const model = await engine.describer.model();
    if (localFeatures) await loadOpenCv();
    const { config, spec } = engine;
    const sides = [spec.inputSize, ...(engine.describer.smallerSides() ?? [])];
    const totals: Record<string, number> = {};
    const time = async <T>(stage: string, fn: () => T | Promise<T>): Promise<T> => {
      const t = performance.now();
      const out = await fn();
      totals[stage] = (totals[stage] ?? 0) + (performance.now() - t);
      return out;
    };

    // Per file: read, hash, decode at every side, greyscale; kept for the batch stages below.
    const images: Array<{ file: string; size: number; sha256: string; width: number; height: number; pixels: Uint8Array[]; grey?: Awaited<ReturnType<typeof greyscale>> }> = [];
    for (const file of files) {
      const bytes = await time('read', () => readImageFile(file, config.maxFileBytes));
      const sha256 = await time('hash', () => createHash('sha256').update(bytes).digest('hex'));
      try {
        const pixels: Uint8Array[] = [];
        let width = 0;
        let height = 0;
        for (const side of sides) {
          const d = await time(`decode@${side}`, () => decodeImage(bytes, { size: side, maxInputPixels: config.maxInputPixels }, file));
          pixels.push(d.pixels);
          width = d.width;
          height = d.height;
        }
        const grey = localFeatures ? await time(`grey@${REFERENCE_SIDE}`, () => greyscale(bytes, REFERENCE_SIDE, config.maxInputPixels, file)) : undefined;
        images.push({ file, size: bytes.length, sha256, width, height, pixels, grey });
      } catch {
        // a bad file: the index run reports it; nothing to time further
      }
    }

    // Per batch: the backbone at each side, the descriptor, local features, then the commit.
    const regionalOrGem = engine.descriptor !== 'pooled';
    const d = spec.dims;
    for (let i = 0; i < images.length; i += config.batchSize) {
      const batch = images.slice(i, i + config.batchSize);
      const vectors: Float32Array[] = []; // per side, [batch × d]
      for (const [k, side] of sides.entries()) {
        const pixels = batch.map((im) => im.pixels[k]);
        const map = await time(`backbone@${side}`, async () => {
          let m: tf.Tensor;
          if (k === 0) {
            const out = model.infer(pixels, regionalOrGem); // one pass gives both; keep what the descriptor uses
            m = regionalOrGem ? out.featureMap! : out.pooled;
            (regionalOrGem ? out.pooled : out.featureMap)?.dispose();
          } else {
            m = model.featureMaps(pixels, side);
          }
          await m.data(); // the work is done when the values are there
          return m;
        });
        if (regionalOrGem) {
          vectors.push(await time('descriptor', async () => {
            const g = tf.tidy(() => l2normalizeRows(gemPool(map as tf.Tensor4D, LIBRARY_GEM_P)));
            const data = (await g.data()) as Float32Array;
            g.dispose();
            return data;
          }));
        } else {
          vectors.push((await map.data()) as Float32Array);
        }
        map.dispose();
      }
      const local = localFeatures ? await time('localFeatures', () => batch.map((im) => encodeFeatures(extractFeatures(im.grey!)))) : undefined;
      const toWrite: FileToWrite[] = batch.map((im, j) => {
        const scales = sides.length > 1 ? new Float32Array((sides.length - 1) * d) : undefined;
        for (let k = 1; k < sides.length; k++) scales!.set(vectors[k].subarray(j * d, (j + 1) * d), (k - 1) * d);
        const file: FileToWrite = { path: im.file, sha256: im.sha256, bytes: im.size, mtimeMs: 0, width: im.width, height: im.height, embedding: { pooled: vectors[0].slice(j * d, (j + 1) * d), scales } };
        if (local) file.local = { features: local[j], words: engine.words.wordsOf(decodeFeatures(local[j])) };
        return file;
      });
      await time('commit', () => {
        engine.records.writeFiles(toWrite);
        engine.sync.refresh();
      });
    }
    // What a run does after the files, one stage each: learning the visual vocabulary and
    // quantizing every image into it, the near-duplicate check, the HNSW snapshot.
    if (localFeatures) await time('vocabulary', () => engine.words.maintain());
    await time('duplicates', () => engine.dupes.check());
    await time('snapshot', () => engine.sync.snapshot());

    const n = Math.max(1, images.length);
    const msPerImage = Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, ms(v / n)]));
    const backbone = Object.entries(totals).filter(([k]) => k.startsWith('backbone@')).reduce((s, [, v]) => s + v, 0);
    return {
      images: images.length,
      descriptor: engine.descriptor,
      sides,
      localFeatures,
      msPerImage,
      sumMsPerImage: ms(Object.values(totals).reduce((s, v) => s + v, 0) / n),
      backboneMsPerImage: ms(backbone / n),
    };
  } finally {
    await engine.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
