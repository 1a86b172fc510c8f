/**
 * The duplicate thresholds, measured with bench/duplicates.ts (all 1,360 oxford_flowers17 photos +
 * 350 generated copies, flowers17's own same-photograph pairs judged by eye; README "Find
 * duplicates"): near at cosine ≥ 0.75 with ≥ 25 inliers gave pair precision 1.000, recall 0.989.
 * 25 inliers sits above the 21 two different photos share through one photographer's watermark;
 * lowering the cosine to 0.70 found no more true pairs. Without local
 * features the cosine alone: 0.96 kept precision 1.000 (recall 0.583; the closest different
 * photos reach 0.935). `similar` (bursts, a step to the side) is measured on smvs re-photographs
 * by bench/duplicates-smvs.ts.
 */
import type { DuplicateThresholds } from './groups.ts';

export const DEFAULT_THRESHOLDS: Readonly<DuplicateThresholds> = Object.freeze({
  nearCosine: 0.75,
  nearInliers: 25,
  nearCosineAlone: 0.96,
  similarCosine: 0.92,
});
