/**
 * The near-duplicate test set (src/eval/near-duplicate-set.ts) on real photos: 14 copies (2 per
 * transformation) of 30 oxford_flowers17 photos with a fixed seed. Checks determinism, the size
 * and format each transformation promises, that an overlay changes only its corner, and that the
 * ground truth pairs every copy with its source and the source's pixel-identical twin. No model.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { InvalidParameterError } from '../src/errors.ts';
import { findDuplicates } from '../src/eval/instance-set.ts';
import { buildNearDuplicateSet, NEAR_TRANSFORMS, nearDuplicateTruth, pairKey, writeNearDuplicateSet, type NearCopy } from '../src/eval/near-duplicate-set.ts';
import { FLOWERS, imagesIn, tempDir } from './fixtures.ts';

const SEED = 15;
const COUNT = 2 * NEAR_TRANSFORMS.length;

/** Decoded sRGB pixels (3 channels, EXIF orientation applied). */
async function pixels(input: Buffer | string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(input).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** Mean absolute difference per channel value inside [x0, x1) × [y0, y1) of two same-size images. */
function meanAbsDiff(a: Buffer, b: Buffer, width: number, box: [number, number, number, number]): number {
  const [x0, y0, x1, y1] = box;
  let sum = 0;
  for (let y = y0; y < y1; y++) {
    for (let i = (y * width + x0) * 3; i < (y * width + x1) * 3; i++) sum += Math.abs(a[i] - b[i]);
  }
  return sum / Math.max(1, (x1 - x0) * (y1 - y0) * 3);
}

describe('near-duplicate set from 30 oxford_flowers17 photos (14 copies, 2 per transformation)', { timeout: 120_000 }, () => {
  const tmp = tempDir('pixdex-near-');
  const all = imagesIn(FLOWERS);
  // Spread over the classes: every ⌊n/30⌋-th photo.
  const sources = Array.from({ length: 30 }, (_, i) => all[Math.floor((i * all.length) / 30)]);
  let copies: NearCopy[];

  before(async () => {
    copies = await buildNearDuplicateSet({ sources: sources.map((p) => ({ path: p })), count: COUNT, seed: SEED });
  });
  after(() => tmp.cleanup());

  it('covers every transformation twice, from distinct sources', () => {
    assert.equal(copies.length, COUNT);
    assert.deepEqual(copies.map((c) => c.transform), [...NEAR_TRANSFORMS, ...NEAR_TRANSFORMS]);
    assert.deepEqual(copies.map((c) => c.index), [...Array(COUNT).keys()]);
    assert.equal(new Set(copies.map((c) => c.sourceIndex)).size, COUNT);
    for (const c of copies) assert.equal(c.source, sources[c.sourceIndex]);
  });

  it('gives identical bytes for the same seed and different ones for another seed', async () => {
    const again = await buildNearDuplicateSet({ sources: sources.map((p) => ({ path: p })), count: COUNT, seed: SEED });
    assert.deepEqual(again.map((c) => c.bytes), copies.map((c) => c.bytes));
    assert.deepEqual(again.map((c) => c.params), copies.map((c) => c.params));
    const other = await buildNearDuplicateSet({ sources: sources.map((p) => ({ path: p })), count: COUNT, seed: SEED + 1 });
    assert.notDeepEqual(other.map((c) => c.source), copies.map((c) => c.source));
    assert.notDeepEqual(other.map((c) => c.bytes), copies.map((c) => c.bytes));
    // Only a lossless `format` copy of the same photo drawn again could come out equal.
    assert.ok(other.filter((c, i) => !c.bytes.equals(copies[i].bytes)).length >= COUNT - 2, 'copies differ under another seed');
  });

  it('decodes every copy with the size and format its transformation promises', async () => {
    for (const c of copies) {
      const src = await sharp(c.source).metadata();
      const [sw, sh] = [src.autoOrient.width, src.autoOrient.height];
      const meta = await sharp(c.bytes).metadata();
      const [w, h] = [meta.width, meta.height];
      const what = `${c.index} ${c.transform} ${JSON.stringify(c.params)}: ${w}x${h} from ${sw}x${sh}`;
      const format = c.transform === 'format' ? (c.index < NEAR_TRANSFORMS.length ? 'png' : 'webp') : 'jpeg';
      assert.equal(meta.format, format, what);
      assert.equal(c.ext, { jpeg: '.jpg', png: '.png', webp: '.webp' }[format], what);
      if (format === 'png') assert.deepEqual([...c.bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], what);
      if (format === 'webp') assert.deepEqual([c.bytes.toString('latin1', 0, 4), c.bytes.toString('latin1', 8, 12)], ['RIFF', 'WEBP'], what);
      if (format === 'jpeg') assert.deepEqual([...c.bytes.subarray(0, 3)], [0xff, 0xd8, 0xff], what);
      switch (c.transform) {
        case 'resize':
          assert.ok(w < sw && h < sh, what);
          assert.ok(w >= 0.3 * sw - 1 && w <= 0.7 * sw + 1, what);
          assert.ok(Math.abs(w / h - sw / sh) < 0.02 * (sw / sh), `aspect kept: ${what}`);
          break;
        case 'crop':
          assert.ok(w >= 0.8 * sw - 1 && w <= 0.95 * sw + 1, what);
          assert.ok(h >= 0.8 * sh - 1 && h <= 0.95 * sh + 1, what);
          break;
        case 'combined':
          assert.ok(w < sw && h < sh && w >= 0.45 * sw - 1 && h >= 0.45 * sh - 1, what);
          break;
        default:
          assert.deepEqual([w, h], [sw, sh], what);
      }
    }
  });

  it('changes only the overlay corner: small mean difference overall, a large one inside the box', async () => {
    for (const c of copies.filter((x) => x.transform === 'overlay')) {
      const a = await pixels(c.source);
      const b = await pixels(c.bytes);
      const { boxLeft, boxTop, boxWidth, boxHeight, area } = c.params as Record<string, number>;
      assert.ok(area >= 0.025 && area <= 0.105, `area ${area}`);
      const whole = meanAbsDiff(a.data, b.data, a.width, [0, 0, a.width, a.height]);
      const box = meanAbsDiff(a.data, b.data, a.width, [boxLeft, boxTop, boxLeft + boxWidth, boxTop + boxHeight]);
      const rest = (whole * a.width * a.height - box * boxWidth * boxHeight) / (a.width * a.height - boxWidth * boxHeight);
      const what = `${c.index} ${JSON.stringify(c.params)}: whole ${whole.toFixed(2)}, box ${box.toFixed(2)}, rest ${rest.toFixed(2)}`;
      assert.ok(whole > 0 && whole < 10, what);
      assert.ok(box > 20 && box > 5 * whole, what);
      assert.ok(rest < 3, what);
      const placement = String(c.params.placement);
      if (placement.includes('left')) assert.ok(boxLeft < 0.05 * a.width, what);
      if (placement.includes('right')) assert.ok(boxLeft + boxWidth > 0.95 * a.width, what);
      if (placement.startsWith('top')) assert.ok(boxTop < 0.05 * a.height, what);
      if (placement.startsWith('bottom')) assert.ok(boxTop + boxHeight > 0.95 * a.height, what);
    }
  });

  it('writes copy-<index>-<transform><ext> and pairs each copy with its source and its pixel-identical twin', async () => {
    const paths = await writeNearDuplicateSet(copies, path.join(tmp.dir, 'copies'));
    assert.deepEqual(paths.map((p) => path.basename(p)), copies.map((c) => `copy-${c.index}-${c.transform}${c.ext}`));
    paths.forEach((p, i) => assert.ok(fs.readFileSync(p).equals(copies[i].bytes)));
    // A re-encoded twin of copy 0's source (as flowers17's own duplicates are) joins the sources:
    // findDuplicates must group it with that source. (A PNG twin of a JPEG is not found: its 16×16
    // thumbnail skips the JPEG's shrink-on-load and differs by ~2.5 grey levels, over the limit of 2.)
    const twin = path.join(tmp.dir, 'twin.jpg');
    await sharp(copies[0].source).rotate().jpeg({ quality: 95 }).toFile(twin);
    const sourcePaths = [...sources, twin];
    const groups = await findDuplicates(sourcePaths);
    assert.ok(groups[copies[0].sourceIndex].includes(sources.length), 'the twin is found pixel-identical');
    const written = copies.map((c, i) => ({ ...c, path: paths[i] }));
    const truth = nearDuplicateTruth(sourcePaths, written, groups);
    for (const c of written) assert.ok(truth.has(pairKey(c.path, c.source)), `${c.path} ~ ${c.source}`);
    assert.ok(truth.has(pairKey(twin, written[0].path)), 'copy 0 ~ twin');
    assert.ok(truth.has(pairKey(copies[0].source, twin)), 'source ~ twin');
    groups.forEach((g, i) => g.forEach((j) => i === j || assert.ok(truth.has(pairKey(sourcePaths[i], sourcePaths[j])))));
    assert.ok(!truth.has(pairKey(written[0].path, written[1].path)), 'copies of different photos are not the same picture');
    for (const key of truth) {
      const [a, b] = key.split('\u0000');
      assert.ok(a < b, `ordered key ${key}`);
    }
    // Copies from distinct sources: one pair with the source, one per pixel-identical photo of it.
    const sourcePairs = groups.reduce((n, g) => n + g.length - 1, 0) / 2;
    const copyPairs = copies.reduce((n, c) => n + groups[c.sourceIndex].length, 0);
    assert.equal(truth.size, sourcePairs + copyPairs);
  });
});

describe('near-duplicate set parameters and ground truth (no images)', () => {
  it('orders pair keys and rejects bad counts, seeds and unknown sources', async () => {
    assert.equal(pairKey('/b', '/a'), '/a\u0000/b');
    assert.equal(pairKey('/a', '/b'), pairKey('/b', '/a'));
    const sources = [{ path: '/x/0.jpg' }, { path: '/x/1.jpg' }];
    for (const count of [0, 3, 1.5]) await assert.rejects(buildNearDuplicateSet({ sources, count, seed: 1 }), InvalidParameterError);
    await assert.rejects(buildNearDuplicateSet({ sources, count: 1, seed: 0.5 }), InvalidParameterError);
    assert.throws(() => nearDuplicateTruth(['/a'], [{ source: '/b', path: '/c' }], [[0]]), InvalidParameterError);
    assert.throws(() => nearDuplicateTruth(['/a', '/b'], [], [[0]]), InvalidParameterError);
  });

  it('makes copies of pixel-identical sources the same picture, and nothing else', () => {
    const truth = nearDuplicateTruth(['/s0', '/s1', '/s2'], [{ source: '/s0', path: '/c0' }, { source: '/s1', path: '/c1' }, { source: '/s2', path: '/c2' }], [[0, 1], [0, 1], [2]]);
    const expected = [['/s0', '/s1'], ['/c0', '/s0'], ['/c0', '/s1'], ['/c1', '/s0'], ['/c1', '/s1'], ['/c0', '/c1'], ['/c2', '/s2']];
    assert.deepEqual(new Set(truth), new Set(expected.map(([a, b]) => pairKey(a, b))));
  });
});
