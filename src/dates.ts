/**
 * Capture dates as pixdex compares them (pure: no I/O). Photos' EXIF dates become ISO 8601
 * strings, with the camera's UTC offset when it recorded one; a time without an offset (in a
 * photo or in an `after`/`before` bound) is read as UTC, so "2021-06-05" in a filter and a photo
 * taken at "2021-06-05T09:00:00" by its camera's clock compare as the same day.
 */
import { InvalidParameterError, invalidParameter } from './errors.ts';

/** An EXIF date ("2021:06:05 14:30:00", offset "+02:00") as ISO 8601, or undefined when it is not a real date (e.g. "0000:00:00 00:00:00"). */
export function exifDate(value: unknown, offset: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number);
  if (!isCalendarTime(y, mo, d, h, mi, s)) return undefined;
  const zone = typeof offset === 'string' && /^[+-](0\d|1[0-4]):[0-5]\d$/.test(offset.trim()) ? offset.trim() : '';
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${zone}`;
}

/** What a date parameter expects, in words (its INVALID_PARAMETER message and its documentation). */
export const DATE_EXPECTED = 'ISO 8601 date or date-time (e.g. 2021-06-05, 2021-06-05T14:30, 2021-06-05T14:30:00+02:00)';

/** ISO 8601 dates pixdex accepts: a date, or a date and time (minutes, seconds, fraction), with Z or ±hh:mm or no offset. */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * Milliseconds since 1970 of an ISO 8601 date or date-time; no offset is read as UTC, a date alone
 * is its midnight. Undefined when it is not one (wrong shape, or a day that does not exist).
 */
export function instantOf(iso: string): number | undefined {
  const m = ISO.exec(iso.trim());
  if (!m) return undefined;
  const [y, mo, d, h = 0, mi = 0, s = 0] = m.slice(1, 7).map((x) => (x === undefined ? undefined : Number(x))) as number[];
  if (!isCalendarTime(y, mo, d, h, mi, s)) return undefined;
  if (m[4] === undefined && m[8] !== undefined) return undefined; // an offset needs a time
  const ms = m[7] ? Math.floor(Number(m[7]) * 1000) : 0;
  let t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  if (m[8] && m[8] !== 'Z') {
    const sign = m[8][0] === '-' ? -1 : 1;
    const [oh, om] = m[8].slice(1).split(':').map(Number);
    if (oh > 14 || om > 59) return undefined;
    t -= sign * (oh * 60 + om) * 60_000;
  }
  return t;
}

function isCalendarTime(y: number, mo: number, d: number, h: number, mi: number, s: number): boolean {
  if (y < 1000 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return false;
  return new Date(Date.UTC(y, mo - 1, d)).getUTCDate() === d; // no 31 April
}

/** A capture-time window in ms since 1970: [after, before). */
export interface DateWindow {
  after: number;
  before: number;
}

/** The `after`/`before` options as a window, checked; undefined when neither is given. */
export function dateWindow(o: { after?: string; before?: string }): DateWindow | undefined {
  if (o.after === undefined && o.before === undefined) return undefined;
  const bound = (name: 'after' | 'before', value: string | undefined, open: number): number => {
    if (value === undefined) return open;
    const t = typeof value === 'string' ? instantOf(value) : undefined;
    if (t === undefined) throw invalidParameter(name, DATE_EXPECTED, value);
    return t;
  };
  const after = bound('after', o.after, -Infinity);
  const before = bound('before', o.before, Infinity);
  if (after >= before) throw new InvalidParameterError(`Expected after (${o.after}) to be earlier than before (${o.before}): no time is in that range; swap them or widen it.`);
  return { after, before };
}
