/**
 * The parts of the TFLite schema (tensorflow/lite/schema/schema.fbs, version 3 and its compatible
 * extensions) that the converter reads, as typed accessors over the bounds-checked table reader.
 * Field slots are the schema's field order; defaults are the schema's unless noted.
 */
import { CheckedBuffer, Table, malformed } from './flatbuffer.ts';

/** TensorType values the converter can decode, with their element size in bytes. */
export const TENSOR_TYPES: Readonly<Record<number, { name: string; bytes: number }>> = Object.freeze({
  0: { name: 'FLOAT32', bytes: 4 },
  1: { name: 'FLOAT16', bytes: 2 },
  2: { name: 'INT32', bytes: 4 },
  3: { name: 'UINT8', bytes: 1 },
  4: { name: 'INT64', bytes: 8 },
  7: { name: 'INT16', bytes: 2 },
  9: { name: 'INT8', bytes: 1 },
});

export const FLOAT32 = 0;
export const UINT8 = 3;

/** BuiltinOptions union members the converter reads (the union's type tag for each). */
export const OPTIONS_TYPE = Object.freeze({
  Conv2DOptions: 1,
  DepthwiseConv2DOptions: 2,
  Pool2DOptions: 5,
  FullyConnectedOptions: 8,
  SoftmaxOptions: 9,
  AddOptions: 11,
  MulOptions: 21,
  ReducerOptions: 27,
  SqueezeOptions: 30,
});

/** The root: `Model { version, operator_codes, subgraphs, description, buffers, ... }`. */
export class Model {
  private constructor(private readonly t: Table) {}

  /** Reads the root table after checking the TFL3 identifier. */
  static read(bytes: Uint8Array): Model {
    return new Model(new CheckedBuffer(bytes).root('TFL3'));
  }

  get version(): number { return this.t.uint32(0); }
  operatorCodes(): OperatorCode[] { return this.t.tables(1, 'operator code').map((t) => new OperatorCode(t)); }
  subgraphs(): SubGraph[] { return this.t.tables(2, 'subgraph').map((t) => new SubGraph(t)); }
  get description(): string | undefined { return this.t.string(3); }
  buffers(): Buffer[] { return this.t.tables(4, 'buffer').map((t) => new Buffer(t)); }
}

/** `OperatorCode { deprecated_builtin_code: byte, custom_code, version, builtin_code: int }`. */
export class OperatorCode {
  constructor(private readonly t: Table) {}

  /** The original int8 code field; still written by converters for codes below 127. */
  get deprecatedBuiltinCode(): number { return this.t.int8(0); }
  get customCode(): string | undefined { return this.t.string(1); }
  get version(): number { return this.t.int32(2, 1); }
  /** The int32 code field added in schema 3a; absent (0) in files written before it. */
  get builtinCode(): number { return this.t.int32(3); }

  /**
   * The operator's builtin code: the larger of the two fields. Old files set only the deprecated
   * byte (builtin_code reads 0 = ADD); new files set both, or builtin_code alone with the byte at
   * 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) for codes that do not fit in it. TFLite's own reader
   * (GetBuiltinCode) does the same.
   */
  get code(): number { return Math.max(this.deprecatedBuiltinCode, this.builtinCode); }
}

/** `SubGraph { tensors, inputs, outputs, operators, name }`. */
export class SubGraph {
  constructor(private readonly t: Table) {}

  tensors(): Tensor[] { return this.t.tables(0, 'tensor').map((t) => new Tensor(t)); }
  get inputs(): number[] { return this.t.int32s(1, 'subgraph inputs') ?? []; }
  get outputs(): number[] { return this.t.int32s(2, 'subgraph outputs') ?? []; }
  operators(): Operator[] { return this.t.tables(3, 'operator').map((t) => new Operator(t)); }
  get name(): string | undefined { return this.t.string(4); }
}

/** `Tensor { shape, type, buffer, name, quantization, ... }`. */
export class Tensor {
  constructor(private readonly t: Table) {}

  get shape(): number[] { return this.t.int32s(0, 'tensor shape') ?? []; }
  get type(): number { return this.t.int8(1); }
  /** Index into Model.buffers; 0 is the empty sentinel buffer of tensors without data. */
  get buffer(): number { return this.t.uint32(2); }
  get name(): string | undefined { return this.t.string(3); }
  quantization(): QuantizationParameters | undefined {
    const q = this.t.table(4, 'quantization parameters');
    return q && new QuantizationParameters(q);
  }
}

/**
 * `QuantizationParameters { min, max, scale, zero_point: [long], details, quantized_dimension }`:
 * real = scale * (q - zero_point), per tensor (one scale) or per channel along quantized_dimension.
 */
export class QuantizationParameters {
  constructor(private readonly t: Table) {}

  get min(): number[] | undefined { return this.t.float32s(0, 'quantization min'); }
  get max(): number[] | undefined { return this.t.float32s(1, 'quantization max'); }
  get scale(): number[] | undefined { return this.t.float32s(2, 'quantization scale'); }
  get zeroPoint(): number[] | undefined { return this.t.int64s(3, 'quantization zero points'); }
  get quantizedDimension(): number { return this.t.int32(6); }
}

/** `Buffer { data: [ubyte], offset: ulong, size: ulong }`. */
export class Buffer {
  constructor(private readonly t: Table) {}

  /**
   * The buffer's bytes (a view into the file), or undefined if empty. Files over 2 GB keep the data
   * outside the FlatBuffer, at `offset` (valid when > 1) from the start of the file.
   */
  data(): Uint8Array | undefined {
    const inline = this.t.bytes(0, 'buffer data');
    if (inline && inline.length > 0) return inline;
    const offset = this.t.uint64(1);
    const size = this.t.uint64(2);
    if (offset <= 1 || size === 0) return undefined;
    this.t.buf.check(offset, size, 'external buffer data');
    return this.t.buf.bytes.subarray(offset, offset + size);
  }
}

/** `Operator { opcode_index, inputs, outputs, builtin_options_type, builtin_options, custom_options, ... }`. */
export class Operator {
  constructor(private readonly t: Table) {}

  get opcodeIndex(): number { return this.t.uint32(0); }
  /** Tensor indices; -1 marks an optional input that is absent. */
  get inputs(): number[] { return this.t.int32s(1, 'operator inputs') ?? []; }
  get outputs(): number[] { return this.t.int32s(2, 'operator outputs') ?? []; }
  get builtinOptionsType(): number { return this.t.uint8(3); }

  /**
   * The builtin options table, checked to be of the union type the op expects (a file whose tag
   * says otherwise is malformed); undefined when the op has none.
   */
  builtinOptions(expected: number, op: string): Table | undefined {
    const options = this.t.table(4, `${op} options`);
    if (options && this.builtinOptionsType !== expected) {
      throw malformed(`a ${op} operator carries builtin options of union type ${this.builtinOptionsType}, not ${expected}`);
    }
    return options;
  }
}

/** ActivationFunctionType values that map onto a tfjs op (NONE maps to none). */
export const ACTIVATIONS: Readonly<Record<number, string | undefined>> = Object.freeze({ 0: undefined, 1: 'Relu', 3: 'Relu6' });
/** The names of ActivationFunctionType values, for messages. */
export const ACTIVATION_NAMES: Readonly<Record<number, string>> = Object.freeze({ 0: 'NONE', 1: 'RELU', 2: 'RELU_N1_TO_1', 3: 'RELU6', 4: 'TANH', 5: 'SIGN_BIT' });
/** Padding values and their TF names. */
export const PADDINGS: Readonly<Record<number, string>> = Object.freeze({ 0: 'SAME', 1: 'VALID' });

/**
 * Conv2DOptions and DepthwiseConv2DOptions share padding and strides; the depthwise one adds
 * depth_multiplier before the activation, shifting the later slots by one. Strides default to 1
 * when absent (the schema says 0, which no converter writes; the Python reference used 1).
 */
export interface ConvOptions {
  padding: number;
  strideW: number;
  strideH: number;
  depthMultiplier: number;
  activation: number;
  dilationW: number;
  dilationH: number;
}

export function convOptions(t: Table | undefined, depthwise: boolean): ConvOptions {
  const s = depthwise ? 1 : 0;
  return {
    padding: t?.int8(0) ?? 0,
    strideW: t?.int32(1, 1) ?? 1,
    strideH: t?.int32(2, 1) ?? 1,
    depthMultiplier: depthwise ? t?.int32(3, 1) ?? 1 : 1,
    activation: t?.int8(3 + s) ?? 0,
    dilationW: t?.int32(4 + s, 1) ?? 1,
    dilationH: t?.int32(5 + s, 1) ?? 1,
  };
}

/** Pool2DOptions { padding, stride_w, stride_h, filter_width, filter_height, fused_activation_function }. */
export interface PoolOptions {
  padding: number;
  strideW: number;
  strideH: number;
  filterW: number;
  filterH: number;
  activation: number;
}

export function poolOptions(t: Table | undefined): PoolOptions {
  return {
    padding: t?.int8(0) ?? 0,
    strideW: t?.int32(1, 1) ?? 1,
    strideH: t?.int32(2, 1) ?? 1,
    filterW: t?.int32(3, 1) ?? 1,
    filterH: t?.int32(4, 1) ?? 1,
    activation: t?.int8(5) ?? 0,
  };
}

/** AddOptions, MulOptions and FullyConnectedOptions all start with fused_activation_function. */
export function fusedActivation(t: Table | undefined): number {
  return t?.int8(0) ?? 0;
}

/** SoftmaxOptions { beta: float } (1 when absent: what every classifier writes). */
export function softmaxBeta(t: Table | undefined): number {
  return t?.float32(0, 1) ?? 1;
}

/** ReducerOptions { keep_dims: bool }. */
export function keepDims(t: Table | undefined): boolean {
  return (t?.uint8(0) ?? 0) !== 0;
}

/** SqueezeOptions { squeeze_dims: [int] }. */
export function squeezeDims(t: Table | undefined): number[] {
  return t?.int32s(0, 'squeeze dims') ?? [];
}
