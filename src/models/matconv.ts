/**
 * Convolutions that train on the wasm backend.
 *
 * wasm has no `Conv2DBackpropFilter` kernel (nor the depthwise gradients), so `tf.conv2d` cannot
 * be trained there. These helpers express a convolution as im2col + matMul, with ops whose
 * gradients run on wasm (pad, reshape, transpose, matMul, and a patch extraction whose gradient
 * is written here with forward kernels only). Kernels keep tf.conv2d's HWIO layout, so the same
 * weights run through native `tf.conv2d` where the backend has it (tfjs-node).
 *
 * Measured on wasm (tfjs 4.22, SIMD, 1 thread): a plain matMul runs at ~31 GFLOP/s, but the
 * transposed variants that tfjs's own matMul gradient uses (`transposeA`/`transposeB`) run 13–27x
 * slower. `matMulT` therefore has a custom gradient that transposes explicitly (~7 ms for a
 * 1568x1280 transpose) and then calls a plain matMul.
 */
import { tf } from '../backend.ts';
import { invalidParameter } from '../errors.ts';
import { seededRandom } from '../random.ts';

/** Re-exported: weights drawn from the same seed are the same on every backend. */
export { seededRandom };

type Tensor2D = tf.Tensor2D;
type Tensor4D = tf.Tensor4D;

/** TF padding semantics: `same` keeps ceil(size/stride) outputs, `valid` uses no padding. */
export type ConvPadding = 'same' | 'valid';

/** Options shared by the matMul and native convolutions. */
export interface ConvOptions {
  /** Spatial stride, the same in both directions (default: 1). 1 and 2 are tested. */
  stride?: number;
  /** Padding mode (default: 'same'). */
  padding?: ConvPadding;
}

/** Which implementation runs a convolution: `auto` = native on the tensorflow backend, else matmul. */
export type ConvImpl = 'auto' | 'native' | 'matmul';

/** Elementwise activation after a layer; literal union so configs serialise as JSON. */
export type Activation = 'linear' | 'relu' | 'relu6';

const matMulWithGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a as Tensor2D, b as Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.matMul(dy as Tensor2D, tf.transpose(saved[1] as Tensor2D)),
      tf.matMul(tf.transpose(saved[0] as Tensor2D), dy as Tensor2D),
    ],
  };
});

/**
 * `a·b` whose gradient uses explicit transposes: tfjs's built-in matMul gradient calls the
 * transposed wasm kernels, which are 13–27x slower than a transpose plus a plain matMul.
 */
export function matMulT(a: Tensor2D, b: Tensor2D): Tensor2D {
  return matMulWithGrad(a, b) as Tensor2D;
}

/** Output size and leading/trailing padding along one axis, exactly as TensorFlow computes them. */
export function convGeometry(size: number, k: number, stride: number, padding: ConvPadding): { out: number; before: number; after: number } {
  if (padding === 'valid') {
    const out = Math.ceil((size - k + 1) / stride);
    return { out, before: 0, after: 0 };
  }
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + k - size, 0);
  const before = Math.floor(total / 2);
  return { out, before, after: total - before };
}

function checkShapes(x: Tensor4D, kernel: Tensor4D, stride: number, padding: ConvPadding): void {
  if (x.rank !== 4) throw invalidParameter('x', 'a rank-4 NHWC tensor', `rank ${x.rank}`);
  if (kernel.rank !== 4) throw invalidParameter('kernel', 'a rank-4 HWIO tensor', `rank ${kernel.rank}`);
  if (kernel.shape[2] !== x.shape[3]) {
    throw invalidParameter('kernel', `input channels ${x.shape[3]} (kernel.shape[2])`, kernel.shape[2]);
  }
  if (!Number.isInteger(stride) || stride < 1) throw invalidParameter('stride', 'positive integer', stride);
  if (padding !== 'same' && padding !== 'valid') throw invalidParameter('padding', "'same' or 'valid'", padding);
  if (padding === 'valid' && (kernel.shape[0] > x.shape[1] || kernel.shape[1] > x.shape[2])) {
    throw invalidParameter('kernel', `a window no larger than the ${x.shape[1]}x${x.shape[2]} input with padding 'valid'`, `${kernel.shape[0]}x${kernel.shape[1]}`);
  }
}

/**
 * One-hot filters that make a depthwise convolution copy patches. `forward`: [kh,kw,c,T], output
 * channel c*T+t holds tap t = i*kw+j. Backward: [kh,kw,c*T,1], each channel picks its flipped tap.
 */
function tapFilter(kh: number, kw: number, c: number, backward: boolean): Tensor4D {
  const taps = kh * kw;
  const v = new Float32Array(kh * kw * c * taps);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const pos = i * kw + j;
      const t = backward ? (kh - 1 - i) * kw + (kw - 1 - j) : pos;
      for (let ch = 0; ch < c; ch++) v[(pos * c + ch) * taps + t] = 1;
    }
  }
  return backward ? tf.tensor4d(v, [kh, kw, c * taps, 1]) : tf.tensor4d(v, [kh, kw, c, taps]);
}

/** Inserts stride-1 zeros after every row and column: [n,h,w,k] → [n,h*s,w*s,k], rank ≤ 4 ops only. */
function zeroInsert(x: Tensor4D, s: number): Tensor4D {
  if (s === 1) return x;
  const [n, h, w, k] = x.shape;
  const cols = tf.pad(x.reshape([n * h, w, 1, k]), [[0, 0], [0, 0], [0, s - 1], [0, 0]]);
  const rows = tf.pad(cols.reshape([n * h, 1, w * s * k]), [[0, 0], [0, s - 1], [0, 0]]);
  return rows.reshape([n, h * s, w * s, k]) as Tensor4D;
}

/**
 * im2col of an already padded input: [n,hp,wp,c] → [n,ho,wo,c*kh*kw] (channel-major, tap-minor),
 * as a depthwise convolution with one-hot filters ('valid', stride s). Its gradient (col2im) is a
 * zero-insertion plus another one-hot depthwise convolution and a sum over taps: both directions
 * use wasm's native depthwise forward kernel. Slices would be the obvious alternative, but a wasm
 * Slice copies its whole input per call, which made the backward pass 10x slower.
 */
function extractPatches(xp: Tensor4D, kh: number, kw: number, stride: number): Tensor4D {
  const [n, hp, wp, c] = xp.shape;
  const taps = kh * kw;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = args[0] as Tensor4D;
    const value = tf.tidy(() => tf.depthwiseConv2d(x, tapFilter(kh, kw, c, false), stride, 'valid'));
    const gradFunc = (dy: tf.Tensor): tf.Tensor =>
      tf.tidy(() => {
        const [, ho, wo] = dy.shape as [number, number, number, number];
        const u = zeroInsert(dy as Tensor4D, stride);
        const bottom = Math.max(0, hp - ho * stride);
        const right = Math.max(0, wp - wo * stride);
        const padded = tf.pad(u, [[0, 0], [kh - 1, bottom], [kw - 1, right], [0, 0]]) as Tensor4D;
        let z: tf.Tensor = tf.depthwiseConv2d(padded, tapFilter(kh, kw, c, true), 1, 'valid');
        if (z.shape[1] !== hp || z.shape[2] !== wp) z = tf.slice(z, [0, 0, 0, 0], [n, hp, wp, c * taps]);
        return tf.sum(z.reshape([n, hp, wp, c, taps]), 4);
      });
    return { value, gradFunc };
  });
  return op(xp) as Tensor4D;
}

/**
 * 2-D convolution as im2col + matMul, numerically the same as `tf.conv2d(x, kernel, stride,
 * padding)` (NHWC input, HWIO kernel, no dilation) but differentiable on wasm: the only ops
 * with gradients here are pad, reshape, transpose, matMul and the patch extraction above.
 */
export function conv2dMatMul(x: Tensor4D, kernel: Tensor4D, opts: ConvOptions = {}): Tensor4D {
  const stride = opts.stride ?? 1;
  const padding = opts.padding ?? 'same';
  checkShapes(x, kernel, stride, padding);
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const [kh, kw, , f] = kernel.shape;
    if (kh === 1 && kw === 1 && stride === 1) {
      return matMulT(x.reshape([n * h * w, c]) as Tensor2D, kernel.reshape([c, f]) as Tensor2D).reshape([n, h, w, f]) as Tensor4D;
    }
    const gh = convGeometry(h, kh, stride, padding);
    const gw = convGeometry(w, kw, stride, padding);
    const needsPad = gh.before + gh.after + gw.before + gw.after > 0;
    const xp = needsPad ? (tf.pad(x, [[0, 0], [gh.before, gh.after], [gw.before, gw.after], [0, 0]]) as Tensor4D) : x;
    const cols = extractPatches(xp, kh, kw, stride);
    // Patches are ordered (channel, tap); reorder the HWIO kernel to [C, kh, kw, F] to match.
    const k2 = tf.transpose(kernel, [2, 0, 1, 3]).reshape([c * kh * kw, f]) as Tensor2D;
    return matMulT(cols.reshape([n * gh.out * gw.out, c * kh * kw]) as Tensor2D, k2).reshape([n, gh.out, gw.out, f]) as Tensor4D;
  });
}

/** True when the running backend has native convolution gradients (tfjs-node). */
export function hasNativeConvGradients(): boolean {
  return tf.getBackend() === 'tensorflow';
}

/**
 * Convolution through the fastest implementation that the backend can also train:
 * native `tf.conv2d` on tensorflow (or when forced), the matMul form elsewhere. Same weights.
 */
export function conv2dAuto(x: Tensor4D, kernel: Tensor4D, opts: ConvOptions = {}, impl: ConvImpl = 'auto'): Tensor4D {
  const native = impl === 'native' || (impl === 'auto' && hasNativeConvGradients());
  if (!native) return conv2dMatMul(x, kernel, opts);
  const stride = opts.stride ?? 1;
  const padding = opts.padding ?? 'same';
  checkShapes(x, kernel, stride, padding);
  return tf.conv2d(x, kernel, stride, padding);
}

/** Applies a named activation; `linear` returns its input. */
export function activate(x: Tensor4D, activation: Activation): Tensor4D {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return tf.relu(x);
    case 'relu6':
      return tf.relu6(x);
  }
}


/** Shape and behaviour of one convolution layer (JSON-serialisable). */
export interface ConvLayerSpec {
  kernelSize: number;
  inChannels: number;
  outChannels: number;
  stride: number;
  padding: ConvPadding;
  activation: Activation;
}

/**
 * A convolution with HWIO kernel + bias held in `tf.variable`s. The weights are the same tensors
 * whichever implementation runs, so a model trained on wasm runs natively on tfjs-node and back.
 */
export class ConvLayer {
  readonly spec: ConvLayerSpec;
  readonly kernel: tf.Variable<tf.Rank.R4>;
  readonly bias: tf.Variable<tf.Rank.R1>;

  private constructor(spec: ConvLayerSpec, kernel: tf.Variable<tf.Rank.R4>, bias: tf.Variable<tf.Rank.R1>) {
    this.spec = spec;
    this.kernel = kernel;
    this.bias = bias;
  }

  /**
   * A fresh layer: uniform kernel with He bounds (ReLU layers) or Glorot bounds (linear/relu6
   * layers), zero bias, drawn from `random` so that a seed fixes the whole model.
   */
  static create(spec: ConvLayerSpec, random: () => number): ConvLayer {
    const { kernelSize: k, inChannels: c, outChannels: f } = spec;
    const fanIn = k * k * c;
    const fanOut = k * k * f;
    const limit = spec.activation === 'relu' ? Math.sqrt(6 / fanIn) : Math.sqrt(6 / (fanIn + fanOut));
    const values = new Float32Array(k * k * c * f);
    for (let i = 0; i < values.length; i++) values[i] = (random() * 2 - 1) * limit;
    return ConvLayer.fromWeights(spec, values, new Float32Array(f));
  }

  /**
   * A layer from raw HWIO kernel and bias values (copied into new variables). Variables stay
   * unnamed: tfjs names are global, and two models (old and new space) must coexist.
   */
  static fromWeights(spec: ConvLayerSpec, kernel: Float32Array, bias: Float32Array): ConvLayer {
    const { kernelSize: k, inChannels: c, outChannels: f } = spec;
    if (kernel.length !== k * k * c * f) throw invalidParameter('kernel', `${k * k * c * f} values (${k}x${k}x${c}x${f})`, `${kernel.length} values`);
    if (bias.length !== f) throw invalidParameter('bias', `${f} values`, `${bias.length} values`);
    const kv = tf.tidy(() => tf.variable(tf.tensor4d(kernel, [k, k, c, f]), true));
    const bv = tf.tidy(() => tf.variable(tf.tensor1d(bias), true));
    return new ConvLayer({ ...spec }, kv, bv);
  }

  /** Output spatial size for an input of `h`x`w`. */
  outputSize(h: number, w: number): [number, number] {
    const { kernelSize: k, stride, padding } = this.spec;
    return [convGeometry(h, k, stride, padding).out, convGeometry(w, k, stride, padding).out];
  }

  /** conv → +bias → activation, through `conv2dAuto`. */
  apply(x: Tensor4D, impl: ConvImpl = 'auto'): Tensor4D {
    return tf.tidy(() => {
      const y = conv2dAuto(x, this.kernel, { stride: this.spec.stride, padding: this.spec.padding }, impl);
      return activate(tf.add(y, this.bias), this.spec.activation);
    });
  }

  /** The trainable variables, kernel first. */
  variables(): tf.Variable[] {
    return [this.kernel, this.bias];
  }

  /** Frees the variables. */
  dispose(): void {
    this.kernel.dispose();
    this.bias.dispose();
  }
}
