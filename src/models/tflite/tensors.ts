/**
 * A TFLite tensor's constant data as numbers: decoding by element type, dequantizing to float32
 * and the two layout changes the converter needs (transpose, reshape). Each step does the
 * arithmetic of the Python reference (numpy) in the same order, so the float32 results are the
 * same bits: (q - zero_point) is exact in float64, times the float32 scale widened to float64,
 * rounded once to float32.
 */
import { malformed } from './flatbuffer.ts';
import { FLOAT32, TENSOR_TYPES, type Tensor } from './schema.ts';

/** What the converter knows of one tensor of the subgraph. */
export interface TensorInfo {
  index: number;
  shape: number[];
  type: number;
  /** The name up to the first ';' (newer converters join the names of fused tensors with ';'). */
  name: string | undefined;
  quant: { scale: number[]; zeroPoint: number[]; dim: number } | undefined;
  /** Constant data (a view into the file), undefined for activations. */
  data: Uint8Array | undefined;
}

/** Numbers in row-major order with their shape. */
export interface NdArray<T extends NumericArray = NumericArray> {
  data: T;
  shape: number[];
}

export type NumericArray = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** Reads a tensor's description; `buffers` are the model's buffer contents by index. */
export function tensorInfo(t: Tensor, index: number, buffers: (Uint8Array | undefined)[]): TensorInfo {
  const q = t.quantization();
  const scale = q?.scale;
  let quant: TensorInfo['quant'];
  if (q && scale && scale.length > 0) {
    const zp = q.zeroPoint;
    quant = { scale, zeroPoint: zp && zp.length > 0 ? zp : scale.map(() => 0), dim: q.quantizedDimension };
  }
  const name = t.name;
  return { index, shape: t.shape, type: t.type, name: name ? name.split(';')[0] : name, quant, data: buffers[t.buffer] };
}

/** The number of elements of `shape` (1 for a scalar); throws on a negative or non-integer dimension. */
export function elementCount(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw malformed(`${what} has shape [${shape.join(',')}]`);
    n *= d;
  }
  return n;
}

/** IEEE half → number (exact: every half is a float32). */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The tensor's data as numbers of its own type (int64 as float64 numbers, float16 as float32). */
export function decode(t: TensorInfo): NdArray {
  const what = `tensor ${t.name ?? t.index}`;
  const type = TENSOR_TYPES[t.type];
  if (!type) throw malformed(`${what} has element type ${t.type}, which the converter does not read`);
  if (!t.data) throw malformed(`${what} has no data`);
  const n = elementCount(t.shape, what);
  if (t.data.length !== n * type.bytes) {
    throw malformed(`${what} has ${t.data.length} bytes of data for shape [${t.shape.join(',')}] of ${type.name} (${n * type.bytes} expected)`);
  }
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const read = <T extends NumericArray>(out: T, get: (i: number) => number): NdArray<T> => {
    for (let i = 0; i < n; i++) out[i] = get(i);
    return { data: out, shape: [...t.shape] };
  };
  switch (type.name) {
    case 'FLOAT32': return read(new Float32Array(n), (i) => view.getFloat32(4 * i, true));
    case 'FLOAT16': return read(new Float32Array(n), (i) => halfToNumber(view.getUint16(2 * i, true)));
    case 'INT32': return read(new Int32Array(n), (i) => view.getInt32(4 * i, true));
    case 'UINT8': return { data: new Uint8Array(t.data), shape: [...t.shape] }; // a copy, and a plain Uint8Array even if the file is a Buffer
    case 'INT64': return read(new Float64Array(n), (i) => Number(view.getBigInt64(8 * i, true)));
    case 'INT16': return read(new Int16Array(n), (i) => view.getInt16(2 * i, true));
    default: return read(new Int8Array(n), (i) => view.getInt8(i));
  }
}

/** Cast to int32 as numpy's astype(int32) does for in-range values (truncation toward zero). */
export function toInt32(a: NdArray): NdArray<Int32Array> {
  return { data: Int32Array.from(a.data), shape: [...a.shape] };
}

/**
 * The real values: scale * (q - zero_point), per tensor or per channel along the quantized
 * dimension; float32 tensors and tensors without quantization are only cast.
 */
export function dequantize(t: TensorInfo): NdArray<Float32Array> {
  const a = decode(t);
  if (!t.quant || t.type === FLOAT32) return { data: Float32Array.from(a.data), shape: a.shape };
  const { scale, zeroPoint, dim } = t.quant;
  if (zeroPoint.length !== scale.length && zeroPoint.length !== 1) {
    throw malformed(`tensor ${t.name ?? t.index} has ${scale.length} scales but ${zeroPoint.length} zero points`);
  }
  const zp = (c: number): number => zeroPoint[zeroPoint.length === 1 ? 0 : c]; // one zero point broadcasts, as in numpy
  const out = new Float32Array(a.data.length);
  if (scale.length === 1) {
    for (let i = 0; i < out.length; i++) out[i] = (a.data[i] - zeroPoint[0]) * scale[0];
    return { data: out, shape: a.shape };
  }
  if (dim < 0 || dim >= a.shape.length || a.shape[dim] !== scale.length) {
    throw malformed(`tensor ${t.name ?? t.index} has ${scale.length} scales along dimension ${dim} of shape [${a.shape.join(',')}]`);
  }
  const inner = a.shape.slice(dim + 1).reduce((p, d) => p * d, 1);
  for (let i = 0; i < out.length; i++) {
    const c = Math.floor(i / inner) % scale.length;
    out[i] = (a.data[i] - zp(c)) * scale[c];
  }
  return { data: out, shape: a.shape };
}

/** numpy.transpose(a, perm): out.shape[k] = a.shape[perm[k]]. */
export function transpose<T extends NumericArray>(a: NdArray<T>, perm: readonly number[]): NdArray<T> {
  const rank = a.shape.length;
  if (perm.length !== rank) throw malformed(`a tensor of shape [${a.shape.join(',')}] cannot be transposed by [${perm.join(',')}]`);
  const shape = perm.map((p) => a.shape[p]);
  const srcStrides = new Array<number>(rank);
  for (let k = rank - 1, s = 1; k >= 0; k--) { srcStrides[k] = s; s *= a.shape[k]; }
  const strides = perm.map((p) => srcStrides[p]); // source stride of each output axis
  const out = new (a.data.constructor as new (n: number) => T)(a.data.length);
  const index = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = a.data[src];
    for (let k = rank - 1; k >= 0; k--) { // odometer over the output index
      index[k]++;
      src += strides[k];
      if (index[k] < shape[k]) break;
      src -= strides[k] * shape[k];
      index[k] = 0;
    }
  }
  return { data: out, shape };
}

/** numpy.reshape: the same data under another shape with as many elements. */
export function reshape<T extends NumericArray>(a: NdArray<T>, shape: number[]): NdArray<T> {
  if (elementCount(shape, 'a reshaped tensor') !== a.data.length) {
    throw malformed(`a tensor of shape [${a.shape.join(',')}] cannot be reshaped to [${shape.join(',')}]`);
  }
  return { data: a.data, shape };
}
