/**
 * The transfer-learning head ("feature extraction" transfer learning): a softmax classifier
 * trained on the frozen embeddings of labelled images. Dense layers only, so it trains on every
 * backend, wasm included. Saved as bytes (config JSON + float32 weights) in LMDB `models`.
 */
import { tf } from '../backend.ts';
import { HEAD_EPOCHS, HEAD_HIDDEN, HEAD_PATIENCE } from '../contracts/limits.ts';
import { InvalidParameterError } from '../errors.ts';
import { l2normalize } from '../vector.ts';

/** Training options of the head. */
export interface HeadOptions {
  /** Hidden units (0 = multinomial logistic regression on the embedding) (default: 0). */
  hidden: number;
  /** Most epochs; early stopping usually ends sooner (default: 200). */
  epochs: number;
  /** Epochs without held-out loss improvement before stopping (default: 10). */
  patience: number;
  /** Share of each class held out for early stopping and the reported accuracy (default: 0.2). */
  validationSplit: number;
  /** Adam learning rate (default: 0.01). */
  learningRate: number;
  /** L2 penalty on the weights: keeps a linear head from over-fitting a few hundred images (default: 1e-4). */
  l2: number;
  /** Seed of the split and the initial weights (default: 42). */
  seed: number;
}

export const DEFAULT_HEAD_OPTIONS: Readonly<HeadOptions> = Object.freeze({ hidden: HEAD_HIDDEN.default, epochs: HEAD_EPOCHS.default, patience: HEAD_PATIENCE.default, validationSplit: 0.2, learningRate: 0.01, l2: 1e-4, seed: 42 });

/** What training reports. */
export interface HeadReport {
  classes: string[];
  trainImages: number;
  heldOutImages: number;
  epochs: number;
  /** Accuracy on the held-out split (the images the head did not train on). */
  heldOutAccuracy: number;
  finalLoss: number;
  /** Softmax temperature fitted on the held-out split (absent: 1): `calibrate` uses it. */
  temperature?: number;
  seconds: number;
  trainedAt: number;
}

interface HeadFile {
  format: 'pixdex-head-1';
  dims: number;
  hidden: number;
  classes: string[];
  report: HeadReport;
  shapes: number[][];
}

/** A trained head: predicts class probabilities for embeddings. */
export class ClassifierHead {
  private constructor(private readonly model: tf.LayersModel, readonly dims: number, readonly hidden: number, readonly classes: string[], readonly report: HeadReport) {}

  /** Trains on (vector, label) pairs with a stratified held-out split and early stopping. */
  static async train(vectors: Float32Array[], labels: string[], options: Partial<HeadOptions> = {}, onEpoch?: (epoch: number, loss: number, valLoss: number) => void): Promise<ClassifierHead> {
    const o = { ...DEFAULT_HEAD_OPTIONS, ...options };
    const classes = [...new Set(labels)].sort();
    if (classes.length < 2) throw new InvalidParameterError(`Training a classifier needs at least 2 labels; the library has ${classes.length}. Label more images (pixdex label, or index with --label-from-folder).`);
    const started = performance.now();
    const dims = vectors[0].length;
    const { train, held } = stratifiedSplit(labels, o.validationSplit, o.seed);
    if (held.length === 0) throw new InvalidParameterError('Too few labelled images to hold any out: label at least 2 images per class.');
    const model = buildModel(dims, o.hidden, classes.length, o.l2, o.seed);
    model.compile({ optimizer: tf.train.adam(o.learningRate), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const toX = (idx: number[]) => tf.tensor2d(concat(idx.map((i) => l2normalize(vectors[i]))), [idx.length, dims]);
    const toY = (idx: number[]) => tf.oneHot(tf.tensor1d(idx.map((i) => classes.indexOf(labels[i])), 'int32'), classes.length);
    const [xTrain, yTrain, xHeld, yHeld] = [toX(train), toY(train), toX(held), toY(held)];
    let best = Infinity;
    let bestWeights: tf.Tensor[] | undefined;
    let sinceBest = 0;
    let epochs = 0;
    let finalLoss = NaN;
    try {
      for (let epoch = 0; epoch < o.epochs; epoch++) {
        const h = await model.fit(xTrain, yTrain, { epochs: 1, batchSize: 64, shuffle: true, validationData: [xHeld, yHeld], verbose: 0 });
        const loss = h.history.loss[0] as number;
        const valLoss = h.history.val_loss[0] as number;
        epochs = epoch + 1;
        finalLoss = loss;
        onEpoch?.(epochs, loss, valLoss);
        if (valLoss < best - 1e-4) {
          best = valLoss;
          bestWeights?.forEach((t) => t.dispose());
          bestWeights = model.getWeights().map((w) => w.clone());
          sinceBest = 0;
        } else if (++sinceBest >= o.patience) {
          break;
        }
      }
      if (bestWeights) model.setWeights(bestWeights);
      const probs = tf.tidy(() => (model.predict(xHeld) as tf.Tensor).arraySync() as number[][]);
      const truthOf = held.map((i) => classes.indexOf(labels[i]));
      const heldOutAccuracy = probs.filter((p, j) => p.indexOf(Math.max(...p)) === truthOf[j]).length / held.length;
      const temperature = fitTemperature(probs, truthOf);
      const report: HeadReport = { classes, trainImages: train.length, heldOutImages: held.length, epochs, heldOutAccuracy, finalLoss, temperature, seconds: Math.round((performance.now() - started) / 100) / 10, trainedAt: Date.now() };
      return new ClassifierHead(model, dims, o.hidden, classes, report);
    } finally {
      bestWeights?.forEach((t) => t.dispose());
      [xTrain, yTrain, xHeld, yHeld].forEach((t) => t.dispose());
    }
  }

  /** Class probabilities of one embedding, highest first. */
  predict(vector: Float32Array): Array<{ label: string; probability: number }> {
    const p = tf.tidy(() => (this.model.predict(tf.tensor2d(l2normalize(vector), [1, this.dims])) as tf.Tensor).dataSync());
    return this.classes.map((label, i) => ({ label, probability: p[i] })).sort((a, b) => b.probability - a.probability);
  }

  /**
   * Calibrated probabilities: softmax(log p / T) with the temperature fitted on the held-out
   * split, so a head that says 0.9 is right about 9 times in 10 there (softmax heads are
   * overconfident); same order as `probs`.
   */
  calibrate(probs: ReadonlyArray<{ label: string; probability: number }>): Array<{ label: string; probability: number }> {
    return scaleTemperature(probs.map((p) => p.probability), this.report.temperature ?? 1).map((probability, i) => ({ label: probs[i].label, probability }));
  }

  /** Serialises config and weights (float32, exact). */
  toBytes(): Buffer {
    const weights = this.model.getWeights();
    const header: HeadFile = { format: 'pixdex-head-1', dims: this.dims, hidden: this.hidden, classes: this.classes, report: this.report, shapes: weights.map((w) => w.shape) };
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    return Buffer.concat([len, json, ...weights.map((w) => Buffer.from((w.dataSync() as Float32Array).buffer.slice(0)))]);
  }

  /** Restores a head saved with `toBytes`. */
  static fromBytes(bytes: Uint8Array): ClassifierHead {
    const buf = Buffer.from(bytes);
    const n = buf.readUInt32LE(0);
    const header = JSON.parse(buf.subarray(4, 4 + n).toString()) as HeadFile;
    if (header.format !== 'pixdex-head-1') throw new InvalidParameterError(`Unknown classifier format ${header.format}; retrain with pixdex train-classifier.`);
    const model = buildModel(header.dims, header.hidden, header.classes.length, 0, 0);
    let offset = 4 + n;
    const weights = header.shapes.map((shape) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + size * 4));
      offset += size * 4;
      return tf.tensor(data, shape);
    });
    model.setWeights(weights);
    weights.forEach((w) => w.dispose());
    return new ClassifierHead(model, header.dims, header.hidden, header.classes, header.report);
  }

  dispose(): void {
    this.model.dispose();
  }
}

function buildModel(dims: number, hidden: number, classes: number, l2: number, seed: number): tf.LayersModel {
  const reg = l2 > 0 ? tf.regularizers.l2({ l2 }) : undefined;
  const layers: tf.layers.Layer[] = [];
  if (hidden > 0) layers.push(tf.layers.dense({ inputShape: [dims], units: hidden, activation: 'relu', kernelRegularizer: reg, kernelInitializer: tf.initializers.glorotUniform({ seed }) }));
  layers.push(tf.layers.dense({ ...(hidden > 0 ? {} : { inputShape: [dims] }), units: classes, activation: 'softmax', kernelRegularizer: reg, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }));
  return tf.sequential({ layers });
}

function concat(vs: Float32Array[]): Float32Array {
  const out = new Float32Array(vs.reduce((a, v) => a + v.length, 0));
  let o = 0;
  for (const v of vs) {
    out.set(v, o);
    o += v.length;
  }
  return out;
}

/** Per class, a deterministic `share` of the items is held out (at least 1 when a class has 2+). */
export function stratifiedSplit(labels: readonly string[], share: number, seed: number): { train: number[]; held: number[] } {
  const byClass = new Map<string, number[]>();
  labels.forEach((l, i) => byClass.set(l, [...(byClass.get(l) ?? []), i]));
  const train: number[] = [];
  const held: number[] = [];
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  for (const idx of byClass.values()) {
    const shuffled = [...idx];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    const h = shuffled.length >= 2 ? Math.max(1, Math.round(shuffled.length * share)) : 0;
    held.push(...shuffled.slice(0, h));
    train.push(...shuffled.slice(h));
  }
  return { train: train.sort((a, b) => a - b), held: held.sort((a, b) => a - b) };
}

function scaleTemperature(p: readonly number[], t: number): number[] {
  const logits = p.map((x) => Math.log(Math.max(x, 1e-12)) / t);
  const top = Math.max(...logits);
  const e = logits.map((z) => Math.exp(z - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** Temperature (0.05..20, log grid) with the least negative log-likelihood on the held-out probabilities. */
export function fitTemperature(probs: readonly number[][], truth: readonly number[]): number {
  let best = { t: 1, nll: Infinity };
  for (let i = 0; i <= 120; i++) {
    const t = Math.exp(Math.log(0.05) + (i / 120) * (Math.log(20) - Math.log(0.05)));
    const nll = probs.reduce((a, p, j) => a - Math.log(Math.max(scaleTemperature(p, t)[truth[j]], 1e-12)), 0);
    if (nll < best.nll) best = { t, nll };
  }
  return Math.round(best.t * 1000) / 1000;
}
