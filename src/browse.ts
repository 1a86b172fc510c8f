/**
 * Browsing the library (`GET /api/images`, the web page's Browse view): its images page by page
 * in id order (the order they were added), all of them or one label's.
 */
import { intParam } from './errors.ts';
import { MAX_IMAGE_ID, PAGE_LIMIT } from './contracts/limits.ts';
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
}

/** One page of the library, and how many images there are in all (of the label, when filtered). */
export interface BrowsePage {
  images: Array<ImageRecord & { id: number }>;
  total: number;
  offset: number;
  limit: number;
}

/**
 * A page of the library. Unfiltered it reads only the page (LMDB skips to the offset); by label
 * it walks the images in id order until the page is full, and takes the total from the label counts.
 */
export function browse(records: Records, o: BrowseOptions = {}): BrowsePage {
  const offset = intParam('offset', o.offset ?? 0, 0, MAX_IMAGE_ID);
  const limit = intParam('limit', o.limit ?? PAGE_LIMIT.default, PAGE_LIMIT.min, PAGE_LIMIT.max);
  const images: BrowsePage['images'] = [];
  if (o.label === undefined) {
    for (const { id, rec } of records.images({ offset, limit })) images.push({ id, ...rec });
    return { images, total: records.count(), offset, limit };
  }
  const label = checkLabel(o.label);
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
