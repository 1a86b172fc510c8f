/**
 * Browsing the library (`GET /api/images`, the web page's Browse view): its images page by page,
 * in id order (the order they were added) or by capture date (newest first), all of them or one
 * label's, optionally within a capture-date window.
 */
import { intParam } from './errors.ts';
import { MAX_IMAGE_ID, PAGE_LIMIT } from './contracts/limits.ts';
import type { CaptureDates } from './capture-dates.ts';
import { dateWindow } from './dates.ts';
import type { ImageRecord } from './store/lmdb.ts';
import { checkLabel, type Records } from './store/records.ts';

/** Which page: `limit` images after skipping `offset`, optionally only those labelled `label`. */
export interface BrowseOptions {
  /** Images to skip (default: 0). */
  offset?: number;
  /** Images per page (default: PAGE_LIMIT.default, at most PAGE_LIMIT.max). */
  limit?: number;
  /** Only images with this label. */
  label?: string;
  /** `added` (default): in the order images were added; `taken`: by capture date, newest first, undated last. */
  order?: 'added' | 'taken';
  /** Only images taken at or after this time (ISO 8601; undated images are left out when after or before is given). */
  after?: string;
  /** Only images taken before this time (exclusive). */
  before?: string;
}

/** One page of the library, and how many images there are in all (that match, when filtered). */
export interface BrowsePage {
  images: Array<ImageRecord & { id: number }>;
  total: number;
  offset: number;
  limit: number;
}

/**
 * A page of the library. In the order added and unfiltered it reads only the page (LMDB skips to
 * the offset); by label it walks the images in id order until the page is full, and takes the
 * total from the label counts. By date, or within a date window, it ranks the matching ids by
 * their capture instants (kept in memory, src/capture-dates.ts) and reads only the page's records.
 */
export function browse(records: Records, dates: Pick<CaptureDates, 'of' | 'refresh'>, o: BrowseOptions = {}): BrowsePage {
  const offset = intParam('offset', o.offset ?? 0, 0, MAX_IMAGE_ID);
  const limit = intParam('limit', o.limit ?? PAGE_LIMIT.default, PAGE_LIMIT.min, PAGE_LIMIT.max);
  const label = o.label === undefined ? undefined : checkLabel(o.label);
  const window = dateWindow(o);
  const images: BrowsePage['images'] = [];
  if (o.order === 'taken' || window) {
    dates.refresh();
    const ids: number[] = [];
    for (const { id, rec } of records.images()) {
      if (label !== undefined && rec.label !== label) continue;
      const t = dates.of(id);
      if (window && !(t >= window.after && t < window.before)) continue;
      ids.push(id);
    }
    // Newest first; undated (NaN) last, in the order added; ties by id.
    if (o.order === 'taken') ids.sort((a, b) => rank(dates.of(b), dates.of(a)) || a - b);
    for (const id of ids.slice(offset, offset + limit)) {
      const rec = records.get(id);
      if (rec) images.push({ id, ...rec });
    }
    return { images, total: ids.length, offset, limit };
  }
  if (label === undefined) {
    for (const { id, rec } of records.images({ offset, limit })) images.push({ id, ...rec });
    return { images, total: records.count(), offset, limit };
  }
  const total = records.labels().find((l) => l.label === label)?.count ?? 0;
  let skipped = 0;
  if (offset < total) {
    for (const { id, rec } of records.images()) {
      if (rec.label !== label) continue;
      if (skipped++ < offset) continue;
      images.push({ id, ...rec });
      if (images.length === limit) break;
    }
  }
  return { images, total, offset, limit };
}

/** Compares capture instants, a NaN (undated) below every date. */
function rank(x: number, y: number): number {
  if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : -1;
  if (Number.isNaN(y)) return 1;
  return x - y;
}
