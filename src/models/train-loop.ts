/**
 * The training loop shared by the fine-tuned top (src/models/finetune.ts) and the scratch network
 * (src/models/scratch-net.ts): shuffled mini-batches, one progress call per epoch, early stopping
 * on the held-out loss, the best weights kept (and restored at the end), and an abort (Ctrl-C)
 * that stops after the current step with the best weights so far. Also their common evaluation
 * and their byte format (a 4-byte header length, the JSON header, then float32 weights).
 */
import { tf } from '../backend.ts';

export type EpochInfo = { epoch: number; loss: number; valLoss: number; valAccuracy: number; seconds: number };

export interface LoopOptions {
  epochs: number;
  patience: number;
  /** Epochs at the start that never count against the patience. */
  warmup: number;
  batchSize: number;
  /** Leave out a last batch under half the size (batch norm's statistics of a handful of images are noise). */
  dropSmallLast: boolean;
  /** A refit: train exactly `epochs` epochs and keep the last weights, no held-out evaluation (the held-out images are in the training rows); `onEpoch` gets NaN for the held-out figures. */
  keepLast?: boolean;
}

export interface LoopParts {
  /** One step on rows `idx`; returns the batch loss (the loop disposes it). */
  step: (idx: number[], epoch: number) => tf.Scalar;
  /** Held-out loss and accuracy of the current weights. */
  evaluate: () => { loss: number; accuracy: number };
  /** Copies of the current weights (the loop disposes them), and how to put such copies back. */
  snapshot: () => tf.Tensor[];
  restore: (weights: tf.Tensor[]) => void;
}

export interface LoopResult {
  epochs: number;
  bestEpoch: number;
  bestAccuracy: number;
  finalLoss: number;
  aborted: boolean;
}

/** Runs epochs over `n` rows until the epoch budget, the patience or an abort ends it; leaves the best weights in place. */
export async function trainLoop(n: number, o: LoopOptions, random: () => number, parts: LoopParts, hooks: { onEpoch?: (e: EpochInfo) => void; signal?: AbortSignal } = {}): Promise<LoopResult> {
  const order = Array.from({ length: n }, (_, i) => i);
  const end = o.dropSmallLast && n > o.batchSize && n % o.batchSize < o.batchSize / 2 ? n - (n % o.batchSize) : n;
  let best = Infinity;
  let bestWeights: tf.Tensor[] | undefined;
  const r: LoopResult = { epochs: 0, bestEpoch: 0, bestAccuracy: 0, finalLoss: NaN, aborted: false };
  let sinceBest = 0;
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const t = performance.now();
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      let lossSum = 0;
      let steps = 0;
      for (let s = 0; s < end; s += o.batchSize) {
        const loss = parts.step(order.slice(s, s + o.batchSize), epoch);
        lossSum += (await loss.data())[0];
        loss.dispose();
        steps++;
        await new Promise((res) => setImmediate(res)); // let Ctrl-C / abort in
        if (hooks.signal?.aborted) break;
      }
      r.epochs = epoch;
      r.finalLoss = lossSum / Math.max(1, steps);
      if (hooks.signal?.aborted) {
        r.aborted = true;
        break;
      }
      if (o.keepLast) {
        hooks.onEpoch?.({ epoch, loss: r.finalLoss, valLoss: NaN, valAccuracy: NaN, seconds: (performance.now() - t) / 1000 });
        r.bestEpoch = epoch;
        r.bestAccuracy = NaN;
        continue;
      }
      const { loss: valLoss, accuracy } = parts.evaluate();
      hooks.onEpoch?.({ epoch, loss: r.finalLoss, valLoss, valAccuracy: accuracy, seconds: (performance.now() - t) / 1000 });
      if (valLoss < best - 1e-4) {
        best = valLoss;
        r.bestEpoch = epoch;
        r.bestAccuracy = accuracy;
        bestWeights?.forEach((w) => w.dispose());
        bestWeights = parts.snapshot();
        sinceBest = 0;
      } else if (epoch > o.warmup && ++sinceBest >= o.patience) {
        break;
      }
    }
    if (bestWeights) parts.restore(bestWeights);
    else if (!o.keepLast) r.bestAccuracy = parts.evaluate().accuracy;
  } finally {
    bestWeights?.forEach((w) => w.dispose());
  }
  return r;
}

/** The report fields a finished loop gives (training started at `started`, performance.now()). */
export function loopReport(r: LoopResult, started: number) {
  return { epochs: r.epochs, bestEpoch: r.bestEpoch, heldOutAccuracy: r.bestAccuracy, finalLoss: r.finalLoss, seconds: Math.round((performance.now() - started) / 100) / 10, trainedAt: Date.now(), backend: tf.getBackend(), aborted: r.aborted };
}

/** Mean cross-entropy and accuracy of row-major [n, k] probabilities against labels. */
export function scoreProbabilities(probs: Float32Array, labels: Int32Array, k: number): { loss: number; accuracy: number } {
  let loss = 0;
  let right = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = probs.subarray(i * k, (i + 1) * k);
    loss -= Math.log(Math.max(row[labels[i]], 1e-12));
    if (row.indexOf(Math.max(...row)) === labels[i]) right++;
  }
  return { loss: loss / Math.max(1, labels.length), accuracy: right / Math.max(1, labels.length) };
}

/** A JSON header and float32 weights as bytes: header length (uint32 LE), header, weights in order. */
export function packWeights(header: object, weights: readonly tf.Tensor[]): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([len, json, ...weights.map((w) => Buffer.from((w.dataSync() as Float32Array).buffer.slice(0)))]);
}

/** The JSON header of `packWeights` bytes, or undefined when unreadable. */
export function readPackedHeader<T>(bytes: Uint8Array): T | undefined {
  try {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0)).toString()) as T;
  } catch {
    return undefined;
  }
}

/** The weights of `packWeights` bytes as new tensors of `shapes` (the caller owns them). */
export function unpackWeights(bytes: Uint8Array, shapes: readonly number[][]): tf.Tensor[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 4 + buf.readUInt32LE(0);
  return shapes.map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + size * 4));
    offset += size * 4;
    return tf.tensor(data, shape);
  });
}
