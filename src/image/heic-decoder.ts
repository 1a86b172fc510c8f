/**
 * HEVC-coded HEIF (HEIC) decoded in this thread by libheif compiled to WebAssembly (libheif-js,
 * the build heic-decode ships: libheif + libde265, no download at install). The primary image is
 * decoded with libheif's default options, so its `irot`/`imir`/`clap` transformations are
 * applied; the result is interleaved 8-bit RGBA. Synchronous and CPU-bound: call it in a worker
 * thread (./heic.ts sends the main thread's images to one). Each call frees what it allocated in
 * the wasm heap (context, handle, image); the heap itself keeps its high-water mark.
 */
import { createRequire } from 'node:module';

/** Interleaved 8-bit RGBA pixels, row-major, `width * height * 4` bytes. */
export interface RgbaImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** libheif's failure, with its own words (`message`) and whether the wasm instance died (`fatal`). */
export class HeicDecodeError extends Error {
  constructor(message: string, readonly fatal = false) {
    super(message);
  }
}

/* The parts of libheif-js's embind API used here (it ships no types for the bundle). */
interface HeifError { code: { value: number }; message: string }
interface HeifChannel { id: { value: number }; width: number; height: number; stride: number; data: Uint8Array }
interface LibHeif {
  heif_context_alloc(): object | null;
  heif_context_free(ctx: object): void;
  heif_context_read_from_memory(ctx: object, data: Uint8Array): HeifError;
  heif_js_context_get_primary_image_handle(ctx: object): object | HeifError;
  heif_image_handle_release(handle: object): void;
  heif_js_decode_image2(handle: object, colorspace: unknown, chroma: unknown): { image: object; width: number; height: number; channels: HeifChannel[] } | HeifError;
  heif_image_release(image: object): void;
  heif_colorspace: { heif_colorspace_RGB: unknown };
  heif_chroma: { heif_chroma_interleaved_RGBA: unknown };
  heif_channel: { heif_channel_interleaved: { value: number } };
}

let instance: LibHeif | undefined;

/** The wasm module of this thread, instantiated on first use and again after a trap. */
function libheif(): LibHeif {
  if (!instance) {
    // libheif-js as heic-decode (the declared dependency) resolves it; the bundle inlines its .wasm
    const fromHeicDecode = createRequire(createRequire(import.meta.url).resolve('heic-decode'));
    const factory = fromHeicDecode('libheif-js/libheif-wasm/libheif-bundle.js') as () => LibHeif;
    instance = factory();
  }
  return instance;
}

function isError(v: unknown): v is HeifError {
  return typeof v === 'object' && v !== null && 'code' in v && typeof (v as HeifError).code?.value === 'number' && (v as HeifError).code.value !== 0;
}

/** Decodes the primary image of a HEIC file; throws `HeicDecodeError` with libheif's message. */
export function decodeHeicHere(input: Uint8Array): RgbaImage {
  let lib: LibHeif;
  try {
    lib = libheif();
  } catch (err) {
    throw new HeicDecodeError(`the HEIC decoder (libheif-js) could not be loaded: ${err instanceof Error ? err.message : String(err)}`, true);
  }
  let ctx: object | null = null;
  let handle: object | undefined;
  let image: object | undefined;
  try {
    ctx = lib.heif_context_alloc();
    if (!ctx) throw new HeicDecodeError('libheif could not allocate a context');
    const read = lib.heif_context_read_from_memory(ctx, input);
    if (isError(read)) throw new HeicDecodeError(read.message);
    const h = lib.heif_js_context_get_primary_image_handle(ctx);
    if (isError(h)) throw new HeicDecodeError(h.message);
    handle = h;
    const decoded = lib.heif_js_decode_image2(handle, lib.heif_colorspace.heif_colorspace_RGB, lib.heif_chroma.heif_chroma_interleaved_RGBA);
    if (isError(decoded)) throw new HeicDecodeError(decoded.message);
    if (!decoded || !Array.isArray(decoded.channels)) throw new HeicDecodeError('libheif decoded no image');
    image = decoded.image;
    const plane = decoded.channels.find((c) => c.id.value === lib.heif_channel.heif_channel_interleaved.value);
    if (!plane) throw new HeicDecodeError('libheif decoded no RGBA plane');
    const { width, height, stride } = plane;
    const row = width * 4;
    // plane.data views the wasm heap: copy it out before the image is released
    const data = new Uint8Array(row * height);
    if (stride === row) data.set(plane.data.subarray(0, row * height));
    else for (let y = 0; y < height; y++) data.set(plane.data.subarray(y * stride, y * stride + row), y * row);
    return { data, width, height };
  } catch (err) {
    if (err instanceof HeicDecodeError) throw err;
    // a wasm trap (abort, out of bounds, out of memory) leaves the instance unusable: load a fresh one next time
    instance = undefined;
    throw new HeicDecodeError(err instanceof Error ? err.message : String(err), true);
  } finally {
    try {
      if (image) lib.heif_image_release(image);
      if (handle) lib.heif_image_handle_release(handle);
      if (ctx) lib.heif_context_free(ctx);
    } catch {
      instance = undefined;
    }
  }
}
