/**
 * The names of the descriptors a library can be built with, and their check: a tiny module that
 * loads no tfjs, so that configuration (src/config.ts) and argument parsing can use it. What each
 * one means, and the maths, is in src/library-descriptor.ts.
 */
import { invalidParameter } from './errors.ts';

/** How a library describes images: `regional` (default), `gem` or `pooled` (see src/library-descriptor.ts). */
export type LibraryDescriptor = 'regional' | 'gem' | 'pooled';

export const LIBRARY_DESCRIPTORS: readonly LibraryDescriptor[] = Object.freeze(['regional', 'gem', 'pooled']);

/** Chosen from bench/descriptors.ts: the only one with instance P@1 ≥ 0.9, and category retrieval above `pooled`. */
export const DEFAULT_DESCRIPTOR: LibraryDescriptor = 'regional';

/** Checks a descriptor name from a flag, env or request. */
export function checkDescriptor(value: unknown): LibraryDescriptor {
  if (typeof value !== 'string' || !LIBRARY_DESCRIPTORS.includes(value as LibraryDescriptor)) {
    throw invalidParameter('descriptor', `one of ${LIBRARY_DESCRIPTORS.join(', ')}`, value);
  }
  return value as LibraryDescriptor;
}
