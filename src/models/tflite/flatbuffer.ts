/**
 * A bounds-checked FlatBuffers table reader on top of the `flatbuffers` package's ByteBuffer.
 *
 * ByteBuffer reads a Uint8Array byte by byte and does not check offsets: past the end it yields
 * `undefined`, which turns into 0 or NaN without a word. A TFLite file given to
 * `pixdex models import` is untrusted, so every offset, vtable and vector is checked here against
 * the buffer before it is read, and a bad one throws UNSUPPORTED_MODEL. Vector lengths are checked
 * against the bytes they would span, so no loop runs longer than the file is big.
 */
import { ByteBuffer } from 'flatbuffers';
import { PixdexError } from '../../errors.ts';

/** The error for bytes that are not a readable TFLite flatbuffer. */
export function malformed(what: string): PixdexError {
  return new PixdexError(
    'UNSUPPORTED_MODEL',
    `Not a readable TFLite model: ${what}. Expected a .tflite file (a FlatBuffer with the identifier TFL3) as written by the TensorFlow Lite converter; check that the file is complete and not another format.`,
  );
}

/** The byte positions of a vector's elements: `start + i * size`. */
export interface VectorSpan {
  start: number;
  length: number;
}

/** A ByteBuffer whose reads refuse positions outside the buffer. */
export class CheckedBuffer {
  readonly bb: ByteBuffer;
  readonly size: number;
  private readonly utf8 = new TextDecoder('utf-8');

  constructor(readonly bytes: Uint8Array) {
    this.bb = new ByteBuffer(bytes);
    this.size = bytes.length;
  }

  /** Throws unless `[pos, pos + n)` lies inside the buffer. */
  check(pos: number, n: number, what: string): void {
    if (!Number.isSafeInteger(pos) || pos < 0 || n < 0 || pos + n > this.size) {
      throw malformed(`${what} at byte ${pos} (${n} bytes) lies outside the ${this.size}-byte file`);
    }
  }

  int8(pos: number): number { this.check(pos, 1, 'a byte'); return this.bb.readInt8(pos); }
  uint8(pos: number): number { this.check(pos, 1, 'a byte'); return this.bb.readUint8(pos); }
  uint16(pos: number): number { this.check(pos, 2, 'a short'); return this.bb.readUint16(pos); }
  int32(pos: number): number { this.check(pos, 4, 'an int'); return this.bb.readInt32(pos); }
  uint32(pos: number): number { this.check(pos, 4, 'an int'); return this.bb.readUint32(pos); }
  float32(pos: number): number { this.check(pos, 4, 'a float'); return this.bb.readFloat32(pos); }
  /** A 64-bit integer as a number (exact up to 2^53, which covers every offset and zero point). */
  int64(pos: number): number { this.check(pos, 8, 'a long'); return Number(this.bb.readInt64(pos)); }
  uint64(pos: number): number { this.check(pos, 8, 'a long'); return Number(this.bb.readUint64(pos)); }

  /** UTF-8 text; invalid sequences become U+FFFD rather than failing (names are for display). */
  text(pos: number, n: number): string {
    this.check(pos, n, 'a string');
    return this.utf8.decode(this.bytes.subarray(pos, pos + n));
  }

  /** The root table, after checking the 4-byte file identifier at bytes 4..8. */
  root(identifier: string): Table {
    if (this.size < 8) throw malformed(`the file is ${this.size} bytes long, too short for a FlatBuffer header`);
    if (this.bb.getBufferIdentifier() !== identifier) {
      const seen = Array.from(this.bytes.subarray(4, 8), (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
      throw malformed(`the file identifier is "${seen}", not "${identifier}"`);
    }
    return new Table(this, this.uint32(0), 'the root table');
  }
}

/** One FlatBuffers table: fields are found through its vtable by slot number (0, 1, 2... in schema order). */
export class Table {
  private readonly vtable: number;
  private readonly vtableSize: number;

  constructor(readonly buf: CheckedBuffer, readonly pos: number, what: string) {
    buf.check(pos, 4, what);
    this.vtable = pos - buf.int32(pos);
    buf.check(this.vtable, 4, `the vtable of ${what}`);
    this.vtableSize = buf.uint16(this.vtable);
    if (this.vtableSize < 4 || this.vtableSize % 2 !== 0) throw malformed(`the vtable of ${what} has size ${this.vtableSize}`);
    buf.check(this.vtable, this.vtableSize, `the vtable of ${what}`);
  }

  /** The byte position of field `slot`, or undefined when the field is absent (its default applies). */
  fieldPos(slot: number): number | undefined {
    const entry = 4 + 2 * slot;
    if (entry >= this.vtableSize) return undefined;
    const offset = this.buf.uint16(this.vtable + entry);
    return offset === 0 ? undefined : this.pos + offset;
  }

  int8(slot: number, fallback = 0): number { const p = this.fieldPos(slot); return p === undefined ? fallback : this.buf.int8(p); }
  uint8(slot: number, fallback = 0): number { const p = this.fieldPos(slot); return p === undefined ? fallback : this.buf.uint8(p); }
  int32(slot: number, fallback = 0): number { const p = this.fieldPos(slot); return p === undefined ? fallback : this.buf.int32(p); }
  uint32(slot: number, fallback = 0): number { const p = this.fieldPos(slot); return p === undefined ? fallback : this.buf.uint32(p); }
  float32(slot: number, fallback = 0): number { const p = this.fieldPos(slot); return p === undefined ? fallback : this.buf.float32(p); }
  uint64(slot: number, fallback = 0): number { const p = this.fieldPos(slot); return p === undefined ? fallback : this.buf.uint64(p); }

  /** Follows the unsigned offset stored in field `slot`. */
  private target(slot: number): number | undefined {
    const p = this.fieldPos(slot);
    return p === undefined ? undefined : p + this.buf.uint32(p);
  }

  /** A sub-table (including a union's value), or undefined when absent. */
  table(slot: number, what: string): Table | undefined {
    const p = this.target(slot);
    return p === undefined ? undefined : new Table(this.buf, p, what);
  }

  string(slot: number): string | undefined {
    const p = this.target(slot);
    if (p === undefined) return undefined;
    return this.buf.text(p + 4, this.buf.uint32(p));
  }

  /** Where the elements of vector field `slot` lie, each `elementSize` bytes, checked against the file. */
  vector(slot: number, elementSize: number, what: string): VectorSpan | undefined {
    const p = this.target(slot);
    if (p === undefined) return undefined;
    const length = this.buf.uint32(p);
    this.buf.check(p + 4, length * elementSize, what);
    return { start: p + 4, length };
  }

  int32s(slot: number, what: string): number[] | undefined {
    const v = this.vector(slot, 4, what);
    return v && Array.from({ length: v.length }, (_, i) => this.buf.int32(v.start + 4 * i));
  }

  float32s(slot: number, what: string): number[] | undefined {
    const v = this.vector(slot, 4, what);
    return v && Array.from({ length: v.length }, (_, i) => this.buf.float32(v.start + 4 * i));
  }

  int64s(slot: number, what: string): number[] | undefined {
    const v = this.vector(slot, 8, what);
    return v && Array.from({ length: v.length }, (_, i) => this.buf.int64(v.start + 8 * i));
  }

  /** A [ubyte] vector as a view into the file (no copy). */
  bytes(slot: number, what: string): Uint8Array | undefined {
    const v = this.vector(slot, 1, what);
    return v && this.buf.bytes.subarray(v.start, v.start + v.length);
  }

  /** A vector of tables; `[]` when absent. */
  tables(slot: number, what: string): Table[] {
    const v = this.vector(slot, 4, what);
    if (!v) return [];
    return Array.from({ length: v.length }, (_, i) => {
      const at = v.start + 4 * i;
      return new Table(this.buf, at + this.buf.uint32(at), `${what} ${i}`);
    });
  }
}
