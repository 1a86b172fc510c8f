/**
 * Learning a vocabulary tree in a worker thread (issue 14): at the end of an index run the
 * near-duplicate check (main thread) and the vocabulary learning were one after the other on one
 * core while the other idled; they now run side by side. The same descriptors and options give
 * the same tree as `Vocabulary.learn` in this thread (it is deterministic); if the worker cannot
 * start or fails, the tree is learned here instead.
 */
import { Worker } from 'node:worker_threads';
import { Vocabulary, type LearnOptions } from './vocabulary.ts';

const WORKER_URL = new URL('./learn-worker.mjs', import.meta.url);

/** Below this many descriptors a worker's start-up (~1 s) costs more than it hides: learned here. */
export const WORKER_MIN_DESCRIPTORS = 20_000;

/** `Vocabulary.learn(descriptors, options)` in a worker thread (here for small inputs, or when the worker fails). */
export async function learnInWorker(descriptors: Uint8Array, options: Omit<LearnOptions, 'onProgress'> = {}): Promise<Vocabulary> {
  const here = () => Vocabulary.learn(descriptors, options);
  if (descriptors.length / 32 < WORKER_MIN_DESCRIPTORS) return here();
  let worker: Worker;
  try {
    worker = new Worker(WORKER_URL, { workerData: { descriptors, options }, stdout: false, stderr: false });
  } catch {
    return here();
  }
  const bytes = await new Promise<Uint8Array | undefined>((resolve) => {
    worker.once('message', (m: { bytes?: Uint8Array; error?: string }) => resolve(m.bytes));
    worker.once('error', () => resolve(undefined));
    worker.once('exit', () => resolve(undefined));
  });
  void worker.terminate();
  return bytes ? Vocabulary.fromBytes(bytes) : here();
}
