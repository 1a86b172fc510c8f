/**
 * MobileNetV2's top inverted-residual blocks rebuilt as trainable tf ops, for
 * `train-classifier --mode finetune|scratch --blocks N`.
 *
 * The backbone is a frozen graph model (tf.loadGraphModel), whose weights are constants. A block
 * here is the graph's block with its batch-norm-folded weights (or fresh ones) in variables:
 * 1x1 expand (ReLU6) → 3x3 depthwise (ReLU6) → 1x1 project (linear) [+ the block's input]. The
 * 1x1 convolutions are matMuls over [N·H·W, C]; the 3x3 depthwise one is `tf.depthwiseConv2d`,
 * whose gradients only the tensorflow backend has (wasm lacks both depthwise backprop kernels; a
 * patch + weighted-sum form that trains there measured 14-22 s per step of 32 through two blocks,
 * against ~0.3 s on tensorflow, so training blocks is refused on wasm instead: `assertCanTrainBlocks`).
 * Inference (classify with a trained top) runs on every backend.
 */
import { tf } from '../backend.ts';
import { BackendError, invalidParameter } from '../errors.ts';
import { matMulT } from './matconv.ts';

/** One retrained block: graph name prefix, channel counts and whether it adds its input. */
export interface BlockSpec {
  name: string;
  residual: boolean;
  inChannels: number;
  expanded: number;
  outChannels: number;
}

/** A split of the backbone: the frozen node the top is fed and the blocks retrained above it. */
export interface BlockSplit {
  node: string;
  shape: [number, number, number];
  blocks: BlockSpec[];
}

const block = (i: number, residual: boolean, outChannels: number): BlockSpec => ({ name: `MobilenetV2/expanded_conv_${i}`, residual, inChannels: 160, expanded: 960, outChannels });

/**
 * The splits of mobilenet_v2 by the number of inverted-residual blocks retrained below `Conv_1`
 * (index = blocks). Every node is 7x7 at a 224 input; block 16 widens 160 → 320, 14 and 15 add
 * their input (graph nodes `expanded_conv_14/add`, `expanded_conv_15/add`).
 */
export const MOBILENET_V2_SPLITS: readonly Readonly<BlockSplit>[] = Object.freeze([
  { node: 'MobilenetV2/expanded_conv_16/project/add_fold_1', shape: [7, 7, 320], blocks: [] },
  { node: 'MobilenetV2/expanded_conv_15/add', shape: [7, 7, 160], blocks: [block(16, false, 320)] },
  { node: 'MobilenetV2/expanded_conv_14/add', shape: [7, 7, 160], blocks: [block(15, true, 160), block(16, false, 320)] },
  { node: 'MobilenetV2/expanded_conv_13/project/add_fold_1', shape: [7, 7, 160], blocks: [block(14, true, 160), block(15, true, 160), block(16, false, 320)] },
] satisfies BlockSplit[]);

/** The graph's weight names of a block, in variable order: expand kernel, bias, depthwise kernel, bias, project kernel, bias. */
export function blockWeightNames(b: BlockSpec): string[] {
  return [`${b.name}/expand/Conv2D_Fold`, `${b.name}/expand/BatchNorm_Fold/bias`, `${b.name}/depthwise/depthwise_Fold`, `${b.name}/depthwise/BatchNorm_Fold/bias`, `${b.name}/project/Conv2D_Fold`, `${b.name}/project/add_fold`];
}

/** Variable shapes of a block (1x1 kernels as [in, out] matrices), in `blockWeightNames` order. */
export function blockShapes(b: BlockSpec): number[][] {
  return [[b.inChannels, b.expanded], [b.expanded], [3, 3, b.expanded, 1], [b.expanded], [b.expanded, b.outChannels], [b.outChannels]];
}

/** Fresh weights of a block (Glorot-uniform kernels from `random`, zero biases), for `scratch`. */
export function freshBlockWeights(b: BlockSpec, random: () => number): tf.Tensor[] {
  return blockShapes(b).map((shape) => {
    if (shape.length === 1) return tf.zeros(shape);
    const fanIn = shape.length === 4 ? 9 : shape[0];
    const fanOut = shape.length === 4 ? 9 : shape[1];
    const lim = Math.sqrt(6 / (fanIn + fanOut));
    const size = shape.reduce((a, c) => a * c, 1);
    return tf.tensor(Float32Array.from({ length: size }, () => (random() * 2 - 1) * lim), shape);
  });
}

/** A block's pretrained weights from the graph, reshaped to `blockShapes` (new tensors: the caller owns them). */
export function graphBlockWeights(b: BlockSpec, weight: (name: string) => tf.Tensor): tf.Tensor[] {
  const shapes = blockShapes(b);
  return blockWeightNames(b).map((name, i) => {
    const w = weight(name);
    if (w.size !== shapes[i].reduce((a, c) => a * c, 1)) throw invalidParameter(name, `${shapes[i].join('x')} values`, `${w.shape.join('x')}`);
    return w.reshape(shapes[i]);
  });
}

/** One block forward: x [n, h, w, inChannels] → [n, h, w, outChannels]; `vars` in `blockShapes` order. */
export function blockForward(x: tf.Tensor4D, vars: readonly tf.Tensor[], b: BlockSpec): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const rows = n * h * w;
  const expanded = tf.relu6(matMulT(x.reshape([rows, b.inChannels]) as tf.Tensor2D, vars[0] as tf.Tensor2D).add(vars[1])).reshape([n, h, w, b.expanded]) as tf.Tensor4D;
  const depthwise = tf.relu6(tf.depthwiseConv2d(expanded, vars[2] as tf.Tensor4D, 1, 'same').add(vars[3]));
  const projected = matMulT(depthwise.reshape([rows, b.expanded]) as tf.Tensor2D, vars[4] as tf.Tensor2D).add(vars[5]).reshape([n, h, w, b.outChannels]) as tf.Tensor4D;
  return b.residual ? projected.add(x) : projected;
}

/**
 * Refuses to train blocks (not Conv_1 alone) on a backend without depthwise-convolution
 * gradients: a typed error that names the fix, never a silent fallback to fewer blocks.
 */
export function assertCanTrainBlocks(blocks: number): void {
  const backend = tf.getBackend();
  if (blocks > 0 && backend !== 'tensorflow') {
    throw new BackendError(
      `Fine-tuning ${blocks} inverted-residual block${blocks === 1 ? '' : 's'} (--blocks ${blocks}) needs depthwise-convolution gradients, which the ${backend} backend lacks. ` +
        'Run `npm run setup:tensorflow` once, then use --backend tensorflow (or PIXDEX_BACKEND=tensorflow); or pass --blocks 0 to retrain Conv_1 alone, which trains on every backend.',
    );
  }
}
