/**
 * Local features (issue 14): keypoints with binary descriptors, the matches between two images'
 * features, and the outcome of geometric verification. Shared by `features.ts` (OpenCV.js ORB),
 * `match.ts` (Hamming matching), `verify.ts` (Hough voting, homography outline),
 * `vocabulary.ts` (binary visual words) and `inverted.ts` (the visual-word inverted index).
 */

/** Bytes of one ORB descriptor (256 bits). */
export const DESCRIPTOR_BYTES = 32;

/** One image's local features, at the working size they were detected at. */
export interface LocalFeatures {
  /** Width and height of the (resized, EXIF-oriented) greyscale image the keypoints are in, px. */
  width: number;
  height: number;
  count: number;
  /** Per keypoint: x, y (px), size (px, diameter), angle (degrees 0..360): 4 floats each. */
  keypoints: Float32Array;
  /** `count` × `DESCRIPTOR_BYTES` bytes, keypoint order. */
  descriptors: Uint8Array;
}

/** A tentative correspondence: query keypoint `q` ↔ reference keypoint `r`. */
export interface Match {
  q: number;
  r: number;
  /** Best / second-best Hamming distance (lower is more distinctive). */
  ratio: number;
}

/** What geometric verification of one (query, reference) pair found. */
export interface Verification {
  /** Matches that agree on one geometric transform (0 when too few matches). */
  inliers: number;
  /** Indexes into the matches array of those inliers. */
  members: number[];
}

/** A visual word id (a leaf of the vocabulary tree). */
export type WordId = number;
