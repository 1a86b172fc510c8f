/**
 * `engine.duplicates()`: compares the images not checked yet with their neighbours, then groups
 * the stored evidence by kind under the measured thresholds (or a caller's cosine threshold).
 */
import { InvalidParameterError } from '../errors.ts';
import type { CheckProgress, CheckSummary, DuplicateFinder } from './finder.ts';
import { DUPLICATE_KINDS, type DuplicateGroup, type DuplicateKind, type DuplicateThresholds } from './groups.ts';
import { DEFAULT_THRESHOLDS } from './thresholds.ts';

export interface DuplicateOptions {
  /** Default `near`. */
  kind?: DuplicateKind;
  /** The cosine a pair needs to count as this kind (default: the measured threshold of the kind; not for `exact`). */
  threshold?: number;
  signal?: AbortSignal;
  onProgress?: (p: CheckProgress) => void;
}

export interface DuplicateReport {
  kind: DuplicateKind;
  /** The thresholds the groups were formed with. */
  thresholds: DuplicateThresholds;
  /** Images in groups, and groups. */
  images: number;
  groups: DuplicateGroup[];
  /** Images compared with their neighbours by this call (new or changed since the last check). */
  checked: CheckSummary;
}

export async function duplicateReport(finder: DuplicateFinder, o: DuplicateOptions = {}): Promise<DuplicateReport> {
  const kind = o.kind ?? 'near';
  if (!DUPLICATE_KINDS.includes(kind)) throw new InvalidParameterError(`kind must be one of ${DUPLICATE_KINDS.join(', ')}, but received ${JSON.stringify(kind)}`);
  const t = thresholdsFor(kind, o.threshold);
  const checked = await finder.check({ signal: o.signal, onProgress: o.onProgress });
  const groups = finder.groups(kind, t);
  return { kind, thresholds: t, images: groups.reduce((n, g) => n + g.members.length, 0), groups, checked };
}

/** The measured thresholds, with the asked kind's cosine replaced by `threshold`. */
export function thresholdsFor(kind: DuplicateKind, threshold: number | undefined): DuplicateThresholds {
  const t = { ...DEFAULT_THRESHOLDS };
  if (threshold === undefined) return t;
  if (kind === 'exact') throw new InvalidParameterError('--threshold does not apply to exact duplicates (the same bytes)');
  if (!Number.isFinite(threshold) || threshold <= 0 || threshold > 1) throw new InvalidParameterError(`threshold must be a cosine in (0, 1], but received ${threshold}`);
  if (kind === 'near') {
    t.nearCosine = threshold;
    t.nearCosineAlone = Math.max(threshold, t.nearCosineAlone);
  }
  else t.similarCosine = threshold;
  return t;
}
