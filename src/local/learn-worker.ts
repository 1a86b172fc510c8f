/**
 * A worker thread that learns one vocabulary tree (src/local/learn-thread.ts starts it): the
 * descriptors and options come in `workerData`, the tree's bytes (`Vocabulary.toBytes`) go back in
 * one message, or `{ error }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Vocabulary, type LearnOptions } from './vocabulary.ts';

const { descriptors, options } = workerData as { descriptors: Uint8Array; options: Omit<LearnOptions, 'onProgress'> };
try {
  const bytes = Vocabulary.learn(descriptors, options).toBytes();
  parentPort!.postMessage({ bytes }, [bytes.buffer as ArrayBuffer]);
} catch (err) {
  parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) });
}
