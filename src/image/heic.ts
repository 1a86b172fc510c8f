/**
 * HEIC (HEVC-coded HEIF) for the sharp pipelines: sharp's prebuilt libvips has no HEVC decoder,
 * so a HEIC file is decoded to RGBA by the wasm libheif (./heic-decoder.ts) and handed to sharp
 * as raw pixels; resizing, cropping and encoding then stay sharp's, shared with every format.
 * The container is read first (./heif.ts): a file cut short, or one whose `ispe` declares more
 * than `maxInputPixels`, is refused before anything is decoded or allocated. Decoding is
 * CPU-bound and synchronous: worker threads (index and query workers) decode in their own
 * thread; the main thread (uploads, thumbnails) sends its images to one decoder thread, started
 * on first use and never keeping the process alive.
 */
import { isMainThread, Worker } from 'node:worker_threads';
import sharp, { type Sharp } from 'sharp';
import { BadImageError, PixdexError } from '../errors.ts';
import { decodeHeicHere, HeicDecodeError, type RgbaImage } from './heic-decoder.ts';
import type { HeicJob, HeicReply } from './heic-thread.ts';
import { inspectHeif } from './heif.ts';

/** A decoded HEIC, ready for sharp. */
export interface HeicImage {
  /** A new sharp pipeline over the decoded pixels (RGBA, already rotated by `irot`/`imir`). */
  pipeline(): Sharp;
  /** Size after the HEIF transformations. */
  width: number;
  height: number;
}

/** Whether the input is a HEIF file whose primary image is HEVC-coded (a HEIC), by its boxes. */
export function isHeic(input: Uint8Array): boolean {
  return inspectHeif(input)?.codec === 'hevc';
}

/**
 * Decodes a HEIC for sharp; undefined when the input is not one (other formats go to sharp as
 * they are). Failures are `BadImageError`s: TRUNCATED_IMAGE (the boxes run past the end),
 * IMAGE_TOO_LARGE (from `ispe`, before decoding), CORRUPT_IMAGE (libheif's words).
 */
export async function openHeic(input: Uint8Array, maxInputPixels: number, what: string): Promise<HeicImage | undefined> {
  const info = inspectHeif(input);
  if (!info || info.codec !== 'hevc') return undefined;
  const pixels = info.width * info.height;
  if (pixels > maxInputPixels) {
    throw new BadImageError('IMAGE_TOO_LARGE', `${what} is ${info.width}x${info.height} (${pixels} pixels), over the limit of ${maxInputPixels} pixels (maxInputPixels)`);
  }
  if (!info.complete) throw new BadImageError('TRUNCATED_IMAGE', `${what} is truncated: its HEIF boxes run past the end of the file`);
  if (pixels === 0) throw new BadImageError('CORRUPT_IMAGE', `${what} could not be decoded: its HEIF container declares no image size (ispe)`);
  let rgba: RgbaImage;
  try {
    rgba = isMainThread ? await decodeInThread(input) : decodeHeicHere(input);
  } catch (err) {
    if (err instanceof PixdexError) throw err;
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
    throw new BadImageError('CORRUPT_IMAGE', `${what} could not be decoded (HEIC): ${message}`, { cause: err });
  }
  const { width, height } = rgba;
  if (width * height > maxInputPixels) {
    throw new BadImageError('IMAGE_TOO_LARGE', `${what} decoded to ${width}x${height}, over the limit of ${maxInputPixels} pixels (maxInputPixels)`);
  }
  const data = Buffer.from(rgba.data.buffer, rgba.data.byteOffset, rgba.data.length);
  return { width, height, pipeline: () => sharp(data, { raw: { width, height, channels: 4 }, limitInputPixels: maxInputPixels }) };
}

/** The main thread's decoder thread and its jobs in flight. */
let thread: Worker | undefined;
const pending = new Map<number, { resolve: (image: RgbaImage) => void; reject: (err: Error) => void }>();
let nextId = 1;

function decoderThread(): Worker {
  if (thread) return thread;
  const worker = new Worker(new URL('./heic-thread.mjs', import.meta.url), { stdout: false, stderr: false });
  worker.on('message', (reply: HeicReply) => {
    const job = pending.get(reply.id);
    if (!job) return;
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if ('error' in reply) job.reject(new HeicDecodeError(reply.error, reply.fatal));
    else job.resolve({ data: reply.data, width: reply.width, height: reply.height });
  });
  const fail = (why: string) => {
    if (thread === worker) thread = undefined;
    for (const job of pending.values()) job.reject(new PixdexError('WORKER_FAILED', `the HEIC decoder thread ${why}; try again`));
    pending.clear();
  };
  worker.on('error', (err) => fail(`failed: ${err.message}`));
  worker.on('exit', (code) => fail(`exited with code ${code}`));
  worker.unref();
  thread = worker;
  return worker;
}

/** Decodes in the decoder thread; its event loop reference is held only while jobs are in flight. */
function decodeInThread(bytes: Uint8Array): Promise<RgbaImage> {
  const worker = decoderThread();
  const id = nextId++;
  return new Promise<RgbaImage>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.ref();
    // a copy of just these bytes (a view's whole buffer would be cloned), moved to the thread
    const job: HeicJob = { id, bytes: new Uint8Array(bytes) };
    worker.postMessage(job, [job.bytes.buffer as ArrayBuffer]);
  });
}
