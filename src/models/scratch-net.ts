/**
 * `train-classifier --mode scratch`: the whole MobileNetV2 1.0 architecture (stem 3x3 conv, the 17
 * inverted-residual blocks `expanded_conv` .. `expanded_conv_16`, `Conv_1`, global average
 * pooling, a softmax layer) with fresh seeded weights, trained end to end from pixels: the
 * founding document's third kind of transfer learning (reuse only the architecture), a measured
 * baseline that shows what pretraining buys, not a recommended mode.
 *
 * Built with tf.layers (the frozen graph has batch norm folded into its convolutions; a network
 * trained from fresh weights needs batch norm, with its moving statistics, so the block builder of
 * src/models/top-blocks.ts, which has neither batch norm nor strides, is not reused). The layer
 * table below is the graph's (test/finetune.test.ts checks it against the graph's weight shapes).
 * The depthwise convolutions' gradients exist only on the tensorflow backend: on any other backend
 * training stops at once with BACKEND_UNAVAILABLE naming `npm run setup:tensorflow`. Inference
 * (classify) runs on every backend. Saved as bytes (config JSON + float32 weights, batch-norm
 * moving statistics included) in LMDB `models`, bit-exact.
 */
import { tf } from '../backend.ts';
import { BackendError, InvalidParameterError } from '../errors.ts';
import { seededRandom } from './matconv.ts';
import type { FinetuneReport } from './finetune.ts';
import { packWeights, readPackedHeader, scoreProbabilities, trainLoop, loopReport, unpackWeights, type EpochInfo, type LoopResult } from './train-loop.ts';
import { SCRATCH_EPOCHS_DEFAULT, SCRATCH_INPUT_DEFAULT, SCRATCH_PATIENCE_DEFAULT } from '../contracts/limits.ts';

/** MobileNetV2 1.0's inverted-residual blocks as in the graph: [expansion, output channels, stride], `expanded_conv` then `_1` .. `_16`. */
export const MOBILENET_V2_BLOCKS: readonly (readonly [number, number, number])[] = Object.freeze([
  [1, 16, 1],
  [6, 24, 2], [6, 24, 1],
  [6, 32, 2], [6, 32, 1], [6, 32, 1],
  [6, 64, 2], [6, 64, 1], [6, 64, 1], [6, 64, 1],
  [6, 96, 1], [6, 96, 1], [6, 96, 1],
  [6, 160, 2], [6, 160, 1], [6, 160, 1],
  [6, 320, 1],
] as const);
/** Channels of the stem convolution `Conv` and of the last 1x1 convolution `Conv_1`. */
export const MOBILENET_V2_STEM = 32;
export const MOBILENET_V2_LAST = 1280;

/** Input side (default 128 px: an epoch ~3x cheaper than at 224), most epochs and patience (an epoch of hymenoptera's 196 photos: ~50 s at load 12). */
export { SCRATCH_INPUT_DEFAULT, SCRATCH_EPOCHS_DEFAULT, SCRATCH_PATIENCE_DEFAULT };

export interface ScratchOptions {
  /** Most epochs (default 20); early stopping on the held-out loss usually ends sooner. */
  epochs: number;
  /** Epochs without a better held-out loss before stopping (default 8: from fresh weights the held-out loss is noisy). */
  patience: number;
  /** Adam's learning rate (default 2e-3), cosine-decayed to 5% over `epochs`. */
  learningRate: number;
  batchSize: number;
  seed: number;
  /** Dropout on the pooled vector while training (default 0.2). */
  dropout: number;
  labelSmoothing: number;
}

export const DEFAULT_SCRATCH_OPTIONS: Readonly<ScratchOptions> = Object.freeze({ epochs: SCRATCH_EPOCHS_DEFAULT, patience: SCRATCH_PATIENCE_DEFAULT, learningRate: 2e-3, batchSize: 32, seed: 42, dropout: 0.2, labelSmoothing: 0.1 });

/** Training images: `count` images, a fresh augmented `inputSize`² view of image i on each call of `view(i)`. */
export interface ViewSource {
  labels: Int32Array;
  view: (i: number) => Uint8Array;
}

/** Held-out images: plain `inputSize`² decodes. */
export interface PixelSet {
  labels: Int32Array;
  pixels: Uint8Array[];
}

interface ScratchFile {
  format: 'pixdex-scratch-1';
  inputSize: number;
  classes: string[];
  report: FinetuneReport;
  shapes: number[][];
}

/** Refuses to train the whole network on a backend without depthwise-convolution gradients. */
export function assertCanTrainScratch(): void {
  const backend = tf.getBackend();
  if (backend !== 'tensorflow') {
    throw new BackendError(
      `--mode scratch trains the whole MobileNetV2 network, whose depthwise convolutions need gradients the ${backend} backend lacks. ` +
        'Run `npm run setup:tensorflow` once, then use --backend tensorflow (or PIXDEX_BACKEND=tensorflow).',
    );
  }
}

/** The MobileNetV2 1.0 architecture with fresh seeded weights, `inputSize`² input in [-1, 1], logits out. */
export function buildMobilenetV2(inputSize: number, classes: number, seed: number, dropout: number): tf.LayersModel {
  let s = seed;
  const kernel = () => tf.initializers.heNormal({ seed: s++ });
  const bn = (name: string) => tf.layers.batchNormalization({ name: `${name}/BatchNorm`, momentum: 0.9, epsilon: 1e-3 });
  const relu6 = (name: string) => tf.layers.reLU({ name: `${name}/Relu6`, maxValue: 6 });
  const conv = (name: string, filters: number, kernelSize: number, strides = 1) => tf.layers.conv2d({ name, filters, kernelSize, strides, padding: 'same', useBias: false, kernelInitializer: kernel() });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
  const input = tf.input({ shape: [inputSize, inputSize, 3] });
  let x = apply(relu6('Conv'), apply(bn('Conv'), apply(conv('Conv', MOBILENET_V2_STEM, 3, 2), input)));
  let c = MOBILENET_V2_STEM;
  MOBILENET_V2_BLOCKS.forEach(([t, out, stride], i) => {
    const name = i === 0 ? 'expanded_conv' : `expanded_conv_${i}`;
    let y = x;
    if (t !== 1) y = apply(relu6(`${name}/expand`), apply(bn(`${name}/expand`), apply(conv(`${name}/expand`, c * t, 1), y)));
    const dw = tf.layers.depthwiseConv2d({ name: `${name}/depthwise`, kernelSize: 3, strides: stride, padding: 'same', useBias: false, depthwiseInitializer: kernel() });
    y = apply(relu6(`${name}/depthwise`), apply(bn(`${name}/depthwise`), apply(dw, y)));
    y = apply(bn(`${name}/project`), apply(conv(`${name}/project`, out, 1), y));
    if (stride === 1 && c === out) y = apply(tf.layers.add({ name: `${name}/add` }), [x, y]);
    x = y;
    c = out;
  });
  x = apply(relu6('Conv_1'), apply(bn('Conv_1'), apply(conv('Conv_1', MOBILENET_V2_LAST, 1), x)));
  x = apply(tf.layers.globalAveragePooling2d({ name: 'pool' }), x);
  x = apply(tf.layers.dropout({ name: 'dropout', rate: dropout, seed: s++ }), x);
  const logits = apply(tf.layers.dense({ name: 'logits', units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: s++ }) }), x);
  return tf.model({ inputs: input, outputs: logits, name: 'MobilenetV2_scratch' });
}

/** The whole network trained from fresh weights, with its classes and report. */
export class ScratchNet {
  private constructor(readonly inputSize: number, readonly classes: string[], private readonly model: tf.LayersModel, public report: FinetuneReport) {}

  /** Trains end to end: a fresh augmented view of every training image per epoch, early stopping on `held`. */
  static async train(inputSize: number, classes: string[], train: ViewSource, held: PixelSet, meta: { trainImages: number }, options: Partial<ScratchOptions> = {}, hooks: { onEpoch?: (e: EpochInfo) => void; signal?: AbortSignal } = {}): Promise<ScratchNet> {
    assertCanTrainScratch();
    const o = { ...DEFAULT_SCRATCH_OPTIONS, ...options };
    const started = performance.now();
    const random = seededRandom(o.seed);
    const net = new ScratchNet(inputSize, classes, buildMobilenetV2(inputSize, classes.length, o.seed, o.dropout), undefined as unknown as FinetuneReport);
    const optimizer = tf.train.adam(o.learningRate);
    const trainable = net.model.trainableWeights.map((w) => (w as unknown as { read(): tf.Variable }).read());
    const stepsPerEpoch = Math.max(1, Math.round(train.labels.length / o.batchSize));
    let step = 0;
    let loop: LoopResult;
    try {
      loop = await trainLoop(train.labels.length, { epochs: o.epochs, patience: o.patience, warmup: 0, batchSize: o.batchSize, dropSmallLast: true }, random, {
        step: (idx) => {
          // Cosine decay over the epoch budget, to 5% of the rate.
          const progress = Math.min(1, step++ / Math.max(1, o.epochs * stepsPerEpoch));
          (optimizer as unknown as { learningRate: number }).learningRate = o.learningRate * (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * progress)));
          const views = idx.map((i) => train.view(i));
          return tf.tidy(() => {
            const x = pixelsToInput(views, inputSize);
            const y = tf.oneHot(tf.tensor1d(idx.map((i) => train.labels[i]), 'int32'), classes.length);
            return optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, net.model.apply(x, { training: true }) as tf.Tensor2D, undefined, o.labelSmoothing) as tf.Scalar, true, trainable)!;
          });
        },
        evaluate: () => net.evaluate(held),
        snapshot: () => net.model.getWeights().map((w) => w.clone()), // batch-norm moving statistics included
        restore: (weights) => net.model.setWeights(weights),
      }, hooks);
    } catch (err) {
      net.dispose();
      throw err;
    } finally {
      optimizer.dispose();
    }
    net.report = {
      mode: 'scratch',
      classes,
      trainImages: meta.trainImages,
      heldOutImages: held.labels.length,
      views: 1,
      ...loopReport(loop, started),
      trained: [`MobilenetV2 whole network at ${inputSize} px: Conv, expanded_conv..expanded_conv_16, Conv_1 (fresh weights, batch norm)`, 'dense softmax (new)'],
    };
    return net;
  }

  /** Softmax probabilities of `inputSize`² RGB images, row-major [n, classes]. */
  probabilities(pixels: readonly Uint8Array[]): Float32Array {
    const k = this.classes.length;
    const out = new Float32Array(pixels.length * k);
    for (let s = 0; s < pixels.length; s += 32) {
      const p = tf.tidy(() => tf.softmax(this.model.apply(pixelsToInput(pixels.slice(s, s + 32), this.inputSize), { training: false }) as tf.Tensor2D).dataSync() as Float32Array);
      out.set(p, s * k);
    }
    return out;
  }

  /** Mean cross-entropy and accuracy on held-out images. */
  evaluate(set: PixelSet): { loss: number; accuracy: number } {
    return scoreProbabilities(this.probabilities(set.pixels), set.labels, this.classes.length);
  }

  /** Class probabilities of one `inputSize`² RGB image, highest first. */
  predict(pixels: Uint8Array): Array<{ label: string; probability: number }> {
    const p = this.probabilities([pixels]);
    return this.classes.map((label, i) => ({ label, probability: p[i] })).sort((a, b) => b.probability - a.probability);
  }

  /** Every weight (trainable and batch-norm statistics) as float32 arrays (for tests: compare bit for bit). */
  weights(): Float32Array[] {
    return this.model.getWeights().map((w) => Float32Array.from(w.dataSync() as Float32Array));
  }

  /** Serialises config and weights (float32, exact). */
  toBytes(): Buffer {
    const weights = this.model.getWeights();
    const header: ScratchFile = { format: 'pixdex-scratch-1', inputSize: this.inputSize, classes: this.classes, report: this.report, shapes: weights.map((w) => w.shape) };
    return packWeights(header, weights);
  }

  /** True when the bytes are a scratch network. */
  static isScratch(bytes: Uint8Array): boolean {
    return readPackedHeader<ScratchFile>(bytes)?.format === 'pixdex-scratch-1';
  }

  /** Restores a network saved with `toBytes` (the architecture is rebuilt, then every weight set). */
  static fromBytes(bytes: Uint8Array): ScratchNet {
    const header = readPackedHeader<ScratchFile>(bytes);
    if (header?.format !== 'pixdex-scratch-1') throw new InvalidParameterError('Unknown scratch classifier format; retrain with pixdex train-classifier --mode scratch.');
    const model = buildMobilenetV2(header.inputSize, header.classes.length, 0, 0);
    const tensors = unpackWeights(bytes, header.shapes);
    try {
      model.setWeights(tensors);
    } catch (err) {
      model.dispose();
      throw new InvalidParameterError(`Stored scratch classifier does not fit the architecture (${(err as Error).message}); retrain with pixdex train-classifier --mode scratch.`);
    } finally {
      tensors.forEach((t) => t.dispose());
    }
    return new ScratchNet(header.inputSize, header.classes, model, header.report);
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** `size`² RGB byte images → [n, size, size, 3] in [-1, 1] (the backbone's input range). */
function pixelsToInput(pixels: readonly Uint8Array[], size: number): tf.Tensor4D {
  const flat = new Uint8Array(pixels.length * size * size * 3);
  pixels.forEach((p, i) => flat.set(p, i * size * size * 3));
  return tf.tidy(() => tf.tensor4d(flat, [pixels.length, size, size, 3], 'int32').toFloat().div(127.5).sub(1) as tf.Tensor4D);
}
