/**
 * Decoded images → embeddings, in batches: one backbone pass gives the pooled vector and, when an
 * autoencoder is given, its code from the same pass's feature maps. Used in this thread and in
 * the embedding workers alike.
 */
import { tf } from './backend.ts';
import type { Backbone } from './models/backbone.ts';
import type { ConvAutoencoder } from './models/autoencoder.ts';

/** What one backbone pass gives an image: the pooled vector, and the code in an autoencoder space. */
export interface Embedding {
  pooled: Float32Array;
  code?: Float32Array;
}

/** Embeds `pixels` (inputSize² RGB bytes each) in batches of `batchSize`; no tensor outlives it. */
export async function embedBatch(model: Backbone, autoencoder: ConvAutoencoder | undefined, pixels: readonly Uint8Array[], batchSize: number): Promise<Embedding[]> {
  const out: Embedding[] = [];
  const d = model.spec.dims;
  for (let i = 0; i < pixels.length; i += batchSize) {
    const batch = pixels.slice(i, i + batchSize);
    const { pooled, featureMap } = model.infer(batch, autoencoder !== undefined);
    const codes = autoencoder && featureMap ? autoencoder.encode(featureMap) : undefined;
    try {
      const g = (await pooled.data()) as Float32Array;
      const c = codes ? ((await codes.data()) as Float32Array) : undefined;
      batch.forEach((_, j) => {
        const e: Embedding = { pooled: g.slice(j * d, (j + 1) * d) };
        if (c && autoencoder) e.code = c.slice(j * autoencoder.config.dim, (j + 1) * autoencoder.config.dim);
        out.push(e);
      });
    } finally {
      tf.dispose([pooled, featureMap, codes].filter((t) => t !== undefined) as tf.Tensor[]);
    }
  }
  return out;
}
