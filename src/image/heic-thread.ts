/**
 * The HEIC decoder thread: decodes the jobs the main thread sends (./heic.ts) one at a time with
 * the wasm libheif, and sends the RGBA pixels back (transferred, not copied).
 */
import { parentPort } from 'node:worker_threads';
import { decodeHeicHere, HeicDecodeError } from './heic-decoder.ts';

/** A job: its id and the encoded file. */
export interface HeicJob {
  id: number;
  bytes: Uint8Array;
}

/** A job's answer: the pixels, or libheif's message. */
export type HeicReply =
  | { id: number; data: Uint8Array; width: number; height: number }
  | { id: number; error: string; fatal: boolean };

parentPort?.on('message', (job: HeicJob) => {
  let reply: HeicReply;
  try {
    const image = decodeHeicHere(job.bytes);
    reply = { id: job.id, ...image };
    parentPort?.postMessage(reply, [image.data.buffer as ArrayBuffer]);
    return;
  } catch (err) {
    reply = { id: job.id, error: err instanceof Error ? err.message : String(err), fatal: err instanceof HeicDecodeError && err.fatal };
  }
  parentPort?.postMessage(reply);
});
