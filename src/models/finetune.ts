/**
 * Fine-tuning the top of MobileNetV2 (`pixdex train-classifier --mode finetune|scratch`).
 *
 * The backbone is a frozen tfjs graph model, so the trainable top is rebuilt here as variables:
 * `--blocks` inverted-residual blocks (src/models/top-blocks.ts: expanded_conv_15 and 16 by
 * default), the final 1×1 convolution `MobilenetV2/Conv_1` (320→1280, ReLU6), all with the
 * batch-norm-folded weights of the TFLite conversion, then global average pooling and a new dense
 * softmax layer. Its input is the graph's inner node below the first retrained block (7×7×160, or
 * 7×7×320 with no block), computed once per augmented view. Conv_1 is a matMul over [N·H·W, C], so
 * `--blocks 0` trains on every backend, wasm included (`matMulT`); the blocks' depthwise
 * convolutions need the tensorflow backend (a typed error names `npm run setup:tensorflow`).
 *
 * A mobilenet_v1_embedding library fine-tunes its last 1×1 convolution `Conv2d_13_pointwise` the
 * same way (`MOBILENET_V1_EMBEDDING_TOP`: no blocks, so a matMul that trains on every backend).
 *
 * `finetune` starts from the pretrained weights and trains them with their own Adam at a lower
 * learning rate than the new layer (after `warmup` epochs of the new layer alone); `scratch` starts
 * every layer from fresh seeded weights at the full rate.
 * Saved as bytes (config JSON + float32 weights) in LMDB `models`, bit-exact.
 */
import { tf } from '../backend.ts';
import { InvalidParameterError, invalidParameter } from '../errors.ts';
import { matMulT, seededRandom } from './matconv.ts';
import { CLASSIFIER_MODES, FINETUNE_BLOCKS, FINETUNE_EPOCHS_DEFAULT, FINETUNE_PATIENCE_DEFAULT } from '../contracts/limits.ts';
import { packWeights, readPackedHeader, scoreProbabilities, trainLoop, loopReport, unpackWeights, type EpochInfo, type LoopResult } from './train-loop.ts';
import { MOBILENET_V2_SPLITS, assertCanTrainBlocks, blockForward, freshBlockWeights, graphBlockWeights, type BlockSpec } from './top-blocks.ts';

/** How `train-classifier` trains: the head on frozen vectors, the top block fine-tuned, or the top block from fresh weights. */
export type ClassifierMode = (typeof CLASSIFIER_MODES)[number];

/** Where the backbone is split, and the graph weights the top starts from. */
export interface TopSplit {
  backbone: string;
  /** The inner node the frozen graph is run to. */
  node: string;
  shape: [number, number, number];
  /** Inverted-residual blocks retrained below `Conv_1`, lowest first (files saved before blocks existed have none). */
  blocks?: BlockSpec[];
  kernel: string;
  bias: string;
  units: number;
}

/** The split with no block below the final 1×1 conv 320→1280 (`--blocks 0`). */
export const MOBILENET_V2_TOP: Readonly<TopSplit> = Object.freeze(mobilenetTop(0));

function mobilenetTop(blocks: number): TopSplit {
  const s = MOBILENET_V2_SPLITS[blocks];
  return { backbone: 'mobilenet_v2', node: s.node, shape: [...s.shape], blocks: s.blocks.map((b) => ({ ...b })), kernel: 'MobilenetV2/Conv_1/Conv2D_Fold', bias: 'MobilenetV2/Conv_1/BatchNorm_Fold/bias', units: 1280 };
}

/**
 * mobilenet_v1_embedding's top: its last 1×1 convolution `Conv2d_13_pointwise` (1024→1024, ReLU6)
 * retrained over the frozen output of the depthwise layer below it (7×7×1024), then the same
 * pooling and new dense layer. A matMul only, so it trains on every backend, wasm included.
 */
export const MOBILENET_V1_EMBEDDING_TOP: Readonly<TopSplit> = Object.freeze({
  backbone: 'mobilenet_v1_embedding',
  node: 'MobilenetV1/MobilenetV1/Conv2d_13_depthwise/Relu6',
  shape: [7, 7, 1024] as [number, number, number],
  blocks: [],
  kernel: 'MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Conv2D_Fold',
  bias: 'MobilenetV1/MobilenetV1/Conv2d_13_pointwise/BatchNorm_Fold/bias',
  units: 1024,
});

/** Backbones `--mode finetune` can split (the others train the head only). */
export const FINETUNE_BACKBONES: readonly string[] = [MOBILENET_V2_TOP.backbone, MOBILENET_V1_EMBEDDING_TOP.backbone];

/**
 * The split for a backbone and block count (undefined: the backbone's default), or a clear error
 * for the backbones fine-tuning does not support.
 */
export function topSplit(backbone: string, blocks?: number): TopSplit {
  if (backbone === MOBILENET_V1_EMBEDDING_TOP.backbone) {
    if (blocks !== undefined && blocks !== 0) throw invalidParameter('blocks', '0 for mobilenet_v1_embedding (its last 1x1 convolution, Conv2d_13_pointwise, is what fine-tuning retrains)', blocks);
    return { ...MOBILENET_V1_EMBEDDING_TOP, shape: [...MOBILENET_V1_EMBEDDING_TOP.shape], blocks: [] };
  }
  if (backbone !== MOBILENET_V2_TOP.backbone) throw new InvalidParameterError(`--mode finetune needs the ${FINETUNE_BACKBONES.join(' or ')} backbone; this library uses ${backbone}. Use --mode head (the default).`);
  blocks ??= FINETUNE_BLOCKS.default;
  if (!Number.isInteger(blocks) || blocks < FINETUNE_BLOCKS.min || blocks > FINETUNE_BLOCKS.max) throw invalidParameter('blocks', `an integer ${FINETUNE_BLOCKS.min}..${FINETUNE_BLOCKS.max}`, blocks);
  return mobilenetTop(blocks);
}

export interface FinetuneOptions {
  mode: 'finetune' | 'scratch';
  /** Most epochs; early stopping usually ends sooner (default: 30). */
  epochs: number;
  /** Epochs without a better held-out loss before stopping (default: 4). */
  patience: number;
  /** Learning rate of the new dense layer (Adam) (default: 1e-3). */
  learningRate: number;
  /** Learning rate of the pretrained layers (blocks and Conv_1, their own Adam), as a share of `learningRate` (finetune only) (default: 0.1). */
  pretrainedRate: number;
  /** L2 penalty on the new dense layer's weights (default: 1e-4). */
  l2: number;
  batchSize: number;
  seed: number;
  /** Scale of the L2-normalised pooled vector fed to the dense layer (0 = not normalised) (default: 10; measured: held-out loss 0.134 vs 0.180 unnormalised on hymenoptera). */
  normScale: number;
  /** Epochs that train only the new layer before the pretrained layers join (finetune only) (default: 2). */
  warmup: number;
  /** Dropout rate on the pooled vector while training (default: 0.3). */
  dropout: number;
  /** Label smoothing of the training loss (default: 0.1; measured with the two above, flowers17 val, 2 blocks: 0.888 vs 0.873 with pretrainedRate 0.01 and 3 warm-up epochs). */
  labelSmoothing: number;
}

export const DEFAULT_FINETUNE_OPTIONS: Readonly<FinetuneOptions> = Object.freeze({ mode: 'finetune', epochs: FINETUNE_EPOCHS_DEFAULT, patience: FINETUNE_PATIENCE_DEFAULT, learningRate: 1e-3, pretrainedRate: 0.1, l2: 1e-4, batchSize: 32, seed: 42, normScale: 10, warmup: 2, dropout: 0.3, labelSmoothing: 0.1 });

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
  /**
   * Set when the top in use was trained again, from the start, on every labelled image (the held-out
   * ones included) for the `bestEpoch` epochs early stopping chose; `heldOutAccuracy` and `bestEpoch`
   * are the first run's (nothing is held out of the second).
   */
  refit?: { images: number; epochs: number; seconds: number };
}

interface FinetuneFile {
  format: 'pixdex-finetune-1';
  split: TopSplit;
  normScale: number;
  classes: string[];
  report: FinetuneReport;
  shapes: number[][];
}

export type { EpochInfo };

/** The trainable top: 1×1 conv (ReLU6) → global average pooling → dense softmax. */
export class FinetunedTop {
  private constructor(readonly split: TopSplit, readonly classes: string[], private readonly vars: tf.Variable[], public report: FinetuneReport, readonly normScale = 0) {}

  /** Trains on inner-node features; `train` has several views per image, `held` one each. */
  static async train(split: TopSplit, weight: (name: string) => tf.Tensor, classes: string[], train: FeatureSet, held: FeatureSet, meta: { trainImages: number; views: number; refit?: boolean }, options: Partial<FinetuneOptions> = {}, hooks: { onEpoch?: (e: EpochInfo) => void; signal?: AbortSignal } = {}): Promise<FinetunedTop> {
    const o = { ...DEFAULT_FINETUNE_OPTIONS, ...options };
    const started = performance.now();
    const fresh = o.mode === 'scratch';
    const random = seededRandom(o.seed);
    const glorot = (fanIn: number, fanOut: number): Float32Array => {
      const lim = Math.sqrt(6 / (fanIn + fanOut));
      return Float32Array.from({ length: fanIn * fanOut }, () => (random() * 2 - 1) * lim);
    };
    const blocks = split.blocks ?? [];
    assertCanTrainBlocks(blocks.length);
    const c = blocks.length ? blocks[blocks.length - 1].outChannels : split.shape[2]; // Conv_1's input channels
    const vars = [
      ...blocks.flatMap((b) => (fresh ? freshBlockWeights(b, random) : graphBlockWeights(b, weight)).map((t) => variable(t, true))),
      variable(fresh ? tf.tensor2d(glorot(c, split.units), [c, split.units]) : weight(split.kernel).reshape([c, split.units]), true),
      variable(fresh ? tf.zeros([split.units]) : weight(split.bias).reshape([split.units]), true),
      variable(tf.tensor2d(glorot(split.units, classes.length), [split.units, classes.length]), true),
      variable(tf.zeros([classes.length]), true),
    ];
    const top = new FinetunedTop(split, classes, vars, undefined as unknown as FinetuneReport, o.normScale);
    // Two Adams: Adam's step does not scale with the gradient, so a lower rate for the pretrained
    // layers needs its own optimizer (scaling their gradients would change nothing).
    const newLayer = vars.slice(-2);
    const pretrained = vars.slice(0, -2);
    const optimizer = tf.train.adam(o.learningRate);
    const pretrainedOptimizer = fresh ? optimizer : tf.train.adam(o.learningRate * o.pretrainedRate);
    let loop: LoopResult;
    try {
      loop = await trainLoop(train.labels.length, { epochs: o.epochs, patience: o.patience, warmup: fresh ? 0 : o.warmup, batchSize: o.batchSize, dropSmallLast: false, keepLast: meta.refit }, random, {
        step: (idx, epoch) => tf.tidy(() => {
          const warming = !fresh && epoch <= o.warmup;
          const x = gather(train, idx, split.shape);
          const y = tf.oneHot(tf.tensor1d(idx.map((i) => train.labels[i]), 'int32'), classes.length);
          const { value, grads } = tf.variableGrads(() => {
            const ce = tf.losses.softmaxCrossEntropy(y, top.logits(x, { rate: o.dropout, seed: Math.floor(random() * 2 ** 31) }), undefined, o.labelSmoothing);
            const penalty = tf.sum(tf.square(newLayer[0])).mul(o.l2); // the new layer only: a penalty on the pretrained kernels would pull them away from what they learnt
            return ce.add(penalty) as tf.Scalar;
          }, warming ? newLayer : vars);
          const named = (list: tf.Variable[]) => list.map((v) => ({ name: v.name, tensor: grads[v.name] }));
          // tfjs's Adam keys its moments by position in the list: each optimizer always gets the same list.
          if (fresh) optimizer.applyGradients(named(vars));
          else {
            optimizer.applyGradients(named(newLayer));
            if (!warming) pretrainedOptimizer.applyGradients(named(pretrained));
          }
          return value;
        }),
        evaluate: () => top.evaluate(held), // not called by a refit (keepLast)
        snapshot: () => vars.map((v) => v.clone()),
        restore: (weights) => vars.forEach((v, i) => v.assign(weights[i])),
      }, hooks);
    } catch (err) {
      top.dispose();
      throw err;
    } finally {
      optimizer.dispose();
      if (pretrainedOptimizer !== optimizer) pretrainedOptimizer.dispose();
    }
    top.report = {
      mode: o.mode,
      classes,
      trainImages: meta.trainImages,
      heldOutImages: held.labels.length,
      views: meta.views,
      ...loopReport(loop, started),
      trained: [...blocks.map((b) => b.name), split.kernel].map((name) => (fresh ? `${name} (fresh weights)` : name)).concat('dense softmax (new)'),
    };
    return top;
  }

  /** Logits of a batch of inner-node features [n, h, w, c]. */
  private logits(input: tf.Tensor4D, dropout?: { rate: number; seed: number }): tf.Tensor2D {
    const blocks = this.split.blocks ?? [];
    const x = blocks.reduce((t, b, i) => blockForward(t, this.vars.slice(6 * i, 6 * i + 6), b), input);
    const [n, h, w, c] = x.shape;
    const base = 6 * blocks.length;
    const conv = tf.clipByValue(matMulT(x.reshape([n * h * w, c]) as tf.Tensor2D, this.vars[base] as unknown as tf.Tensor2D).add(this.vars[base + 1]), 0, 6);
    const mean = conv.reshape([n, h * w, this.split.units]).mean(1) as tf.Tensor2D;
    const scaled = this.normScale > 0 ? mean.div(tf.norm(mean, 2, 1, true).add(1e-6)).mul(this.normScale) as tf.Tensor2D : mean;
    const pooled = dropout && dropout.rate > 0 ? tf.dropout(scaled, dropout.rate, undefined, dropout.seed) as tf.Tensor2D : scaled;
    return matMulT(pooled, this.vars[base + 2] as unknown as tf.Tensor2D).add(this.vars[base + 3]) as tf.Tensor2D;
  }

  /** Mean cross-entropy and accuracy on a feature set (batched). */
  evaluate(set: FeatureSet): { loss: number; accuracy: number } {
    return scoreProbabilities(this.probabilities(set), set.labels, this.classes.length);
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
    return packWeights(header, this.vars);
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
    const header = readHeader(bytes);
    if (header?.format !== 'pixdex-finetune-1') throw new InvalidParameterError('Unknown fine-tuned classifier format; retrain with pixdex train-classifier --mode finetune.');
    const vars = unpackWeights(bytes, header.shapes).map((t) => variable(t, false));
    return new FinetunedTop(header.split, header.classes, vars, header.report, header.normScale);
  }

  dispose(): void {
    this.vars.forEach((v) => v.dispose());
  }
}

function readHeader(bytes: Uint8Array): FinetuneFile | undefined {
  return readPackedHeader<FinetuneFile>(bytes);
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
