/**
 * Decoded images → embeddings, in batches: one backbone pass at the native side gives the global
 * descriptor and, when an autoencoder is given, its code from the same pass's feature maps. The
 * library's descriptor (`LibraryDescriptor`) says what the global vector is and whether the
 * image is also described at smaller input sides (`regional`). Used in this thread and in the
 * embedding workers alike.
 */
import { tf } from './backend.ts';
import { invalidParameter } from './errors.ts';
import { describeWindows, gemPool, l2normalizeRows, regionalPlan } from './descriptors.ts';
import type { Backbone } from './models/backbone.ts';
import type { ConvAutoencoder } from './models/autoencoder.ts';
import { isRegional, LIBRARY_GEM_P, libraryRegional, type LibraryDescriptor } from './library-descriptor.ts';

/** What embedding an image gives. */
export interface Embedding {
  /**
   * The global descriptor stored in `vectors` and indexed in the backbone space: the backbone's
   * average-pooled vector (`pooled`), or GeM of its feature map (`gem`, `regional`).
   */
  pooled: Float32Array;
  /** The code in an autoencoder space. */
  code?: Float32Array;
  /** `regional2`, `regional`: GeM descriptors at the smaller database sides (160; 192, 160, 128), concatenated, each unit length. */
  scales?: Float32Array;
  /** `regional` queries (`windows: true`): GeM of every query window (REGIONAL plan order), each unit length. */
  windows?: Float32Array;
}

export interface EmbedOptions {
  /** What the global vector is, and whether smaller sides are described (default `pooled`). */
  descriptor?: LibraryDescriptor;
  /** In a `regional` library: describe the query windows (queries; one backbone pass). */
  windows?: boolean;
  /** In a `regional` library: describe the smaller database sides (default: when not `windows`; three more passes). */
  smaller?: boolean;
  /**
   * The images decoded at the smaller sides (`DecodedImage.smaller`, one list per image): straight
   * from the original, which measured better than resizing the native crop (flowers17 instance
   * P@1 +0.008 to +0.013). Required when smaller sides are described.
   */
  smallerPixels?: ReadonlyArray<readonly Uint8Array[] | undefined>;
}

/** Embeds `pixels` (inputSize² RGB bytes each) in batches of `batchSize`; no tensor outlives it. */
export async function embedBatch(model: Backbone, autoencoder: ConvAutoencoder | undefined, pixels: readonly Uint8Array[], batchSize: number, options: EmbedOptions = {}): Promise<Embedding[]> {
  const descriptor = options.descriptor ?? 'pooled';
  const regional = isRegional(descriptor) ? libraryRegional(model.spec, descriptor) : undefined;
  const out: Embedding[] = [];
  const d = model.spec.dims;
  const [mh, mw] = model.spec.featureMap.shape;
  for (let i = 0; i < pixels.length; i += batchSize) {
    const batch = pixels.slice(i, i + batchSize);
    const needMap = autoencoder !== undefined || descriptor !== 'pooled';
    const { pooled, featureMap } = model.infer(batch, needMap);
    const tensors: tf.Tensor[] = [pooled];
    if (featureMap) tensors.push(featureMap);
    try {
      const codes = autoencoder && featureMap ? autoencoder.encode(featureMap) : undefined;
      if (codes) tensors.push(codes);
      const global = descriptor === 'pooled' ? pooled : tf.tidy(() => l2normalizeRows(gemPool(featureMap!, LIBRARY_GEM_P)));
      if (global !== pooled) tensors.push(global);
      const g = (await global.data()) as Float32Array;
      const c = codes ? ((await codes.data()) as Float32Array) : undefined;
      const maps = options.windows && regional ? ((await featureMap!.data()) as Float32Array) : undefined;
      const scales = regional && (options.smaller ?? !options.windows) ? await describeSmaller(model, batch, regional.smaller, options.smallerPixels?.slice(i, i + batchSize)) : undefined;
      batch.forEach((_, j) => {
        const e: Embedding = { pooled: g.slice(j * d, (j + 1) * d) };
        if (c && autoencoder) e.code = c.slice(j * autoencoder.config.dim, (j + 1) * autoencoder.config.dim);
        if (scales) e.scales = scales.slice(j * regional!.smaller.length * d, (j + 1) * regional!.smaller.length * d);
        if (maps && regional) e.windows = describeWindows(maps.subarray(j * mh * mw * d, (j + 1) * mh * mw * d), mh, mw, d, regionalPlan(regional.config, mh, model.spec.inputSize).windows, regional.config.p);
        out.push(e);
      });
    } finally {
      tf.dispose(tensors);
    }
  }
  return out;
}

/**
 * GeM descriptors of each image seen at each of `sides` (smaller than the native side): the
 * image decoded at that side (`DecodeOptions.smallerSides`), run through the
 * backbone and GeM-pooled. Returns per image `sides.length` unit vectors, concatenated in `sides` order.
 */
async function describeSmaller(model: Backbone, batch: readonly Uint8Array[], sides: readonly number[], decoded?: ReadonlyArray<readonly Uint8Array[] | undefined>): Promise<Float32Array> {
  const n = batch.length;
  const d = model.spec.dims;
  const out = new Float32Array(n * sides.length * d);
  for (const [k, side] of sides.entries()) {
    const small = batch.map((_, j) => {
      const given = decoded?.[j]?.[k];
      if (!given || given.length !== side * side * 3) throw invalidParameter('smallerPixels', `each image decoded at ${sides.join(', ')} px (decodeImage smallerSides)`, given ? `${given.length} bytes` : 'none');
      return given;
    });
    const desc = tf.tidy(() => {
      const map = model.featureMaps(small, side);
      return l2normalizeRows(gemPool(map, LIBRARY_GEM_P));
    });
    const data = (await desc.data()) as Float32Array;
    desc.dispose();
    for (let j = 0; j < n; j++) out.set(data.subarray(j * d, (j + 1) * d), (j * sides.length + k) * d);
  }
  return out;
}
