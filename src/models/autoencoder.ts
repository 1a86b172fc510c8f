/**
 * Convolutional autoencoder over a backbone feature map [N,H,W,C] (MobileNetV2: 7x7x1280).
 *
 *   encoder: 1x1 conv C→hidden (ReLU) → k×k conv hidden→dim (stride 1 or 2) = latent map
 *   embedding: pooled latent (mean or GeM), L2-normalised, `dim` floats
 *   decoder: k×k conv dim→hidden (ReLU) at the latent size → bilinear resize to H×W → 1x1 conv hidden→C
 *
 * Input and target are the feature map divided by its RMS position norm (see `normalizeMap`), so
 * the reconstruction loss is a relative squared error (1 = predicting zeros) and does not depend
 * on image contrast. An optional term keeps the batch's pairwise cosine similarities of the
 * pooled backbone vectors in the embeddings, which is what retrieval uses.
 *
 * Convolutions come from `matconv.ts`: matMul form on wasm/cpu (trainable there), native
 * tf.conv2d on tfjs-node, with the same HWIO weights. No I/O: weights travel as bytes.
 */
import { tf } from '../backend.ts';
import { invalidParameter } from '../errors.ts';
import { ConvLayer, seededRandom, type ConvImpl, type ConvLayerSpec } from './matconv.ts';

/** Pooling of the latent map into the embedding. */
export type LatentPooling = 'mean' | 'gem';

/** Everything that defines the model's shape and loss; stored with the weights. */
export interface AutoencoderConfig {
  /** Channels of the backbone feature map (1280 for mobilenet_v2). */
  inChannels: number;
  /** Feature-map height and width (7x7 for 224 inputs). */
  height: number;
  width: number;
  /** Embedding size = latent channels (default: 256). */
  dim: number;
  /**
   * Channels of the 1x1 layer between the feature map and the latent (default: 256). Flowers17,
   * 256-d GeM, 8 epochs: hidden 256 mAP 0.571 / P@1 0.884 vs hidden 512 0.571 / 0.870, at half
   * the training time (wasm: ~25 vs ~48 CPU-s per epoch of 1000 maps).
   */
  hidden: number;
  /** Side of the spatial kernels of the encoder's and decoder's second layer (default: 3). */
  kernelSize: number;
  /**
   * Stride of the latent conv (default: 1). 2 gives a 4x4 latent and trains ~1.7x faster, but
   * scored mAP 0.519 vs 0.532 with stride 1 (flowers17, mean pooling, 8 epochs).
   */
  latentStride: 1 | 2;
  /**
   * Latent pooling (default: 'gem'). GeM pools ReLU(latent)^p; mean pools the linear latent.
   * Flowers17, 8 epochs, 256-d: GeM mAP 0.571 vs mean 0.532 (backbone 1280-d: 0.519).
   */
  pooling: LatentPooling;
  /** GeM exponent (default: 3, the usual retrieval choice; unused for mean pooling). */
  gemP: number;
  /**
   * Weight of the pairwise-similarity term relative to reconstruction (default: 1). Flowers17,
   * 256-d, 8 epochs: 0 → mAP 0.517 / P@1 0.802 and 1 → 0.532 / 0.860 (mean pooling);
   * 1 → 0.571 and 5 → 0.555 (GeM).
   */
  similarityWeight: number;
}

/** Defaults, with the reason for each in `AutoencoderConfig`. */
export const AUTOENCODER_DEFAULTS: Omit<AutoencoderConfig, 'inChannels' | 'height' | 'width'> = {
  dim: 256,
  hidden: 256,
  kernelSize: 3,
  latentStride: 1,
  pooling: 'gem',
  gemP: 3,
  similarityWeight: 1,
};

/** What the last `fit` did; stored with the weights so `stats` can show it. */
export interface TrainingInfo {
  epochs: number;
  samples: number;
  finalLoss: number;
  seconds: number;
  trainedAt: string;
  backend: string;
}

/** One step's loss terms (total = reconstruction + similarityWeight · similarity). */
export interface StepLoss {
  total: number;
  reconstruction: number;
  similarity: number;
}

/** Batches for one epoch. `fit` takes ownership of every batch and disposes it. */
export type BatchSource = (epoch: number) => AsyncIterable<tf.Tensor4D> | Iterable<tf.Tensor4D>;

/** Options of `fit`; the learning rate and batch size stay the caller's choice per run. */
export interface FitOptions {
  /** Passes over the batch source (each epoch calls `batches(epoch)` anew). */
  epochs: number;
  /** Adam learning rate (default: 1e-3). */
  learningRate?: number;
  /** Called after each epoch with the sample-weighted mean losses of that epoch. */
  onEpoch?: (epoch: number, loss: number, detail: StepLoss & { seconds: number; samples: number }) => void | Promise<void>;
  /** Called after each step (progress display). */
  onBatch?: (step: number, loss: StepLoss) => void;
}

const LAYERS = ['enc1', 'enc2', 'dec1', 'dec2'] as const;
type LayerName = (typeof LAYERS)[number];
const MAGIC = 0x45415850; // "PXAE" little-endian
const FORMAT_VERSION = 1;
const EPS = 1e-6;

function checkConfig(c: AutoencoderConfig): void {
  const posInt = (name: keyof AutoencoderConfig, max: number) => {
    const v = c[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw invalidParameter(name, `integer between 1 and ${max}`, v);
  };
  posInt('inChannels', 65536);
  posInt('height', 1024);
  posInt('width', 1024);
  posInt('dim', 65536);
  posInt('hidden', 65536);
  posInt('kernelSize', 15);
  if (c.kernelSize % 2 !== 1) throw invalidParameter('kernelSize', 'odd integer', c.kernelSize);
  if (c.latentStride !== 1 && c.latentStride !== 2) throw invalidParameter('latentStride', '1 or 2', c.latentStride);
  if (c.pooling !== 'mean' && c.pooling !== 'gem') throw invalidParameter('pooling', "'mean' or 'gem'", c.pooling);
  if (typeof c.gemP !== 'number' || !(c.gemP >= 1 && c.gemP <= 16)) throw invalidParameter('gemP', 'number between 1 and 16', c.gemP);
  if (typeof c.similarityWeight !== 'number' || !(c.similarityWeight >= 0 && Number.isFinite(c.similarityWeight))) {
    throw invalidParameter('similarityWeight', 'finite number ≥ 0', c.similarityWeight);
  }
}

function layerSpecs(c: AutoencoderConfig): Record<LayerName, ConvLayerSpec> {
  return {
    enc1: { kernelSize: 1, inChannels: c.inChannels, outChannels: c.hidden, stride: 1, padding: 'same', activation: 'relu' },
    enc2: { kernelSize: c.kernelSize, inChannels: c.hidden, outChannels: c.dim, stride: c.latentStride, padding: 'same', activation: c.pooling === 'gem' ? 'relu' : 'linear' },
    dec1: { kernelSize: c.kernelSize, inChannels: c.dim, outChannels: c.hidden, stride: 1, padding: 'same', activation: 'relu' },
    dec2: { kernelSize: 1, inChannels: c.hidden, outChannels: c.inChannels, stride: 1, padding: 'same', activation: 'linear' },
  };
}

/**
 * Divides each map by its RMS position norm, sqrt(Σ F² / (H·W)): positions then have unit mean
 * squared norm, so the MSE is relative and bright and dark images weigh the same. Chosen over
 * per-channel standardisation because it needs no dataset statistics and keeps cosine geometry.
 */
export function normalizeMap(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const rms = tf.sqrt(tf.add(tf.div(tf.sum(tf.square(x), [1, 2, 3], true), h * w), EPS));
    return tf.div(x, rms) as tf.Tensor4D;
  });
}

function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.sqrt(tf.add(tf.sum(tf.square(x), 1, true), EPS * EPS))) as tf.Tensor2D);
}

/** Mean of off-diagonal squared differences between two batches' cosine-similarity matrices. */
function similarityLoss(e: tf.Tensor2D, g: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const n = e.shape[0];
    if (n < 2) return tf.scalar(0);
    const se = tf.matMul(e, tf.transpose(e));
    const sg = tf.matMul(g, tf.transpose(g));
    // The diagonal is 1 in both (unit vectors), so it adds only rounding: divide by the pair count.
    return tf.div(tf.sum(tf.square(tf.sub(se, sg))), n * (n - 1)) as tf.Scalar;
  });
}

/** A convolutional autoencoder whose encoder maps backbone feature maps to compact embeddings. */
export class ConvAutoencoder {
  readonly config: Readonly<AutoencoderConfig>;
  /** Set by `fit` and restored by `fromBytes`; undefined for an untrained model. */
  trainingInfo: TrainingInfo | undefined;
  private readonly layers: Record<LayerName, ConvLayer>;
  private optimizer: tf.AdamOptimizer | undefined;
  private optimizerRate = 0;
  private disposed = false;

  private constructor(config: AutoencoderConfig, layers: Record<LayerName, ConvLayer>, info?: TrainingInfo) {
    this.config = Object.freeze({ ...config });
    this.layers = layers;
    this.trainingInfo = info;
  }

  /** Fills defaults, validates, and draws the weights from `seed` (same seed, same weights). */
  static create(config: Pick<AutoencoderConfig, 'inChannels' | 'height' | 'width'> & Partial<AutoencoderConfig>, seed = 0): ConvAutoencoder {
    const full: AutoencoderConfig = { ...AUTOENCODER_DEFAULTS, ...config };
    checkConfig(full);
    const random = seededRandom(seed);
    const specs = layerSpecs(full);
    const layers = {} as Record<LayerName, ConvLayer>;
    for (const name of LAYERS) layers[name] = ConvLayer.create(specs[name], random);
    return new ConvAutoencoder(full, layers);
  }

  /** Spatial size of the latent map. */
  latentSize(): [number, number] {
    return this.layers.enc2.outputSize(this.config.height, this.config.width);
  }

  /** Number of trainable parameters. */
  parameterCount(): number {
    return LAYERS.reduce((s, n) => s + this.layers[n].kernel.size + this.layers[n].bias.size, 0);
  }

  private checkInput(x: tf.Tensor): void {
    if (this.disposed) throw new Error('ConvAutoencoder was disposed; create or load a new one.');
    const { height, width, inChannels } = this.config;
    if (x.rank !== 4 || x.shape[1] !== height || x.shape[2] !== width || x.shape[3] !== inChannels) {
      throw invalidParameter('featureMap', `a [N,${height},${width},${inChannels}] tensor`, `[${x.shape.join(',')}]`);
    }
  }

  private latent(xn: tf.Tensor4D, impl: ConvImpl): tf.Tensor4D {
    return this.layers.enc2.apply(this.layers.enc1.apply(xn, impl), impl);
  }

  private pool(latent: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      if (this.config.pooling === 'mean') return tf.mean(latent, [1, 2]) as tf.Tensor2D;
      const p = this.config.gemP;
      return tf.pow(tf.mean(tf.pow(tf.maximum(latent, EPS), p), [1, 2]), 1 / p) as tf.Tensor2D;
    });
  }

  private decode(latent: tf.Tensor4D, impl: ConvImpl): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.layers.dec1.apply(latent, impl);
      const { height, width } = this.config;
      if (h.shape[1] !== height || h.shape[2] !== width) h = tf.image.resizeBilinear(h, [height, width]);
      return this.layers.dec2.apply(h, impl);
    });
  }

  /** L2-normalised embeddings [N, dim] of feature maps [N,H,W,C]. The caller owns the result. */
  encode(featureMap: tf.Tensor4D, impl: ConvImpl = 'auto'): tf.Tensor2D {
    this.checkInput(featureMap);
    return tf.tidy(() => l2Normalize(this.pool(this.latent(normalizeMap(featureMap), impl))));
  }

  /** The decoder's reconstruction of the *normalised* feature map (see `normalizeMap`). */
  reconstruct(featureMap: tf.Tensor4D, impl: ConvImpl = 'auto'): tf.Tensor4D {
    this.checkInput(featureMap);
    return tf.tidy(() => this.decode(this.latent(normalizeMap(featureMap), impl), impl));
  }

  /** Loss terms for a batch as scalars (inside a tidy or gradient scope). */
  private lossTerms(x: tf.Tensor4D, impl: ConvImpl): { total: tf.Scalar; rec: tf.Scalar; sim: tf.Scalar } {
    const [n, h, w] = x.shape;
    const xn = normalizeMap(x);
    const z = this.latent(xn, impl);
    const diff = tf.sub(this.decode(z, impl), xn);
    // Σ over channels, mean over positions: relative squared error (positions have unit mean norm²).
    const rec = tf.div(tf.sum(tf.square(diff)), n * h * w) as tf.Scalar;
    let sim: tf.Scalar = tf.scalar(0);
    let total = rec;
    if (this.config.similarityWeight > 0 && n > 1) {
      const e = l2Normalize(this.pool(z));
      const g = l2Normalize(tf.mean(x, [1, 2]) as tf.Tensor2D);
      sim = similarityLoss(e, g);
      total = tf.add(rec, tf.mul(sim, this.config.similarityWeight));
    }
    return { total, rec, sim };
  }

  /** Loss terms of a batch without training (validation). */
  evaluate(featureMap: tf.Tensor4D, impl: ConvImpl = 'auto'): StepLoss {
    this.checkInput(featureMap);
    return tf.tidy(() => {
      const { total, rec, sim } = this.lossTerms(featureMap, impl);
      return { total: total.dataSync()[0], reconstruction: rec.dataSync()[0], similarity: sim.dataSync()[0] };
    });
  }

  /**
   * One Adam step on a batch (not disposed here). The optimizer is created on first use and
   * restarted when `learningRate` changes; its moments are not saved by `toBytes`.
   */
  trainStep(batch: tf.Tensor4D, learningRate = 1e-3, impl: ConvImpl = 'auto'): StepLoss {
    this.checkInput(batch);
    if (!this.optimizer || this.optimizerRate !== learningRate) {
      this.optimizer?.dispose();
      this.optimizer = tf.train.adam(learningRate);
      this.optimizerRate = learningRate;
    }
    const optimizer = this.optimizer;
    const vars = LAYERS.flatMap((n) => this.layers[n].variables());
    let parts: [tf.Scalar, tf.Scalar] | undefined;
    const total = tf.tidy(() =>
      optimizer.minimize(() => {
        const { total, rec, sim } = this.lossTerms(batch, impl);
        parts = [tf.keep(rec), tf.keep(sim)];
        return total;
      }, true, vars)!,
    );
    const out = { total: total.dataSync()[0], reconstruction: parts![0].dataSync()[0], similarity: parts![1].dataSync()[0] };
    tf.dispose([total, ...parts!]);
    return out;
  }

  /**
   * Trains for `epochs` passes over `batches(epoch)`, disposing each batch after its step, and
   * records `trainingInfo`. Returns the last epoch's mean loss.
   */
  async fit(batches: BatchSource, options: FitOptions): Promise<TrainingInfo> {
    const { epochs, learningRate = 1e-3, onEpoch, onBatch } = options;
    if (!Number.isInteger(epochs) || epochs < 1) throw invalidParameter('epochs', 'positive integer', epochs);
    const start = performance.now();
    let step = 0;
    let last = NaN;
    let samples = 0;
    for (let epoch = 0; epoch < epochs; epoch++) {
      const t0 = performance.now();
      let n = 0;
      const sum = { total: 0, reconstruction: 0, similarity: 0 };
      for await (const batch of batches(epoch)) {
        try {
          const loss = this.trainStep(batch, learningRate);
          const b = batch.shape[0];
          n += b;
          sum.total += loss.total * b;
          sum.reconstruction += loss.reconstruction * b;
          sum.similarity += loss.similarity * b;
          onBatch?.(step++, loss);
        } finally {
          batch.dispose();
        }
        // Yield to the event loop so progress output and signals get through between steps.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (n === 0) throw invalidParameter('batches', 'at least one batch per epoch', 'an empty epoch');
      samples = n;
      last = sum.total / n;
      await onEpoch?.(epoch, last, {
        total: last,
        reconstruction: sum.reconstruction / n,
        similarity: sum.similarity / n,
        seconds: (performance.now() - t0) / 1000,
        samples: n,
      });
    }
    this.trainingInfo = {
      epochs,
      samples,
      finalLoss: last,
      seconds: (performance.now() - start) / 1000,
      trainedAt: new Date().toISOString(),
      backend: tf.getBackend(),
    };
    return this.trainingInfo;
  }

  /**
   * Config, training info and float32 weights in one buffer: "PXAE", u32 version, u32 header
   * length, JSON header, padding to 4 bytes, then each layer's HWIO kernel and bias
   * (little-endian). Loading gives bit-identical weights.
   */
  toBytes(): Uint8Array {
    if (this.disposed) throw new Error('ConvAutoencoder was disposed; nothing to serialise.');
    const header = new TextEncoder().encode(JSON.stringify({ config: this.config, trainingInfo: this.trainingInfo ?? null, layers: LAYERS }));
    const headerEnd = 12 + header.length;
    const dataStart = Math.ceil(headerEnd / 4) * 4;
    const arrays = LAYERS.flatMap((n) => [this.layers[n].kernel.dataSync() as Float32Array, this.layers[n].bias.dataSync() as Float32Array]);
    const floats = arrays.reduce((s, a) => s + a.length, 0);
    const bytes = new Uint8Array(dataStart + floats * 4);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint32(4, FORMAT_VERSION, true);
    view.setUint32(8, header.length, true);
    bytes.set(header, 12);
    let off = dataStart;
    for (const a of arrays) {
      for (let i = 0; i < a.length; i++, off += 4) view.setFloat32(off, a[i], true);
    }
    return bytes;
  }

  /** Inverse of `toBytes`; refuses buffers that are not a pixdex autoencoder of a known version. */
  static fromBytes(bytes: Uint8Array): ConvAutoencoder {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 12 || view.getUint32(0, true) !== MAGIC) {
      throw invalidParameter('bytes', 'a pixdex autoencoder (magic "PXAE")', `${bytes.byteLength} bytes of something else`);
    }
    const version = view.getUint32(4, true);
    if (version !== FORMAT_VERSION) throw invalidParameter('bytes', `autoencoder format version ${FORMAT_VERSION}`, version);
    const headerLength = view.getUint32(8, true);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength))) as {
      config: AutoencoderConfig;
      trainingInfo: TrainingInfo | null;
      layers: string[];
    };
    checkConfig(header.config);
    const specs = layerSpecs(header.config);
    let off = Math.ceil((12 + headerLength) / 4) * 4;
    const read = (count: number): Float32Array => {
      if (off + count * 4 > bytes.byteLength) throw invalidParameter('bytes', 'a complete autoencoder buffer', `a buffer truncated at ${bytes.byteLength} bytes`);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++, off += 4) out[i] = view.getFloat32(off, true);
      return out;
    };
    const layers = {} as Record<LayerName, ConvLayer>;
    try {
      for (const name of LAYERS) {
        const s = specs[name];
        const kernel = read(s.kernelSize * s.kernelSize * s.inChannels * s.outChannels);
        const bias = read(s.outChannels);
        layers[name] = ConvLayer.fromWeights(s, kernel, bias);
      }
    } catch (err) {
      for (const l of Object.values(layers)) l.dispose();
      throw err;
    }
    if (off !== bytes.byteLength) {
      for (const l of Object.values(layers)) l.dispose();
      throw invalidParameter('bytes', `${off} bytes for this config`, `${bytes.byteLength} bytes`);
    }
    return new ConvAutoencoder(header.config, layers, header.trainingInfo ?? undefined);
  }

  /** Frees the weights and the optimizer state. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const n of LAYERS) this.layers[n].dispose();
    this.optimizer?.dispose();
    this.optimizer = undefined;
  }
}

/**
 * A `BatchSource` over an in-memory [N,H,W,C] tensor: shuffled per epoch from `seed` (same seed,
 * same order), batches of `batchSize` (the last one may be smaller). The tensor stays the caller's.
 */
export function batchesFromTensor(data: tf.Tensor4D, batchSize: number, seed = 0): BatchSource {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw invalidParameter('batchSize', 'positive integer', batchSize);
  const n = data.shape[0];
  return function* (epoch: number) {
    const random = seededRandom((seed * 1000003 + epoch) >>> 0);
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let i = 0; i < n; i += batchSize) {
      const idx = order.slice(i, i + batchSize);
      yield tf.tidy(() => tf.gather(data, tf.tensor1d(idx, 'int32'))) as tf.Tensor4D;
    }
  };
}
