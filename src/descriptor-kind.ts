/**
 * The names of the descriptors a library can be built with, and their check: a tiny module that
 * loads no tfjs, so that configuration (src/config.ts) and argument parsing can use it. What each
 * one means, and the maths, is in src/library-descriptor.ts.
 */
import { invalidParameter } from './errors.ts';

/**
 * How a library describes images: `regional2` (default for new libraries), `regional` (the
 * default before it: four database sides), `gem` or `pooled` (see src/library-descriptor.ts).
 */
export type LibraryDescriptor = 'regional2' | 'regional' | 'gem' | 'pooled';

/** The descriptors that match query windows against smaller database sides. */
export type RegionalDescriptor = 'regional2' | 'regional';

export const LIBRARY_DESCRIPTORS: readonly LibraryDescriptor[] = Object.freeze(['regional2', 'regional', 'gem', 'pooled']);

/**
 * Chosen from bench/descriptors.ts and bench/instance.ts: `regional2` keeps `regional`'s instance
 * and category retrieval within noise with two backbone passes per image instead of four.
 */
export const DEFAULT_DESCRIPTOR: LibraryDescriptor = 'regional2';

/** Whether `descriptor` is one of the regional ones (smaller database sides, query windows). */
export function isRegional(descriptor: LibraryDescriptor): descriptor is RegionalDescriptor {
  return descriptor === 'regional2' || descriptor === 'regional';
}

/** Checks a descriptor name from a flag, env or request. */
export function checkDescriptor(value: unknown): LibraryDescriptor {
  if (typeof value !== 'string' || !LIBRARY_DESCRIPTORS.includes(value as LibraryDescriptor)) {
    throw invalidParameter('descriptor', `one of ${LIBRARY_DESCRIPTORS.join(', ')}`, value);
  }
  return value as LibraryDescriptor;
}
