/**
 * `pixdex train-classifier --mode finetune|scratch`: decodes the labelled images, runs the frozen
 * backbone once per augmented view (flip, crop or zoom-out, colour) up to the split node, trains the top
 * (src/models/finetune.ts) with early stopping on a stratified held-out split, and stores it in
 * LMDB `models` under the classifier key. `classify --method head|both` then runs the query
 * through the same split node and the fine-tuned top.
 */
import fs from 'node:fs/promises';
import sharp from 'sharp';
import { decodeImage } from './image/decode.ts';
import type { Backbone } from './models/backbone.ts';
import { FinetunedTop, MOBILENET_V2_TOP, topSplit, type ClassifierMode, type EpochInfo, type FeatureSet, type FinetuneOptions, type FinetuneReport, type TopSplit } from './models/finetune.ts';
import { stratifiedSplit, type HeadOptions } from './models/head.ts';
import { assertCanTrainBlocks } from './models/top-blocks.ts';
import { ScratchNet, SCRATCH_INPUT_DEFAULT, assertCanTrainScratch, type ScratchOptions } from './models/scratch-net.ts';
import { seededRandom } from './random.ts';
import { InvalidParameterError, invalidParameter } from './errors.ts';

/** Side the augmented views are cropped from (224 crops of a 256 decode: up to 32 px of shift). */
const AUGMENT_SIDE = 256;
/**
 * Augmented views per training image (default): the first is the plain 224 decode, the second a
 * random crop, the rest zoomed out (`zoomOut`): 4 gives one crop and two zoomed-out views.
 */
export const DEFAULT_VIEWS = 4;

/** A labelled image to train on. */
export interface LabelledFile {
  path: string;
  label: string;
}

export interface FinetuneRun extends Partial<FinetuneOptions> {
  /** `--mode scratch`: input side of the whole network trained from pixels (default 128). */
  inputSize?: number;
  /** mobilenet_v2: inverted-residual blocks retrained below Conv_1 (default: FINETUNE_BLOCKS.default); mobilenet_v1_embedding: 0 only. */
  blocks?: number;
  /** Augmented views per training image (default: 4). */
  views?: number;
  /** Share of each class held out for early stopping and the reported accuracy (default: 0.2). */
  validationSplit?: number;
  /**
   * `--mode finetune`: once early stopping has chosen the number of epochs, train the top again from
   * the start on every labelled image (the held-out ones too) for that many epochs and keep that
   * (default: true; `--no-refit` keeps the first run's best weights).
   */
  refit?: boolean;
  signal?: AbortSignal;
  onFeatures?: (done: number, total: number) => void;
  onEpoch?: (e: EpochInfo) => void;
}

/** The trained top and its report (plus how long the feature pass took). */
export interface FinetuneResult {
  top: FinetunedTop | ScratchNet;
  report: FinetuneReport & { featureSeconds: number };
}

/**
 * Trains a fine-tuned (or scratch) top on labelled files. Unreadable files are skipped; the held-out
 * split is stratified per class (the same split as the head's for the same seed).
 */
export async function finetuneOnFiles(backbone: Backbone, files: readonly LabelledFile[], maxInputPixels: number, o: FinetuneRun = {}): Promise<FinetuneResult> {
  if (o.mode === 'scratch') return scratchOnFiles(backbone, files, maxInputPixels, o);
  const split = topSplit(backbone.spec.id, o.blocks);
  assertCanTrainBlocks(split.blocks?.length ?? 0); // before the feature pass, not after it
  const classes = [...new Set(files.map((f) => f.label))].sort();
  if (classes.length < 2) throw new InvalidParameterError(`Training a classifier needs at least 2 labels; the library has ${classes.length}. Label more images (pixdex label, or index with --label-from-folder).`);
  const seed = o.seed ?? 42;
  const views = Math.max(1, Math.min(16, Math.round(o.views ?? DEFAULT_VIEWS)));
  const { train, held } = stratifiedSplit(files.map((f) => f.label), o.validationSplit ?? 0.2, seed);
  if (held.length === 0) throw new InvalidParameterError('Too few labelled images to hold any out: label at least 2 images per class.');
  const t = performance.now();
  const total = train.length + held.length;
  // One buffer for every view the first run and the refit train on: the training rows, then room
  // for the held-out photos' views (pages never written cost no memory when there is no refit).
  const rows = new Float32Array((train.length + held.length) * views * featureSize(split));
  const trainSet = await featureSet(backbone, split, train.map((i) => files[i]), classes, views, maxInputPixels, seed, (d) => o.onFeatures?.(d, total), { data: rows, row: 0 });
  const heldSet = await featureSet(backbone, split, held.map((i) => files[i]), classes, 1, maxInputPixels, seed, (d) => o.onFeatures?.(train.length + d, total));
  const featureSeconds = Math.round((performance.now() - t) / 100) / 10;
  const weight = (name: string) => backbone.graphWeight(name);
  const top = await FinetunedTop.train(split, weight, classes, trainSet, heldSet, { trainImages: trainSet.labels.length / views, views }, o, { onEpoch: o.onEpoch, signal: o.signal });
  if (o.refit === false || top.report.aborted || top.report.bestEpoch < 1 || o.signal?.aborted) return { top, report: { ...top.report, featureSeconds } };
  // The refit: the held-out images join the training rows (their augmented views computed now; progress counts them).
  const t2 = performance.now();
  const after = { data: rows, row: trainSet.labels.length };
  const heldViews = views > 1 ? await featureSet(backbone, split, held.map((i) => files[i]), classes, views, maxInputPixels, seed + 1, (d) => o.onFeatures?.(d, held.length), after) : copySet(heldSet, after);
  const all = adjacentSets(trainSet, heldViews);
  const refitSeconds = (performance.now() - t2) / 1000;
  const final = await FinetunedTop.train(split, weight, classes, all, heldSet, { trainImages: all.labels.length / views, views, refit: true }, { ...o, epochs: top.report.bestEpoch }, { onEpoch: o.onEpoch, signal: o.signal }).catch((err) => {
    top.dispose();
    throw err;
  });
  if (final.report.aborted) {
    final.dispose(); // stopped part-way: the first run's best weights are the best so far
    return { top, report: { ...top.report, aborted: true, featureSeconds } };
  }
  final.report = { ...top.report, trainImages: final.report.trainImages, seconds: Math.round((top.report.seconds + refitSeconds + final.report.seconds) * 10) / 10, finalLoss: final.report.finalLoss, trainedAt: final.report.trainedAt, refit: { images: final.report.trainImages, epochs: final.report.epochs, seconds: Math.round((refitSeconds + final.report.seconds) * 10) / 10 } };
  top.dispose();
  return { top: final, report: { ...final.report, featureSeconds } };
}

/**
 * `--mode scratch`: the whole MobileNetV2 architecture from fresh weights (src/models/scratch-net.ts),
 * trained from pixels at `inputSize` (default 128) with a fresh augmented view of every training
 * image per epoch (the same flip / crop / colour augmentation, crops of a decode 256/224 larger).
 * The pretrained backbone is used for nothing but its name (mobilenet_v2 only).
 */
async function scratchOnFiles(backbone: Backbone, files: readonly LabelledFile[], maxInputPixels: number, o: FinetuneRun): Promise<FinetuneResult> {
  if (backbone.spec.id !== MOBILENET_V2_TOP.backbone) throw new InvalidParameterError(`--mode scratch trains the MobileNetV2 architecture from fresh weights and needs a mobilenet_v2 library; this one uses ${backbone.spec.id}. Use --mode head (the default) or finetune.`);
  if (o.blocks !== undefined) throw new InvalidParameterError('--blocks applies to --mode finetune; --mode scratch trains the whole network (every block).');
  assertCanTrainScratch(); // before any image is read
  const classes = [...new Set(files.map((f) => f.label))].sort();
  if (classes.length < 2) throw new InvalidParameterError(`Training a classifier needs at least 2 labels; the library has ${classes.length}. Label more images (pixdex label, or index with --label-from-folder).`);
  const seed = o.seed ?? 42;
  const size = o.inputSize ?? SCRATCH_INPUT_DEFAULT;
  if (!Number.isInteger(size) || size < 32 || size > 512) throw invalidParameter('inputSize', 'an integer 32..512 (pixels)', size);
  const side = Math.round((size * AUGMENT_SIDE) / backbone.spec.inputSize);
  const { train, held } = stratifiedSplit(files.map((f) => f.label), o.validationSplit ?? 0.2, seed);
  if (held.length === 0) throw new InvalidParameterError('Too few labelled images to hold any out: label at least 2 images per class.');
  const t = performance.now();
  const total = train.length + held.length;
  const decodeAll = async (list: number[], sides: number, offset: number) => {
    const out: { pixels: Uint8Array; label: number }[] = [];
    for (let i = 0; i < list.length; i += 8) {
      const batch = list.slice(i, i + 8).map((k) => files[k]);
      const decoded = await Promise.all(batch.map(async (f) => decodeImage(await fs.readFile(f.path), { size: sides, maxInputPixels }, f.path).catch(() => undefined)));
      decoded.forEach((img, j) => img && out.push({ pixels: img.pixels, label: classes.indexOf(batch[j].label) })); // unreadable: skipped
      o.onFeatures?.(offset + Math.min(i + 8, list.length), total);
    }
    return out;
  };
  const trainImages = await decodeAll(train, side, 0);
  const heldImages = await decodeAll(held, size, train.length);
  const featureSeconds = Math.round((performance.now() - t) / 100) / 10;
  const random = seededRandom(seed + 11);
  const options: Partial<ScratchOptions> = definedOnly({ epochs: o.epochs, patience: o.patience, learningRate: o.learningRate, batchSize: o.batchSize, seed, labelSmoothing: o.labelSmoothing });
  const net = await ScratchNet.train(size, classes, { labels: Int32Array.from(trainImages.map((x) => x.label)), view: (i) => augment(trainImages[i].pixels, side, size, random) }, { labels: Int32Array.from(heldImages.map((x) => x.label)), pixels: heldImages.map((x) => x.pixels) }, { trainImages: trainImages.length }, options, { onEpoch: o.onEpoch, signal: o.signal });
  return { top: net, report: { ...net.report, featureSeconds } };
}

/** Inner-node features of one encoded image (the query side: plain 224 decode, no augmentation). */
export async function queryFeatures(backbone: Backbone, split: TopSplit, bytes: Uint8Array, maxInputPixels: number, what = 'query'): Promise<Float32Array> {
  const img = await decodeImage(bytes, { size: backbone.spec.inputSize, maxInputPixels }, what);
  const t = backbone.innerNode([img.pixels], split.node);
  try {
    return Float32Array.from(await t.data() as Float32Array);
  } finally {
    t.dispose();
  }
}

/** Floats per row of a feature set (one view's inner-node features). */
function featureSize(split: TopSplit): number {
  return split.shape[0] * split.shape[1] * split.shape[2];
}

/** Where a feature set's rows go: `data` from row `row` on (room for every view of every file). */
export interface RowTarget {
  data: Float32Array;
  row: number;
}

/**
 * Runs every view of every readable file to the split node; unreadable files are left out. The rows
 * are written once, into `into` when given (else a buffer of their own); the set's `data` is a view
 * of the rows written.
 */
export async function featureSet(backbone: Backbone, split: TopSplit, files: readonly LabelledFile[], classes: string[], views: number, maxInputPixels: number, seed: number, onDone: (done: number) => void, into?: RowTarget): Promise<FeatureSet> {
  const size = featureSize(split);
  const target = into ?? { data: new Float32Array(files.length * views * size), row: 0 };
  const start = target.row * size;
  let offset = start;
  const labels: number[] = [];
  const random = seededRandom(seed + 11);
  const side = backbone.spec.inputSize;
  for (let i = 0; i < files.length; i += 8) {
    const images: Uint8Array[] = [];
    const imageLabels: number[] = [];
    const batch = files.slice(i, i + 8);
    const decoded = await Promise.all(batch.map(async (f) => {
      try {
        return await decodeImage(await fs.readFile(f.path), { size: AUGMENT_SIDE, maxInputPixels, smallerSides: [side] }, f.path);
      } catch {
        return undefined; // unreadable: skipped, as indexing skips it
      }
    }));
    for (const [j, img] of decoded.entries()) {
      if (!img) continue;
      for (let v = 0; v < views; v++) {
        images.push(v === 0 ? img.smaller![0] : v === 1 ? augment(img.pixels, AUGMENT_SIDE, side, random) : await zoomOut(img.pixels, AUGMENT_SIDE, side, random));
        imageLabels.push(classes.indexOf(batch[j].label));
      }
    }
    for (let s = 0; s < images.length; s += 16) {
      const t = backbone.innerNode(images.slice(s, s + 16), split.node);
      const values = await t.data() as Float32Array;
      target.data.set(values, offset);
      offset += values.length;
      t.dispose();
    }
    labels.push(...imageLabels);
    onDone(Math.min(i + 8, files.length));
  }
  return { data: target.data.subarray(start, offset), labels: Int32Array.from(labels), size };
}

/** A copy of `set`'s rows written into `into` (the refit's held-out rows with one view). */
function copySet(set: FeatureSet, into: RowTarget): FeatureSet {
  const start = into.row * set.size;
  into.data.set(set.data, start);
  return { data: into.data.subarray(start, start + set.data.length), labels: set.labels, size: set.size };
}

/** Two feature sets whose rows lie next to each other in one buffer, as one set (no copy of the rows). */
function adjacentSets(a: FeatureSet, b: FeatureSet): FeatureSet {
  if (a.data.buffer !== b.data.buffer || a.data.byteOffset + a.data.byteLength !== b.data.byteOffset) throw new RangeError('adjacentSets: the rows of b must follow those of a in the same buffer');
  const labels = new Int32Array(a.labels.length + b.labels.length);
  labels.set(a.labels);
  labels.set(b.labels, a.labels.length);
  return { data: new Float32Array(a.data.buffer, a.data.byteOffset, a.data.length + b.data.length), labels, size: a.size };
}

/**
 * One augmented view: a random `out`² crop of an `side`² RGB image, flipped half the time, with
 * brightness, contrast and saturation each scaled by a random factor in [0.8, 1.2].
 */
export function augment(pixels: Uint8Array, side: number, out: number, random: () => number): Uint8Array {
  const ox = Math.floor(random() * (side - out + 1));
  const oy = Math.floor(random() * (side - out + 1));
  const flip = random() < 0.5;
  const [bright, contrast, saturation] = [0, 0, 0].map(() => 0.8 + 0.4 * random());
  const view = new Uint8Array(out * out * 3);
  let sum = 0;
  for (let y = 0; y < out; y++) {
    for (let x = 0; x < out; x++) {
      const sx = flip ? ox + out - 1 - x : ox + x;
      const src = ((oy + y) * side + sx) * 3;
      const dst = (y * out + x) * 3;
      const r = pixels[src] * bright;
      const g = pixels[src + 1] * bright;
      const b = pixels[src + 2] * bright;
      const grey = 0.299 * r + 0.587 * g + 0.114 * b;
      sum += grey;
      view[dst] = clamp(grey + (r - grey) * saturation);
      view[dst + 1] = clamp(grey + (g - grey) * saturation);
      view[dst + 2] = clamp(grey + (b - grey) * saturation);
    }
  }
  const mean = sum / (out * out);
  for (let i = 0; i < view.length; i++) view[i] = clamp(mean + (view[i] - mean) * contrast);
  return view;
}

/**
 * A zoomed-out view: the `side`² image shrunk to a random 50-90 % of `out`, placed at a random
 * spot of an `out`² canvas whose rest is filled by mirroring it (reflect padding), then flipped
 * half the time and colour-jittered as `augment` does. Crops only ever zoom in, and people
 * photograph the same kind of thing close up and from afar: several of flowers17's fixed-split
 * misses were wide shots of small flowers whose class's training photos are mostly close-ups.
 */
export async function zoomOut(pixels: Uint8Array, side: number, out: number, random: () => number): Promise<Uint8Array> {
  const s = Math.round(out * (0.5 + 0.4 * random()));
  const ox = Math.floor(random() * (out - s + 1));
  const oy = Math.floor(random() * (out - s + 1));
  const canvas = await sharp(pixels, { raw: { width: side, height: side, channels: 3 } })
    .resize(s, s)
    .extend({ top: oy, bottom: out - s - oy, left: ox, right: out - s - ox, extendWith: 'mirror' })
    .raw()
    .toBuffer();
  return augment(new Uint8Array(canvas), out, out, random); // side == out: no crop, only the flip and colour
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

// ------------------------------------------------------------------ the library's fine-tuned classifier

/** LMDB `models` key of the fine-tuned top (the head keeps its own key; the newer one is in use). */
export const FINETUNE_KEY = 'classifier-finetune';

/** What the library side needs (structural, so this module does not import the engine). */
export interface FinetuneLibrary {
  records: {
    images(): Iterable<{ id: number; rec: { path: string; label?: string } }>;
    model(key: string): Uint8Array | undefined;
    putModel(key: string, bytes: Uint8Array): void;
  };
  config: { maxInputPixels: number };
  model(): Promise<Backbone>;
  /** When the head (if any) was trained: the newer classifier is the one in use. */
  headTrainedAt(): number | undefined;
}

/** Options of `train-classifier --mode finetune|scratch`. */
export type ClassifierTrainOptions = Omit<FinetuneRun, 'onEpoch'> & { mode: 'finetune' | 'scratch' };
/** What `train-classifier` takes for any mode (the head's options apply to `head`). */
export type ClassifierTrainRequest = Partial<HeadOptions> & Omit<Partial<ClassifierTrainOptions>, 'mode'> & { mode?: ClassifierMode };

/** The fine-tuned top, or the scratch network (both read the image, not a stored vector). */
export type TunedClassifier = FinetunedTop | ScratchNet;

const loaded = new WeakMap<object, TunedClassifier>();

/** Trains the fine-tuned (or scratch) top on every image a person labelled and stores it. */
export async function trainLibraryTop(lib: FinetuneLibrary, options: ClassifierTrainOptions, onEpoch?: (epoch: number, loss: number, valLoss: number) => void): Promise<FinetuneReport & { featureSeconds: number }> {
  const files: LabelledFile[] = [];
  for (const { rec } of lib.records.images()) if (rec.label !== undefined) files.push({ path: rec.path, label: rec.label });
  const { top, report } = await finetuneOnFiles(await lib.model(), files, lib.config.maxInputPixels, { ...definedOnly(options), onEpoch: (e) => onEpoch?.(e.epoch, e.loss, e.valLoss) });
  lib.records.putModel(FINETUNE_KEY, top.toBytes());
  loaded.get(lib.records)?.dispose();
  loaded.set(lib.records, top);
  return report;
}

/** The library's fine-tuned top when it is the classifier in use (newer than the head), else undefined. */
export function libraryTop(lib: FinetuneLibrary): TunedClassifier | undefined {
  const bytes = lib.records.model(FINETUNE_KEY);
  if (!bytes) return undefined;
  const trainedAt = FinetunedTop.trainedAt(bytes);
  if ((lib.headTrainedAt() ?? -Infinity) > trainedAt) return undefined;
  let top = loaded.get(lib.records);
  if (!top || top.report.trainedAt !== trainedAt) {
    top?.dispose();
    top = ScratchNet.isScratch(bytes) ? ScratchNet.fromBytes(bytes) : FinetunedTop.fromBytes(bytes);
    loaded.set(lib.records, top);
  }
  return top;
}

/** Class probabilities of an encoded query from the fine-tuned top, when it is in use and the method reads it. */
export async function topProbabilities(lib: FinetuneLibrary, query: Uint8Array, method: string | undefined): Promise<Record<string, number> | undefined> {
  if (method !== 'head' && method !== 'both') return undefined;
  const top = libraryTop(lib);
  if (!top) return undefined;
  const probabilities = top instanceof ScratchNet
    ? top.predict((await decodeImage(query, { size: top.inputSize, maxInputPixels: lib.config.maxInputPixels }, 'query')).pixels) // the whole network, from pixels
    : top.predict(await queryFeatures(await lib.model(), top.split, query, lib.config.maxInputPixels));
  return Object.fromEntries(probabilities.map((p) => [p.label, p.probability]));
}

/**
 * The fine-tuned top reads the image, not a stored vector: classifying an indexed image by id with
 * --method head|both while it is in use is refused rather than answered by an older head.
 */
export function refuseStoredVectorWithTop(lib: FinetuneLibrary, method: string | undefined): void {
  if ((method === 'head' || method === 'both') && libraryTop(lib)) {
    throw new InvalidParameterError('The classifier in use is the fine-tuned top, which reads the image itself: classify the file (pixdex classify <path>, or upload it), or use --method knn.');
  }
}

/** Facts about the fine-tuned top for `stats` when it is the classifier in use, else undefined. */
export function libraryTopInfo(lib: FinetuneLibrary): (FinetuneReport & { bytes: number }) | undefined {
  const top = libraryTop(lib);
  return top ? { ...top.report, bytes: lib.records.model(FINETUNE_KEY)!.length } : undefined;
}

/** Frees the cached top of a library (on close). */
export function disposeLibraryTop(records: object): void {
  loaded.get(records)?.dispose();
  loaded.delete(records);
}

/** The object without its undefined fields (so they do not override defaults when spread). */
export function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
