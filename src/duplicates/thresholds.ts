/**
 * The duplicate thresholds, measured (bench/duplicates.ts; README "Duplicates").
 * PROVISIONAL until measured: see the closing note.
 */
import type { DuplicateThresholds } from './groups.ts';

export const DEFAULT_THRESHOLDS: Readonly<DuplicateThresholds> = Object.freeze({
  nearCosine: 0.9,
  nearInliers: 12,
  similarCosine: 0.8,
});
