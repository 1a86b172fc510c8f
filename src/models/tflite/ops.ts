/**
 * How each supported TFLite builtin op becomes tfjs graph nodes: the mapping of the Python
 * reference (tflite2tfjs.py), op for op and in the same order of node creation, so node names
 * (made unique in creation order) and the weight file come out the same.
 *
 * Activations run in float32: QUANTIZE and DEQUANTIZE are dropped; uint8 per-tensor weights stay
 * uint8 (tfjs weight quantization), everything else constant is dequantized to float32.
 */
import { malformed, type Table } from './flatbuffer.ts';
import { F32, GraphBuilder, b64, ilist } from './graph.ts';
import {
  ACTIVATIONS, ACTIVATION_NAMES, OPTIONS_TYPE, PADDINGS, UINT8,
  convOptions, fusedActivation, keepDims, poolOptions, softmaxBeta, squeezeDims,
} from './schema.ts';
import { decode, dequantize, reshape, toInt32, transpose, type NdArray, type NumericArray, type TensorInfo } from './tensors.ts';
import { PixdexError } from '../../errors.ts';

/** The state shared by the lowerings of one subgraph. */
export interface LoweringContext {
  tensors: TensorInfo[];
  graph: GraphBuilder;
  /** Tensor index → the node that computes it (graph input, constant or op). */
  names: Map<number, string>;
}

/** One operator, as a lowering sees it. */
export interface OpCall {
  /** Builtin name (CONV_2D...). */
  kind: string;
  inputs: number[];
  outputs: number[];
  /** The output tensor's name (or `op<index>`): the main node's name before uniquing. */
  outName: string;
  outShape: number[];
  /** The builtin options table, checked to be of `type`. */
  options(type: number): Table | undefined;
}

type Lowering = (ctx: LoweringContext, op: OpCall) => void;

/** The refusal for a valid file whose use of a supported op is beyond the converter. */
function unsupportedUse(op: OpCall, what: string): PixdexError {
  return new PixdexError('UNSUPPORTED_MODEL', `The ${op.kind} operator producing "${op.outName}" ${what}, which the converter does not support. Use a model without it, or open an issue with the model attached.`);
}

function tensor(ctx: LoweringContext, index: number | undefined, op: OpCall): TensorInfo {
  const t = index === undefined ? undefined : ctx.tensors[index];
  if (!t) throw malformed(`the ${op.kind} operator producing "${op.outName}" refers to tensor ${index} of ${ctx.tensors.length}`);
  return t;
}

/** The node computing tensor `index`: its producer, or a new float32 constant from its data. */
function input(ctx: LoweringContext, index: number | undefined, op: OpCall): string {
  const t = tensor(ctx, index, op);
  const known = ctx.names.get(t.index);
  if (known !== undefined) return known;
  if (!t.data) throw malformed(`tensor "${t.name ?? t.index}" (an input of ${op.kind}) has no producer and no data`);
  const name = ctx.graph.constant(t.name || `t${t.index}`, dequantize(t));
  ctx.names.set(t.index, name);
  return name;
}

/** A weight constant: uint8 per-tensor quantized weights stay uint8; others are dequantized. */
function weight(ctx: LoweringContext, index: number | undefined, op: OpCall, layout: <T extends NumericArray>(a: NdArray<T>) => NdArray<T>): string {
  const t = tensor(ctx, index, op);
  const name = t.name || `w${t.index}`;
  if (t.type === UINT8 && t.quant && t.quant.scale.length === 1) {
    return ctx.graph.quantizedConstant(name, layout(decode(t) as NdArray<Uint8Array>), t.quant.scale[0], t.quant.zeroPoint[0]);
  }
  return ctx.graph.constant(name, layout(dequantize(t)));
}

/** A float32 bias constant (int32 biases are dequantized: q * s). */
function bias(ctx: LoweringContext, index: number | undefined, op: OpCall, fallback: string): string {
  const t = tensor(ctx, index, op);
  return ctx.graph.constant(t.name || fallback, dequantize(t));
}

/** The tfjs op of a fused activation; refuses TANH, SIGN_BIT and RELU_N1_TO_1. */
function activationOp(code: number, op: OpCall): string | undefined {
  if (!(code in ACTIVATIONS)) throw unsupportedUse(op, `has the fused activation ${ACTIVATION_NAMES[code] ?? code}`);
  return ACTIVATIONS[code];
}

function padding(code: number, op: OpCall): string {
  const p = PADDINGS[code];
  if (p === undefined) throw malformed(`the ${op.kind} operator producing "${op.outName}" has padding ${code}`);
  return b64(p);
}

/** CONV_2D → _FusedConv2D (kernel OHWI → HWIO); DEPTHWISE_CONV_2D → FusedDepthwiseConv2dNative ([1,h,w,C·m] → [h,w,C,m]). */
function convolution(ctx: LoweringContext, op: OpCall): void {
  const depthwise = op.kind === 'DEPTHWISE_CONV_2D';
  const o = convOptions(op.options(depthwise ? OPTIONS_TYPE.DepthwiseConv2DOptions : OPTIONS_TYPE.Conv2DOptions), depthwise);
  const act = activationOp(o.activation, op);
  if (op.inputs.length < 3 || op.inputs[2] < 0) throw unsupportedUse(op, 'has no bias tensor');
  const x = input(ctx, op.inputs[0], op);
  let w: string;
  if (!depthwise) {
    w = weight(ctx, op.inputs[1], op, (a) => transpose(a, [1, 2, 3, 0]));
  } else {
    const cin = tensor(ctx, op.inputs[0], op).shape[3];
    w = weight(ctx, op.inputs[1], op, (a) => reshape(a, [a.shape[1], a.shape[2], cin, o.depthMultiplier]));
  }
  const b = bias(ctx, op.inputs[2], op, 'b');
  const fused = ['BiasAdd', ...(act ? [act] : [])];
  const name = ctx.graph.unique(op.outName);
  ctx.graph.add({
    name,
    op: depthwise ? 'FusedDepthwiseConv2dNative' : '_FusedConv2D',
    input: [x, w, b],
    attr: {
      T: F32, strides: ilist([1, o.strideH, o.strideW, 1]), padding: { s: padding(o.padding, op) },
      data_format: { s: b64('NHWC') }, dilations: ilist([1, o.dilationH, o.dilationW, 1]),
      fused_ops: { list: { s: fused.map(b64) } }, num_args: { i: '1' }, epsilon: { f: 0 }, explicit_paddings: { list: {} },
    },
  }, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

/** AVERAGE_POOL_2D → AvgPool, MAX_POOL_2D → MaxPool (a fused activation becomes its own node). */
function pool(ctx: LoweringContext, op: OpCall): void {
  const o = poolOptions(op.options(OPTIONS_TYPE.Pool2DOptions));
  const act = activationOp(o.activation, op);
  const x = input(ctx, op.inputs[0], op);
  let name = ctx.graph.unique(act ? `${op.outName}/pool` : op.outName);
  ctx.graph.add({
    name, op: op.kind === 'AVERAGE_POOL_2D' ? 'AvgPool' : 'MaxPool', input: [x],
    attr: {
      T: F32, ksize: ilist([1, o.filterH, o.filterW, 1]), strides: ilist([1, o.strideH, o.strideW, 1]),
      padding: { s: padding(o.padding, op) }, data_format: { s: b64('NHWC') },
    },
  }, op.outShape);
  if (act) name = ctx.graph.activation(ctx.graph.unique(op.outName), name, act, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

/** ADD → AddV2, MUL → Mul (a fused activation becomes its own node). */
function binary(ctx: LoweringContext, op: OpCall): void {
  const act = activationOp(fusedActivation(op.options(op.kind === 'ADD' ? OPTIONS_TYPE.AddOptions : OPTIONS_TYPE.MulOptions)), op);
  const a = input(ctx, op.inputs[0], op);
  const b = input(ctx, op.inputs[1], op);
  let name = ctx.graph.unique(act ? `${op.outName}/pre_act` : op.outName);
  ctx.graph.add({ name, op: op.kind === 'ADD' ? 'AddV2' : 'Mul', input: [a, b], attr: { T: F32 } }, op.outShape);
  if (act) name = ctx.graph.activation(ctx.graph.unique(op.outName), name, act, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

/** RESHAPE → Reshape to the output tensor's shape with the batch dimension left free (-1). */
function reshapeOp(ctx: LoweringContext, op: OpCall): void {
  if (op.outShape.length === 0) throw unsupportedUse(op, 'reshapes to a scalar');
  const x = input(ctx, op.inputs[0], op);
  const target = [-1, ...op.outShape.slice(1)];
  const s = ctx.graph.constant(`${op.outName}/shape`, { data: Int32Array.from(target), shape: [target.length] });
  const name = ctx.graph.unique(op.outName);
  ctx.graph.add({ name, op: 'Reshape', input: [x, s], attr: { T: F32, Tshape: { type: 'DT_INT32' } } }, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

function squeeze(ctx: LoweringContext, op: OpCall): void {
  const x = input(ctx, op.inputs[0], op);
  const axes = squeezeDims(op.options(OPTIONS_TYPE.SqueezeOptions));
  const name = ctx.graph.unique(op.outName);
  ctx.graph.add({ name, op: 'Squeeze', input: [x], attr: { T: F32, squeeze_dims: ilist(axes) } }, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

function softmax(ctx: LoweringContext, op: OpCall): void {
  const beta = softmaxBeta(op.options(OPTIONS_TYPE.SoftmaxOptions));
  if (!(Math.abs(beta - 1) <= 1e-6)) throw unsupportedUse(op, `has beta ${beta} (only 1 is supported)`);
  const name = ctx.graph.unique(op.outName); // named before its input, as in the reference
  ctx.graph.add({ name, op: 'Softmax', input: [input(ctx, op.inputs[0], op)], attr: { T: F32 } }, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

/** MEAN → Mean over the constant axes tensor. */
function mean(ctx: LoweringContext, op: OpCall): void {
  const x = input(ctx, op.inputs[0], op);
  const axesData = toInt32(decode(tensor(ctx, op.inputs[1], op))).data;
  const axes = ctx.graph.constant(`${op.outName}/axes`, { data: axesData, shape: [axesData.length] });
  const keep = keepDims(op.options(OPTIONS_TYPE.ReducerOptions));
  const name = ctx.graph.unique(op.outName);
  ctx.graph.add({ name, op: 'Mean', input: [x, axes], attr: { T: F32, Tidx: { type: 'DT_INT32' }, keep_dims: { b: keep } } }, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

function pad(ctx: LoweringContext, op: OpCall): void {
  const x = input(ctx, op.inputs[0], op);
  const p = ctx.graph.constant(`${op.outName}/paddings`, toInt32(decode(tensor(ctx, op.inputs[1], op))));
  const name = ctx.graph.unique(op.outName);
  ctx.graph.add({ name, op: 'Pad', input: [x, p], attr: { T: F32, Tpaddings: { type: 'DT_INT32' } } }, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

/** FULLY_CONNECTED → _FusedMatMul with the weights transposed from [out,in] to [in,out]. */
function fullyConnected(ctx: LoweringContext, op: OpCall): void {
  const x = input(ctx, op.inputs[0], op);
  const act = activationOp(fusedActivation(op.options(OPTIONS_TYPE.FullyConnectedOptions)), op);
  const w = weight(ctx, op.inputs[1], op, (a) => {
    if (a.shape.length !== 2) throw unsupportedUse(op, `has weights of rank ${a.shape.length} (2 expected)`);
    return transpose(a, [1, 0]);
  });
  const args = [x, w];
  const fused: string[] = [];
  if (op.inputs.length > 2 && op.inputs[2] >= 0) {
    args.push(bias(ctx, op.inputs[2], op, 'fc_b'));
    fused.push('BiasAdd');
  }
  if (act) fused.push(act);
  const name = ctx.graph.unique(op.outName);
  ctx.graph.add({
    name, op: '_FusedMatMul', input: args,
    attr: {
      T: F32, transpose_a: { b: false }, transpose_b: { b: false }, num_args: { i: String(args.length - 2) },
      epsilon: { f: 0 }, fused_ops: { list: { s: fused.map(b64) } },
    },
  }, op.outShape);
  ctx.names.set(op.outputs[0], name);
}

/** QUANTIZE and DEQUANTIZE: identities, since activations run in float. */
function passThrough(ctx: LoweringContext, op: OpCall): void {
  ctx.names.set(op.outputs[0], input(ctx, op.inputs[0], op));
}

const UNARY: Readonly<Record<string, string>> = { RELU: 'Relu', RELU6: 'Relu6', LOGISTIC: 'Sigmoid' };

function unary(ctx: LoweringContext, op: OpCall): void {
  const name = ctx.graph.unique(op.outName);
  ctx.names.set(op.outputs[0], ctx.graph.activation(name, input(ctx, op.inputs[0], op), UNARY[op.kind], op.outShape));
}

/** The supported builtin ops and how each is lowered (the keys are the list shown on refusal). */
export const LOWERINGS: Readonly<Record<string, Lowering>> = Object.freeze({
  ADD: binary,
  AVERAGE_POOL_2D: pool,
  CONV_2D: convolution,
  DEPTHWISE_CONV_2D: convolution,
  DEQUANTIZE: passThrough,
  FULLY_CONNECTED: fullyConnected,
  LOGISTIC: unary,
  MAX_POOL_2D: pool,
  MEAN: mean,
  MUL: binary,
  PAD: pad,
  QUANTIZE: passThrough,
  RELU: unary,
  RELU6: unary,
  RESHAPE: reshapeOp,
  SOFTMAX: softmax,
  SQUEEZE: squeeze,
});
