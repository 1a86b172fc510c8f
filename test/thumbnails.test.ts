/**
 * The thumbnail cache (server/thumbnails.ts): real photos, encoded once, kept within a byte budget
 * with the least recently used thumbnails dropped first, and only ever made from the content that
 * was indexed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Thumbnails } from '../server/thumbnails.ts';
import { HYM_TRAIN, imagesIn, tempDir } from './fixtures.ts';

const photos = imagesIn(path.join(HYM_TRAIN, 'bees')).slice(0, 6);
const source = (file: string, id: number) => ({ id, path: file, sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex') });

describe('thumbnails', () => {
  it('encodes a thumbnail once and serves it from the cache after that', async () => {
    const t = new Thumbnails({ size: 128, cacheBytes: 1 << 20, maxInputPixels: 1e8 });
    const first = await t.get(source(photos[0], 1), 'jpeg');
    assert.ok(first.length > 500 && first[0] === 0xff && first[1] === 0xd8, 'a JPEG');
    assert.equal(await t.get(source(photos[0], 1), 'jpeg'), first, 'the same buffer: from the cache');
    assert.equal(t.cachedBytes, first.length);
    const webp = await t.get(source(photos[0], 1), 'webp');
    assert.equal(webp.subarray(8, 12).toString(), 'WEBP');
    assert.equal(t.cachedBytes, first.length + webp.length);
  });

  it('stays within its byte budget, dropping the least recently used first', async () => {
    const one = await new Thumbnails({ size: 128, cacheBytes: 0, maxInputPixels: 1e8 }).get(source(photos[0], 1), 'jpeg');
    const t = new Thumbnails({ size: 128, cacheBytes: Math.floor(one.length * 3.5), maxInputPixels: 1e8 });
    const bufs = [];
    for (const [i, p] of photos.entries()) {
      bufs.push(await t.get(source(p, i + 1), 'jpeg'));
      assert.ok(t.cachedBytes <= Math.floor(one.length * 3.5), `${t.cachedBytes} bytes cached`);
      if (i >= 1) await t.get(source(photos[0], 1), 'jpeg'); // keep the first one recently used
    }
    assert.equal(await t.get(source(photos[0], 1), 'jpeg'), bufs[0], 'the recently used one stayed');
    assert.notEqual(await t.get(source(photos[1], 2), 'jpeg'), bufs[1], 'an old one was dropped and made again');
  });

  it('caches nothing with a budget of 0, and refuses a file whose content changed', async () => {
    const t = new Thumbnails({ size: 96, cacheBytes: 0, maxInputPixels: 1e8 });
    const a = await t.get(source(photos[2], 3), 'jpeg');
    assert.notEqual(await t.get(source(photos[2], 3), 'jpeg'), a);
    assert.equal(t.cachedBytes, 0);
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, 'x.jpg');
      fs.copyFileSync(photos[3], file);
      const src = source(file, 4);
      fs.copyFileSync(photos[4], file);
      await assert.rejects(t.get(src, 'jpeg'), /changed since it was indexed/);
    } finally {
      tmp.cleanup();
    }
  });
});
