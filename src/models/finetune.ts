/**
 * Fine-tuning the top of MobileNetV2 (`pixdex train-classifier --mode finetune|scratch`).
 *
 * The backbone is a frozen tfjs graph model, so the trainable top is rebuilt here as variables:
 * the final 1×1 convolution `MobilenetV2/Conv_1` (320→1280, batch-norm folded into weights + bias
 * by the TFLite conversion, ReLU6), global average pooling and a new dense softmax layer. Its
 * input is the graph's inner node `expanded_conv_16/project/add_fold_1` (7×7×320), computed once
 * per augmented view. A 1×1 convolution is a matMul over [N·H·W, C], so the top trains on every
 * backend, wasm included (`matMulT`, whose gradient avoids wasm's slow transposed matMul).
 *
 * `finetune` starts the 1×1 convolution from the pretrained weights and trains it at a lower
 * learning rate than the new layer; `scratch` starts it from fresh seeded weights at the full rate.
 * Saved as bytes (config JSON + float32 weights) in LMDB `models`, bit-exact.
 */
import { tf } from '../backend.ts';
import { InvalidParameterError } from '../errors.ts';
import { matMulT, seededRandom } from './matconv.ts';
import { CLASSIFIER_MODES, FINETUNE_EPOCHS_DEFAULT, FINETUNE_PATIENCE_DEFAULT } from '../contracts/limits.ts';

/** How `train-classifier` trains: the head on frozen vectors, the top block fine-tuned, or the top block from fresh weights. */
export type ClassifierMode = (typeof CLASSIFIER_MODES)[number];

/** Where the backbone is split, and the graph weights the top starts from. */
export interface TopSplit {
  backbone: string;
  /** The inner node the frozen graph is run to. */
  node: string;
  shape: [number, number, number];
  kernel: string;
  bias: string;
  units: number;
}

/** The split of the default backbone: the input of the final 1×1 conv 320→1280. */
export const MOBILENET_V2_TOP: Readonly<TopSplit> = Object.freeze({
  backbone: 'mobilenet_v2',
  node: 'MobilenetV2/expanded_conv_16/project/add_fold_1',
  shape: [7, 7, 320] as [number, number, number],
  kernel: 'MobilenetV2/Conv_1/Conv2D_Fold',
  bias: 'MobilenetV2/Conv_1/BatchNorm_Fold/bias',
  units: 1280,
});

/** The split for a backbone, or a clear error for the backbones fine-tuning does not support. */
export function topSplit(backbone: string): TopSplit {
  if (backbone !== MOBILENET_V2_TOP.backbone) throw new InvalidParameterError(`--mode finetune and scratch need the mobilenet_v2 backbone; this library uses ${backbone}. Use --mode head (the default).`);
  return MOBILENET_V2_TOP;
}

export interface FinetuneOptions {
  mode: 'finetune' | 'scratch';
  /** Most epochs; early stopping usually ends sooner (default: 30). */
  epochs: number;
  /** Epochs without a better held-out loss before stopping (default: 4). */
  patience: number;
  /** Learning rate of the new dense layer (Adam) (default: 1e-3). */
  learningRate: number;
  /** Learning rate of the pretrained 1×1 convolution, as a share of `learningRate` (finetune only) (default: 0.1). */
  pretrainedRate: number;
  /** L2 penalty on the new dense layer's weights (default: 1e-4). */
  l2: number;
  batchSize: number;
  seed: number;
  /** Scale of the L2-normalised pooled vector fed to the dense layer (0 = not normalised) (default: 10; measured: held-out loss 0.134 vs 0.180 unnormalised on hymenoptera). */
  normScale: number;
}

export const DEFAULT_FINETUNE_OPTIONS: Readonly<FinetuneOptions> = Object.freeze({ mode: 'finetune', epochs: FINETUNE_EPOCHS_DEFAULT, patience: FINETUNE_PATIENCE_DEFAULT, learningRate: 1e-3, pretrainedRate: 0.1, l2: 1e-4, batchSize: 32, seed: 42, normScale: 10 });

/** Inner-node features: `views` rows per image, each `size` floats, with the image's label index. */
export interface FeatureSet {
  data: Float32Array;
  labels: Int32Array;
  size: number;
}

/** What training reports (stored with the weights; `stats` shows it). */
export interface FinetuneReport {
  mode: 'finetune' | 'scratch';
  classes: string[];
  trainImages: number;
  heldOutImages: number;
  /** Augmented views per training image. */
  views: number;
  epochs: number;
  bestEpoch: number;
  heldOutAccuracy: number;
  finalLoss: number;
  seconds: number;
  trainedAt: number;
  backend: string;
  /** The layers trained, by graph name. */
  trained: string[];
  /** True when training stopped early on request (Ctrl-C / abort): the best weights so far are kept. */
  aborted: boolean;
}

interface FinetuneFile {
  format: 'pixdex-finetune-1';
  split: TopSplit;
  normScale: number;
  classes: string[];
  report: FinetuneReport;
  shapes: number[][];
}

export type EpochInfo = { epoch: number; loss: number; valLoss: number; valAccuracy: number; seconds: number };

/** The trainable top: 1×1 conv (ReLU6) → global average pooling → dense softmax. */
export class FinetunedTop {
  private constructor(readonly split: TopSplit, readonly classes: string[], private readonly vars: tf.Variable[], public report: FinetuneReport, readonly normScale = 0) {}

  /** Trains on inner-node features; `train` has several views per image, `held` one each. */
  static async train(split: TopSplit, init: { kernel: tf.Tensor; bias: tf.Tensor }, classes: string[], train: FeatureSet, held: FeatureSet, meta: { trainImages: number; views: number }, options: Partial<FinetuneOptions> = {}, hooks: { onEpoch?: (e: EpochInfo) => void; signal?: AbortSignal } = {}): Promise<FinetunedTop> {
    const o = { ...DEFAULT_FINETUNE_OPTIONS, ...options };
    const started = performance.now();
    const [h, w, c] = split.shape;
    const fresh = o.mode === 'scratch';
    const random = seededRandom(o.seed);
    const glorot = (fanIn: number, fanOut: number): Float32Array => {
      const lim = Math.sqrt(6 / (fanIn + fanOut));
      return Float32Array.from({ length: fanIn * fanOut }, () => (random() * 2 - 1) * lim);
    };
    const vars = [
      variable(fresh ? tf.tensor2d(glorot(c, split.units), [c, split.units]) : init.kernel.reshape([c, split.units]), true),
      variable(fresh ? tf.zeros([split.units]) : init.bias.reshape([split.units]), true),
      variable(tf.tensor2d(glorot(split.units, classes.length), [split.units, classes.length]), true),
      variable(tf.zeros([classes.length]), true),
    ];
    const top = new FinetunedTop(split, classes, vars, undefined as unknown as FinetuneReport, o.normScale);
    const optimizer = tf.train.adam(o.learningRate);
    const convScale = fresh ? 1 : o.pretrainedRate;
    const n = train.labels.length;
    const order = Array.from({ length: n }, (_, i) => i);
    let best = Infinity;
    let bestWeights: tf.Tensor[] | undefined;
    let bestEpoch = 0;
    let bestAccuracy = 0;
    let sinceBest = 0;
    let epochs = 0;
    let finalLoss = NaN;
    let aborted = false;
    try {
      for (let epoch = 1; epoch <= o.epochs; epoch++) {
        const t = performance.now();
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [order[i], order[j]] = [order[j], order[i]];
        }
        let lossSum = 0;
        let steps = 0;
        for (let s = 0; s < n; s += o.batchSize) {
          const idx = order.slice(s, s + o.batchSize);
          const loss = tf.tidy(() => {
            const x = gather(train, idx, [h, w, c]);
            const y = tf.oneHot(tf.tensor1d(idx.map((i) => train.labels[i]), 'int32'), classes.length);
            const { value, grads } = tf.variableGrads(() => {
              const ce = tf.losses.softmaxCrossEntropy(y, top.logits(x));
              const penalty = tf.sum(tf.square(vars[2])).mul(o.l2); // the new layer only: a penalty on the pretrained kernel would pull it away from what it learnt
              return ce.add(penalty) as tf.Scalar;
            }, vars);
            if (convScale !== 1) {
              grads[vars[0].name] = grads[vars[0].name].mul(convScale);
              grads[vars[1].name] = grads[vars[1].name].mul(convScale);
            }
            optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
            return value;
          });
          lossSum += (await loss.data())[0];
          loss.dispose();
          steps++;
          await new Promise((r) => setImmediate(r)); // let Ctrl-C / abort in
          if (hooks.signal?.aborted) break;
        }
        epochs = epoch;
        finalLoss = lossSum / Math.max(1, steps);
        if (hooks.signal?.aborted) {
          aborted = true;
          break;
        }
        const { loss: valLoss, accuracy } = top.evaluate(held);
        hooks.onEpoch?.({ epoch, loss: finalLoss, valLoss, valAccuracy: accuracy, seconds: (performance.now() - t) / 1000 });
        if (valLoss < best - 1e-4) {
          best = valLoss;
          bestEpoch = epoch;
          bestAccuracy = accuracy;
          bestWeights?.forEach((x) => x.dispose());
          bestWeights = vars.map((v) => v.clone());
          sinceBest = 0;
        } else if (++sinceBest >= o.patience) {
          break;
        }
      }
      if (bestWeights) vars.forEach((v, i) => v.assign(bestWeights![i]));
      else bestAccuracy = top.evaluate(held).accuracy;
    } catch (err) {
      top.dispose();
      throw err;
    } finally {
      bestWeights?.forEach((x) => x.dispose());
      optimizer.dispose();
    }
    top.report = {
      mode: o.mode,
      classes,
      trainImages: meta.trainImages,
      heldOutImages: held.labels.length,
      views: meta.views,
      epochs,
      bestEpoch,
      heldOutAccuracy: bestAccuracy,
      finalLoss,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      trainedAt: Date.now(),
      backend: tf.getBackend(),
      trained: [fresh ? `${split.kernel} (fresh weights)` : split.kernel, 'dense softmax (new)'],
      aborted,
    };
    return top;
  }

  /** Logits of a batch of inner-node features [n, h, w, c]. */
  private logits(x: tf.Tensor4D): tf.Tensor2D {
    const [n, h, w, c] = x.shape;
    const conv = tf.clipByValue(matMulT(x.reshape([n * h * w, c]) as tf.Tensor2D, this.vars[0] as unknown as tf.Tensor2D).add(this.vars[1]), 0, 6);
    const mean = conv.reshape([n, h * w, this.split.units]).mean(1) as tf.Tensor2D;
    const pooled = this.normScale > 0 ? mean.div(tf.norm(mean, 2, 1, true).add(1e-6)).mul(this.normScale) as tf.Tensor2D : mean;
    return matMulT(pooled, this.vars[2] as unknown as tf.Tensor2D).add(this.vars[3]) as tf.Tensor2D;
  }

  /** Mean cross-entropy and accuracy on a feature set (batched). */
  evaluate(set: FeatureSet): { loss: number; accuracy: number } {
    const probs = this.probabilities(set);
    let loss = 0;
    let right = 0;
    const k = this.classes.length;
    for (let i = 0; i < set.labels.length; i++) {
      const row = probs.subarray(i * k, (i + 1) * k);
      loss -= Math.log(Math.max(row[set.labels[i]], 1e-12));
      if (row.indexOf(Math.max(...row)) === set.labels[i]) right++;
    }
    return { loss: loss / Math.max(1, set.labels.length), accuracy: right / Math.max(1, set.labels.length) };
  }

  /** Softmax probabilities, row-major [n, classes]. */
  probabilities(set: FeatureSet): Float32Array {
    const n = set.labels.length;
    const out = new Float32Array(n * this.classes.length);
    for (let s = 0; s < n; s += 64) {
      const idx = Array.from({ length: Math.min(64, n - s) }, (_, i) => s + i);
      const p = tf.tidy(() => tf.softmax(this.logits(gather(set, idx, this.split.shape))).dataSync() as Float32Array);
      out.set(p, s * this.classes.length);
    }
    return out;
  }

  /** Class probabilities of one image's inner-node features, highest first. */
  predict(features: Float32Array): Array<{ label: string; probability: number }> {
    const p = this.probabilities({ data: features, labels: new Int32Array(1), size: features.length });
    return this.classes.map((label, i) => ({ label, probability: p[i] })).sort((a, b) => b.probability - a.probability);
  }

  /** Serialises config and weights (float32, exact). */
  toBytes(): Buffer {
    const header: FinetuneFile = { format: 'pixdex-finetune-1', split: this.split, normScale: this.normScale, classes: this.classes, report: this.report, shapes: this.vars.map((v) => v.shape) };
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    return Buffer.concat([len, json, ...this.vars.map((v) => Buffer.from((v.dataSync() as Float32Array).buffer.slice(0)))]);
  }

  /** The weights as float32 arrays (for tests: compare bit for bit). */
  weights(): Float32Array[] {
    return this.vars.map((v) => Float32Array.from(v.dataSync() as Float32Array));
  }

  /** True when the bytes are a fine-tuned top (not a head). */
  static isFinetuned(bytes: Uint8Array): boolean {
    const header = readHeader(bytes);
    return header?.format === 'pixdex-finetune-1';
  }

  /** When the stored top was trained (0 when unreadable). */
  static trainedAt(bytes: Uint8Array): number {
    return readHeader(bytes)?.report?.trainedAt ?? 0;
  }

  /** Restores a top saved with `toBytes`. */
  static fromBytes(bytes: Uint8Array): FinetunedTop {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const header = readHeader(bytes);
    if (header?.format !== 'pixdex-finetune-1') throw new InvalidParameterError('Unknown fine-tuned classifier format; retrain with pixdex train-classifier --mode finetune.');
    let offset = 4 + buf.readUInt32LE(0);
    const vars = header.shapes.map((shape) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + size * 4));
      offset += size * 4;
      return variable(tf.tensor(data, shape), false);
    });
    return new FinetunedTop(header.split, header.classes, vars, header.report, header.normScale);
  }

  dispose(): void {
    this.vars.forEach((v) => v.dispose());
  }
}

function readHeader(bytes: Uint8Array): FinetuneFile | undefined {
  try {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0)).toString()) as FinetuneFile;
  } catch {
    return undefined;
  }
}

/** A variable holding a copy of `t`; `t` is disposed (tf.variable alone would leave it behind). */
function variable(t: tf.Tensor, trainable: boolean): tf.Variable {
  const v = tf.variable(t, trainable);
  t.dispose();
  return v;
}

/** Rows `idx` of a feature set as one [n, h, w, c] tensor. */
function gather(set: FeatureSet, idx: number[], shape: readonly number[]): tf.Tensor4D {
  const batch = new Float32Array(idx.length * set.size);
  idx.forEach((r, b) => batch.set(set.data.subarray(r * set.size, (r + 1) * set.size), b * set.size));
  return tf.tensor4d(batch, [idx.length, shape[0], shape[1], shape[2]]);
}
