/**
 * The shipped HEIC fixtures (test/fixtures/heic, made by scripts/make-heic-fixtures.mjs) and the
 * damaged copies the tests make of them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'heic');
/** A drawn, textured scene: 640x480 HEVC in HEIF. */
export const HEIC_SCENE = path.join(DIR, 'scene.heic');
/** The same scene coded at 160x120 with an `irot` of 90° anticlockwise: shown 120x160. */
export const HEIC_ROTATED = path.join(DIR, 'rotated.heic');

/** A copy whose every `ispe` property claims `width`x`height` (the coded data is unchanged). */
export function heicWithSize(heic: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(heic);
  for (let at = out.indexOf('ispe'); at >= 0; at = out.indexOf('ispe', at + 4)) {
    out.writeUInt32BE(width, at + 8); // after the type and the full box's version/flags
    out.writeUInt32BE(height, at + 12);
  }
  return out;
}

/** A copy with `count` bytes scrambled right after the first `box` type (e.g. 'hvcC', 'mdat'). */
export function scrambleAfter(heic: Buffer, box: string, count: number): Buffer {
  const out = Buffer.from(heic);
  const at = out.indexOf(box) + 4;
  if (at < 4) throw new Error(`no ${box} box`);
  for (let i = at; i < at + count && i < out.length; i++) out[i] ^= 0xa5;
  return out;
}
